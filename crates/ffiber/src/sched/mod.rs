//! The scheduler: Go's G/M/P model.
//!
//! - **G** ([`g::G`]): a green thread — a stack, a saved stack pointer, a
//!   park token.
//! - **M** ([`m::M`]): an OS thread. It runs green threads only while it
//!   holds a P.
//! - **P** ([`P`]): a processor slot, `max_procs` of them. A P owns a local
//!   run queue (lock-free ring, [`queue::LocalQueue`]), a `run_next` slot, a
//!   timer heap and a cache of free stacks. Holding a P is the right to run
//!   Go-style code; the number of Ps bounds parallelism.
//!
//! # Finding work (`find_runnable`)
//!
//! In order: due timers of our P, and the Gs in `woken` (those the timers
//! woke, and a G that yielded at a foreign-call exit for them, see
//! [`yield_behind_waiters`]); every 61st tick one G from the global
//! queue (so it never starves); `run_next`, then the local queue; the global
//! queue (taking a fair share into the local queue); then, as a *spinning*
//! M, stealing half of another P's queue (and running its due timers). An M
//! that finds nothing gives its P back to the idle list and parks.
//!
//! # Spinning and lost wake-ups
//!
//! Readying a G (`ready`) calls [`wakep`], which wakes an idle M with an
//! idle P only when no M is already spinning, so a burst of wake-ups costs
//! at most one OS-level wake. The race "an M decides to sleep while another
//! thread readies work" is closed as in Go: the last spinning M, after
//! releasing its P, checks every run queue once more (all counters are
//! `SeqCst`), and a readier that pushed work checks `npidle` after the push.
//! One of the two always sees the other.
//!
//! # Timers
//!
//! Each P has a heap of timers (`timers::Timers`). A running M fires its own
//! P's due timers each time it looks for work, and other Ps' while stealing.
//! When every M is idle, one of them is the *timer watcher*: it parks with a
//! timeout equal to the earliest deadline over all Ps, and adding an earlier
//! timer wakes it. No thread per sleeper, no periodic tick.
//!
//! # Locked green threads
//!
//! `lock_os_thread` ties a G to its M. When that G parks or yields, the M
//! hands its P to another M (`handoff_p`) and sleeps; when another M picks
//! the G from a queue, it hands its own P to the locked M together with the
//! G (`start_locked_m`) and goes idle. The locked M thus runs only its G.

pub(crate) mod g;
pub(crate) mod gfree;
pub(crate) mod m;
pub(crate) mod netpoll;
pub(crate) mod preempt;
pub(crate) mod queue;
pub(crate) mod syscall;
pub(crate) mod sysmon;
pub(crate) mod timers;

use crate::stack::Stack;
use crossbeam_utils::CachePadded;
use g::G;
use m::M;
use queue::{GlobalQueue, LocalQueue};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timers::Timers;

/// "No P held".
pub(crate) const NO_P: usize = usize::MAX;
/// Capacity of a P's local run queue (Go uses 256 too).
pub(crate) const LOCAL_QUEUE: usize = 256;
/// Every this many schedule ticks, the global queue goes first.
const GLOBAL_FAIRNESS_TICK: u32 = 61;

/// A processor slot.
pub(crate) struct P {
    pub(crate) runq: LocalQueue<G, LOCAL_QUEUE>,
    pub(crate) run_next: std::sync::atomic::AtomicPtr<G>,
    pub(crate) timers: Mutex<Timers>,
    /// Earliest timer deadline (ns since the runtime's epoch), `u64::MAX` if none.
    pub(crate) next_when: AtomicU64,
    /// Counts green threads started on this P (read by thieves).
    pub(crate) schedtick: std::sync::atomic::AtomicU32,
    /// Free Gs with their stacks ([`gfree`]); touched only by the M that
    /// holds this P.
    pub(crate) gfree: UnsafeCell<Vec<Arc<G>>>,
    /// The P was handed off because its M blocked in a default-mode
    /// foreign call: the M that takes it next starts `HOT`
    /// (`syscall::HOT`), since the green threads queued here tend to make
    /// the same calls.
    pub(crate) blocked_off: AtomicBool,
    /// How many more hand-offs of a `HOT` M may pass `HOT` on to the M
    /// that takes this P ([`HOT_CHAIN`]): refilled by each block proven
    /// on it — by the monitor (`handoff_blocked_p`) or by a call handed
    /// off early that did last (`syscall::retaken`) — and spent by
    /// `handoff_hot_p`.
    pub(crate) hot_chain: AtomicU32,
    /// The C function whose call was last proven to block on this P, as
    /// `m::name_key` (address, length; the two halves may tear, which only
    /// makes a comparison fail): what an M that takes this P after such a
    /// block expects its green threads to call next (`MLocal::hot_name`).
    pub(crate) hot_fn: (std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize),
    /// The M that took this P last (set by `m::hold_p`; it may have let
    /// the P go since). Asked to yield for a green thread that lost this P
    /// (`Sched::ask_holder_to_yield`).
    pub(crate) holder: std::sync::atomic::AtomicPtr<M>,
    /// Green threads this P's timers woke while its M was scheduling, in
    /// the order they were due — and, behind them, a green thread that
    /// yielded at a foreign-call exit for them or for one back from C
    /// (`yield_behind_waiters`): they run before `run_next` and the queue
    /// (`find_runnable`). `ready` would put each in `run_next`, kicking the
    /// one before to the tail of the queue, behind green threads that may
    /// not block for milliseconds — so a burst of due sleeps woke late (a
    /// green sleep in SQLite's busy handler: a median of 2 ms late for
    /// 1 ms). Not stolen: whoever holds the P drains it, and `has_queued`
    /// counts it, so a P with woken green threads is never left idle.
    pub(crate) woken: Mutex<std::collections::VecDeque<Arc<G>>>,
    /// `woken.len()`, read without the lock.
    pub(crate) nwoken: AtomicUsize,
    /// A green thread back from C waits for this P on the global queue
    /// (`requeue_on` found `run_next` taken): the holder's next yield at a
    /// foreign-call exit lets the global queue go first.
    pub(crate) waiter_on_global: AtomicBool,
    /// Yields at foreign-call exits that went ahead of this P's queue since
    /// the holder last took a green thread from it (or from the global
    /// queue): at [`FRONT_YIELDS_MAX`] the next one goes to the tail.
    pub(crate) front_yields: AtomicU32,
    /// The monitor found this P's green thread a hog that makes announced
    /// foreign calls, and asked it to yield at its next exit
    /// (`preempt::check_hogs`): that yield goes to the tail of the queue,
    /// as a preempted green thread's does, not ahead of it.
    pub(crate) preempt_asked: AtomicBool,
}

/// How many hand-offs of `HOT` Ms in a row, with no block proven in
/// between, may pass `HOT` on to the M that takes the P (`P::hot_chain`).
/// A `HOT` M hands its P off before a call of the function that blocked —
/// a guess, which the call's duration confirms only after the P is gone.
/// Passed on, a run of blocking calls (100,000 green threads each calling
/// C that sleeps) does not wait for the monitor's two looks at the first
/// call of each M that takes a P. Bounded, a function that blocked once
/// and is short afterwards hands off needlessly at most this many times.
pub(crate) const HOT_CHAIN: u32 = 8;

/// How many yields at foreign-call exits in a row may go ahead of a P's
/// queue (`yield_behind_waiters`) before one goes to its tail: what bounds
/// the wait of the green threads queued there.
pub(crate) const FRONT_YIELDS_MAX: u32 = 8;

impl P {
    /// Green threads wait in this P's run queue, `run_next` or `woken`.
    /// (Inlined: a `Blocking` call asks, from the caller's crate.)
    #[inline]
    pub(crate) fn has_queued(&self) -> bool {
        !self.runq.is_empty() || !self.run_next.load(SeqCst).is_null() || self.nwoken.load(SeqCst) > 0
    }

