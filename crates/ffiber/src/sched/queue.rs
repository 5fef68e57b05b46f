//! Run queues: the per-P bounded lock-free ring and the global queue.
//!
//! The local queue is Go's `runq`: a ring of `N` slots with a `head` that any
//! thread may advance with a compare-and-swap (consumers: the owner popping,
//! thieves stealing half) and a `tail` that only the owning P's thread moves
//! (producer). Slots are atomics, so a thief may read a slot that the owner
//! is about to overwrite: the thief's CAS on `head` then fails and it
//! discards what it read. Items are raw pointers whose ownership moves with
//! them: whoever wins the CAS that covers a slot owns the pointer read from it.
//!
//! Invariants:
//! - `tail - head <= N` (wrapping arithmetic on `u32`), checked by the owner
//!   before every push;
//! - only the owner stores to `tail` and to slots in `[tail, head + N)`;
//! - a slot in `[head, tail)` holds a pointer that is owned by the queue.

use crate::loom::{AtomicPtr, AtomicU32, Ordering::*};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bounded single-producer, multi-consumer ring of `*mut T`.
pub(crate) struct LocalQueue<T, const N: usize> {
    head: AtomicU32,
    tail: AtomicU32,
    buf: [AtomicPtr<T>; N],
}

impl<T, const N: usize> LocalQueue<T, N> {
    const MASK: u32 = {
        assert!(N.is_power_of_two() && N >= 2 && N <= 1 << 16);
        (N - 1) as u32
    };

    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            buf: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// Number of queued items; a snapshot that may be stale at once.
    /// How many items have ever been taken off the queue (its `head`,
    /// wrapping): the monitor compares two readings to tell a queue that is
    /// being drained from one that is stuck.
    pub(crate) fn taken(&self) -> u32 {
        self.head.load(Acquire)
    }

    pub(crate) fn len(&self) -> usize {
        let h = self.head.load(Acquire);
        let t = self.tail.load(Acquire);
        t.wrapping_sub(h) as usize
    }

    /// True when the queue looks empty. (Inlined: a `Blocking` call asks,
    /// from the caller's crate.)
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Owner only: appends `item`. When the ring is full, moves half of it
    /// plus `item` to `overflow` (the global queue) and returns them there.
    ///
    /// Must be called only by the thread that owns the queue's P.
    pub(crate) fn push(&self, item: *mut T, overflow: &GlobalQueue<T>) {
        loop {
            let (h, t) = match self.try_push(item) {
                Ok(()) => return,
                Err(ht) => ht,
            };
            if self.push_overflow(item, h, t, overflow) {
                return;
            }
            // A consumer moved head meanwhile: there is room again.
        }
    }

    /// Owner only: appends `item` if there is room; otherwise returns the
    /// `(head, tail)` it saw.
    pub(crate) fn try_push(&self, item: *mut T) -> Result<(), (u32, u32)> {
        let h = self.head.load(Acquire);
        let t = self.tail.load(Relaxed);
        if (t.wrapping_sub(h) as usize) < N {
            self.buf[(t & Self::MASK) as usize].store(item, Relaxed);
            // Release: a consumer that sees the new tail sees the slot.
            self.tail.store(t.wrapping_add(1), Release);
            Ok(())
        } else {
            Err((h, t))
        }
    }

    fn push_overflow(&self, item: *mut T, h: u32, t: u32, overflow: &GlobalQueue<T>) -> bool {
        let n = (t.wrapping_sub(h) / 2) as usize;
        debug_assert_eq!(n, N / 2, "push_overflow on a queue that is not full");
        let mut batch = Vec::with_capacity(n + 1);
        for i in 0..n {
            batch.push(self.buf[(h.wrapping_add(i as u32) & Self::MASK) as usize].load(Relaxed));
        }
        if self.head.compare_exchange(h, h.wrapping_add(n as u32), AcqRel, Relaxed).is_err() {
            return false;
        }
        batch.push(item);
        overflow.push_batch(batch);
        true
    }

