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
//! trimmed first (see [`crate::stack`]). Bounded: past [`GLOBAL_POOL`] Gs,
//! stacks are unmapped.

use super::g::G;
use super::{NO_P, Sched, m};
use crate::stack::Stack;
use std::sync::{Arc, Mutex};

/// Free Gs a P keeps before spilling half to the global list.
pub(crate) const P_CACHE: usize = 256;
/// Free Gs the global list keeps; beyond that they are freed (stacks unmapped).
pub(crate) const GLOBAL_POOL: usize = 16 * 1024;

/// The global free list, for Gs with stacks of one size (the runtime's default).
pub(crate) struct FreeGs {
    size: usize,
    list: Mutex<Vec<Arc<G>>>,
}

impl FreeGs {
    /// `size` is a rounded stack size (see [`crate::stack::round_size`]).
    pub(crate) fn new(size: usize) -> Self {
        Self { size, list: Mutex::new(Vec::new()) }
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
                if c.is_empty() {
                    let mut list = self.lock();
                    let n = list.len().min(P_CACHE / 2);
                    let at = list.len() - n;
                    c.extend(list.drain(at..));
                }
                c.pop()
            }
            None => self.lock().pop(),
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

    fn put_global(&self, mut spill: Vec<Arc<G>>) {
        let mut list = self.lock();
        let room = GLOBAL_POOL.saturating_sub(list.len());
        let excess = spill.split_off(room.min(spill.len()));
        list.extend(spill);
        drop(list);
        drop(excess); // unmapped outside the lock
    }

    /// Empties the global list (at shutdown: pooled Gs refer to the `Sched`).
    pub(crate) fn clear(&self) -> Vec<Arc<G>> {
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