    /// The holder took a green thread from the queue (or the global
    /// queue): yields at exits may go ahead of it again
    /// (`yield_behind_waiters`). Stores only when there is something to
    /// reset, so that scheduling does not dirty the P's line for thieves.
    #[inline]
    pub(crate) fn took_from_queue(&self) {
        if self.front_yields.load(Relaxed) != 0 {
            self.front_yields.store(0, Relaxed);
        }
    }

    /// Takes the first green thread of `woken`.
    pub(crate) fn pop_woken(&self) -> Option<Arc<G>> {
        if self.nwoken.load(Acquire) == 0 {
            return None;
        }
        let mut w = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let g = w.pop_front();
        self.nwoken.store(w.len(), Release);
        g
    }

    /// Takes every green thread of `woken` (a P that retires or shuts down).
    pub(crate) fn drain_woken(&self) -> Vec<Arc<G>> {
        let mut w = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        self.nwoken.store(0, Release);
        w.drain(..).collect()
    }

    /// Whoever holds this P has something to do by `now_ns` (runtime
    /// clock): a queued green thread or a due timer. What the monitor's
    /// retake, `handoff_p` and the idle checks ask, in one place.
    pub(crate) fn has_work(&self, now_ns: u64) -> bool {
        self.has_queued() || self.next_when.load(SeqCst) <= now_ns
    }
}

// SAFETY: `gfree` is touched only by the M holding the P, and holding a P
// is exclusive (it passes between Ms under the `idle` lock or through
// `next_p`, both of which order the accesses). Everything else is atomic or
// locked.
unsafe impl Sync for P {}

/// Runtime-wide scheduler state.
pub(crate) struct Sched {
    pub(crate) ps: Box<[CachePadded<P>]>,
    pub(crate) global: GlobalQueue<G>,
    idle: Mutex<Idle>,
    pub(crate) npidle: AtomicUsize,
    pub(crate) nmspinning: AtomicUsize,
    pub(crate) shutdown: AtomicBool,
    pub(crate) gfree: gfree::FreeGs,
    pub(crate) epoch: Instant,
    /// The timer watcher, and the deadline it sleeps until (0: none).
    watcher: Mutex<Option<Arc<M>>>,
    pub(crate) watch_until: AtomicU64,
    next_m_id: AtomicUsize,
    all_ms: Mutex<Vec<Arc<M>>>,
    live_ms: AtomicUsize,
    max_threads: usize,
    warned_max_threads: AtomicBool,
    /// The runtime has needed an OS thread it could not have (at
    /// `max_threads`, or the OS refused one): from then on a sleep in C is
    /// not turned into a parked callback, which keeps its M and needs
    /// another to wake it (`ffi::usleep`).
    pub(crate) threads_scarce: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Joiners outside the runtime (see [`RuntimeWatch`]), woken at shutdown.
    watchers: Mutex<Vec<(u64, crate::sync::park::Unparker)>>,
    next_watch: AtomicU64,
    /// Regular Ps (`max_procs`): `ps[..nregular]`; the rest are spares
    /// (`preempt`): first one per regular P for hogs if preemption is on,
    /// then the sleepers' (`preempt::run_woken_on_spare`).
    nregular: usize,
    pub(crate) spares: Box<[preempt::Spare]>,
    /// How many of `spares` are preemption's (the rest are the sleepers').
    pub(crate) hog_spares: usize,
    /// Green threads woken onto a sleepers' spare so far (diagnostics).
    pub(crate) sleeper_spare_runs: AtomicU64,
    /// The call trace, if on (`ffi::trace`).
    pub(crate) trace: Option<crate::ffi::trace::Trace>,
    /// The monitor (Go's `sysmon`), started the first time a P leaves the
    /// idle list (only an M holding a P can go into C).
    pub(crate) monitor: sysmon::Monitor,
    /// The network poller (`netpoll`), created when a green thread first
    /// waits on a descriptor.
    pub(crate) netpoll: std::sync::OnceLock<Arc<netpoll::Poller>>,
    /// The timer watcher is blocked in the poller rather than on its futex.
    watch_polls: AtomicBool,
}

struct Idle {
    ps: Vec<usize>,
    ms: Vec<Arc<M>>,
}

/// Which idle P [`Sched::take_p`] takes.
#[derive(Clone, Copy)]
pub(crate) enum Which {
    /// Any idle P (the most recently released).
    Any,
    /// This one if it is idle, else any.
    Prefer(usize),
    /// Only this one.
    Exactly(usize),
}

impl Idle {
    /// Publishes P `p` as idle. A P is held by at most one M or listed
    /// here once: listing it twice would let two Ms run it, so that is
    /// checked (the list has at most `max_procs` entries).
    fn push_p(&mut self, p: usize) {
        assert!(!self.ps.contains(&p), "ffiber: scheduler bug: P{p} released twice");
        self.ps.push(p);
    }
}

impl Sched {
    pub(crate) fn new(
        max_procs: usize,
        stack_size: usize,
        max_threads: usize,
        preempt: bool,
        trace: Option<crate::ffi::trace::Trace>,
    ) -> Arc<Sched> {
        let max_procs = max_procs.max(1);
        let hog_spares = if preempt { max_procs } else { 0 };
        let nspare = hog_spares + preempt::sleeper_spares(max_procs);
        syscall::init();
        crate::check::init();
        Arc::new(Sched {
            nregular: max_procs,
            spares: (0..nspare).map(|_| preempt::Spare::default()).collect(),
            hog_spares,
            sleeper_spare_runs: AtomicU64::new(0),
            trace,
            ps: (0..max_procs + nspare)
                .map(|_| {
                    CachePadded::new(P {
                        runq: LocalQueue::new(),
                        run_next: Default::default(),
                        timers: Mutex::new(Timers::default()),
                        next_when: AtomicU64::new(u64::MAX),
                        schedtick: Default::default(),
                        holder: Default::default(),
                        woken: Mutex::new(std::collections::VecDeque::new()),
                        nwoken: AtomicUsize::new(0),
                        waiter_on_global: AtomicBool::new(false),
                        front_yields: AtomicU32::new(0),
                        preempt_asked: AtomicBool::new(false),
                        hot_fn: Default::default(),
                        gfree: UnsafeCell::new(Vec::new()),
                        blocked_off: AtomicBool::new(false),
                        hot_chain: AtomicU32::new(0),
                    })
                })
                .collect(),
            global: GlobalQueue::new(),
            idle: Mutex::new(Idle { ps: (0..max_procs).rev().collect(), ms: Vec::new() }),
            npidle: AtomicUsize::new(max_procs),
            nmspinning: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            gfree: gfree::FreeGs::new(crate::stack::round_size(stack_size)),
            epoch: Instant::now(),
            watcher: Mutex::new(None),
            watch_until: AtomicU64::new(0),
            next_m_id: AtomicUsize::new(0),
            all_ms: Mutex::new(Vec::new()),
            live_ms: AtomicUsize::new(0),
            // Hog spares may need an M each; a sleepers' spare goes to the
            // sleeper's own M, so it needs none.
            max_threads: max_threads.max(max_procs + hog_spares),
            warned_max_threads: AtomicBool::new(false),
            threads_scarce: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
            next_watch: AtomicU64::new(0),
            monitor: Default::default(),
            netpoll: std::sync::OnceLock::new(),
            watch_polls: AtomicBool::new(false),
        })
    }

    /// Regular Ps: `max_procs`.
    pub(crate) fn nprocs(&self) -> usize {
        self.nregular
    }

    /// Whether P `p` is on the idle list (a lock: for rare paths).
    pub(crate) fn idle_contains(&self, p: usize) -> bool {
        self.idle().ps.contains(&p)
    }

