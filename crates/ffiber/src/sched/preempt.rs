//! Fairness for CPU-bound green threads: *preemption by hand-off*.
//!
//! Scheduling is cooperative: a green thread that computes without a
//! scheduling point keeps its P. Go takes such a goroutine off its thread
//! after 10 ms (sysmon's `retake`, with a signal since 1.14). We do not
//! interrupt it. Interrupting Rust code is unsound here in ways Go's
//! compiler-controlled code is not — the interrupted green thread may be
//! inside `malloc`, inside a `RefCell` borrow of a thread-local, holding a
//! lock keyed by its OS thread (stdout's), or keep a thread-local's address
//! in a register, so nothing else may run on that OS thread until it
//! resumes — and a signal that lands in C or in a system call breaks C
//! libraries with `EINTR` (golang/go #38033, #36281).
//!
//! **At a foreign call's exit.** When the monitor sees a P that has run the
//! same green thread for [`HOG_AFTER`] (its `schedtick` has not moved)
//! while something waits on it that nobody gets to (queued or global green
//! threads nobody took for 2 ms, or a timer overdue by 1 ms), and that
//! green thread makes announced foreign calls (its M is in one, or has
//! made one since the last scan), it asks the M to yield at the exit of
//! its current or next call — a safe point, as a cgo call's return is in
//! Go — and the green thread goes to the tail of the queue
//! (`P::preempt_asked`). A green thread that loops on short default-mode
//! calls is found inside C at nearly every scan; before this, that made
//! the monitor leave it alone, and the green threads queued behind it
//! waited for seconds.
//!
//! **Otherwise the work that waits moves.** For a hog that makes no
//! announced calls (or has not yielded [`ASK_GRACE`] after being asked),
//! the monitor activates a **spare P** for it and starts an M on that: an extra
//! processor slot beyond `max_procs`, one per regular P at most. The spare
//! M steals the hogged P's queue (and runs its timers) like any thief; the
//! long-running green thread keeps its OS thread, untouched, and the kernel
//! time-slices the two threads. A `NonBlocking` C call that spins is a hog
//! like any other (it does not announce itself), so it is covered too.
//!
//! **Retirement.** The spare lives until the hog reaches the scheduler — its
//! P's `schedtick` moves, or the P goes idle — then gives everything back:
//! its queued green threads to the global queue, its timers to the hogged
//! P, its free Gs to the global list. While the hog lasts and the spare has
//! nothing to run, its M waits holding the spare (timers that its green
//! threads set fire there on time), looking again every millisecond for
//! work readied onto the hogged P.
//!
//! **Bounds and costs.** At most `max_procs` spares (so at most twice
//! `max_procs` threads run green threads), only while a hog lasts, and
//! nothing on the fast paths: the monitor reads each P's `schedtick` as it
//! scans; spares are ordinary Ps to every queue operation. What it cannot
//! do: give the hog's own P back to its queue while the hog runs (the
//! waiting work runs on the spare instead), or stop a hog (a loop that
//! never ends still never ends; the program's other green threads just do
//! not wait for it). `FFIBER_PREEMPT=0` or `Runtime::builder().preempt(false)`
//! turns it off.

//! **Sleepers' spares.** A second kind of spare, present whether or not
//! preemption is on: 16 per regular P, 64 at most
//! ([`sleeper_spares`]). Two ways in, both for a green thread whose C
//! frames (or `lock_os_thread`) tie it to its M, with no regular P idle:
//! a timer wakes it — a sleep inside a callback, or a locked green
//! thread's sleep — and the M gets a free sleepers' spare with it
//! ([`run_woken_on_spare`]); or its call blocked inside a callback and
//! returned — SQLite's busy handler sleeping in `ffi::usleep`, woken by
//! the kernel — and it takes one itself ([`take_sleeper_spare`]). Either
//! way C goes on at once, as an OS thread's would. Without it the sleeper
//! waited for some P's holder to reach a scheduling point and hand that P
//! over; in SQLite's write mix a green
//! thread reaches one mostly when *it* fails to take the write lock, so
//! the retry came just when the lock was taken, and a writer that failed
//! once kept failing (`docs/DESIGN.md`, "The write mix, session 14"). The
//! spare serves that one green thread until its next scheduling point,
//! then retires like a hog's (`hog_over` says so at the first look for
//! work); a green thread that keeps computing on it keeps it, as it
//! would keep an OS thread. The monitor's hog check neither uses nor
//! counts them.

