"""Python calling plusone in libplusone.so: ctypes (standard library) and
cffi (ABI mode), the talk's loop. Prints metric=value lines for ffibench.
Usage: python3 bench.py <libplusone.so> <count>"""
import ctypes
import sys
import time

path, count = sys.argv[1], int(sys.argv[2])


def timed(f):
    t = time.perf_counter_ns()
    x = 0
    while x < count:
        x = f(x)
    return (time.perf_counter_ns() - t) / count


lib = ctypes.CDLL(path)
lib.plusone.argtypes = [ctypes.c_int]
lib.plusone.restype = ctypes.c_int
print(f"python_ctypes_ns={timed(lib.plusone):.3f}")

try:
    from cffi import FFI
except ImportError:
    print("python_cffi_error=not installed — pip install cffi")
else:
    ffi = FFI()
    ffi.cdef("int plusone(int x);")
    clib = ffi.dlopen(path)
    print(f"python_cffi_ns={timed(clib.plusone):.3f}")