    /// Takes the oldest item. Any thread may call it, but the scheduler calls
    /// it only from the owner.
    pub(crate) fn pop(&self) -> Option<*mut T> {
        loop {
            let h = self.head.load(Acquire);
            let t = self.tail.load(Acquire);
            if t == h {
                return None;
            }
            let item = self.buf[(h & Self::MASK) as usize].load(Relaxed);
            if self.head.compare_exchange(h, h.wrapping_add(1), AcqRel, Relaxed).is_ok() {
                return Some(item);
            }
        }
    }

    /// Thief: moves about half of `self`'s items into `dst` (which must be
    /// owned by the caller and empty) and returns one of them to run now.
    pub(crate) fn steal_into(&self, dst: &Self) -> Option<*mut T> {
        let dst_tail = dst.tail.load(Relaxed);
        debug_assert!(dst.is_empty(), "steal into a non-empty queue");
        loop {
            let h = self.head.load(Acquire);
            let t = self.tail.load(Acquire);
            let avail = t.wrapping_sub(h);
            if avail == 0 {
                return None;
            }
            if avail as usize > N {
                // Read head and tail at different times: inconsistent, retry.
                continue;
            }
            let n = avail - avail / 2;
            for i in 0..n {
                let item = self.buf[(h.wrapping_add(i) & Self::MASK) as usize].load(Relaxed);
                dst.buf[(dst_tail.wrapping_add(i) & Self::MASK) as usize].store(item, Relaxed);
            }
            if self.head.compare_exchange(h, h.wrapping_add(n), AcqRel, Relaxed).is_ok() {
                // We own the n items now; keep the last one to run, publish
                // the others in our own queue.
                let last = dst.buf[(dst_tail.wrapping_add(n - 1) & Self::MASK) as usize].load(Relaxed);
                if n > 1 {
                    dst.tail.store(dst_tail.wrapping_add(n - 1), Release);
                }
                return Some(last);
            }
        }
    }
}

/// The global run queue: a mutex-protected FIFO with a lock-free length so
/// that empty checks on the hot path take no lock.
pub(crate) struct GlobalQueue<T> {
    q: Mutex<VecDeque<SendPtr<T>>>,
    len: AtomicUsize,
    /// Items ever taken off (under the lock): progress, for the monitor.
    taken: AtomicUsize,
}