use super::{NO_P, Sched, m, timers};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

/// How long a P must run one green thread, with work waiting, before a
/// spare takes the work (Go's `forcePreemptNS`).
pub(crate) const HOG_AFTER: Duration = Duration::from_millis(10);

/// How often a spare with nothing to run looks at its hogged P again.
const SPARE_POLL: Duration = Duration::from_millis(1);

/// One spare P's state.
#[derive(Default)]
pub(crate) struct Spare {
    /// An M runs it (set by the monitor, cleared by that M at retirement).
    active: AtomicBool,
    /// The regular P it covers, and that P's `schedtick` when it was found
    /// hogged.
    cover: AtomicUsize,
    tick: AtomicU32,
}

/// Whether preemption by hand-off is on for a new runtime: the builder's
/// choice, else `FFIBER_PREEMPT` (`0` turns it off).
pub(crate) fn enabled_by_env() -> bool {
    std::env::var("FFIBER_PREEMPT").map_or(true, |v| v.trim() != "0")
}

impl Sched {
    /// Whether P `p` is a spare.
    pub(crate) fn is_spare(&self, p: usize) -> bool {
        p >= self.nprocs()
    }

    fn spare(&self, p: usize) -> &Spare {
        &self.spares[p - self.nprocs()]
    }

    /// Whether spare `p` is in use (an M holds it, or is about to).
    pub(crate) fn spare_active(&self, p: usize) -> bool {
        self.spare(p).active.load(SeqCst)
    }

    /// P `p` if it is a regular one, else the regular P the spare covers
    /// (or last covered): where a sleepers' spare taken for a green thread
    /// that `p`'s timer woke sends its timers when it retires.
    pub(crate) fn regular_of(&self, p: usize) -> usize {
        if self.is_spare(p) { self.spare(p).cover.load(SeqCst).min(self.nprocs() - 1) } else { p }
    }

    /// Whether P `p` is a sleepers' spare (`run_woken_on_spare`).
    pub(crate) fn is_sleeper_spare(&self, p: usize) -> bool {
        p >= self.nprocs() + self.hog_spares
    }

    /// Preemption's spares running now (for tests and diagnostics).
    pub(crate) fn active_spares(&self) -> usize {
        self.spares[..self.hog_spares].iter().filter(|s| s.active.load(SeqCst)).count()
    }
}

/// What the monitor remembers of each regular P between scans.
#[derive(Clone, Copy)]
pub(crate) struct Seen {
    tick: u32,
    since: Instant,
    /// The queue's `taken` count and `run_next` at the last scan.
    taken: u32,
    next: usize,
    /// The global queue's `taken` count at the last scan.
    global_taken: usize,
    /// When one of those last moved.
    progress: Instant,
    /// The call number in the word of the P's M at the last scan.
    calls: u64,
    /// When the monitor asked this P's hog to yield at a foreign-call exit
    /// (it makes announced calls), if it did since the P last scheduled.
    asked: Option<Instant>,
}

/// How long a hog asked to yield at its next foreign-call exit has before
/// a spare takes the waiting work instead (its calls may have stopped, or
/// it may be in a callback, where no exit yields).
const ASK_GRACE: Duration = Duration::from_millis(2);

/// How long queued work may go untaken before it counts as waiting (a busy
/// thief takes a batch, then runs it).
const STUCK_AFTER: std::time::Duration = std::time::Duration::from_millis(2);

/// How late a due timer on a hogged P may be before it counts as waiting.
const TIMER_SLACK_NS: u64 = 1_000_000;

/// Whether work waits on P `i` without anyone getting to it since the last
/// scan: queued green threads nobody took (a thief draining the queue of a
/// spawning loop is progress: no spare needed), global work nobody took
/// while no P is idle, or a timer overdue by a millisecond.
fn stuck_work(sched: &Sched, i: usize, s: &mut Seen, now: Instant, now_ns: u64) -> bool {
    let p = &sched.ps[i];
    let (taken, next, global_taken) = (p.runq.taken(), p.run_next.load(SeqCst) as usize, sched.global.taken());
    if (taken, next, global_taken) != (s.taken, s.next, s.global_taken) {
        (s.taken, s.next, s.global_taken, s.progress) = (taken, next, global_taken, now);
    }
    let stuck = now.duration_since(s.progress) >= STUCK_AFTER;
    (stuck && p.has_queued())
        || (stuck && sched.global.len() > 0 && sched.npidle.load(SeqCst) == 0)
        || p.next_when.load(SeqCst).saturating_add(TIMER_SLACK_NS) <= now_ns
}

