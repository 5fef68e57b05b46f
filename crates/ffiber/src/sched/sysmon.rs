//! The monitor: Go's `sysmon` `retake`, for Ps whose M is stuck in C.
//!
//! One OS thread per runtime, started when the runtime first takes a P.
//! It looks at every M's call-state word (`state`); an M that has been in
//! the *same* foreign call (same call number) for longer than
//! [`RETAKE_AFTER`], whose P has something to run — a queued green thread,
//! a due timer, or global work with no idle P to take it — loses that P
//! (`CallState::try_retake`), which is handed to another M (an idle one,
//! or a new one up to `max_threads`), so its green threads keep running. A
//! P in C with nothing to run is left alone: handing it off would only cost
//! a wake-up.
//!
//! **When it runs.** While some P is busy (not on the idle list), it polls:
//! every 20 µs, backing off (doubling) only after 50 scans in a row found
//! nothing to retake (Go's sysmon does the same) — to 1 ms, and to 10 ms
//! (Go's slowest) once no M has been in C for a second — and never
//! sleeping past the earliest timer of a P in C (so a sleeping green
//! thread whose P is stuck in C is late by microseconds, not milliseconds).
//!
//! **Parking.** When every P is idle there is nothing to watch: the
//! monitor parks, costing nothing. Like Go's sysmon (which sleeps on
//! `sysmonnote` when `npidle == gomaxprocs`), it is woken when a P leaves
//! the idle list — an M takes it to run green threads, and only such an M
//! can go into C. Both sides decide under the idle list's lock (the monitor
//! parks only if every P is idle; whoever takes a P wakes a parked monitor),
//! so a P can never get busy unseen. This keeps the foreign call itself
//! free of any check for the monitor: a call stores its word and nothing
//! else (a per-call check of a "parked" flag, the earlier design, cost
//! 0.3 ns a call — 7% of the whole call).

use super::syscall::{self as state, IN_C};
use crate::sched::Sched;
use crate::sched::m::M;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A P stuck in the same foreign call this long may be handed off (Go: one
/// sysmon tick, at least 20 µs).
pub(crate) const RETAKE_AFTER: Duration = Duration::from_micros(20);
/// Fastest and slowest polling while some P is busy; slowest once no M has
/// been in C for [`QUIET_LONG`].
const POLL_MIN: Duration = Duration::from_micros(20);
const POLL_MAX: Duration = Duration::from_millis(1);
const POLL_QUIET: Duration = Duration::from_millis(10);
const QUIET_LONG: Duration = Duration::from_secs(1);
/// Quiet scans (nothing retaken) before polling slows down.
const IDLE_SCANS: u32 = 50;

/// The monitor's shared state, one per runtime.
pub(crate) struct Monitor {
    /// Set while the monitor is not running (not started, or parked because
    /// every P is idle). Written under the idle list's lock.
    parked: AtomicBool,
    started: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The monitor thread, to unpark it without a lock.
    handle: std::sync::OnceLock<std::thread::Thread>,
    /// When (runtime clock, ns) the polling monitor will look next;
    /// `u64::MAX` while it is not polling.
    next_look: AtomicU64,
    /// The last scan saw a lazy `Blocking` call (`BLK`) in C.
    blk_seen: AtomicBool,
    /// The monitor sleeps longer than [`POLL_MIN`] (backed off).
    slow: AtomicBool,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            parked: AtomicBool::new(true),
            started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            handle: std::sync::OnceLock::new(),
            next_look: AtomicU64::new(u64::MAX),
            blk_seen: AtomicBool::new(false),
            slow: AtomicBool::new(false),
        }
    }
}

impl Monitor {
    /// A P left the idle list; the caller holds the idle list's lock.
    /// Wakes (or starts) a parked monitor.
    #[inline]
    pub(crate) fn p_left_idle(&self, sched: &Arc<Sched>) {
        if self.parked.load(Relaxed) {
            self.wake(sched);
        }
    }