struct SendPtr<T>(*mut T);
// SAFETY: the pointers in the queue are owned items that move between
// threads by design (a G is `Send`); the queue never dereferences them.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> GlobalQueue<T> {
    pub(crate) fn new() -> Self {
        Self { q: Mutex::new(VecDeque::new()), len: AtomicUsize::new(0), taken: AtomicUsize::new(0) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// How many items have ever been taken off (see the field).
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    pub(crate) fn push(&self, item: *mut T) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(SendPtr(item));
        self.len.store(q.len(), Ordering::SeqCst);
    }

    pub(crate) fn push_batch(&self, items: Vec<*mut T>) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(items.into_iter().map(SendPtr));
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// Takes one item to run and moves up to `max_extra` more (at most a
    /// fair share, `len / nprocs`) into `local`.
    pub(crate) fn pop_batch<const N: usize>(&self, local: Option<(&LocalQueue<T, N>, usize)>) -> Option<*mut T> {
        if self.len() == 0 {
            return None;
        }
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let before = q.len();
        let first = q.pop_front()?.0;
        if let Some((local, nprocs)) = local {
            let share = (q.len() / nprocs.max(1)).min(N / 2);
            for _ in 0..share {
                let Some(p) = q.pop_front() else { break };
                if local.try_push(p.0).is_err() {
                    q.push_front(p);
                    break;
                }
            }
        }
        self.taken.fetch_add(before - q.len(), Ordering::Relaxed);
        self.len.store(q.len(), Ordering::SeqCst);
        Some(first)
    }

    /// Removes everything (shutdown).
    pub(crate) fn drain(&self) -> Vec<*mut T> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        self.len.store(0, Ordering::SeqCst);
        q.drain(..).map(|p| p.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Items are boxed integers; every one must come out exactly once.
    fn item(i: usize) -> *mut usize {
        Box::into_raw(Box::new(i))
    }

    fn take(p: *mut usize) -> usize {
        // SAFETY: every pointer in these tests comes from `item` and is taken
        // exactly once (that is what the tests check).
        *unsafe { Box::from_raw(p) }
    }

    #[cfg(not(loom))]
    #[test]
    fn overflow_moves_half_to_global() {
        let q: LocalQueue<usize, 8> = LocalQueue::new();
        let g = GlobalQueue::new();
        for i in 0..9 {
            q.push(item(i), &g);
        }
        // 8 fit; the 9th moved 4 + itself to the global queue.
        assert_eq!(q.len(), 4);
        assert_eq!(g.len(), 5);
        let mut seen: Vec<usize> = std::iter::from_fn(|| q.pop()).map(take).collect();
        seen.extend(g.drain().into_iter().map(take));
        seen.sort_unstable();
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
    }

    /// Randomized stress of the push/pop/steal protocol: one owner pushing
    /// and popping, two thieves stealing into their own queues; every item
    /// is consumed exactly once.
    #[cfg(not(loom))]
    #[test]
    fn stress_push_pop_steal_exactly_once() {
        const ITEMS: usize = 200_000;
        let victim: Arc<LocalQueue<usize, 64>> = Arc::new(LocalQueue::new());
        let global = Arc::new(GlobalQueue::new());
        let counts: Arc<Vec<std::sync::atomic::AtomicU8>> =
            Arc::new((0..ITEMS).map(|_| std::sync::atomic::AtomicU8::new(0)).collect());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let (victim, counts, done) = (victim.clone(), counts.clone(), done.clone());
                std::thread::spawn(move || {
                    let mine: LocalQueue<usize, 64> = LocalQueue::new();
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        if let Some(p) = victim.steal_into(&mine) {
                            counts[take(p)].fetch_add(1, Ordering::SeqCst);
                            while let Some(p) = mine.pop() {
                                counts[take(p)].fetch_add(1, Ordering::SeqCst);
                            }
                        } else if finished {
                            break;
                        }
                    }
                })
            })
            .collect();
        let mut x = 0x2545F4914F6CDD1Du64;
        for i in 0..ITEMS {
            victim.push(item(i), &global);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3)
                && let Some(p) = victim.pop()
            {
                counts[take(p)].fetch_add(1, Ordering::SeqCst);
            }
        }
        while let Some(p) = victim.pop() {
            counts[take(p)].fetch_add(1, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        thieves.into_iter().for_each(|t| t.join().unwrap());
        for p in global.drain() {
            counts[take(p)].fetch_add(1, Ordering::SeqCst);
        }
        let bad: Vec<_> = (0..ITEMS).filter(|&i| counts[i].load(Ordering::SeqCst) != 1).take(5).collect();
        assert!(bad.is_empty(), "items consumed zero or several times: {bad:?}");
    }

    /// Loom model: the owner pushes and pops while a thief steals; each item
    /// is consumed exactly once under every interleaving.
    /// Run with `RUSTFLAGS="--cfg loom" cargo test -p ffiber --lib --release loom`.
    #[cfg(loom)]
    #[test]
    fn loom_push_pop_steal() {
        loom::model(|| {
            let q: Arc<LocalQueue<usize, 4>> = Arc::new(LocalQueue::new());
            let global = GlobalQueue::new();
            for i in 0..3 {
                q.push(item(i), &global);
            }
            let thief = {
                let q = q.clone();
                loom::thread::spawn(move || {
                    let mine: LocalQueue<usize, 4> = LocalQueue::new();
                    let mut got = Vec::new();
                    if let Some(p) = q.steal_into(&mine) {
                        got.push(take(p));
                        while let Some(p) = mine.pop() {
                            got.push(take(p));
                        }
                    }
                    got
                })
            };
            let mut got = Vec::new();
            q.push(item(3), &global);
            if let Some(p) = q.pop() {
                got.push(take(p));
            }
            q.push(item(4), &global);
            let stolen = thief.join().unwrap();
            while let Some(p) = q.pop() {
                got.push(take(p));
            }
            got.extend(global.drain().into_iter().map(take));
            got.extend(stolen);
            got.sort_unstable();
            assert_eq!(got, vec![0, 1, 2, 3, 4]);
        });
    }
}
