//! A spawned closure and the slot its result goes to, in one allocation.
//!
//! Spawning allocates one `Arc<Task<F, T>>`, seen two ways: the green thread
//! holds it as an [`Entry`] (run the closure, store the result) and the
//! [`JoinHandle`](super::JoinHandle) as a [`Joinable<T>`] (wait, take the
//! result). The hand-over is a three-state word, no lock:
//!
//! ```text
//!   RUNNING --join: waiter stored, CAS--> WAITING
//!      |                                     |
//!      +---- complete: result stored, swap DONE; if it was WAITING,
//!                                                wake the stored waiter
//! ```
//!
//! Invariants: only the green thread writes `result`, and only before it
//! publishes `DONE` (release); only the one `JoinHandle` writes `waiter`,
//! and only before it publishes `WAITING`; the completer reads `waiter` only
//! after seeing `WAITING`, and the joiner reads `result` only after seeing
//! `DONE` (acquire).

use crate::sched::RuntimeWatch;
use crate::sched::g::Entry;
use crate::sync::park::{self, Unparker};
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::*};

const RUNNING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

/// The joining side.
pub(crate) trait Joinable<T>: Send + Sync {
    /// Waits for the result and takes it; called at most once. Gives up
    /// with `Err(())` once `rt` (the green thread's runtime) has shut down
    /// and the result is not there.
    fn join(&self, rt: &RuntimeWatch) -> Result<std::thread::Result<T>, ()>;
    fn is_finished(&self) -> bool;
}

pub(crate) struct Task<F, T> {
    state: AtomicU8,
    f: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    waiter: UnsafeCell<Option<Unparker>>,
}

// SAFETY: the cells are handed over by the protocol in the module docs:
// `f` is touched only by the green thread (once, in `run`), `result` by the
// green thread before DONE and by the joiner after it, `waiter` by the
// joiner before WAITING and by the completer after it. `F` and `T` are
// `Send`, and they move between threads only through those hand-overs.
unsafe impl<F: Send, T: Send> Sync for Task<F, T> {}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(f: F) -> Arc<Self> {
        Arc::new(Task {
            state: AtomicU8::new(RUNNING),
            f: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
        })
    }
}

impl<F, T> Entry for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        // SAFETY: `run` is called once, by the green thread, the only user
        // of `f`.
        let f = unsafe { (*self.f.get()).take() };
        let Some(f) = f else { return };
        let mut r = panic::catch_unwind(AssertUnwindSafe(f));
        // The green thread's locals go before its result is published, as
        // a thread's locals are destroyed before its join returns. A panic
        // in one of their destructors is the green thread's panic.
        if let Err(p) = panic::catch_unwind(crate::local::drop_current)
            && r.is_ok()
        {
            r = Err(p);
        }
        // SAFETY: the green thread alone writes `result`, before DONE; the
        // slot is empty, so no user destructor runs here.
        unsafe { *self.result.get() = Some(r) };
        if self.state.swap(DONE, AcqRel) == WAITING {
            // SAFETY: WAITING was published after the joiner stored its
            // waiter, and it never touches the slot again.
            let w = unsafe { (*self.waiter.get()).take() };
            if let Some(w) = w {
                w.unpark();
            }
        }
    }
}

impl<F, T> Joinable<T> for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn join(&self, rt: &RuntimeWatch) -> Result<std::thread::Result<T>, ()> {
        if self.state.load(Acquire) != DONE {
            // A joiner outside the runtime (an OS thread, or a green thread
            // of another runtime) would wait for ever if the runtime shut
            // down first: it registers to be woken by the shutdown.
            let _watch = rt.watch();
            // SAFETY: the JoinHandle (unique, and `join` consumes it) is the
            // only writer of `waiter`, and writes it before publishing WAITING.
            unsafe { *self.waiter.get() = Some(Unparker::current()) };
            if self.state.compare_exchange(RUNNING, WAITING, AcqRel, Acquire).is_ok() {
                while self.state.load(Acquire) != DONE {
                    if rt.is_shut_down() {
                        // The waiter slot keeps our handle: a green thread
                        // still running may complete and unpark us late,
                        // which is a harmless spurious wake-up.
                        return Err(());
                    }
                    park::park(None);
                }
            } else {
                // DONE meanwhile: the completer never read the slot. Drop our
                // handle now rather than with the task (a green joiner's G
                // could not be reused while the task keeps it referenced).
                // SAFETY: we are the slot's only writer and nobody reads it.
                drop(unsafe { (*self.waiter.get()).take() });
            }
        }
        // SAFETY: DONE was observed with acquire: the green thread wrote the
        // result before publishing it and will not touch it again.
        let r = unsafe { (*self.result.get()).take() };
        Ok(r.expect("ffiber: a green thread's result was taken twice"))
    }

    fn is_finished(&self) -> bool {
        self.state.load(Acquire) == DONE
    }
}