    /// Nanoseconds since the runtime's epoch.
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Converts an instant into the runtime's clock. Instants past what
    /// the clock holds (584 years) saturate just below `u64::MAX` ("no
    /// timer"), rather than wrapping around to an early deadline.
    pub(crate) fn when(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX).min(u64::MAX - 1)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the runtime: wakes every M so it exits at its next scheduling
    /// point, waits up to `grace` for them, and frees queued green threads.
    pub(crate) fn shut_down(self: &Arc<Self>, grace: Duration) {
        if !self.shutdown.swap(true, SeqCst)
            && let Some(t) = &self.trace
        {
            t.report();
        }
        for (_, w) in self.watchers.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            w.unpark();
        }
        self.monitor.stop();
        for m in self.all_ms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            m.unpark();
        }
        let deadline = Instant::now() + grace;
        while self.live_ms.load(SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if self.live_ms.load(SeqCst) == 0 {
            for t in threads {
                let _ = t.join();
            }
            // Every M is gone: nobody runs Ps or queues any more. Free the
            // green threads that never got to run (their closures drop) and
            // break the G -> Sched -> queue -> G cycles.
            for p in self.ps.iter() {
                while let Some(g) = p.runq.pop() {
                    // SAFETY: queue items come from `g::into_raw`; popping took it.
                    drop(unsafe { g::from_raw(g) });
                }
                let rn = p.run_next.swap(std::ptr::null_mut(), SeqCst);
                if !rn.is_null() {
                    // SAFETY: as above, for the run_next slot.
                    drop(unsafe { g::from_raw(rn) });
                }
                drop(p.drain_woken());
                p.timers.lock().unwrap_or_else(|e| e.into_inner()).clear();
                // SAFETY: no M runs, so nobody holds this P or its free list.
                drop(std::mem::take(unsafe { &mut *p.gfree.get() }));
            }
            drop(self.gfree.clear());
            for g in self.global.drain() {
                // SAFETY: as above, for the global queue.
                drop(unsafe { g::from_raw(g) });
            }
            self.idle().ms.clear();
            self.all_ms.lock().unwrap_or_else(|e| e.into_inner()).clear();
            *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        // Otherwise some green thread is still running (a CPU-bound loop):
        // its M exits at its next scheduling point; we do not wait for it.
    }

    /// True if every M waits in `stop_locked_m` with nothing handed to it:
    /// none holds a P, none is in C (it would come back and take one), none
    /// is idle. Then no M can ever run the green threads that would wake
    /// the locked ones — timers, run queues and hand-offs all need an M
    /// holding a P — so, with no thread left to create, the program is
    /// stuck for good.
    fn all_ms_wait_for_locked_gs(&self) -> bool {
        let ms = self.all_ms.lock().unwrap_or_else(|e| e.into_inner());
        !ms.is_empty() && ms.iter().all(|m| m.locked_wait.load(SeqCst) && m.next_p.load(SeqCst) == NO_P)
    }

    /// Runs `f` over every M (under the list's lock: `f` must not start Ms).
    pub(crate) fn for_each_m(&self, mut f: impl FnMut(&Arc<M>)) {
        self.all_ms.lock().unwrap_or_else(|e| e.into_inner()).iter().for_each(&mut f);
    }

    pub(crate) fn m_exited(&self, m: &Arc<M>) {
        // SAFETY: called on m's own thread at exit.
        let p = unsafe { std::mem::replace(&mut (*m.local()).p, NO_P) };
        if p != NO_P && !self.is_spare(p) {
            self.idle().push_p(p);
        }
        self.live_ms.fetch_sub(1, SeqCst);
    }

    /// Starts a new M (OS thread) that begins by taking P `p`.
    fn new_m(self: &Arc<Self>, p: usize, spinning: bool) {
        crate::fork::check("the scheduler needed an OS thread");
        let at_limit = self.live_ms.load(SeqCst) >= self.max_threads;
        if at_limit && !self.shutdown.load(SeqCst) && self.all_ms_wait_for_locked_gs() {
            thread_exhaustion(self.max_threads);
        }
        if at_limit && !self.shutdown.load(SeqCst) && !self.warned_max_threads.swap(true, SeqCst) {
            eprintln!(
                "ffiber: all {} OS threads allowed to the runtime are busy (most are probably blocked in \
                 foreign calls); green threads wait until one returns. Raise the limit with \
                 Runtime::builder().max_threads(n), or make fewer blocking calls at once.",
                self.max_threads
            );
        }
        if at_limit {
            self.threads_scarce.store(true, Relaxed);
        }
        if at_limit || self.shutdown.load(SeqCst) {
            self.put_idle_p(p);
            if spinning {
                self.nmspinning.fetch_sub(1, SeqCst);
            }
            return;
        }
        let id = self.next_m_id.fetch_add(1, Relaxed);
        let m = M::new(self.clone());
        m.next_p.store(p, SeqCst);
        m.wake_spinning.store(spinning, SeqCst);
        self.all_ms.lock().unwrap_or_else(|e| e.into_inner()).push(m.clone());
        self.live_ms.fetch_add(1, SeqCst);
        let spawned =
            std::thread::Builder::new().name(format!("ffiber-m{id}")).stack_size(m::SYSTEM_STACK_SIZE).spawn({
                let m = m.clone();
                move || m::m_main(m)
            });
        match spawned {
            Ok(h) => self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(h),
            Err(e) => {
                self.live_ms.fetch_sub(1, SeqCst);
                self.threads_scarce.store(true, Relaxed);
                // The M we made will never run: out of the list, or it
                // would count as one that is not waiting.
                self.all_ms.lock().unwrap_or_else(|e| e.into_inner()).retain(|x| !Arc::ptr_eq(x, &m));
                if !self.shutdown.load(SeqCst) && self.all_ms_wait_for_locked_gs() {
                    // Nothing can run the P: every M there is waits for a
                    // green thread locked to it, which only a P can wake.
                    thread_exhaustion_os(&e);
                }
                self.put_idle_p(p);
                if spinning {
                    self.nmspinning.fetch_sub(1, SeqCst);
                }
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Relaxed) {
                    eprintln!(
                        "ffiber: could not start an OS thread for the scheduler ({e}); green threads \
                         wait for the threads that exist. The limits are ulimit -u, \
                         kernel.threads-max and vm.max_map_count (each OS thread costs mappings \
                         for its stack). Said once; later failures are silent."
                    );
                }
            }
        }
    }

    /// Runs `f` if every P is idle, under the idle list's lock (the monitor
    /// parking: whoever takes a P next holds the same lock and sees it).
    /// Returns whether it ran.
    pub(crate) fn if_all_idle(&self, f: impl FnOnce()) -> bool {
        let _idle = self.idle();
        let all = self.npidle.load(SeqCst) == self.nprocs();
        if all {
            f();
        }
        all
    }

    /// Takes an idle P off the list, with the idle list's lock held
    /// (`idle`): the one place that pops, counts (`npidle`) and tells the
    /// monitor (a P leaving the idle list wakes a parked monitor, see
    /// `sched::sysmon`), so the three never drift apart.
    fn take_p(self: &Arc<Self>, idle: &mut Idle, which: Which) -> Option<usize> {
        let i = match which {
            Which::Any => idle.ps.len().checked_sub(1),
            Which::Prefer(p) => idle.ps.iter().rposition(|&x| x == p).or_else(|| idle.ps.len().checked_sub(1)),
            Which::Exactly(p) => idle.ps.iter().position(|&x| x == p),
        }?;
        let p = idle.ps.swap_remove(i);
        self.npidle.fetch_sub(1, SeqCst);
        self.monitor.p_left_idle(self);
        Some(p)
    }

    fn put_idle_p(&self, p: usize) {
        if self.is_spare(p) {
            // A spare that could not get an M: nothing was queued on it yet.
            self.spares[p - self.nregular].deactivate();
            return;
        }
        let mut idle = self.idle();
        idle.push_p(p);
        self.npidle.fetch_add(1, SeqCst);
    }

    /// Wakes (or creates) an M to run P `p`, or any idle P if `p` is `NO_P`.
    pub(crate) fn start_m(self: &Arc<Self>, p: usize, spinning: bool) {
        let mut idle = self.idle();
        let p = if p != NO_P {
            p
        } else if let Some(p) = self.take_p(&mut idle, Which::Any) {
            p
        } else {
            drop(idle);
            if spinning {
                self.nmspinning.fetch_sub(1, SeqCst);
            }
            return;
        };
        match idle.ms.pop() {
            Some(m) => {
                m.wake_spinning.store(spinning, SeqCst);
                m.next_p.store(p, SeqCst);
                drop(idle);
                m.unpark();
            }
            None => {
                drop(idle);
                self.new_m(p, spinning);
            }
        }
    }

    /// Gives away P `p` that an M is about to stop running: to a new M if
    /// there is work or timers on it, else to the idle list.
    pub(crate) fn handoff_p(self: &Arc<Self>, p: usize) {
        if self.is_spare(p) {
            return preempt::retire_released(self, p);
        }
        if self.has_queued(p) {
            return self.start_m(p, false);
        }
        let pp = &self.ps[p];
        if self.nmspinning.load(SeqCst) + self.npidle.load(SeqCst) == 0
            && self.nmspinning.compare_exchange(0, 1, SeqCst, SeqCst).is_ok()
        {
            return self.start_m(p, true);
        }
        if pp.next_when.load(SeqCst) != u64::MAX {
            return self.start_m(p, false);
        }
        let mut idle = self.idle();
        if self.has_queued(p) {
            // Queued meanwhile (`requeue_on` puts a green thread in a P's
            // `run_next` and then looks under this lock).
            drop(idle);
            return self.start_m(p, false);
        }
        idle.push_p(p);
        self.npidle.fetch_add(1, SeqCst);
        // Work may have been pushed to the global queue by a readier that saw
        // no idle P a moment ago: look again now that the P is idle.
        if self.global.len() > 0
            && let Some(p) = self.take_p(&mut idle, Which::Any)
        {
            drop(idle);
            self.start_m(p, false);
        }
    }

    /// [`handoff_p`](Self::handoff_p) for a P whose M blocked in a
    /// default-mode foreign call (see [`P::blocked_off`]).
    pub(crate) fn handoff_blocked_p(self: &Arc<Self>, p: usize) {
        self.ps[p].hot_chain.store(HOT_CHAIN, Relaxed);
        self.ps[p].blocked_off.store(true, Relaxed);
        self.handoff_p(p);
    }

    /// [`handoff_p`](Self::handoff_p) for the P of a `HOT` M about to call
    /// the function that blocked: the M that takes it starts `HOT` too,
    /// while the P's budget lasts ([`HOT_CHAIN`]).
    pub(crate) fn handoff_hot_p(self: &Arc<Self>, p: usize) {
        let pp = &self.ps[p];
        let left = pp.hot_chain.load(Relaxed);
        if left > 0 {
            pp.hot_chain.store(left - 1, Relaxed);
            pp.blocked_off.store(true, Relaxed);
        }
        self.handoff_p(p);
    }

    /// The M that holds P `p` now, if any (for the monitor): `P::holder`,
    /// if that M's state word still names `p` (`set_p`); a stale answer
    /// costs a spurious request at most.
    pub(crate) fn holder_of(&self, p: usize) -> Option<&M> {
        let holder = self.ps[p].holder.load(Acquire);
        if holder.is_null() {
            return None;
        }
        // SAFETY: `holder` is an M of this runtime (`m::hold_p` stores only
        // those), and Ms are freed only once every M has exited, after the
        // monitor has stopped (`shut_down`).
        let m = unsafe { &*holder };
        (syscall::p_of(m.call.load()) == p).then_some(m)
    }

    /// A green thread on M `me` lost P `p` to a blocked call and found no P
    /// idle: ask the M that took `p` to yield at its next foreign-call exit
    /// (`CallState::request_yield`), so that the global queue — where the
    /// green thread now waits — goes first on some P soon. Nothing is asked
    /// of `me` itself.
    pub(crate) fn ask_holder_to_yield(&self, p: usize, me: &M) {
        let holder = self.ps[p].holder.load(Acquire);
        if holder.is_null() || std::ptr::eq(holder, me) {
            return;
        }
        // SAFETY: `holder` is an M of this runtime (`m::hold_p` stores only
        // those), and Ms are freed only once every M has exited
        // (`shut_down`), while `me` is running.
        let holder = unsafe { &*holder };
        holder.call.request_yield();
    }

    /// [`ask_holder_to_yield`](Self::ask_holder_to_yield) for a green
    /// thread that waits on the global queue: that yield lets the global
    /// queue go first and goes to the tail (`P::waiter_on_global`).
    pub(crate) fn ask_holder_to_yield_global_first(&self, p: usize, me: &M) {
        self.ps[p].waiter_on_global.store(true, Relaxed);
        self.ask_holder_to_yield(p, me);
    }

    /// Whether preemption by hand-off is on (the runtime has spare Ps for
    /// hogs).
    pub(crate) fn preempts(&self) -> bool {
        self.hog_spares > 0
    }

    /// Green threads wait for P `p` (queued on it) or for any P (queued
    /// globally): what decides whether a foreign call that expects to block
    /// hands its P off before it starts.
    #[inline(always)]
    pub(crate) fn has_queued(&self, p: usize) -> bool {
        self.ps[p].has_queued() || self.global.len() > 0
    }

    /// Wakes the timer watcher if it sleeps past `when`.
    pub(crate) fn timer_added(&self, when: u64) {
        // The foreign-call monitor, if it is polling, must not sleep past
        // a timer that may sit on a P whose M goes into C.
        self.monitor.timer_added(when);
        if when < self.watch_until.load(SeqCst) {
            if let Some(w) = self.watcher.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                w.unpark();
            }
        } else if self.npidle.load(SeqCst) == self.nprocs() {
            // Nobody runs at all (a timer added from outside the runtime).
            // Wake an M so that it becomes the watcher.
            if let Some(m) = self.idle().ms.last() {
                m.unpark();
            }
        }
    }

    /// Earliest timer deadline over all Ps.
    fn earliest_timer(&self) -> u64 {
        self.ps.iter().map(|p| p.next_when.load(SeqCst)).min().unwrap_or(u64::MAX)
    }

    /// Fires due timers on every P (the watcher `me`, holding no P).
    ///
    /// What they wake goes to the global queue (`ready` from an M without
    /// a P), and an idle P, if any, is started for it (`wakep`). With no P
    /// idle, it waits there for a P to schedule, and a P that runs a green
    /// thread looping on short foreign calls never does by itself; a timer
    /// fired here is no longer overdue, so `sysmon::late_timers` does not
    /// ask it to yield either. With preemption on, the hog check bounds
    /// that wait (`preempt::check_hogs`: global work stuck for 2 ms on a P
    /// that kept one green thread 10 ms — Go's bound on a late timer, too).
    /// With it off, nothing did: the woken G waited for as long as the
    /// loop lasted (20 s in
    /// `yields_at_call_exits_for_late_timers_do_not_starve_the_queue`). So
    /// then the holder of the timer's P is asked to yield at its next
    /// foreign-call exit, global queue first (`P::waiter_on_global`).
    ///
    /// Why not always: asking at every firing made SQLite's busy-handler
    /// writers retry sooner, and each retry that finds the lock still taken
    /// moves the P to the writer's locked M and back; the write mix lost
    /// 10–15% of its queries and its p99 went from 2 ms to 6–9 ms (session
    /// 11, interleaved runs; the same with the woken Gs put ahead of the
    /// P's queue instead), with no gain in its slowest worker's share. Nor
    /// may the woken Gs go to the held P's `woken` list, which is not
    /// stolen: a holder that computes without foreign calls never drains
    /// it, and a P idle beside it would not take them (a hang, found by
    /// `run_returns_while_other_green_threads_loop` with preemption off).
    fn run_all_timers(&self, me: &M) {
        let ask = !self.preempts();
        for i in 0..self.ps.len() {
            if timers::run_timers(self, i) > 0 && ask && self.npidle.load(SeqCst) == 0 {
                self.ask_holder_to_yield_global_first(i, me);
            }
        }
    }
}

