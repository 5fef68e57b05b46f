//! M: an OS thread that runs green threads while it holds a P.
//!
//! Each M has a scheduler context, `g0`, which is simply the OS thread's own
//! stack (8 MiB, committed lazily by the kernel, guarded by glibc). Green
//! threads never switch directly to one another: a green thread that stops
//! running (park, yield, exit) records *why* in its M's `action` slot and
//! switches to g0; g0 then finishes the job on its own stack — publish the
//! parked G, requeue the yielding one, free the exited one's stack — and
//! picks the next G. That is Go's `mcall`: every hand-over of a G to another
//! thread happens after its registers are saved, never while it still runs.
//!
//! # Thread-locals and migration
//!
//! A green thread may resume on a different OS thread after any park or
//! yield. The thread-local the runtime reads on every foreign call is the
//! current M, and it is not a `thread_local!`: the compiler treats a
//! thread-local's *address* as constant within a function, so once two
//! foreign calls are inlined into one function it may compute the address
//! once and, after the green thread moved, read and write the previous
//! thread's M (the zlib example hung that way). The slot is defined and
//! accessed in assembly (`arch::current_m_slot`), which the compiler never
//! merges. The few `thread_local!`s the runtime keeps (a random seed, the
//! shard of new handles) are read in functions that are never inlined.
//! User code must assume the same: a `thread_local!` value seen before
//! `yield_now`, `sleep`, a channel operation or a lock may belong to
//! another thread afterwards, unless the green thread called
//! [`lock_os_thread`](crate::lock_os_thread).

use super::g::{self, EMPTY, G, PARKED};
use super::{NO_P, Sched};
use crate::arch;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a green thread switched to g0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Action {
    None,
    /// Requeue it behind the others.
    Yield,
    /// It yielded at a foreign-call exit for green threads waiting for its
    /// P: they run first, then it (`sched::yield_behind_waiters`).
    YieldAtExit,
    /// Park it unless a wake-up already arrived.
    Park,
    /// It returned: free its stack.
    Exit,
    /// It came back from a foreign call and found no P: queue it globally.
    Requeue,
}

/// Space kept free for the scheduler (g0) above the C frames on an M's
/// system stack. A green thread that blocks in a callback lets g0 run
/// while C frames are live below it; g0's own work (finding the next green
/// thread, parking the M) stays well inside this.
pub(crate) const G0_RESERVE: usize = 256 * 1024;

/// An OS thread of the runtime.
pub(crate) struct M {
    pub(crate) sched: Arc<Sched>,
    local: UnsafeCell<MLocal>,
    parker: Parker,
    /// A P handed to this M by the thread that woke it (`NO_P` if none).
    pub(crate) next_p: AtomicUsize,
    /// Whether the waker counted this M as spinning.
    pub(crate) wake_spinning: AtomicBool,
    /// A green thread locked to this M, handed back to it to run.
    pub(crate) next_g: Mutex<Option<Arc<G>>>,
    /// The M waits in `stop_locked_m` for its locked green thread (a
    /// callback from C that blocked, or a `lock_os_thread` green thread
    /// that parked): it can run nothing else meanwhile.
    pub(crate) locked_wait: AtomicBool,
    /// The OS thread id, for diagnostics and tests.
    pub(crate) tid: AtomicUsize,
    /// Foreign-call state shared with the monitor (`sched::syscall`).
    pub(crate) call: super::syscall::CallState,
    /// Lowest address of the OS thread's own (system) stack, for the fault
    /// handler; 0 until the thread has started.
    pub(crate) stack_lo: AtomicUsize,
    /// The M is (about to be) blocked in the network poller as the timer
    /// watcher: [`unpark`](M::unpark) must break the poll.
    pub(crate) in_poll: AtomicBool,
    /// Set by every [`unpark`](M::unpark) (cleared by the M before it
    /// decides to sleep): the poll path's way to see an unpark that came
    /// before `in_poll` was set.
    pub(crate) unparked: AtomicBool,
}

