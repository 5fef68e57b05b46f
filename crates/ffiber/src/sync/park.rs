//! Blocking that works for green threads and OS threads alike.
//!
//! Every blocking primitive in ffiber (channels, `Mutex`, `WaitGroup`,
//! `JoinHandle::join`) waits through a [`Waiter`]: a flag plus the identity
//! of whoever waits. A green thread parks (its P runs other green threads); a
//! plain OS thread parks itself with `std::thread::park`. The waker does not
//! need to know which: [`Waiter::notify`] does the right thing.

use crate::sched::g::G;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Who to wake.
pub(crate) enum Unparker {
    Green(Arc<G>),
    Os(std::thread::Thread),
}

impl Unparker {
    /// The caller: its green thread if it runs in one, else its OS thread.
    pub(crate) fn current() -> Unparker {
        match crate::sched::current_g_arc() {
            Some(g) => Unparker::Green(g),
            None => Unparker::Os(std::thread::current()),
        }
    }

    pub(crate) fn unpark(&self) {
        match self {
            Unparker::Green(g) => g.unpark(),
            Unparker::Os(t) => t.unpark(),
        }
    }
}

/// Parks the caller until unparked or `deadline`; may return spuriously.
pub(crate) fn park(deadline: Option<Instant>) {
    crate::fork::check("a thread waited on a channel, lock or join");
    match (crate::sched::current_g_arc(), deadline) {
        (Some(_), None) => crate::sched::m::park_current(),
        (Some(g), Some(d)) => crate::time::park_until(&g, d),
        (None, None) => std::thread::park(),
        (None, Some(d)) => {
            let now = Instant::now();
            if d > now {
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// A one-shot wake-up for one waiting thread (green or OS).
pub(crate) struct Waiter {
    notified: AtomicBool,
    who: Unparker,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub(crate) fn new() -> Arc<Waiter> {
        Arc::new(Waiter { notified: AtomicBool::new(false), who: Unparker::current() })
    }

    /// Wakes the waiter (once; later calls do nothing).
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.who.unpark();
        }
    }

    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Blocks until notified, or until `deadline`. Returns whether notified.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        while !self.is_notified() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.is_notified();
            }
            park(deadline);
        }
        true
    }
}