/// Wakes an idle M to look for work, if there is an idle P and no M is
/// already spinning (then that one will find the work).
pub(crate) fn wakep(sched: &Arc<Sched>) {
    if sched.npidle.load(SeqCst) == 0 {
        // No idle P: a P held by a lazy `Blocking` call may be free for it.
        sched.monitor.work_waits();
        return;
    }
    if sched.nmspinning.load(SeqCst) != 0 || sched.nmspinning.compare_exchange(0, 1, SeqCst, SeqCst).is_err() {
        return;
    }
    sched.start_m(NO_P, true);
}

/// Makes `g` runnable: on the current P's `run_next` if we run on one of
/// this runtime's Ms with a P, else on the global queue.
pub(crate) fn ready(g: Arc<G>) {
    let m = m::current_m();
    // SAFETY: `m` is this thread's M (if any); we only read `p` and push to
    // the P we hold, which we may do from its M's thread. The M's `sched`
    // outlives the call, so borrowing it avoids a refcount round trip.
    unsafe {
        if !m.is_null() && Arc::ptr_eq(&(*m).sched, &g.sched) && (*(*m).local()).p != NO_P {
            let sched = &(*m).sched;
            runq_put(&*m, g, true);
            wakep(sched);
            return;
        }
    }
    let sched = g.sched.clone(); // `g` moves into the queue below
    put_global_and_wake(&sched, g);
}