/// State only the M's own thread touches.
pub(crate) struct MLocal {
    /// g0's saved stack pointer while a green thread runs.
    pub(crate) g0_sp: *mut u8,
    /// Where a foreign call from the running green thread puts its C
    /// frames: [`G0_RESERVE`] below g0's frame, 16-byte aligned. Set
    /// before each switch to a green thread, so the call path loads it
    /// rather than computing it.
    pub(crate) sys_top: usize,
    /// The green thread running (or just switched away from).
    pub(crate) cur_g: Option<Arc<G>>,
    pub(crate) action: Action,
    /// The P held, or `NO_P`.
    pub(crate) p: usize,
    pub(crate) spinning: bool,
    /// The green thread locked to this M, if any.
    pub(crate) locked_g: *const G,
    pub(crate) schedtick: u32,
    /// What the running green thread is calling in C (for fault messages),
    /// or `None` outside a foreign call.
    pub(crate) foreign: Option<&'static str>,
    /// What callbacks from the current foreign call left for it to do on
    /// return (`CB_PANIC`, `CB_REANNOUNCED`): one byte, so the return path
    /// checks both with one load.
    pub(crate) cb_flags: u8,
    /// Callbacks from C running on this M (nested), and whether the green
    /// thread was locked here because one of them blocked.
    /// (Bit [`TRACING`] is not a depth: it marks an M of a traced runtime,
    /// so that the call path's test of the depth sends its calls to the
    /// general path, which records them; see `ffi::trace`. Read the depth
    /// with [`MLocal::depth`].)
    pub(crate) cb_depth: u32,
    pub(crate) cb_locked: bool,
    /// The innermost callback has not reclaimed the P: the M is still "in
    /// C" for the monitor and `p` is `NO_P` (see `ffi::callback`).
    pub(crate) cb_lazy: bool,
    /// When (runtime clock) the current call handed its P off before it
    /// started, if it was a default-mode call on a `HOT` M (see
    /// `ffi::protocol`): set and read only on that cold path.
    pub(crate) handoff_at: u64,
    /// The P the current call gave away before it started (same path).
    pub(crate) handed_off: usize,
    /// The scheduler takes from the global queue first, once: this M
    /// yielded at a foreign-call exit for a green thread waiting there
    /// (`sched::yield_behind_waiters`).
    pub(crate) global_first: bool,
    /// The C function whose call proved to block and made this M `HOT`
    /// (`syscall::HOT`), as [`name_key`]: the M's next call hands its P
    /// off before it starts only if it calls the same function. (Calls
    /// that block come in runs of the same function — a green thread that
    /// sleeps in C does it again; a different function after one that
    /// blocked, such as SQLite's `bind` after a `BEGIN` that waited for
    /// the write lock, is usually short.) `(0, 0)`: none known.
    pub(crate) hot_name: (usize, usize),
    /// With `Action::Requeue`: the P the green thread lost to a blocked
    /// call, where it waits next in line (`NO_P`: the global queue).
    pub(crate) requeue_to: usize,
    /// Traced runtimes: the call being traced on this M, and the callbacks
    /// it has made so far.
    pub(crate) trace_name: Option<&'static str>,
    pub(crate) trace_cbs: u64,
}

/// `MLocal::cb_depth`'s bit for a traced M (see there).
pub(crate) const TRACING: u32 = 1 << 31;

/// `MLocal::cb_depth`'s bit for an M whose next call may hand its P off
/// before it starts (`syscall::HOT`, set with it by [`mark_hot`], taken by
/// that call): like [`TRACING`], it sends the call to the general path,
/// which makes the decision — so the inlined common path has nothing to
/// test for it.
pub(crate) const HOT_CALL: u32 = 1 << 30;

impl MLocal {
    /// Callbacks from C running on this M (nested), without the flag bits.
    #[inline(always)]
    pub(crate) fn depth(&self) -> u32 {
        self.cb_depth & !(TRACING | HOT_CALL)
    }
}

