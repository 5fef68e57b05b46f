/* C fixtures for ffiber's foreign-call tests. Plain C, compiled by cc. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int plusone(int x) { return x + 1; }

long sum8(long a, long b, long c, long d, long e, long f, long g, long h) {
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
}

double fsum8(double a, double b, double c, double d, double e, double f, double g, double h) {
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
}

double mixed(int a, double b, long c, float d, char e, double f) { return a + b + c + d + e + f; }

struct pair { long a; double b; };
struct pair make_pair(long a, double b) { struct pair p = { a * 2, b * 2 }; return p; }

struct big { long v[5]; };
struct big make_big(long x) {
    struct big b;
    for (int i = 0; i < 5; i++) b.v[i] = x + i;
    return b;
}

/* Blocks the calling OS thread. */
void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* Blocks the calling OS thread for `us` microseconds. */
void sleep_us(unsigned us) {
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* Waits as SQLite's busy handler does: until *flag is set, sleeping `us`
   microseconds with usleep between looks, at most `tries` times. Returns
   the looks it took (tries + 1 if the flag never came). */
int usleep_until(volatile int *flag, unsigned us, int tries) {
    for (int i = 0; i < tries; i++) {
        if (__atomic_load_n(flag, __ATOMIC_ACQUIRE)) return i;
        if (usleep(us) != 0) return -1;
    }
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE) ? tries : tries + 1;
}

/* Uses `kib` KiB of stack (the volatile array is really written), returns a checksum. */
long deep_stack(int kib) {
    volatile unsigned char buf[kib * 1024];
    memset((void *)buf, 1, sizeof buf);
    long s = 0;
    for (int i = 0; i < kib * 1024; i += 4096) s += buf[i];
    return s + buf[kib * 1024 - 1];
}

/* Sets errno and returns -1, as a failing libc call does. */
int fail_with(int e) { errno = e; return -1; }

/* Writes through a null pointer: a crash inside C. */
int crash_null(int x) {
    volatile int *p = 0;
    *p = x;
    return x;
}

/* Recurses n times with 1 KiB frames, touching each frame in order. */
int recurse(int n) {
    volatile char buf[1024];
    buf[0] = (char)n;
    buf[1023] = (char)n;
    if (n == 0) return 0;
    return recurse(n - 1) + buf[0] - buf[1023];
}

/* A C library that keeps a pointer it was given (the bug check mode catches). */
static int *kept;
void keep_pointer(int *p) { kept = p; }
void write_kept(int v) { *kept = v; }

/* Busy-waits (no sleeping system call) until *flag is non-zero or max_us
   microseconds have passed; returns 1 if the flag came. */
int spin_until(const int *flag, unsigned max_us) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        if (__atomic_load_n(flag, __ATOMIC_SEQ_CST)) return 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        long d = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
        if (d >= (long)max_us) return 0;
    }
}

/* Busy-waits `us` microseconds without a system call that sleeps: a C
   computation that keeps its thread (what a NonBlocking call may do). */
unsigned long spin_us(unsigned us) {
    struct timespec a, b;
    unsigned long n = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        for (int i = 0; i < 1000; i++) n++;
        clock_gettime(CLOCK_MONOTONIC, &b);
        long d = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
        if (d >= (long)us) return n;
    }
}