/// Queues `g` globally from a thread that holds no P, and wakes an M if a
/// P is idle. The push happens under the idle list's lock, which an M going
/// idle holds while it checks the global queue and publishes its P: so
/// either that M sees `g`, or we see its idle P.
pub(crate) fn put_global_and_wake(sched: &Arc<Sched>, g: Arc<G>) {
    {
        let _idle = sched.idle();
        sched_put_global(sched, g);
    }
    wakep(sched);
}

pub(crate) fn sched_put_global(sched: &Sched, g: Arc<G>) {
    sched.global.push(g::into_raw(g));
}

/// Puts `g` on the P held by `m` (the caller's thread's M): into `run_next`
/// (kicking the previous one to the queue) or at the queue's tail.
pub(crate) fn runq_put(m: &M, g: Arc<G>, next: bool) {
    let sched = &m.sched;
    // SAFETY: we run on m's thread; `p` is the P it holds.
    let p = unsafe { (*m.local()).p };
    debug_assert_ne!(p, NO_P);
    let pp = &sched.ps[p];
    let mut g = g::into_raw(g);
    if next {
        g = pp.run_next.swap(g, AcqRel);
        if g.is_null() {
            return;
        }
    }
    pp.runq.push(g, &sched.global);
}

/// g0 of `m`, which holds P `p`: `g` yielded at a foreign-call exit because
/// green threads wait for this P — due timers' (`sysmon::late_timers`), or
/// one back from C in `run_next` (`requeue_on`). They run first, then `g`:
/// the timers' green threads, the waiter, then `g` go to the back of
/// `woken`, ahead of `run_next` and the queue.
///
/// At the tail of the queue, where a plain yield goes, `g` waited behind
/// every green thread queued there, each running until it blocks: in
/// SQLite's write mix (64 workers on 2 Ps) 0.7–2 ms on average, a few
/// thousand times a second — and when `g` held SQLite's write lock, every
/// writer waited as long (the mix ran at 0.85–0.88x the throughput of 64
/// OS threads; 0.99x with this, and a lower p99, in interleaved 8 s runs).
///
/// Three exceptions keep the queue moving: after [`FRONT_YIELDS_MAX`] such
/// yields in a row with nothing taken from the queue (`P::front_yields`),
/// `g` goes to the tail — otherwise a green thread that makes only short
/// calls and a sleeper that wakes it up again and again could take turns
/// ahead of the queue for ever; when the waiter is on the global queue
/// (`P::waiter_on_global`), the global queue goes first and `g` to the
/// tail; and when the monitor asked for the yield because `g` has kept the
/// P for [`preempt::HOG_AFTER`] while work waited (`P::preempt_asked`),
/// the global queue goes first and `g` to the tail, as Go's preempted
/// goroutines go.
pub(crate) fn yield_behind_waiters(m: &M, g: Arc<G>, p: usize) {
    let sched = &m.sched;
    let pp = &sched.ps[p];
    let to_tail = pp.waiter_on_global.load(Relaxed) && pp.waiter_on_global.swap(false, Relaxed);
    let preempted = pp.preempt_asked.load(Relaxed) && pp.preempt_asked.swap(false, Relaxed);
    let behind_queue = to_tail || preempted || pp.front_yields.fetch_add(1, Relaxed) >= FRONT_YIELDS_MAX;
    if behind_queue {
        pp.front_yields.store(0, Relaxed);
        // SAFETY: on m's own thread, which holds `p`.
        unsafe { (*m.local()).global_first = to_tail || preempted };
    } else {
        // (It locks `woken` itself: before we do.)
        timers::run_timers_held(sched, p);
    }
    // The green thread in `run_next` (the one that asked for this yield,
    // if it asked on this P) goes to the *front* of `woken`: whatever
    // waits there already (earlier yielders, woken sleepers) would run
    // first otherwise, and with preemption off one of them may loop on
    // calls and never yield — the asker would wait for a yield made for
    // it but spent on another.
    let waiter = pp.run_next.swap(std::ptr::null_mut(), Acquire);
    let mut w = pp.woken.lock().unwrap_or_else(|e| e.into_inner());
    if !waiter.is_null() {
        // SAFETY: taken from `run_next`: ours now.
        w.push_front(unsafe { g::from_raw(waiter) });
    }
    let g = if behind_queue {
        Some(g)
    } else {
        w.push_back(g);
        None
    };
    pp.nwoken.store(w.len(), Release);
    drop(w);
    if let Some(g) = g {
        runq_put(m, g, false);
    }
}

/// g0 of `m`, which holds no P: `g` came back from a foreign call whose P
/// `lost` the monitor took, and found no P idle. Put it in `lost`'s
/// `run_next` — next in line there, ahead of the green threads queued
/// behind the call — and ask the M that holds `lost` to yield at its next
/// foreign-call exit (`CallState::request_yield`); if `run_next` is taken
/// (or `lost` is a spare), the global queue.
///
/// Who takes a G out of `run_next` owns it, whoever put it there (the
/// holder's own `runq_put` swaps it out and queues it too). A G must not
/// sit in the `run_next` of an idle P, which nobody runs: so after
/// publishing it, look — under the idle lock — whether `lost` is idle, and
/// if so run it. Every M that makes a P idle looks at that P's queues under
/// the same lock first (`find_runnable`, `handoff_p`): whichever comes
/// second sees the other's write.
pub(crate) fn requeue_on(m: &M, g: Arc<G>, lost: usize) {
    let sched = &m.sched;
    let raw = g::into_raw(g);
    if sched.is_spare(lost)
        || sched.ps[lost].run_next.compare_exchange(std::ptr::null_mut(), raw, AcqRel, Relaxed).is_err()
    {
        // SAFETY: `raw` was not published: still ours.
        put_global_and_wake(sched, unsafe { g::from_raw(raw) });
        sched.ask_holder_to_yield_global_first(lost, m);
        return;
    }
    let idle_now = {
        let mut idle = sched.idle();
        sched.take_p(&mut idle, Which::Exactly(lost)).is_some()
    };
    if idle_now {
        // Nobody held it: run it now.
        sched.start_m(lost, false);
    } else {
        sched.ask_holder_to_yield(lost, m);
    }
}