    #[cold]
    fn wake(&self, sched: &Arc<Sched>) {
        self.parked.store(false, Relaxed);
        if !self.started.swap(true, AcqRel) {
            let s = sched.clone();
            let spawned =
                std::thread::Builder::new().name("ffiber-monitor".into()).stack_size(256 * 1024).spawn(move || run(&s));
            match spawned {
                Ok(h) => {
                    let _ = self.handle.set(h.thread().clone());
                    *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
                }
                Err(e) => eprintln!(
                    "ffiber: could not start the foreign-call monitor thread ({e}); \
                     a green thread blocked in C will hold its P until the call returns"
                ),
            }
        } else if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            h.thread().unpark();
        }
    }

    /// Work was readied while no P was idle (`sched::wakep`): if a lazy
    /// `Blocking` call holds a P and the monitor has backed off, wake it
    /// now, so that it hands that P to the work (see `scan`). Two relaxed
    /// loads when there is nothing to do; at most one wake-up per backed-off
    /// sleep.
    #[inline]
    pub(crate) fn work_waits(&self) {
        if self.blk_seen.load(Relaxed) && self.slow.load(Relaxed) && self.slow.swap(false, Relaxed) {
            std::hint::cold_path();
            if let Some(t) = self.handle.get() {
                t.unpark();
            }
        }
    }

    /// A timer due at `when` was added to some P: a polling monitor that
    /// would look later than that looks again now (the P may be about to
    /// go into C with that timer on it).
    pub(crate) fn timer_added(&self, when: u64) {
        if when < self.next_look.load(Relaxed)
            && let Some(t) = self.handle.get()
        {
            t.unpark();
        }
    }

    /// Stops the monitor thread (runtime shutdown).
    pub(crate) fn stop(&self) {
        self.stop.store(true, SeqCst);
        let h = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = h {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// What the monitor remembers of a P between two looks.
#[derive(Clone, Copy)]
struct Seen {
    /// The M's state word when first seen.
    cstate: u64,
    since: Instant,
}

/// Body of the monitor thread.
fn run(sched: &Arc<Sched>) {
    let mon = &sched.monitor;
    let asym = state::asymmetric();
    let mut seen: Vec<(Arc<M>, Seen)> = Vec::new();
    let mut poll = POLL_MIN;
    let mut quiet = 0u32;
    let mut last_in_c = Instant::now();
    let mut hog_seen = Vec::new();
    while !mon.stop.load(SeqCst) {
        let now = Instant::now();
        // A C library may have replaced the fault handler (see
        // `signal::check_handlers`): one system call per 100 ms.
        crate::signal::check_handlers_now_and_then();
        let (in_c, retook, wake_at) = scan(sched, &mut seen, now, asym);
        // Green threads that keep their P without a scheduling point while
        // others wait: hand the waiting work to a spare P (`preempt`).
        let hogged = super::preempt::check_hogs(sched, &mut hog_seen, now);
        // Every M busy and nobody polled the network for a while: poll
        // here, so that I/O waiters are not starved by CPU-bound work
        // (Go's sysmon does the same). What it finds goes on the global
        // queue.
        if let Some(np) = sched.poller_wanted()
            && !np.is_blocked()
            && sched.now().saturating_sub(np.last_poll()) >= super::netpoll::POLL_STALE.as_nanos() as u64
        {
            np.poll(sched, super::netpoll::Wait::Now);
        }
        if in_c {
            last_in_c = now;
        }
        // As Go's sysmon: poll at the fastest rate while there is
        // something to do, and back off only after IDLE_SCANS quiet scans.
        if retook {
            quiet = 0;
            poll = POLL_MIN;
        } else {
            quiet += 1;
            if quiet > IDLE_SCANS {
                let max = if now.duration_since(last_in_c) >= QUIET_LONG && !hogged { POLL_QUIET } else { POLL_MAX };
                poll = (poll * 2).min(max);
            }
        }
        // Free stacks beyond the pool, left by a burst of green threads:
        // a few per look while green threads run (`sched::gfree`).
        sched.gfree.scavenge(false);
        if !in_c && sched.npidle.load(SeqCst) == sched.nprocs() {
            // Every P idle: nothing runs that unmapping could slow down;
            // release the whole excess before parking.
            sched.gfree.scavenge(true);
            // Every P idle: park until one is taken (see the module docs).
            sched.if_all_idle(|| {
                mon.parked.store(true, Relaxed);
                mon.next_look.store(u64::MAX, SeqCst);
            });
            while mon.parked.load(Relaxed) && !mon.stop.load(SeqCst) {
                std::thread::park();
            }
            poll = POLL_MIN;
            quiet = 0;
            continue;
        }
        let mut sleep = poll;
        if let Some(at) = wake_at {
            sleep = sleep.min(at.saturating_duration_since(now)).max(Duration::from_micros(5));
        }
        mon.next_look.store(sched.when(now + sleep), SeqCst);
        mon.slow.store(sleep > POLL_MIN, Relaxed);
        std::thread::park_timeout(sleep);
    }
}

/// Timers overdue by [`RETAKE_AFTER`] on a P that an M holds: the P runs
/// green threads that have not reached a scheduling point since (timers
/// run only there), such as workers that only make short foreign calls and
/// never block. Ask the P's M to yield at its next foreign-call exit
/// (`CallState::request_yield`: the `YIELD` value the exit already
/// compares with), where the scheduler runs the timers first. Without it a
/// green thread sleeping in a callback of SQLite's busy handler (see
/// `ffi::usleep`) woke a median of 6.4 ms late for a 1 ms sleep in the
/// write mix, on Ps busy with readers (2 ms with it; 1.5 ms once timer
/// wake-ups also went first, `P::woken`). (A P in a long C call is the retake's
/// business; a P whose green thread computes without foreign calls, the
/// preemption's.) Returns whether anything was asked.
fn late_timers(sched: &Arc<Sched>, now_ns: u64) -> bool {
    let late = RETAKE_AFTER.as_nanos() as u64;
    let mut asked = false;
    for (i, p) in sched.ps.iter().enumerate() {
        let t = p.next_when.load(Acquire);
        if t > now_ns || now_ns - t < late {
            continue;
        }
        // Still this P's M; a stale answer costs one spurious yield. In C
        // or not: the request is served at the exit of its current or next
        // call, and a retake request of this same scan replaces it (see
        // `request_yield`).
        if let Some(holder) = sched.holder_of(i) {
            asked |= holder.call.request_yield();
        }
    }
    asked
}

/// One look at every M. Returns whether any M is in C, whether a P was
/// retaken, and when the earliest timer of a P in C is due.
///
/// Which calls lose their P, if work waits for it:
/// - a call seen twice, [`RETAKE_AFTER`] apart (Go's rule: one sysmon
///   tick, and the same call number);
/// - at first sight, a call right after one that lost its P (`HOT`: calls
///   that block come in runs, and each scan saved is a P's worth of green
///   threads started ~20 µs sooner);
/// - at first sight, a lazy `Blocking` call (`BLK`): its caller said it
///   blocks. For these, work anywhere counts — a green thread queued on
///   any P, which the P handed off would steal — since the caller would
///   have handed the P off at once if any had been queued.
fn scan(sched: &Arc<Sched>, seen: &mut Vec<(Arc<M>, Seen)>, now: Instant, asym: bool) -> (bool, bool, Option<Instant>) {
    let mut in_c = false;
    let mut blk = false;
    let mut wake_at: Option<Instant> = None;
    let now_ns = sched.when(now);
    let mut candidates: Vec<(Arc<M>, u64, bool)> = Vec::new();
    let mut current: Vec<(Arc<M>, Seen)> = Vec::new();
    // Work queued anywhere, computed once, for `BLK` calls only.
    let mut waiting: Option<bool> = None;
    sched.for_each_m(|m| {
        let v = m.call.load();
        if v & 3 != IN_C {
            return;
        }
        in_c = true;
        let first = seen.iter().find(|(x, s)| Arc::ptr_eq(x, m) && s.cstate == v).map(|(_, s)| s.since);
        let since = first.unwrap_or(now);
        current.push((m.clone(), Seen { cstate: v, since }));
        let p = &sched.ps[state::p_of(v)];
        let has_work = p.has_work(now_ns) || (sched.global.len() > 0 && sched.npidle.load(SeqCst) == 0);
        let proven = now.duration_since(since) >= RETAKE_AFTER;
        let take = if v & state::BLK != 0 {
            blk = true;
            has_work
                || *waiting.get_or_insert_with(|| sched.global.len() > 0 || sched.ps.iter().any(|p| p.has_queued()))
        } else {
            has_work && (v & state::HOT != 0 || proven)
        };
        if take {
            candidates.push((m.clone(), v, proven));
        }
    });
    *seen = current;
    sched.monitor.blk_seen.store(blk, Relaxed);
    // While some M is in C, look again when the earliest timer of any P is
    // due: its P may be in C by then, or busy with green threads that make
    // only short calls (`late_timers`).
    if in_c {
        let earliest = sched.ps.iter().map(|p| p.next_when.load(Acquire)).min().unwrap_or(u64::MAX);
        if earliest != u64::MAX {
            let at = now + Duration::from_nanos(earliest.saturating_sub(now_ns));
            wake_at = Some(at);
        }
    }
    // Outside the M list's lock: a hand-off may start a new M.
    let mut retook = late_timers(sched, now_ns);
    // A due timer on an idle P: with Ms stuck in C there may be no idle M
    // left to watch timers, so start one for that P.
    if in_c && sched.npidle.load(SeqCst) > 0 {
        for (i, p) in sched.ps.iter().enumerate() {
            let t = p.next_when.load(Acquire);
            if t <= now_ns && now_ns - t >= RETAKE_AFTER.as_nanos() as u64 && crate::sched::start_idle_p(sched, i) {
                retook = true;
            }
        }
    }
    if !candidates.is_empty() {
        let calls = candidates.iter().map(|(m, v, proven)| (&m.call, *v, *proven));
        for (p, proven) in state::CallState::try_retake_all(calls, asym) {
            // Only a call proven to block marks the M that takes its P.
            if proven {
                sched.handoff_blocked_p(p);
            } else {
                sched.handoff_p(p);
            }
            retook = true;
        }
    }
    (in_c, retook, wake_at)
}