/// `m` (with its `local`, on its thread) turns `HOT` (`syscall::HOT`):
/// in its word, for the monitor, and in its callback depth, so that its
/// next call takes the general path (`HOT_CALL`).
pub(crate) fn mark_hot(m: &M, local: &mut MLocal) {
    m.call.mark_hot();
    local.cb_depth |= HOT_CALL;
}

/// `m` now holds P `p` (called on `m`'s thread, out of any announced
/// foreign call, with its `local`): every place an M takes a P goes through
/// here, so the M's call-state word always names the P its next foreign
/// call announces (`CallState::set_p`).
pub(crate) fn hold_p(m: &M, local: &mut MLocal, p: usize) {
    local.p = p;
    m.call.set_p(p);
    let pp = &m.sched.ps[p];
    pp.holder.store(std::ptr::from_ref(m).cast_mut(), Release);
    if pp.blocked_off.load(Relaxed) && pp.blocked_off.swap(false, Relaxed) {
        // The green threads queued here tend to make the call that
        // blocked (the P remembers the last one proven to).
        mark_hot(m, local);
        local.hot_name = (pp.hot_fn.0.load(Relaxed), pp.hot_fn.1.load(Relaxed));
    }
}

/// A C function's name as the key `MLocal::hot_name` compares: its
/// address and length (a function's bindings pass one string constant),
/// compared without being read.
#[inline(always)]
pub(crate) fn name_key(name: Option<&'static str>) -> (usize, usize) {
    name.map_or((0, 0), |n| (n.as_ptr() as usize, n.len()))
}

/// `MLocal::cb_flags`: a callback stashed a panic in the running green
/// thread (`GInner::cb_panic`); the foreign call re-raises it on return.
pub(crate) const CB_PANIC: u8 = 1;
/// `MLocal::cb_flags`: a callback took the P back and re-announced the
/// call with a new state word; the call's exit must read it from `M::call`.
pub(crate) const CB_REANNOUNCED: u8 = 2;

// SAFETY: `local` is only touched from the M's own OS thread (every access
// goes through `current_m()` or the M's main loop on that thread). The other
// fields are atomics or locks.
unsafe impl Sync for M {}
// SAFETY: see above; an `Arc<M>` is shared with other threads only to use
// the atomic/locked fields.
unsafe impl Send for M {}

/// The M running on this OS thread, or null. The slot is read with an
/// `asm!` block (see `arch::current_m_slot`), so each call reads the slot
/// of the thread it runs on, even when inlined into code that a green
/// thread's migration moves to another OS thread in between.
#[inline(never)]
pub(crate) fn current_m() -> *const M {
    arch::current_m_slot() as *const M
}

/// [`current_m`], inlined: for the foreign-call fast path.
#[inline(always)]
pub(crate) fn current_m_inline() -> *const M {
    arch::current_m_slot() as *const M
}

impl M {
    pub(crate) fn new(sched: Arc<Sched>) -> Arc<M> {
        let traced = sched.trace.is_some();
        Arc::new(M {
            sched,
            local: UnsafeCell::new(MLocal {
                g0_sp: std::ptr::null_mut(),
                sys_top: 0,
                cur_g: None,
                action: Action::None,
                p: NO_P,
                spinning: false,
                locked_g: std::ptr::null(),
                schedtick: 0,
                foreign: None,
                cb_flags: 0,
                handoff_at: 0,
                handed_off: NO_P,
                trace_name: None,
                trace_cbs: 0,
                cb_depth: if traced { TRACING } else { 0 },
                cb_locked: false,
                cb_lazy: false,
                global_first: false,
                hot_name: (0, 0),
                requeue_to: NO_P,
            }),
            parker: Parker::default(),
            next_p: AtomicUsize::new(NO_P),
            wake_spinning: AtomicBool::new(false),
            next_g: Mutex::new(None),
            locked_wait: AtomicBool::new(false),
            tid: AtomicUsize::new(0),
            call: Default::default(),
            stack_lo: AtomicUsize::new(0),
            in_poll: AtomicBool::new(false),
            unparked: AtomicBool::new(false),
        })
    }

