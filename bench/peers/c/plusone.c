/* The talk's workload (dyu/ffi-overhead): built -O2 into libplusone.so, so
 * that every caller reaches it through the PLT. `plusone_nc` is the same
 * function under a second name, for callers that annotate it differently
 * (cgo's noescape/nocallback) in the same program. */
#include <errno.h>
#include <string.h>
#include <time.h>

int plusone(int x) { return x + 1; }
int plusone_nc(int x) { return x + 1; }

/* The callback workloads: C calls back into the caller's language, once
 * per call, or n times in a loop inside one call. */
int call_cb(int (*cb)(int), int x) { return cb(x); }
int loop_cb(int (*cb)(int), int n) {
    int x = 0;
    while (x < n) x = cb(x);
    return x;
}

/* The blocking workload: the calling OS thread sleeps in C. */
void block_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* The deep-stack workload: uses `kib` KiB of stack (really written). */
long use_stack(int kib) {
    volatile char buf[kib * 1024];
    memset((void *)buf, 1, sizeof buf);
    long s = 0;
    for (int i = 0; i < kib * 1024; i += 4096) s += buf[i];
    return s;
}