/// Called by an M that leaves the spinning state because it found work:
/// if it was the last spinner, wake another so new work keeps being found.
pub(crate) fn reset_spinning(m: &Arc<M>) {
    // SAFETY: on m's own thread.
    let local = unsafe { &mut *m.local() };
    if local.spinning {
        local.spinning = false;
        if m.sched.nmspinning.fetch_sub(1, SeqCst) == 1 {
            wakep(&m.sched);
        }
    }
}

/// Takes the P another thread handed to `m` (at start or wake-up).
pub(crate) fn acquire_next_p(m: &Arc<M>) -> bool {
    let p = m.next_p.swap(NO_P, SeqCst);
    if p == NO_P {
        return false;
    }
    // SAFETY: on m's own thread.
    let local = unsafe { &mut *m.local() };
    m::hold_p(m, local, p);
    local.spinning = m.wake_spinning.swap(false, SeqCst);
    true
}

/// The scheduler loop's search for the next G (see the module docs).
/// Returns `None` when the runtime shuts down.
pub(crate) fn find_runnable(m: &Arc<M>) -> Option<Arc<G>> {
    let sched = &m.sched;
    loop {
        if sched.shutdown.load(Relaxed) {
            return None;
        }
        // SAFETY: on m's own thread; no switch happens while `local` lives.
        let local = unsafe { &mut *m.local() };
        if local.p == NO_P {
            stop_m(m);
            continue;
        }
        if sched.is_spare(local.p) && preempt::hog_over(sched, local.p, false) {
            preempt::retire(sched, local);
            continue;
        }
        timers::run_timers_held(sched, local.p);
        let pp = &sched.ps[local.p];
        // A yield asked for a green thread waiting on the global queue
        // (`global_first`, see `yield_behind_waiters`): before `woken`,
        // where an earlier yielder that never yields may wait.
        let global_first = std::mem::take(&mut local.global_first);
        if (local.schedtick % GLOBAL_FAIRNESS_TICK == 0 || global_first)
            && let Some(g) = sched.global.pop_batch::<LOCAL_QUEUE>(None)
        {
            pp.took_from_queue();
            // SAFETY: popped from a queue: ours now.
            return Some(unsafe { g::from_raw(g) });
        }
        if let Some(g) = pp.pop_woken() {
            return Some(g);
        }
        let rn = pp.run_next.swap(std::ptr::null_mut(), Acquire);
        if !rn.is_null() {
            // SAFETY: taken from run_next: ours now.
            return Some(unsafe { g::from_raw(rn) });
        }
        if let Some(g) = pp.runq.pop() {
            pp.took_from_queue();
            // SAFETY: popped from a queue: ours now.
            return Some(unsafe { g::from_raw(g) });
        }
        if let Some(g) = sched.global.pop_batch(Some((&pp.runq, sched.nprocs()))) {
            pp.took_from_queue();
            // SAFETY: popped from a queue: ours now.
            return Some(unsafe { g::from_raw(g) });
        }
        // Green threads waiting for I/O whose descriptors became ready
        // (Go polls here too, before stealing, when no M is blocked in the
        // poller). They land on our P: look again.
        if let Some(np) = sched.poller_wanted()
            && !np.is_blocked()
            && np.poll(sched, netpoll::Wait::Now) > 0
        {
            continue;
        }
        // Nothing of our own to run, and spawns ran out of free Gs: make a
        // batch of fresh ones (stack mapped, guarded and touched) before
        // stealing, so that the spawning thread does not pay for them (see
        // `gfree::FreeGs::prefill`). Then look for work again.
        if sched.gfree.prefill(sched) {
            continue;
        }
        // Steal, as a spinning M, unless half the busy Ps already have one.
        let busy = sched.nprocs() - sched.npidle.load(SeqCst);
        if local.spinning || 2 * sched.nmspinning.load(SeqCst) < busy {
            if !local.spinning {
                local.spinning = true;
                sched.nmspinning.fetch_add(1, SeqCst);
            }
            if let Some(g) = steal_work(sched, local.p) {
                // SAFETY: stolen: ours now.
                return Some(unsafe { g::from_raw(g) });
            }
        }
        // A spare with nothing to run: wait while its hog lasts, holding
        // it (see `preempt`); retire once the hog is over.
        if sched.is_spare(local.p) {
            if preempt::hog_over(sched, local.p, true) {
                preempt::retire(sched, local);
            } else {
                preempt::wait(sched, m, local);
            }
            continue;
        }
        // Nothing: give the P back and sleep. The global queue is checked
        // under the idle lock so a pusher that saw no idle P is not missed.
        {
            let mut idle = sched.idle();
            // (Our own queues too: a green thread back from a blocked call
            // may have put itself in our `run_next`; see `requeue_on`.)
            if sched.global.len() > 0 || sched.ps[local.p].has_queued() {
                drop(idle);
                continue;
            }
            idle.push_p(local.p);
            sched.npidle.fetch_add(1, SeqCst);
            local.p = NO_P;
        }
        if local.spinning {
            local.spinning = false;
            sched.nmspinning.fetch_sub(1, SeqCst);
            // We were spinning: work readied meanwhile may have skipped
            // waking anyone because of us. Look once more.
            if any_work(sched)
                && let Some(p) = take_idle_p(sched)
            {
                m::hold_p(m, local, p);
                local.spinning = true;
                sched.nmspinning.fetch_add(1, SeqCst);
                continue;
            }
        }
        stop_m(m);
    }
}

fn any_work(sched: &Sched) -> bool {
    sched.global.len() > 0 || sched.ps.iter().any(|p| p.has_queued())
}

/// An idle P for an M coming back from a foreign call: `prefer` (its old
/// one) if it is idle, else any idle P.
pub(crate) fn take_idle_p_prefer(sched: &Arc<Sched>, prefer: usize) -> Option<usize> {
    sched.take_p(&mut sched.idle(), Which::Prefer(prefer))
}

/// Starts an M for idle P `p` if it is still idle (the monitor, for a P
/// with a due timer that nobody is watching). Returns whether it did.
pub(crate) fn start_idle_p(sched: &Arc<Sched>, p: usize) -> bool {
    if sched.take_p(&mut sched.idle(), Which::Exactly(p)).is_none() {
        return false;
    }
    sched.start_m(p, false);
    true
}

fn take_idle_p(sched: &Arc<Sched>) -> Option<usize> {
    sched.take_p(&mut sched.idle(), Which::Any)
}

/// Tries every other P (from a pseudo-random start), a few rounds: fires its
/// due timers, then steals half its queue; in the last round also its
/// `run_next`.
fn steal_work(sched: &Sched, me: usize) -> Option<*mut G> {
    // Spares too: a retired one is empty, an active one may hold work.
    let n = sched.ps.len();
    if n == 1 {
        return None;
    }
    let start = fastrand(n);
    for round in 0..4 {
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == me {
                continue;
            }
            // A spare not in use is empty (it gave everything back when it
            // retired): skip it.
            if sched.is_spare(victim) && !sched.spare_active(victim) {
                continue;
            }
            let vp = &sched.ps[victim];
            timers::run_timers(sched, victim);
            // The victim's timers ready their green threads onto our own P
            // (`ready` puts them where the caller runs): run those. Stealing
            // into a queue that is no longer empty could overflow it.
            let mine = &sched.ps[me];
            if mine.has_queued() {
                let rn = mine.run_next.swap(std::ptr::null_mut(), Acquire);
                if !rn.is_null() {
                    return Some(rn);
                }
                if let Some(g) = mine.runq.pop() {
                    return Some(g);
                }
            }
            if let Some(g) = vp.runq.steal_into(&mine.runq) {
                return Some(g);
            }
            // Last round: take the victim's run_next only if its M has not
            // scheduled for a few microseconds (it is busy in a long run);
            // otherwise the owner will run it at once and stealing would just
            // bounce a ping-ponging pair between threads (Go waits 3 µs too).
            if round == 3 && !vp.run_next.load(Relaxed).is_null() {
                let tick = vp.schedtick.load(Relaxed);
                std::thread::sleep(Duration::from_micros(3));
                if vp.schedtick.load(Relaxed) == tick {
                    // A busy victim that keeps readying green threads (a
                    // spawning loop) queued more meanwhile: take half of
                    // those, not just the one in run_next, so that one
                    // wait serves many.
                    if let Some(g) = vp.runq.steal_into(&mine.runq) {
                        return Some(g);
                    }
                    let g = vp.run_next.swap(std::ptr::null_mut(), AcqRel);
                    if !g.is_null() {
                        return Some(g);
                    }
                }
            }
        }
        // Something a timer readied lands on our own queue or the global one.
        if let Some(g) = sched.ps[me].runq.pop() {
            return Some(g);
        }
        if let Some(g) = sched.global.pop_batch::<LOCAL_QUEUE>(None) {
            return Some(g);
        }
    }
    None
}

