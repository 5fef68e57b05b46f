// Java (JDK >= 22) calling plusone in libplusone.so through the Foreign
// Function & Memory API (Panama), the talk's loop, twice (JIT warm-up).
// Usage: java PlusOneFFM <libplusone.so> <count>
import java.lang.foreign.*;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

public class PlusOneFFM {
    public static void main(String[] args) throws Throwable {
        int count = Integer.parseInt(args[1]);
        Linker linker = Linker.nativeLinker();
        SymbolLookup lib = SymbolLookup.libraryLookup(Path.of(args[0]), Arena.global());
        MethodHandle plusone = linker.downcallHandle(
            lib.find("plusone").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
            Linker.Option.critical(false));
        double ns = 0;
        for (int run = 0; run < 2; run++) {
            long t = System.nanoTime();
            int x = 0;
            while (x < count) x = (int) plusone.invokeExact(x);
            ns = (double) (System.nanoTime() - t) / count;
        }
        System.out.printf("java_ffm_ns=%.3f%n", ns);
    }
}
