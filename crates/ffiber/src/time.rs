//! Sleeping and deadlines: [`sleep`], [`sleep_until`], and the helpers the
//! blocking primitives use. The timers themselves — a heap per P, fired by
//! the scheduler — are in `sched/timers.rs`.

use crate::sched::g::G;
use crate::sched::timers::add_timer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parks the current green thread until `deadline` or an unpark, whichever
/// first. Returns spuriously like `park`.
pub(crate) fn park_until(g: &Arc<G>, deadline: Instant) {
    let when = g.sched.when(deadline);
    if when <= g.sched.now() {
        return;
    }
    let h = add_timer(g, when, true);
    crate::sched::m::park_current();
    h.cancel(g);
}

/// Puts the current green thread to sleep for at least `dur`; other green
/// threads run meanwhile. Outside the runtime, sleeps the OS thread.
///
/// ```
/// use std::time::{Duration, Instant};
/// ffiber::run(|| {
///     let t = Instant::now();
///     ffiber::sleep(Duration::from_millis(5));
///     assert!(t.elapsed() >= Duration::from_millis(5));
/// });
/// ```
///
/// A duration too long to add to the clock (`Duration::MAX`) sleeps for
/// ever, as `std::thread::sleep` does in practice.
pub fn sleep(dur: Duration) {
    match deadline_after(dur) {
        Some(d) => sleep_until(d),
        None if crate::sched::current_g_arc().is_some() => loop {
            crate::sched::m::park_current();
        },
        None => loop {
            std::thread::sleep(Duration::from_secs(u32::MAX as u64));
        },
    }
}

/// `now + timeout`, or `None` ("no deadline") when that instant cannot be
/// represented (`Duration::MAX` and the like).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Sleeps until `deadline` (see [`sleep`]).
pub fn sleep_until(deadline: Instant) {
    let Some(g) = crate::sched::current_g_arc() else {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        return;
    };
    let when = g.sched.when(deadline);
    // One timer for the whole sleep; spurious wake-ups just park again.
    let mut armed = false;
    while g.sched.now() < when {
        if !armed {
            add_timer(&g, when, false);
            armed = true;
        }
        crate::sched::m::park_current();
    }
}