/// The monitor's look for hogs: for every regular P that has run one green
/// thread for [`HOG_AFTER`] while work waits, asks it to yield at a
/// foreign-call exit if it makes announced calls, else (or if it has not
/// within [`ASK_GRACE`]) activates a spare. Returns whether any P is, or may soon be,
/// hogged (the monitor then keeps polling at least every millisecond).
pub(crate) fn check_hogs(sched: &Arc<Sched>, seen: &mut Vec<Seen>, now: Instant) -> bool {
    if !sched.preempts() {
        return false;
    }
    let n = sched.nprocs();
    if seen.len() != n {
        *seen = (0..n)
            .map(|i| Seen {
                tick: sched.ps[i].schedtick.load(Relaxed),
                since: now,
                taken: 0,
                next: 0,
                global_taken: 0,
                progress: now,
                calls: 0,
                asked: None,
            })
            .collect();
        return false;
    }
    let now_ns = sched.now();
    let mut hogged = false;
    for (i, s) in seen.iter_mut().enumerate() {
        let tick = sched.ps[i].schedtick.load(Relaxed);
        let calls = holder_calls(sched, i);
        let made_calls = calls.is_some_and(|(n, in_c)| in_c || n != s.calls);
        s.calls = calls.map_or(s.calls, |(n, _)| n);
        if tick != s.tick {
            if s.asked.is_some() {
                sched.ps[i].preempt_asked.store(false, Relaxed);
            }
            *s = Seen { tick, since: now, asked: None, ..*s };
            continue;
        }
        let waiting = stuck_work(sched, i, s, now, now_ns);
        let p = &sched.ps[i];
        if now.duration_since(s.since) >= HOG_AFTER / 2
            && (p.has_queued() || p.next_when.load(SeqCst) != u64::MAX || sched.global.len() > 0)
        {
            // Maybe a hog soon: keep the monitor looking every millisecond
            // (it may poll every 10 ms when no M is in C), so that a hog is
            // noticed at 10 ms, not 20.
            hogged = true;
        }
        if now.duration_since(s.since) < HOG_AFTER || !waiting {
            continue;
        }
        // Idle Ps run nothing (rare path: a lock).
        if sched.idle_contains(i) {
            s.since = now;
            continue;
        }
        hogged = true;
        // A hog that makes announced foreign calls — in one now, or it has
        // made some since the last scan — is preempted where Go's would be
        // at a cgo call's return: asked to yield at the exit of its current
        // or next call, to the tail of the queue (`P::preempt_asked`). A
        // long call is the retake's business meanwhile (a request of the
        // retake replaces this one). Without it, a green thread looping on
        // short default-mode calls kept the P for as long as the monitor
        // kept finding it inside C: a queued one waited 0.15–5 s.
        if s.asked.is_none() && made_calls {
            let p = &sched.ps[i];
            p.preempt_asked.store(true, Relaxed);
            if ask_holder(sched, i) {
                s.asked = Some(now);
                continue;
            }
            p.preempt_asked.store(false, Relaxed);
        }
        if s.asked.is_some_and(|t| now.duration_since(t) < ASK_GRACE) {
            continue;
        }
        let hog_spares = &sched.spares[..sched.hog_spares];
        if hog_spares.iter().any(|sp| sp.active.load(SeqCst) && sp.cover.load(SeqCst) == i) {
            continue;
        }
        let Some(k) = claim_spare(sched, 0..sched.hog_spares) else { continue };
        let sp = &sched.spares[k];
        sp.cover.store(i, SeqCst);
        sp.tick.store(tick, SeqCst);
        sched.start_m(n + k, false);
    }
    hogged || sched.active_spares() > 0
}

/// The call number of P `p`'s M, and whether it is in an announced
/// foreign call now; `None` if no M holds `p`.
fn holder_calls(sched: &Sched, p: usize) -> Option<(u64, bool)> {
    let v = sched.holder_of(p)?.call.load();
    Some((v >> super::syscall::CALL_SHIFT, v & 3 == super::syscall::IN_C))
}

/// Asks P `p`'s M to yield at the exit of its current or next announced
/// foreign call (`CallState::request_yield`). Whether the request is
/// pending.
fn ask_holder(sched: &Sched, p: usize) -> bool {
    sched.holder_of(p).is_some_and(|m| m.call.request_yield())
}