/// A cheap per-thread pseudo-random number in `0..n` (`n > 0`).
pub(crate) fn fastrand_pub(n: usize) -> usize {
    fastrand(n)
}

/// Never inlined, for the reason given at `ffi::handle::home_shard`.
#[inline(never)]
fn fastrand(n: usize) -> usize {
    use std::cell::Cell;
    thread_local!(static SEED: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    SEED.with(|s| {
        let mut x = s.get() ^ (m::current_m() as u64);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

/// Parks an M that holds no P until it is handed one. While every M sleeps,
/// one of them is the timer watcher (see the module docs).
fn stop_m(m: &Arc<M>) {
    let sched = &m.sched;
    loop {
        if sched.shutdown.load(SeqCst) {
            return;
        }
        crate::signal::check_handlers_now_and_then();
        // Wake-ups from here on are seen by a poll below (`M::unpark`).
        m.unparked.store(false, SeqCst);
        sched.idle().ms.push(m.clone());
        // Become the watcher if there is none: claim first (so an adder sees
        // us), then compute the deadline.
        let mut timeout = None;
        let mut watcher = false;
        {
            let mut w = sched.watcher.lock().unwrap_or_else(|e| e.into_inner());
            if w.is_none() {
                *w = Some(m.clone());
                watcher = true;
                sched.watch_until.store(u64::MAX - 1, SeqCst);
                drop(w);
                let when = sched.earliest_timer();
                if when != u64::MAX {
                    sched.watch_until.store(when, SeqCst);
                    timeout = Some(Duration::from_nanos(when.saturating_sub(sched.now())));
                }
            } else if sched.poller_wanted().is_some() && !sched.watch_polls.load(SeqCst) {
                // Green threads wait for I/O but the watcher sleeps on its
                // futex (it parked before they did): wake it, so that it
                // parks again in the poller.
                if let Some(w) = w.as_ref() {
                    w.unpark();
                }
            }
        }
        match sched.poller_wanted() {
            // The watcher waits for I/O and timers at once (module docs).
            Some(np) if watcher => {
                sched.watch_polls.store(true, SeqCst);
                m.in_poll.store(true, SeqCst);
                // An unpark before `in_poll` was set did not write the
                // eventfd: it set `unparked`, which we see here (SeqCst on
                // both sides), so no wake-up is lost.
                if !m.unparked.load(SeqCst) && !sched.shutdown.load(SeqCst) {
                    np.poll(sched, timeout.map_or(netpoll::Wait::Forever, netpoll::Wait::For));
                }
                m.in_poll.store(false, SeqCst);
                sched.watch_polls.store(false, SeqCst);
            }
            _ => m.park(timeout),
        }
        let was_watcher = {
            let mut w = sched.watcher.lock().unwrap_or_else(|e| e.into_inner());
            if w.as_ref().is_some_and(|w| Arc::ptr_eq(w, m)) {
                *w = None;
                sched.watch_until.store(0, SeqCst);
                true
            } else {
                false
            }
        };
        // Were we handed a P? (It is set under the idle lock.)
        let claimed = {
            let mut idle = sched.idle();
            if m.next_p.load(SeqCst) != NO_P {
                true
            } else {
                idle.ms.retain(|x| !Arc::ptr_eq(x, m));
                false
            }
        };
        if claimed {
            if was_watcher && (sched.earliest_timer() != u64::MAX || sched.poller_wanted().is_some()) {
                // We leave with the watcher's role while timers are pending
                // (possibly on idle Ps nobody runs) or green threads wait for
                // I/O: wake another idle M, which takes the role as it parks
                // again.
                if let Some(other) = sched.idle().ms.last() {
                    other.unpark();
                }
            }
            acquire_next_p(m);
            return;
        }
        if was_watcher {
            sched.run_all_timers(m);
        }
        if (any_work(sched) || sched.earliest_timer() <= sched.now())
            && let Some(p) = take_idle_p(sched)
        {
            // SAFETY: on m's own thread.
            m::hold_p(m, unsafe { &mut *m.local() }, p);
            return;
        }
    }
}

/// The locked G of `m` stopped (parked or yielded): give the P away and
/// sleep until the G is handed back. Returns the G to run.
pub(crate) fn stop_locked_m(m: &Arc<M>) -> Option<Arc<G>> {
    let sched = &m.sched;
    m.locked_wait.store(true, SeqCst);
    // SAFETY: on m's own thread.
    let p = unsafe { std::mem::replace(&mut (*m.local()).p, NO_P) };
    if p != NO_P {
        sched.handoff_p(p);
    }
    loop {
        if let Some(g) = m.next_g.lock().unwrap_or_else(|e| e.into_inner()).take() {
            m.locked_wait.store(false, SeqCst);
            let got = acquire_next_p(m);
            debug_assert!(got, "locked G handed back without a P");
            return Some(g);
        }
        if sched.shutdown.load(SeqCst) {
            m.locked_wait.store(false, SeqCst);
            return None;
        }
        m.park(None);
    }
}

/// `g` is locked to another M: hand it our P and the G, and go idle.
pub(crate) fn start_locked_m(m: &Arc<M>, g: Arc<G>) {
    // SAFETY: we own `g` (popped from a queue); on m's own thread.
    let target = unsafe { g.inner().locked_m };
    // SAFETY: a locked G keeps its M alive: the M's thread is parked in
    // `stop_locked_m` waiting for exactly this G, and `all_ms` holds it.
    let target = unsafe { &*target };
    // SAFETY: on m's own thread.
    let p = unsafe { std::mem::replace(&mut (*m.local()).p, NO_P) };
    target.next_p.store(p, SeqCst);
    *target.next_g.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
    target.unpark();
}

/// Keeps an exited G and its stack for reuse (see [`gfree`]).
pub(crate) fn free_g(m: &M, g: Arc<G>) {
    gfree::with_p_cache(&m.sched, |cache| m.sched.gfree.put(cache, g));
}

/// A G that will run `entry`: a free one with a default-size stack if
/// there is one, else a new one with a new stack of `stack_size` bytes
/// (default: the runtime's).
pub(crate) fn new_g(
    sched: &Arc<Sched>,
    name: Option<Arc<str>>,
    stack_size: Option<usize>,
    entry: Arc<dyn g::Entry>,
) -> std::io::Result<Arc<G>> {
    let size = match stack_size {
        Some(s) => crate::stack::checked_size(s)?,
        None => sched.gfree.size(),
    };
    if size == sched.gfree.size() {
        if let Some(mut g) = gfree::with_p_cache(sched, |cache| sched.gfree.get(cache)) {
            Arc::get_mut(&mut g).expect("free Gs are not shared").prepare(name, entry);
            return Ok(g);
        }
        // Out of free Gs: a burst of spawns. Idle Ms will make some ahead.
        sched.gfree.want_more(sched);
    }
    Ok(G::new(sched.clone(), name, Stack::new(size)?, entry))
}

/// A weak reference to a runtime, for waiting on one of its green threads
/// from outside it without waiting for ever: [`watch`](Self::watch)
/// registers the caller to be woken when the runtime shuts down, and
/// [`is_shut_down`](Self::is_shut_down) tells. The order (register, then
/// test the flag; the shutdown sets the flag, then wakes the registered)
/// means a joiner either sees the flag or is woken.
pub(crate) struct RuntimeWatch(std::sync::Weak<Sched>);

impl RuntimeWatch {
    pub(crate) fn of(sched: &Arc<Sched>) -> RuntimeWatch {
        RuntimeWatch(Arc::downgrade(sched))
    }

    /// True once the runtime shut down (or is gone).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.0.upgrade().is_none_or(|s| s.shutdown.load(SeqCst))
    }

    /// Registers the caller for the shutdown's wake-up until the guard
    /// drops — unless it is a green thread of this very runtime, which
    /// stops with it anyway (the common case costs no lock).
    pub(crate) fn watch(&self) -> Option<WatchGuard> {
        let m = m::current_m();
        // SAFETY: `m` is this thread's M, alive while its thread runs.
        if !m.is_null() && std::ptr::eq(Arc::as_ptr(unsafe { &(*m).sched }), self.0.as_ptr()) {
            return None;
        }
        let sched = self.0.upgrade()?;
        let id = sched.next_watch.fetch_add(1, Relaxed);
        sched.watchers.lock().unwrap_or_else(|e| e.into_inner()).push((id, crate::sync::park::Unparker::current()));
        Some(WatchGuard { sched, id })
    }
}

/// Takes a [`RuntimeWatch::watch`] registration back.
pub(crate) struct WatchGuard {
    sched: Arc<Sched>,
    id: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.sched.watchers.lock().unwrap_or_else(|e| e.into_inner()).retain(|(id, _)| *id != self.id);
    }
}

/// The most recently built runtime (weakly): what a thread C created
/// adopts on its first callback (see `ffi::callback`).
static LATEST: Mutex<Vec<std::sync::Weak<Sched>>> = Mutex::new(Vec::new());

/// The most recently built runtime that is still running, if any.
fn latest_running() -> Option<Arc<Sched>> {
    let list = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    list.iter().rev().filter_map(std::sync::Weak::upgrade).find(|s| !s.shutdown.load(SeqCst))
}

thread_local! {
    /// The runtime a non-runtime thread adopted for spawning.
    static ADOPTED: std::cell::RefCell<std::sync::Weak<Sched>> = const { std::cell::RefCell::new(std::sync::Weak::new()) };
}

/// Records a newly built runtime as the one foreign threads adopt.
pub(crate) fn register_latest(sched: &Arc<Sched>) {
    let mut list = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(sched));
}

/// Lets this (non-runtime) thread spawn green threads on the most recently
/// built runtime that still runs, unless it already adopted one that does
/// (a runtime that was dropped is not adopted, nor kept).
pub(crate) fn adopt_runtime() {
    ADOPTED.with(|a| {
        let running = a.borrow().upgrade().is_some_and(|s| !s.shutdown.load(SeqCst));
        if !running {
            *a.borrow_mut() = latest_running().as_ref().map_or_else(std::sync::Weak::new, Arc::downgrade);
        }
    });
}

/// The runtime of the calling green thread, or the one this thread adopted.
pub(crate) fn current_sched() -> Option<Arc<Sched>> {
    crate::fork::check("the runtime was used");
    let m = m::current_m();
    if m.is_null() {
        return ADOPTED.with(|a| a.borrow().upgrade());
    }
    // SAFETY: `m` is this thread's M, alive while its thread runs.
    Some(unsafe { (*m).sched.clone() })
}

/// The P held by the calling thread's M, if it is one of ours and holds one.
/// Inside a callback that has not needed its P yet, takes it back first.
pub(crate) fn current_p() -> Option<usize> {
    let m = m::current_m();
    // SAFETY: reading our own M's flag on its thread; `reclaim` is called
    // on the M's own thread.
    if !m.is_null() && unsafe { (*(*m).local()).cb_lazy } {
        // SAFETY: as above; `m` is alive while its thread runs.
        syscall::reclaim(unsafe { &*m });
    }
    // SAFETY: reading our own M's `p` on its thread.
    let p = (!m.is_null()).then(|| unsafe { (*(*m).local()).p })?;
    (p != NO_P).then_some(p)
}

/// The running green thread, as a shared handle.
pub(crate) fn current_g_arc() -> Option<Arc<G>> {
    // Every runtime operation of a green thread starts here (sleeping,
    // parking, spawning): a forked child stops before it takes any lock.
    crate::fork::check("a green thread used the runtime");
    let m = m::current_m();
    // SAFETY: reading our own M's `cur_g` on its thread; it is the running G.
    (!m.is_null()).then(|| unsafe { (*(*m).local()).cur_g.clone() })?
}

/// A one-line summary of the scheduler's state, for diagnosing hangs.
#[doc(hidden)]
pub fn debug_dump() -> String {
    let Some(s) = latest_running() else { return "no runtime".into() };
    let mut out = String::new();
    for (i, p) in s.ps.iter().enumerate() {
        out += &format!(
            "P{i}: runq={} run_next={} woken={} next_when={} | ",
            p.runq.len(),
            !p.run_next.load(SeqCst).is_null(),
            p.nwoken.load(SeqCst),
            p.next_when.load(SeqCst)
        );
    }
    let idle = s.idle();
    out += &format!(
        "global={} npidle={} nmspinning={} idle_ps={:?} idle_ms={} live_ms={} now={} watcher={}",
        s.global.len(),
        s.npidle.load(SeqCst),
        s.nmspinning.load(SeqCst),
        idle.ps,
        idle.ms.len(),
        s.live_ms.load(SeqCst),
        s.now(),
        s.watch_until.load(SeqCst)
    );
    drop(idle);
    s.for_each_m(|m| out += &format!(" m(word={:x} next_p={})", m.call.load(), m.next_p.load(SeqCst)));
    out
}

/// [`thread_exhaustion`] when the OS refused the thread (`error`), before
/// the runtime's own limit.
#[cold]
fn thread_exhaustion_os(error: &std::io::Error) -> ! {
    eprintln!(
        "ffiber: fatal: the OS refused a new thread ({error}) while every OS thread of the runtime is held by a \
         green thread waiting on it (callbacks from C that block on the runtime — sleep, channels, locks, join, \
         or a C library's usleep, which ffiber turns into a green sleep — keep their OS thread, because the C \
         frames below them live on its stack; so do green threads that called lock_os_thread and then blocked). \
         No thread is left to run the green threads that would wake them. Raise the OS limits (ulimit -u, \
         kernel.threads-max, vm.max_map_count), make fewer such calls at once, or set FFIBER_USLEEP_HOOK=0."
    );
    std::process::abort()
}

/// Go's "thread exhaustion", for the one case where it is certain: every OS
/// thread the runtime may have is held by a green thread locked to it that
/// waits for the others.
#[cold]
fn thread_exhaustion(max: usize) -> ! {
    eprintln!(
        "ffiber: fatal: all {max} OS threads allowed to the runtime are held by green threads waiting on them \
         (callbacks from C that block on the runtime — sleep, channels, locks, join — keep their OS \
         thread, because the C frames below them live on its stack; so do green threads that called \
         lock_os_thread and then blocked), and no thread is left to run the green threads that would \
         wake them. The program cannot make progress. Raise the limit with \
         Runtime::builder().max_threads(n), or have callbacks hand their waiting to a green thread \
         (send on a channel and return) instead of blocking inside C."
    );
    std::process::abort()
}
