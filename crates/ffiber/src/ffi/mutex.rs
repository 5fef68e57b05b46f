//! `pthread_mutex_lock` from C spins briefly before it sleeps, on an M
//! that holds a P.
//!
//! C libraries guard their shared state with pthread mutexes: SQLite takes
//! its global mutexes (memory statistics, the page cache, the unix VFS's
//! inode list) many times per query. glibc's default mutex does not spin:
//! a thread that finds it taken goes to sleep in the kernel at once, and
//! the holder, done a few hundred nanoseconds later, wakes it with a
//! `futex` call; the sleeper runs again after the kernel's wake-up latency
//! (tens of microseconds on a virtual machine whose idle CPU has halted).
//!
//! On 64 OS threads that sleep costs little: the kernel runs another thread
//! on the CPU meanwhile. On an M it costs the M's P: the green threads
//! queued on it wait, and the CPU idles, until the M wakes — far too short
//! for the monitor (which takes a P after 20 µs) to step in. With SQLite's
//! point reads from 64 green threads on 2 Ps, the Ms slept ~7,000 times a
//! second, two thirds of them this way (on SQLite's memory-statistics
//! mutex, in `sqlite3Malloc` and `sqlite3_free`), and left ~7% of the CPU
//! idle (`docs/DESIGN.md`, "C mutexes").
//!
//! So the process's `pthread_mutex_lock` is this crate's (feature
//! `mutex-spin`, on by default; the executable's definition comes first in
//! symbol lookup, as for `usleep` in `ffi::sleep`). On an M that holds a
//! P, inside a foreign call, it tries the mutex up to [`SPIN_TRIES`] times
//! with `pthread_mutex_trylock`, a pause between tries — what glibc's
//! adaptive mutexes (`PTHREAD_MUTEX_ADAPTIVE_NP`) do, and Go's runtime locks
//! before they sleep — and only then calls the C library's own
//! `pthread_mutex_lock`, which sleeps. Everywhere else — a plain OS thread,
//! an M without a P, a forked child — it calls the C library's at once.
//! `FFIBER_MUTEX_SPIN=N` in the environment (read once) sets the tries;
//! `FFIBER_MUTEX_SPIN=0` turns spinning off.
//!
//! The answer is always the C library's: a try that does not find the
//! mutex taken (`EBUSY`) returns what `pthread_mutex_trylock` returned —
//! the lock itself, or for a recursive mutex one more level, for a robust
//! mutex whose owner died `EOWNERDEAD`, and so on, as `pthread_mutex_lock`
//! would have — and an error-checking mutex its owner locks again reports
//! `EDEADLK` from the C library's lock after the tries (a try answers
//! `EBUSY` there). The C library's function is found once, by version
//! (`dlvsym`, `GLIBC_2.2.5`), and if it cannot be found the process stops
//! with a message: a lock that silently did not exclude would be a wrong
//! answer.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Tries of `pthread_mutex_trylock` before sleeping (unless
/// `FFIBER_MUTEX_SPIN=N` says otherwise): ~14 µs with the pauses between
/// them on a Zen 4 VM, less than the 20 µs after which the monitor takes a
/// P stuck in C, and more than SQLite's critical sections last. On SQLite's
/// point reads from 64 green threads on 2 Ps (interleaved 3 s runs): 0
/// tries 436–468k queries/s and ~20,000 sleeps of the Ms in 3 s; 100 tries
/// 548–578k and ~17,500; 200 tries 521–653k and ~5,700; 400 tries
/// 554–784k and ~3,700.
pub const SPIN_TRIES: u32 = 400;

type LockFn = unsafe extern "C" fn(*mut libc::pthread_mutex_t) -> libc::c_int;

/// The C library's `pthread_mutex_lock`, once found.
static REAL: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());

/// The C library's `pthread_mutex_lock` (found on first use).
fn real_lock() -> LockFn {
    let mut p = REAL.load(Ordering::Acquire);
    if p.is_null() {
        // SAFETY: C strings; `dlvsym` only looks the symbol up. glibc's
        // loader locks are its own internal ones, not this function, so
        // the lookup does not come back here.
        p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"pthread_mutex_lock".as_ptr(), c"GLIBC_2.2.5".as_ptr()) };
        if p.is_null() {
            // SAFETY: as above.
            p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_mutex_lock".as_ptr()) };
        }
        if p.is_null() {
            cannot_find_the_real_lock();
        }
        REAL.store(p, Ordering::Release);
    }
    // SAFETY: `p` is the C library's `pthread_mutex_lock`, whose type this is.
    unsafe { std::mem::transmute::<*mut libc::c_void, LockFn>(p) }
}

#[cold]
fn cannot_find_the_real_lock() -> ! {
    let msg = b"ffiber: cannot find the C library's pthread_mutex_lock (dlvsym RTLD_NEXT); build without the \
                `mutex-spin` feature of ffiber to use it directly\n";
    // SAFETY: writing a static buffer to stderr; nothing else to go wrong.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// Tries before sleeping: [`SPIN_TRIES`], or what the environment says in
/// `FFIBER_MUTEX_SPIN` (a number; 0 turns spinning off), read once.
fn spin_tries() -> u32 {
    static TRIES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *TRIES.get_or_init(|| {
        let Some(v) = std::env::var_os("FFIBER_MUTEX_SPIN") else { return SPIN_TRIES };
        v.to_str().and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| {
            eprintln!(
                "ffiber: FFIBER_MUTEX_SPIN={v:?} is not a number of tries (0 turns spinning off); using {SPIN_TRIES}"
            );
            SPIN_TRIES
        })
    })
}

/// The process's `pthread_mutex_lock`: see the module docs. Returns what
/// the C library's `pthread_mutex_trylock` or `pthread_mutex_lock`
/// returned.
///
/// ```
/// let mut m: libc::pthread_mutex_t = libc::PTHREAD_MUTEX_INITIALIZER;
/// // SAFETY: an initialised mutex, locked and unlocked once.
/// unsafe {
///     assert_eq!(libc::pthread_mutex_lock(&mut m), 0);
///     assert_eq!(libc::pthread_mutex_trylock(&mut m), libc::EBUSY);
///     assert_eq!(libc::pthread_mutex_unlock(&mut m), 0);
/// }
/// ```
///
/// # Safety
///
/// As for C's `pthread_mutex_lock`: `m` points to an initialised mutex.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_mutex_lock(m: *mut libc::pthread_mutex_t) -> libc::c_int {
    if super::callback::holds_p_in_call() {
        for _ in 0..spin_tries() {
            // SAFETY: our caller's mutex, as `pthread_mutex_lock` takes it.
            let r = unsafe { libc::pthread_mutex_trylock(m) };
            if r != libc::EBUSY {
                return r;
            }
            std::hint::spin_loop();
        }
    }
    // SAFETY: as above, the C library's own lock.
    unsafe { real_lock()(m) }
}
