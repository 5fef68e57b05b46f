/* The talk's workload (dyu/ffi-overhead): built -O2 into libplusone.so, so
 * that every caller reaches it through the PLT. `plusone_nc` is the same
 * function under a second name, for callers that annotate it differently
 * (cgo's noescape/nocallback) in the same program. */
#include <errno.h>
#include <time.h>

int plusone(int x) { return x + 1; }
int plusone_nc(int x) { return x + 1; }

/* The callback workload: C calls back into the caller's language. */
int call_cb(int (*cb)(int), int x) { return cb(x); }

/* The blocking workload: the calling OS thread sleeps in C. */
void block_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}
