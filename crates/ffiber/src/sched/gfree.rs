//! Free green threads: exited Gs kept with their stacks for the next spawn.
//!
//! Go keeps dead goroutines on per-P and global free lists (`gfput`,
//! `gfget`) so that spawning reuses both the `g` and its stack. We do the
//! same: an exited G whose stack has the runtime's default size goes to
//! its P's list (no lock) — or, past [`P_CACHE`], half of that list goes
//! to the global one (one lock per [`P_CACHE`]/2 exits); a spawn takes
//! from its P's list, refilling it from the global one in one lock. A
//! spawn-heavy program thus makes no system call and no allocation for its
//! green threads, and frees nothing across threads (which, with glibc's
//! allocator, contends on the allocating thread's arena lock).
//!
//! A G is pooled only when nothing else refers to it (a stale `Arc<G>` in
//! some wait queue could otherwise unpark its next incarnation); if
//! something does, its stack moves to a fresh G shell. A stack seen deep is
//! trimmed first (see [`crate::stack`]).
//!
//! **Scavenging.** An exit never unmaps a default-size stack: unmapping
//! costs a TLB shootdown (an inter-processor interrupt to every CPU running
//! one of our threads) and stalls concurrent page faults, and 300,000 green
//! threads exiting at once spent seconds in exactly that. The global list
//! keeps every free G; what exceeds [`GLOBAL_POOL`] is released by
//! [`FreeGs::scavenge`] — slowly while green threads run (the monitor, once
//! the excess has lasted [`SCAVENGE_AFTER`], [`SCAVENGE_BATCH`] per look),
//! and at once when every P is idle (the monitor, before it parks) — as
//! Go's background scavenger returns a burst's memory after the burst. A
//! pooled stack holds at most `KEEP_BYTES` of memory meanwhile.

use super::g::G;
use super::{NO_P, Sched, m};
use crate::stack::Stack;
use std::sync::{Arc, Mutex};

/// Free Gs a P keeps before spilling half to the global list.
pub(crate) const P_CACHE: usize = 256;
/// Free Gs the global list keeps for good; the excess is scavenged.
pub(crate) const GLOBAL_POOL: usize = 16 * 1024;
/// How long an excess must last before it is scavenged while green
/// threads run.
pub(crate) const SCAVENGE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// Gs released per scavenging step while green threads run.
pub(crate) const SCAVENGE_BATCH: usize = 256;
/// Fresh Gs an idle M makes per step when spawns ran out of free ones.
pub(crate) const PREFILL_BATCH: usize = 32;
/// Free Gs on the global list at which idle Ms stop making fresh ones.
pub(crate) const PREFILL_TARGET: usize = 512;

/// The global free list, for Gs with stacks of one size (the runtime's default).
pub(crate) struct FreeGs {
    size: usize,
    list: Mutex<Vec<Arc<G>>>,
    /// When the list last grew past [`GLOBAL_POOL`] (`None`: not over).
    over_since: Mutex<Option<std::time::Instant>>,
    /// The list's length, readable without the lock (a hint).
    len: std::sync::atomic::AtomicUsize,
    /// A spawn found no free G (set by `want_more`, cleared by `prefill`).
    wanted: std::sync::atomic::AtomicBool,
}