    /// The thread-owned state.
    ///
    /// Callers must be on this M's OS thread and must not keep the pointer's
    /// target borrowed across a context switch.
    pub(crate) fn local(&self) -> *mut MLocal {
        self.local.get()
    }

    /// Wakes the M from `park`, or from the network poller if it is
    /// blocked there (`sched::stop_m`).
    pub(crate) fn unpark(&self) {
        self.unparked.store(true, SeqCst);
        self.parker.unpark();
        if self.in_poll.load(SeqCst)
            && let Some(np) = self.sched.netpoll.get()
        {
            np.wake();
        }
    }

    pub(crate) fn park(&self, timeout: Option<Duration>) {
        self.parker.park(timeout);
    }
}

/// What an idle M sleeps on: its OS thread's own parker (a futex word in
/// std), so a wake-up is one system call. Set once the thread starts;
/// spurious wake-ups are fine, every caller re-checks its condition.
#[derive(Default)]
struct Parker {
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Parker {
    fn park(&self, timeout: Option<Duration>) {
        match timeout {
            None => std::thread::park(),
            Some(t) => std::thread::park_timeout(t),
        }
    }

    fn unpark(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Size of an M's own (system) stack.
pub(crate) const SYSTEM_STACK_SIZE: usize = 8 << 20;

/// Lowest address of the calling thread's stack (0 if unknown).
pub(crate) fn thread_stack_lo() -> usize {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; we read
    // the stack bounds and destroy it. All pointers are to our locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok { addr as usize } else { 0 }
    }
}

/// Body of an M's OS thread.
pub(crate) fn m_main(m: Arc<M>) {
    // Green threads' panics stay on their own stacks (caught where they
    // start, or at the C boundary for callbacks): a panic that unwinds
    // out of here is the scheduler's own, and its state (a lock held, a P
    // half given away) cannot be trusted. Stop the process with a message
    // rather than leave every green thread waiting for ever.
    let _abort = AbortOnSchedulerPanic;
    arch::set_current_m_slot(Arc::as_ptr(&m) as usize);
    let _ = m.parker.thread.set(std::thread::current());
    // SAFETY: gettid has no preconditions.
    m.tid.store(unsafe { libc::gettid() } as usize, Relaxed);
    m.stack_lo.store(thread_stack_lo(), Relaxed);
    crate::signal::on_thread_start();
    crate::signal::check_handlers();
    let sched = m.sched.clone();
    super::acquire_next_p(&m);
    while let Some(g) = super::find_runnable(&m) {
        super::reset_spinning(&m);
        // SAFETY: we popped `g` from a queue, so we own it.
        let locked = unsafe { g.inner().locked_m };
        if !locked.is_null() && locked != Arc::as_ptr(&m) {
            super::start_locked_m(&m, g);
            continue;
        }
        let mut next = Some(g);
        while let Some(g) = next.take() {
            next = run(&m, g);
        }
    }
    sched.m_exited(&m);
    arch::set_current_m_slot(0);
}

/// Runs `g` until it switches back, then finishes what it asked for.
/// Returns a G that must run next on this M at once (a park that lost the
/// race with its wake-up, or the locked G handed back after a stop).
fn run(m: &Arc<M>, g: Arc<G>) -> Option<Arc<G>> {
    let local = m.local();
    // SAFETY: we own `g` (popped from a queue or handed to us), and `local`
    // is ours: we are on the M's thread. The references end before the
    // switch, after which the green thread uses `local` itself.
    let to = unsafe {
        let to = g.inner().sp;
        (*local).cur_g = Some(g);
        // g0 stops a few frames below here (`switch` saves its registers
        // below this frame): C may use what lies a reserve below that.
        (*local).sys_top = (arch::stack_pointer() - G0_RESERVE) & !15;
        (*local).schedtick = (*local).schedtick.wrapping_add(1);
        if (*local).p != NO_P {
            m.sched.ps[(*local).p].schedtick.store((*local).schedtick, Relaxed);
        }
        to
    };
    // SAFETY: `to` was saved by `switch` (or built by init_stack) when the G
    // last stopped, and its stack is owned by the G, which `cur_g` keeps alive.
    unsafe { arch::switch(&raw mut (*local).g0_sp, to) };
    // SAFETY: back on g0 on our own thread; the G has switched out, so we
    // own it again and nothing else references `local`.
    let (g, action) = unsafe {
        let l = &mut *local;
        (l.cur_g.take().expect("g0 resumed without a current G"), std::mem::replace(&mut l.action, Action::None))
    };
    // SAFETY: we own `g` (just switched away from it).
    let locked_here = unsafe { g.inner().locked_m } == Arc::as_ptr(m);
    match action {
        Action::Park => {
            if g.park.compare_exchange(EMPTY, PARKED, AcqRel, Acquire).is_err() {
                // A wake-up came first: keep running it.
                g.park.store(EMPTY, Release);
                return Some(g);
            }
            // Parked: the unparker owns it now.
            if locked_here {
                return super::stop_locked_m(m);
            }
            None
        }
        Action::Yield | Action::YieldAtExit => {
            if locked_here {
                super::sched_put_global(&m.sched, g);
                return super::stop_locked_m(m);
            }
            if action == Action::YieldAtExit {
                // SAFETY: our own M's state, on its thread, which holds a P
                // (it yielded out of a call whose P it kept).
                super::yield_behind_waiters(m, g, unsafe { (*local).p });
            } else {
                super::runq_put(m, g, false);
            }
            None
        }
        Action::Exit => {
            if locked_here {
                // SAFETY: on our own thread.
                unsafe { (*local).locked_g = std::ptr::null() };
            }
            super::free_g(m, g);
            None
        }
        Action::Requeue => {
            // SAFETY: our own M's state, on its thread.
            let lost = unsafe { std::mem::replace(&mut (*local).requeue_to, super::NO_P) };
            if !locked_here && lost != super::NO_P {
                // Back from a blocked call with no P idle: next in line on
                // the P it lost, whose holder is asked to yield at its next
                // foreign-call exit (`Sched::requeue_on`).
                super::requeue_on(m, g, lost);
                return None;
            }
            // We hold no P to run it: make sure an idle P does.
            super::put_global_and_wake(&m.sched, g);
            if locked_here {
                // Its C frames are on this M (a call made inside a
                // callback blocked), so it cannot wait in the lost P's
                // `run_next` (whose taker would run it on another M): it
                // waits on the global queue, and like `requeue_on`'s
                // waiters there, asks the lost P's holder to let the
                // global queue go first at its next foreign-call exit.
                // Without it, a P whose green threads only make short calls
                // took it at the hog check (~10 ms) with preemption on, and
                // with it off not while they looped (`tests/callbacks.rs`,
                // `green_threads_back_from_blocked_calls_inside_callbacks_run_among_loops`).
                if lost != super::NO_P {
                    m.sched.ask_holder_to_yield_global_first(m.sched.regular_of(lost), m);
                }
                return super::stop_locked_m(m);
            }
            None
        }
        Action::None => unreachable!("green thread switched to g0 without an action"),
    }
}

/// Aborts the process if dropped while a panic unwinds (see `m_main`).
struct AbortOnSchedulerPanic;

impl Drop for AbortOnSchedulerPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            eprintln!(
                "ffiber: internal error: the scheduler panicked on OS thread {name} (message above); aborting, \
                 since the runtime's state cannot be trusted. Please report this with the message."
            );
            std::process::abort();
        }
    }
}