/// Whether spare `p`'s hog is over: the covered P scheduled again, or went
/// idle (`check_idle`: a lock, so only on the spare's waiting path).
pub(crate) fn hog_over(sched: &Sched, p: usize, check_idle: bool) -> bool {
    if sched.is_sleeper_spare(p) {
        // A sleeper's spare serves one green thread until its next
        // scheduling point: the first look for work.
        return true;
    }
    let sp = sched.spare(p);
    let cover = sp.cover.load(SeqCst);
    sched.ps[cover].schedtick.load(Relaxed) != sp.tick.load(SeqCst) || (check_idle && sched.idle_contains(cover))
}

/// Retires spare `p`, held by the calling M (`local`): its queued green
/// threads go to the global queue, its timers to the P it covered, its
/// free Gs to the global list; the M then holds no P.
pub(crate) fn retire(sched: &Arc<Sched>, local: &mut m::MLocal) {
    let p = std::mem::replace(&mut local.p, NO_P);
    debug_assert!(sched.is_spare(p));
    if local.spinning {
        local.spinning = false;
        sched.nmspinning.fetch_sub(1, SeqCst);
    }
    retire_released(sched, p);
}

/// Retires spare `p` that its M has let go of (`handoff_p`: a `Blocking`
/// call, a locked green thread parking, the monitor retaking it from a long
/// foreign call): as [`retire`]. The caller owns the P until this returns.
pub(crate) fn retire_released(sched: &Arc<Sched>, p: usize) {
    let pp = &sched.ps[p];
    let mut moved = 0;
    {
        // Under the idle lock, as every push to the global queue that must
        // not be missed by an M deciding to sleep (see `find_runnable`).
        let _idle = sched.idle();
        let rn = pp.run_next.swap(std::ptr::null_mut(), SeqCst);
        if !rn.is_null() {
            sched.global.push(rn);
            moved += 1;
        }
        while let Some(g) = pp.runq.pop() {
            sched.global.push(g);
            moved += 1;
        }
        for g in pp.drain_woken() {
            sched.global.push(super::g::into_raw(g));
            moved += 1;
        }
    }
    let cover = sched.spare(p).cover.load(SeqCst);
    timers::move_all(pp, &sched.ps[cover]);
    // SAFETY: the caller owns the spare until `deactivate` below, and
    // nobody takes a spare that is not active.
    unsafe { super::gfree::spill_cache(sched, pp) };
    sched.spare(p).deactivate();
    // Wake an M for what we moved — and for anything already on the global
    // queue: a locked green thread that yielded on this spare was put there
    // just before its M let the spare go (`m::schedule`'s `Yield` arm), and
    // unlike a regular P's hand-off, a spare's does not look at the global
    // queue (a sleepers' spare made that a lost wake-up: a green thread on
    // the global queue with every regular P idle).
    if moved > 0 || sched.global.len() > 0 {
        super::wakep(sched);
    }
    // The covered P's timers (now including ours) may be due with no M
    // watching them.
    let next = sched.ps[cover].next_when.load(SeqCst);
    if next != u64::MAX {
        sched.timer_added(next);
    }
}

impl Spare {
    /// Marks the spare free for the monitor to use again.
    pub(crate) fn deactivate(&self) {
        self.active.store(false, SeqCst);
    }
}

/// A spare with nothing to run while its hog lasts: wait (holding the
/// spare) until its earliest timer or [`SPARE_POLL`], whichever first.
pub(crate) fn wait(sched: &Sched, m: &m::M, local: &mut m::MLocal) {
    if local.spinning {
        local.spinning = false;
        sched.nmspinning.fetch_sub(1, SeqCst);
    }
    let next = sched.ps[local.p].next_when.load(SeqCst);
    let mut timeout = SPARE_POLL;
    if next != u64::MAX {
        timeout = timeout.min(Duration::from_nanos(next.saturating_sub(sched.now())));
    }
    if !timeout.is_zero() {
        m.park(Some(timeout));
    }
}

/// Sleepers' spares per regular P (at most [`SLEEPER_SPARES_MAX`] in all).
const SLEEPER_SPARES_PER_P: usize = 16;
/// Most sleepers' spares a runtime has: each is a P that thieves look at,
/// and an OS thread running green code beyond `max_procs`.
const SLEEPER_SPARES_MAX: usize = 64;