impl FreeGs {
    /// `size` is a rounded stack size (see [`crate::stack::round_size`]).
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size,
            list: Mutex::new(Vec::new()),
            over_since: Mutex::new(None),
            len: std::sync::atomic::AtomicUsize::new(0),
            wanted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The size of the stacks this pool holds.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<G>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free G: from `cache` (the caller's P's), refilled from the global
    /// list when empty; or from the global list directly without a P.
    pub(crate) fn get(&self, cache: Option<&mut Vec<Arc<G>>>) -> Option<Arc<G>> {
        match cache {
            Some(c) => {
                if c.is_empty() && self.len.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    let mut list = self.lock();
                    let n = list.len().min(P_CACHE / 2);
                    let at = list.len() - n;
                    c.extend(list.drain(at..));
                    self.len.store(list.len(), std::sync::atomic::Ordering::Relaxed);
                }
                c.pop()
            }
            None => {
                let mut list = self.lock();
                let g = list.pop();
                self.len.store(list.len(), std::sync::atomic::Ordering::Relaxed);
                g
            }
        }
    }

    /// Keeps an exited G (owned by the caller) for reuse, if its stack has
    /// the pool's size.
    pub(crate) fn put(&self, cache: Option<&mut Vec<Arc<G>>>, mut g: Arc<G>) {
        if crate::check::enabled() {
            // Check mode: the stack goes to quarantine, not to reuse.
            // SAFETY: the G exited and switched away for good: we own it.
            let stack = unsafe { g.inner() }.stack.take();
            if let Some(stack) = stack {
                crate::check::quarantine(stack, g.id, g.name.as_deref());
            }
            return;
        }
        {
            // SAFETY: the G exited and switched away for good: the caller
            // owns its inner state.
            let inner = unsafe { g.inner() };
            inner.entry = None;
            let Some(stack) = inner.stack.as_ref() else { return };
            if stack.size() != self.size {
                return; // a custom size: dropping the G unmaps it
            }
            if inner.low_water < stack.top() as usize - crate::stack::KEEP_BYTES {
                stack.trim();
            }
        }
        if Arc::get_mut(&mut g).is_none() {
            // Someone still holds a reference: move the stack to a new shell.
            // SAFETY: as above, we own the inner state.
            let stack: Stack = unsafe { g.inner() }.stack.take().expect("checked above");
            g = Arc::new(G::idle(g.sched.clone(), stack));
        }
        match cache {
            Some(cache) => {
                cache.push(g);
                if cache.len() > P_CACHE {
                    let spill: Vec<Arc<G>> = cache.drain(..P_CACHE / 2).collect();
                    self.put_global(spill);
                }
            }
            None => self.put_global(vec![g]),
        }
    }

    pub(crate) fn put_global(&self, spill: Vec<Arc<G>>) {
        let mut list = self.lock();
        list.extend(spill);
        self.len.store(list.len(), std::sync::atomic::Ordering::Relaxed);
        if list.len() > GLOBAL_POOL {
            let mut since = self.over_since.lock().unwrap_or_else(|e| e.into_inner());
            since.get_or_insert_with(std::time::Instant::now);
        }
    }

    /// Releases free Gs (and unmaps their stacks) beyond [`GLOBAL_POOL`]:
    /// all of them if `all`, else up to [`SCAVENGE_BATCH`] once the excess
    /// has lasted [`SCAVENGE_AFTER`]. Returns how many it released.
    pub(crate) fn scavenge(&self, all: bool) -> usize {
        if self.len.load(std::sync::atomic::Ordering::Relaxed) <= GLOBAL_POOL {
            return 0;
        }
        let excess: Vec<Arc<G>> = {
            let mut list = self.lock();
            let mut since = self.over_since.lock().unwrap_or_else(|e| e.into_inner());
            let over = list.len().saturating_sub(GLOBAL_POOL);
            let due = since.is_some_and(|t| t.elapsed() >= SCAVENGE_AFTER);
            let n = if all {
                over
            } else if due {
                over.min(SCAVENGE_BATCH)
            } else {
                0
            };
            // The oldest first: the front of the list was freed longest ago.
            let out: Vec<_> = list.drain(..n).collect();
            self.len.store(list.len(), std::sync::atomic::Ordering::Relaxed);
            if list.len() <= GLOBAL_POOL {
                *since = None;
            }
            out
        };
        let n = excess.len();
        drop(excess); // unmapped outside the lock
        n
    }

    /// A spawn found no free G and made one itself: the slow path of a
    /// burst (an `mmap`'d slab, a guard `madvise`, a first-touch page fault,
    /// several µs). Asks idle Ms to make some ahead ([`prefill`](Self::prefill)).
    /// Wakes an idle M for that (once per burst) if a P is idle.
    pub(crate) fn want_more(&self, sched: &Arc<Sched>) {
        if !self.wanted.load(std::sync::atomic::Ordering::Relaxed)
            && !self.wanted.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            super::wakep(sched);
        }
    }

    /// Called by an M that found nothing to run: if spawns ran out of free
    /// Gs, makes [`PREFILL_BATCH`] fresh ones — stacks reserved, guarded,
    /// their top page touched — onto the global list, and returns true (the
    /// caller looks for work again before sleeping). A spawning loop then
    /// takes ready Gs while an otherwise idle core pays for the memory, so a
    /// burst of spawns runs on both. Stops wanting once the list holds
    /// [`PREFILL_TARGET`] Gs; does nothing in check mode (stacks are not
    /// reused there).
    pub(crate) fn prefill(&self, sched: &Arc<Sched>) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.wanted.load(Relaxed) || crate::check::enabled() {
            return false;
        }
        if self.len.load(Relaxed) >= PREFILL_TARGET {
            self.wanted.store(false, Relaxed);
            return false;
        }
        let mut fresh = Vec::with_capacity(PREFILL_BATCH);
        for _ in 0..PREFILL_BATCH {
            let Ok(stack) = Stack::new(self.size) else { break };
            stack.touch_top();
            fresh.push(Arc::new(G::idle(sched.clone(), stack)));
        }
        if fresh.is_empty() {
            self.wanted.store(false, Relaxed);
            return false;
        }
        self.put_global(fresh);
        true
    }

    /// Empties the global list (at shutdown: pooled Gs refer to the `Sched`).
    pub(crate) fn clear(&self) -> Vec<Arc<G>> {
        self.len.store(0, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *self.lock())
    }
}

/// Runs `f` with the free-G cache of the P that this thread's M holds, if
/// it holds one of `sched`'s Ps; else with `None`.
pub(crate) fn with_p_cache<R>(sched: &Sched, f: impl FnOnce(Option<&mut Vec<Arc<G>>>) -> R) -> R {
    let mp = m::current_m();
    // SAFETY: `mp` is this thread's M (or null); we read its `p` on its own
    // thread, and a P's free list is touched only by the M holding it
    // (`P::gfree`). No context switch happens inside `f`.
    unsafe {
        if !mp.is_null() && std::ptr::eq(&*(*mp).sched, sched) {
            let p = (*(*mp).local()).p;
            if p != NO_P {
                return f(Some(&mut *sched.ps[p].gfree.get()));
            }
        }
    }
    f(None)
}

/// Moves P `pp`'s free-G cache to the global list (a retiring spare P).
///
/// # Safety
///
/// The caller holds `pp` (or nobody can take it meanwhile): the cache is
/// the holder's alone (`P::gfree`).
pub(crate) unsafe fn spill_cache(sched: &Sched, pp: &super::P) {
    // SAFETY: forwarded to the caller.
    let cache = std::mem::take(unsafe { &mut *pp.gfree.get() });
    if !cache.is_empty() {
        sched.gfree.put_global(cache);
    }
}
