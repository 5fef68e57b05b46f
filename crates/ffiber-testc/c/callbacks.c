/* C that calls back into Rust, through function pointers it is given.
 * Kept apart from testc.c so that binaries not using callbacks do not pull it in. */
#include <pthread.h>

typedef int (*int_fn)(int);

/* Calls f once: f(x) + 1. */
int apply(int_fn f, int x) { return f(x) + 1; }

void sleep_us(unsigned us);

/* Calls f(x), then stays in C for `us` microseconds: the call goes on after
 * its callback returned. */
int apply_then_sleep(int_fn f, int x, unsigned us) {
    int r = f(x);
    sleep_us(us);
    return r;
}

/* Sum of f(i) for i in 0..n, called from this (the caller's) thread. */
int apply_n(int_fn f, int n) {
    int s = 0;
    for (int i = 0; i < n; i++) s += f(i);
    return s;
}

struct job { int_fn f; int n; int sum; };

static void *job_main(void *p) {
    struct job *j = p;
    for (int i = 0; i < j->n; i++) j->sum += j->f(i);
    return 0;
}

/* Sum of f(i) for i in 0..n, called from a thread C creates; -1 if it cannot. */
int apply_in_c_thread(int_fn f, int n) {
    struct job j = { f, n, 0 };
    pthread_t t;
    if (pthread_create(&t, 0, job_main, &j) != 0) return -1;
    pthread_join(t, 0);
    return j.sum;
}

/* Hands an opaque context back to a callback, as C libraries do. */
int call_with_ctx(int (*f)(void *ctx, int), void *ctx, int x) { return f(ctx, x); }

/* What some C libraries do at init: take SIGSEGV for themselves, with a
   handler that does not run on the alternate signal stack. */
#include <signal.h>
#include <string.h>
static void plain_segv_handler(int sig) { (void)sig; signal(SIGSEGV, SIG_DFL); }
int install_plain_segv_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain_segv_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSEGV, &sa, 0);
}