/// Entry of every green thread, on its own stack (see `arch::init_stack`).
pub(crate) unsafe extern "C" fn g_entry(_: usize) -> ! {
    let g = current_g();
    // SAFETY: we are this G, running: we own its inner state.
    let entry = unsafe { (*g).inner().entry.take() };
    if let Some(entry) = entry {
        // Runs the closure and stores its result (or panic) for the joiner;
        // never unwinds (see `thread::task`).
        entry.run();
        // Dropping our share of the task may drop a result nobody joined:
        // a user destructor, which must not unwind into the runtime.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(entry))).is_err() {
            // SAFETY: `g` is us, running.
            let (id, name) = unsafe { ((*g).id, (*g).name.clone()) };
            eprintln!(
                "ffiber: the destructor of green thread {id} ({})'s unjoined result panicked",
                name.as_deref().unwrap_or("unnamed")
            );
        }
    }
    switch_to_g0(Action::Exit);
    unreachable!("an exited green thread was resumed");
}

/// The green thread running on this OS thread, or null.
pub(crate) fn current_g() -> *const G {
    let m = current_m();
    if m.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `m` is this thread's M and we only read `cur_g`, which is set
    // while a green thread (us, if any) runs.
    unsafe { (*(*m).local()).cur_g.as_ref().map_or(std::ptr::null(), Arc::as_ptr) }
}

