// Java calling plusone in libplusone.so through JNI (libplusone_jni.so,
// from plusone_jni.c), the talk's loop; the loop runs twice so the second
// run is JIT-compiled. Prints metric=value lines. Usage: java PlusOne <count>
public class PlusOne {
    static native int plusone(int x);

    static double timed(int count) {
        long t = System.nanoTime();
        int x = 0;
        while (x < count) x = plusone(x);
        return (double) (System.nanoTime() - t) / count;
    }

    public static void main(String[] args) {
        System.loadLibrary("plusone_jni");
        int count = Integer.parseInt(args[0]);
        timed(count);
        System.out.printf("java_jni_ns=%.3f%n", timed(count));
    }
}
