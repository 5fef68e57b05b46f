//! Timers: a binary heap per P, fired by the scheduler (the public
//! `sleep` and the deadline helpers are in `crate::time`).
//!
//! A green thread that sleeps or waits with a deadline pushes one entry on
//! its P's heap and parks; the M that holds the P fires due entries each time
//! it looks for work, thieves fire other Ps' due entries, and when all Ms
//! sleep the timer watcher (see [`crate::sched`]) wakes at the earliest
//! deadline. Firing a timer unparks its green thread. No thread per sleeper,
//! no periodic tick: an idle runtime with no timers makes no system calls.
//!
//! Cancelled entries (a wait that finished before its deadline) are dropped
//! lazily when they reach the top, and the heap is rebuilt when more than
//! half of it is cancelled, so it stays proportional to live timers.

use super::g::G;
use super::{P, Sched};
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

struct Entry {
    when: u64,
    seq: u64,
    g: Arc<G>,
    cancelled: Option<Arc<AtomicBool>>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.when, self.seq) == (o.when, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.when, o.seq).cmp(&(self.when, self.seq))
    }
}

/// One P's timer heap.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: usize,
}

impl Timers {
    fn earliest(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |e| e.when)
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.cancelled = 0;
    }
}

/// A timer that can be cancelled; cancelling is one atomic store.
pub(crate) struct TimerHandle {
    flag: Arc<AtomicBool>,
    p: usize,
}

/// Adds a timer on the current P that unparks `g` at `when` (runtime clock).
/// Must be called by a green thread (it holds a P).
pub(crate) fn add_timer(g: &Arc<G>, when: u64, cancellable: bool) -> TimerHandle {
    let sched = &g.sched;
    let p = crate::sched::current_p().expect("add_timer outside a green thread");
    let flag = Arc::new(AtomicBool::new(false));
    let pp = &sched.ps[p];
    {
        let mut t = pp.timers.lock().unwrap_or_else(|e| e.into_inner());
        t.seq += 1;
        let seq = t.seq;
        t.heap.push(Entry { when, seq, g: g.clone(), cancelled: cancellable.then(|| flag.clone()) });
        pp.next_when.store(t.earliest(), Ordering::SeqCst);
    }
    sched.timer_added(when);
    TimerHandle { flag, p }
}

impl TimerHandle {
    /// Cancels the timer if it has not fired; harmless if it has.
    pub(crate) fn cancel(self, g: &G) {
        if self.flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let pp = &g.sched.ps[self.p];
        let mut t = pp.timers.lock().unwrap_or_else(|e| e.into_inner());
        t.cancelled += 1;
        if t.cancelled > 64 && t.cancelled * 2 > t.heap.len() {
            let live: Vec<Entry> = std::mem::take(&mut t.heap)
                .into_vec()
                .into_iter()
                .filter(|e| !e.cancelled.as_ref().is_some_and(|c| c.load(Ordering::Acquire)))
                .collect();
            t.heap = BinaryHeap::from(live);
            t.cancelled = 0;
            pp.next_when.store(t.earliest(), Ordering::SeqCst);
        }
    }
}

/// Fires every timer of P `i` that is due; returns how many. Cheap when
/// none is: one atomic load, and a clock read only if the P has a timer at
/// all.
pub(crate) fn run_timers(sched: &Sched, i: usize) -> usize {
    let due = due(sched, &sched.ps[i]);
    let n = due.len();
    let cover = sched.regular_of(i);
    for g in due {
        if g.wake()
            && let Err(g) = super::preempt::run_woken_on_spare(sched, g, cover)
        {
            super::ready(g);
        }
    }
    n
}

/// [`run_timers`] by the M that holds P `i`, while it schedules: the green
/// threads it wakes go to its `woken`, in the order they were due, to run
/// before anything else queued there (see `P::woken`).
pub(crate) fn run_timers_held(sched: &Sched, i: usize) {
    let p = &sched.ps[i];
    let due = due(sched, p);
    if due.is_empty() {
        return;
    }
    let cover = sched.regular_of(i);
    let mut w = p.woken.lock().unwrap_or_else(|e| e.into_inner());
    for g in due {
        if g.wake() {
            match super::preempt::run_woken_on_spare(sched, g, cover) {
                Ok(()) => {}
                Err(g) => w.push_back(g),
            }
        }
    }
    p.nwoken.store(w.len(), Ordering::Release);
}

/// Takes the due, uncancelled timers of `p` off its heap: their green
/// threads, in the order they were due.
fn due(sched: &Sched, p: &P) -> Vec<Arc<G>> {
    let next = p.next_when.load(Ordering::SeqCst);
    if next == u64::MAX {
        return Vec::new();
    }
    let now = sched.now();
    if next > now {
        return Vec::new();
    }
    let mut due = Vec::new();
    {
        let Ok(mut t) = p.timers.try_lock() else { return due };
        while t.heap.peek().is_some_and(|e| e.when <= now) {
            let e = t.heap.pop().expect("peeked");
            match &e.cancelled {
                // Swap so a later `cancel` knows it was not counted.
                Some(c) if c.swap(true, Ordering::AcqRel) => t.cancelled = t.cancelled.saturating_sub(1),
                _ => due.push(e.g),
            }
        }
        p.next_when.store(t.earliest(), Ordering::SeqCst);
    }
    due
}

/// Moves every timer of `from` to `to` (a retiring spare P's timers go to
/// the P it covered). A moved entry keeps its cancel flag, so cancelling
/// still works; its handle's P index now names `from`, whose cancelled
/// count it then adjusts — only a heuristic for rebuilding the heap.
pub(crate) fn move_all(from: &P, to: &P) {
    let entries: Vec<Entry> = {
        let mut t = from.timers.lock().unwrap_or_else(|e| e.into_inner());
        t.cancelled = 0;
        from.next_when.store(u64::MAX, Ordering::SeqCst);
        std::mem::take(&mut t.heap).into_vec()
    };
    if entries.is_empty() {
        return;
    }
    let mut t = to.timers.lock().unwrap_or_else(|e| e.into_inner());
    for mut e in entries {
        t.seq += 1;
        e.seq = t.seq;
        t.heap.push(e);
    }
    to.next_when.store(t.earliest(), Ordering::SeqCst);
}