/// Stops the running green thread and lets g0 do `action` with it. Returns
/// when the green thread is resumed — possibly on another M.
pub(crate) fn switch_to_g0(action: Action) {
    crate::fork::check("a green thread blocked, yielded or exited");
    let m = current_m();
    assert!(!m.is_null(), "ffiber: switch_to_g0 outside a green thread");
    // SAFETY: we are a green thread running on `m`'s thread, so `local` is
    // ours and `cur_g` is us; we own our inner state. `g0_sp` was saved by
    // the switch that started us. After `switch` returns, nothing derived
    // from `m` is used again.
    unsafe {
        let local = (*m).local();
        if (*local).cb_lazy {
            // Blocking inside a callback that has not taken its P back yet.
            super::syscall::reclaim(&*m);
        }
        if let Some(f) = (*local).foreign {
            panic!(
                "ffiber: a green thread tried to block (park, yield, sleep, lock, channel) inside the closure \
                 of a foreign call to {f}, which runs on the OS thread's system stack; do the blocking \
                 before or after ffi::call, or in a callback"
            );
        }
        (*local).action = action;
        let g = (*local).cur_g.as_ref().map(Arc::as_ptr).expect("no current green thread");
        let inner = (*g).inner();
        if (*local).depth() > 0 && !(*local).cb_locked {
            // Blocking inside a callback from C: the C frames below wait on
            // this OS thread, so the green thread must resume here.
            (*local).cb_locked = true;
            inner.lock_depth += 1;
            inner.locked_m = m;
            (*local).locked_g = g;
        }
        let sp = arch::stack_pointer();
        // (In a callback we are on the system stack, not the green one.)
        if sp < inner.low_water && (*local).depth() == 0 {
            inner.low_water = sp;
        }
        arch::switch(&raw mut inner.sp, (*local).g0_sp);
    }
}

/// Undoes the lock `switch_to_g0` took for a callback that blocked, once
/// the last callback on this M returns to C.
///
/// # Safety
///
/// `l` is the calling thread's M's local state, and the running green
/// thread is the one that was locked.
pub(crate) unsafe fn unlock_after_callback(l: &mut MLocal) {
    l.cb_locked = false;
    let g = l.cur_g.as_ref().map(Arc::as_ptr).expect("a callback's green thread");
    // SAFETY: `g` is running (us): we own its inner state.
    let inner = unsafe { (*g).inner() };
    inner.lock_depth -= 1;
    if inner.lock_depth == 0 {
        inner.locked_m = std::ptr::null();
        l.locked_g = std::ptr::null();
    }
}

/// Parks the running green thread until [`G::unpark`]; may return spuriously.
pub(crate) fn park_current() {
    let g = current_g();
    // SAFETY: `g` is the running green thread (caller checked), alive while
    // it runs.
    let g = unsafe { &*g };
    if g.park.compare_exchange(g::NOTIFIED, EMPTY, Acquire, Relaxed).is_ok() {
        return;
    }
    switch_to_g0(Action::Park);
    g.park.swap(EMPTY, Acquire);
}
