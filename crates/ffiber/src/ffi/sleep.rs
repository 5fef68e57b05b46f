//! `usleep` from C gives the P up for the sleep instead of holding it.
//!
//! C libraries wait by sleeping: SQLite's busy handler, when another
//! connection holds the write lock, sleeps 1, 2, 5, 10… ms between tries
//! (`usleep`), inside `sqlite3_exec` or `sqlite3_step`. During a default-mode
//! foreign call such a sleep keeps the M's P until the monitor notices the
//! call is stuck (two looks, 20 µs apart at best), and when the sleeper
//! finally gets the lock, it comes back from C to no P, holding the lock
//! while it waits for one — every other writer waits behind it. Go's cgo has
//! the same problem (a goroutine sleeping in C holds its P until sysmon).
//!
//! The process's `usleep` is this crate's (feature `usleep-hook`, on by
//! default; the executable's definition comes before the C library's in
//! symbol lookup, so calls from shared libraries such as `libsqlite3` land
//! here too). Called on an M during a default-mode call (from C or from the
//! call's closure) for at least [`GREEN_SLEEP_MIN`], it runs as a callback
//! that sleeps the OS thread in a [`Mode::Blocking`](super::Mode) call:
//!
//! - the P goes back to the scheduler at once, to run other green threads
//!   (the callback takes it back from the outer call, and the `Blocking`
//!   call hands it off);
//! - the kernel wakes the thread when the time is up — punctually, and
//!   whatever the scheduler is doing at that moment;
//! - the green thread then takes an idle P, else a sleepers' spare P
//!   (`sched::preempt::take_sleeper_spare`), and C goes on at once with
//!   it: the lock SQLite then takes is taken by a thread that can run, and
//!   the retry comes at its time, as an OS thread's would. Only with no
//!   spare free does it wait for a P on the global queue (asking a P's
//!   holder to yield).
//!
//! The first version parked the green thread on a runtime timer instead.
//! Timers fire at scheduling points, and in SQLite's write mix green
//! threads reach those mostly when a writer has just failed to take the
//! lock and parks — so retries came when the lock was taken, 0.4–0.7 ms
//! late on average, and a writer that failed once kept failing. The OS
//! sleep made the write mix 10–20% faster (`docs/DESIGN.md`, "The write
//! mix's retries, measured (session 16)").
//!
//! Either way the sleep itself is glibc's (one `nanosleep`, `-1` with
//! `EINTR` if a signal interrupts it). Everywhere else it keeps what the
//! thread holds, P included:
//!
//! - on a plain OS thread, a green thread outside any foreign call, or in
//!   a forked child (which has no runtime: see `fork`);
//! - in a `NonBlocking` call (its caller said it never blocks), a
//!   `NoCallback` call (no callback may run there) or a `Blocking` call
//!   (its caller said it blocks: the P is handed off before the call, or
//!   at the monitor's first look once work appears);
//! - for a sleep shorter than [`GREEN_SLEEP_MIN`];
//! - once the runtime has run short of OS threads (at `max_threads`, or
//!   the OS refused one): the P a sleep gives up needs another M to run
//!   the green threads waiting for it, while the sleeper keeps its own;
//! - with `FFIBER_USLEEP_HOOK=0` in the environment (read once).
//!
//! Only `usleep` is replaced: `nanosleep` is async-signal-safe (a signal
//! handler may call it, and a handler must never switch stacks), and
//! `sleep` counts whole seconds, which the monitor's hand-off serves well
//! enough.

use std::time::Duration;

/// Sleeps shorter than this keep the P: giving it up costs a callback, a
/// hand-off and a P to take back, more than a short sleep holds it (and
/// the monitor would not take it before 20 µs anyway).
pub const GREEN_SLEEP_MIN: Duration = Duration::from_micros(50);

/// Whether `usleep` may give up the P: on unless the environment
/// says `FFIBER_USLEEP_HOOK=0` (read once).
fn hook_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FFIBER_USLEEP_HOOK").is_none_or(|v| v != "0"))
}

/// The C library's `usleep`, as seen by every caller in the process: see
/// the module docs. Returns 0, or -1 with `errno` set to `EINTR` when a
/// signal interrupted the sleep.
///
/// ```
/// // Outside the runtime: an ordinary sleep.
/// let t = std::time::Instant::now();
/// assert_eq!(unsafe { libc::usleep(2_000) }, 0);
/// assert!(t.elapsed() >= std::time::Duration::from_millis(2));
/// ```
#[cfg(feature = "usleep-hook")]
#[unsafe(no_mangle)]
pub extern "C" fn usleep(usec: libc::useconds_t) -> libc::c_int {
    let dur = Duration::from_micros(usec.into());
    if dur >= GREEN_SLEEP_MIN && super::callback::in_default_call() && hook_enabled() {
        return super::callback("usleep", || super::call_mode(super::Mode::Blocking, || os_sleep(dur)));
    }
    os_sleep(dur)
}

/// Sleeps the OS thread for `dur` (at most `useconds_t::MAX` µs): one
/// `nanosleep`, glibc's `usleep`.
fn os_sleep(dur: Duration) -> libc::c_int {
    let ts = libc::timespec { tv_sec: dur.as_secs() as libc::time_t, tv_nsec: dur.subsec_nanos().into() };
    // SAFETY: a valid, normalised timespec; no remainder asked for.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) }
}