/// How many sleepers' spares a runtime with `max_procs` regular Ps has.
pub(crate) fn sleeper_spares(max_procs: usize) -> usize {
    (max_procs * SLEEPER_SPARES_PER_P).min(SLEEPER_SPARES_MAX)
}

/// A green thread woken by a timer while its M waits for it — a sleep
/// inside C (`ffi::usleep`'s green sleep from a callback), or a
/// `lock_os_thread` green thread's sleep — runs at once on a sleepers'
/// spare if no regular P is idle: `Ok` if it was handed to its M with
/// one, `Err(g)` to queue it as usual (no spare free, a P idle, or `g` is
/// not such a green thread).
///
/// Why: a green thread sleeping in C's back-off loop (SQLite's busy
/// handler) would otherwise retry when some P's holder reaches a
/// scheduling point and hands that P over — in a workload whose green
/// threads reach one mostly when *they* fail to take the same lock, which
/// is just when the retry fails too (`docs/DESIGN.md`, "The write mix,
/// session 14"). On a spare it retries when its timer says, as an OS
/// thread would. The spare retires at the green thread's next scheduling
/// point (`hog_over`), giving back what was queued on it.
///
/// The caller must own `g` (it won it with `G::wake`).
pub(crate) fn run_woken_on_spare(sched: &Sched, g: Arc<super::g::G>, cover: usize) -> Result<(), Arc<super::g::G>> {
    if sched.spares.len() == sched.hog_spares || sched.npidle.load(SeqCst) > 0 {
        return Err(g);
    }
    // SAFETY: the caller owns `g` (see above), so nobody else touches its
    // owner-only state.
    let target = unsafe { g.inner().locked_m };
    if target.is_null() {
        return Err(g);
    }
    // SAFETY: a locked G keeps its M alive (`start_locked_m`): `all_ms`
    // holds it, and it waits for this G.
    let target = unsafe { &*target };
    // Only an M that waits for its G in `stop_locked_m` (it has given its
    // P away) may be handed one; otherwise queue as usual.
    if !target.locked_wait.load(SeqCst) || target.next_p.load(SeqCst) != NO_P {
        return Err(g);
    }
    let Some(p) = claim_sleeper_spare(sched, cover) else { return Err(g) };
    target.next_p.store(p, SeqCst);
    *target.next_g.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
    target.unpark();
    Ok(())
}

/// A sleepers' spare for the calling M, whose green thread is locked to
/// it — its call blocked *inside a callback*, so C frames wait below it —
/// and is back from that call with no P idle (`syscall::reacquire_p`).
/// `lost` is the P the call lost (or `NO_P`). Returns the spare's P
/// index, now the caller's to hold, or `None` if none is free.
///
/// Why: such a green thread cannot wait in its lost P's `run_next` (whoever
/// took it would run it on another M); it would wait on the global queue
/// for some P's holder to yield, while the C below it may hold a lock
/// other threads wait for. This is the busy handler's sleep in SQLite:
/// `ffi::usleep` sleeps the OS thread in a `Blocking` call, and when the
/// kernel wakes it — at its time, whatever the scheduler is doing — C
/// retries the lock at once on the spare, as an OS thread's would.
pub(crate) fn take_sleeper_spare(sched: &Sched, lost: usize) -> Option<usize> {
    claim_sleeper_spare(sched, if lost == NO_P { 0 } else { sched.regular_of(lost) })
}

/// Claims a free sleepers' spare to run a woken green thread in place of
/// regular P `cover` (where its timers go when it retires, and whose
/// scheduling round it records); counts it. Returns its P index.
fn claim_sleeper_spare(sched: &Sched, cover: usize) -> Option<usize> {
    let k = claim_spare(sched, sched.hog_spares..sched.spares.len())?;
    let sp = &sched.spares[k];
    sp.cover.store(cover, SeqCst);
    sp.tick.store(sched.ps[cover].schedtick.load(Relaxed), SeqCst);
    sched.sleeper_spare_runs.fetch_add(1, Relaxed);
    Some(sched.nprocs() + k)
}

/// Marks the first free spare of `range` (indices into `spares`) active
/// and returns its index. A compare-and-swap: the monitor claims hogs'
/// spares while timers' threads claim sleepers' ones, and each claim must
/// be the only one.
fn claim_spare(sched: &Sched, range: std::ops::Range<usize>) -> Option<usize> {
    let first = range.start;
    sched.spares[range]
        .iter()
        .position(|sp| sp.active.compare_exchange(false, true, SeqCst, SeqCst).is_ok())
        .map(|k| first + k)
}
