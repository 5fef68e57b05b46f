/* The talk's baseline: C calling plusone in libplusone.so through the PLT,
 * and the floor: a direct call to a copy in this file that the compiler
 * may not inline or analyse. Prints metric=value lines for ffibench.
 * Usage: c-bench <count> */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int plusone(int x);

#if defined(__clang__)
__attribute__((noinline, optnone))
#else
__attribute__((noinline, noipa))
#endif
static int plusone_direct(int x) { return x + 1; }

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 20000000;
    double t = now_ns();
    int x = 0;
    while (x < count) x = plusone(x);
    printf("c_plt_ns=%.3f\n", (now_ns() - t) / count);
    t = now_ns();
    x = 0;
    while (x < count) x = plusone_direct(x);
    printf("c_direct_ns=%.3f\n", (now_ns() - t) / count);
    return 0;
}
