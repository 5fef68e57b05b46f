//! G: a green thread, and the park/unpark protocol.
//!
//! # Ownership
//!
//! A G is shared (`Arc<G>`) between its [`JoinHandle`](crate::JoinHandle)'s
//! wakers, wait queues and the scheduler, but its mutable state (`GInner`:
//! saved stack pointer, stack, entry closure, lock count) has exactly one
//! *owner* at a time, and only the owner touches it:
//!
//! - the M that is running it, or that it just switched away from;
//! - a run queue, between being readied and being picked (ownership moves in
//!   and out with release/acquire on the queue);
//! - nobody, while parked: the unparker that wins the `PARKED -> NOTIFIED`
//!   swap becomes the owner and hands it to a run queue.
//!
//! # Park states
//!
//! `park` is a token, as with `std::thread::park`: an `unpark` before the
//! `park` makes it return at once, and a park may return spuriously, so every
//! waiter re-checks its condition in a loop.
//!
//! ```text
//!            unpark                       g0: CAS EMPTY->PARKED
//!   EMPTY ----------> NOTIFIED     EMPTY ------------------------> PARKED
//!     ^                  |                                            |
//!     |  park() returns  |                  unpark: swap NOTIFIED,    |
//!     +------------------+                  saw PARKED -> ready(g)  <-+
//! ```
//!
//! The `EMPTY -> PARKED` step runs on the M's scheduler context *after* the
//! green thread's registers are saved (Go's `gopark` does the same with its
//! unlock function), so a waker can never resume a G that is still running.

use super::{M, Sched};
use crate::stack::Stack;
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

pub(crate) const EMPTY: u8 = 0;
pub(crate) const PARKED: u8 = 1;
pub(crate) const NOTIFIED: u8 = 2;

/// What a green thread runs: called once, on the green thread, and never
/// unwinds. (`thread::task::Task` implements it: the spawned closure and
/// the slot its result goes to.)
pub(crate) trait Entry: Send + Sync {
    fn run(&self);
}

/// A green thread.
pub(crate) struct G {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) sched: Arc<Sched>,
    pub(crate) park: AtomicU8,
    /// Address range of the stack's guard page and the stack's size,
    /// immutable after creation: read by the fault handler.
    pub(crate) guard: (usize, usize),
    pub(crate) stack_size: usize,
    pub(crate) inner: UnsafeCell<GInner>,
}

/// State only the G's current owner touches (see the module docs).
pub(crate) struct GInner {
    /// Saved stack pointer while switched out.
    pub(crate) sp: *mut u8,
    pub(crate) stack: Option<Stack>,
    pub(crate) entry: Option<Arc<dyn Entry>>,
    /// Lowest stack pointer seen at a switch: tells whether the stack went deep.
    pub(crate) low_water: usize,
    /// `lock_os_thread` nesting depth and the M it is locked to.
    pub(crate) lock_depth: u32,
    pub(crate) locked_m: *const M,
    /// A panic caught in a callback from C, to re-raise when the foreign
    /// call that led to it returns (`ffi::callback`).
    pub(crate) cb_panic: Option<Box<dyn std::any::Any + Send>>,
    /// Green-thread-local values (`ffiber::local!`), touched only by the
    /// green thread itself while it runs.
    pub(crate) locals: crate::local::Locals,
}

// SAFETY: `inner` is touched only by the G's single current owner (module
// docs); ownership moves between threads with release/acquire edges (run
// queues, the park-state CAS). The other fields are immutable or atomic.
unsafe impl Sync for G {}
// SAFETY: as above; the entry closure is `Send` and the raw pointers are
// either the G's own stack or an M that outlives the lock.
unsafe impl Send for G {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl G {
    /// A new green thread that will run `entry` on `stack`; not yet runnable.
    pub(crate) fn new(sched: Arc<Sched>, name: Option<Arc<str>>, stack: Stack, entry: Arc<dyn Entry>) -> Arc<G> {
        let mut g = G::idle(sched, stack);
        g.prepare(name, entry);
        Arc::new(g)
    }

    /// A G that owns `stack` but has nothing to run: what the free list
    /// holds until [`prepare`](G::prepare).
    pub(crate) fn idle(sched: Arc<Sched>, stack: Stack) -> G {
        let guard = stack.guard();
        G {
            id: 0,
            name: None,
            sched,
            park: AtomicU8::new(EMPTY),
            guard: (guard.start, guard.end),
            stack_size: stack.size(),
            inner: UnsafeCell::new(GInner {
                sp: std::ptr::null_mut(),
                stack: Some(stack),
                entry: None,
                low_water: 0,
                lock_depth: 0,
                locked_m: std::ptr::null(),
                cb_panic: None,
                locals: Vec::new(),
            }),
        }
    }

    /// Makes a new G of this one — fresh id, name and entry, its stack's
    /// start frame rebuilt — for a spawn that reuses an exited G and its
    /// stack (Go's `gfget`). `&mut` proves nobody else sees it.
    pub(crate) fn prepare(&mut self, name: Option<Arc<str>>, entry: Arc<dyn Entry>) {
        self.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.name = name;
        *self.park.get_mut() = EMPTY;
        let inner = self.inner.get_mut();
        let top = inner.stack.as_ref().expect("a G keeps its stack until it is freed").top();
        // SAFETY: `top` is the 16-byte aligned end of a stack this G owns and
        // nothing runs on (new, or its green thread exited), with far more
        // than the start frame's bytes of room.
        inner.sp = unsafe { crate::arch::init_stack(top, super::m::g_entry, 0) };
        inner.entry = Some(entry);
        inner.low_water = top as usize;
        inner.lock_depth = 0;
        inner.locked_m = std::ptr::null();
        inner.cb_panic = None;
        debug_assert!(inner.locals.is_empty(), "an exited green thread kept its locals");
    }

    /// Raw access to the owner-only state.
    ///
    /// # Safety
    ///
    /// The caller must be the G's current owner (module docs) and must not
    /// hold another reference from `inner()` at the same time.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn inner(&self) -> &mut GInner {
        // SAFETY: exclusivity is the caller's obligation, stated above.
        unsafe { &mut *self.inner.get() }
    }

    /// Makes a parked (or about to park) G runnable. Cheap when it is not
    /// parked: one atomic swap.
    pub(crate) fn unpark(self: &Arc<G>) {
        if self.wake() {
            // We won the G: it is switched out and owned by nobody else.
            super::ready(self.clone());
        }
    }

    /// [`unpark`](Self::unpark) without the `ready`: true if this call won
    /// the parked G, which the caller must then queue (`timers`).
    pub(crate) fn wake(&self) -> bool {
        self.park.swap(NOTIFIED, Ordering::AcqRel) == PARKED
    }
}

/// Converts an owned `Arc<G>` into the raw pointer run queues carry.
pub(crate) fn into_raw(g: Arc<G>) -> *mut G {
    Arc::into_raw(g).cast_mut()
}

/// Takes back a pointer made by [`into_raw`].
///
/// # Safety
///
/// `p` must come from [`into_raw`] and be taken back exactly once.
pub(crate) unsafe fn from_raw(p: *mut G) -> Arc<G> {
    // SAFETY: forwarded to the caller.
    unsafe { Arc::from_raw(p.cast_const()) }
}
