//! Locks and wait groups that park the green thread, not the OS thread.
//!
//! Both work from plain OS threads too (they block the OS thread), so green
//! threads and ordinary threads can share them.
//!
//! Why not `std::sync` in green threads: a std lock (or `Once`,
//! `OnceLock`, `Condvar`) blocks the *OS thread* of a green thread that
//! waits for it, with its P. If the holder is a green thread that needs a P
//! to finish — it parked, or came back from a foreign call that lost its P
//! to the monitor — and every P is held by a thread blocked on the lock,
//! nothing can run the holder: a deadlock. Short critical sections that
//! never park or call C are safe in practice; anything else should use
//! these types (or run the C call in `NonBlocking` mode, which keeps the
//! P; `examples/curlfd` does that for `curl_global_init` inside a `Once`).

pub(crate) mod park;

use park::Waiter;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering::*};

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
/// Locked, and some thread may be queued.
const CONTENDED: u8 = 2;

/// A mutual-exclusion lock whose waiters park (a green thread waiting for it
/// lets its P run other green threads).
///
/// The fast path is one compare-and-swap to lock and one swap to unlock.
/// Under contention a waiter spins briefly, then queues itself and parks;
/// unlocking wakes one waiter, which then competes for the lock again
/// (barging, as in Go's normal mode: better throughput than strict FIFO).
/// There is no poisoning: a panic while the lock is held unlocks it.
///
/// ```
/// use std::sync::Arc;
/// let total = ffiber::run(|| {
///     let m = Arc::new(ffiber::sync::Mutex::new(0u32));
///     let hs: Vec<_> = (0..8)
///         .map(|_| {
///             let m = m.clone();
///             ffiber::go(move || {
///                 for _ in 0..100 {
///                     *m.lock() += 1;
///                     ffiber::yield_now();
///                 }
///             })
///         })
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
///     let n = *m.lock();
///     n
/// });
/// assert_eq!(total, 800);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    queue: std::sync::Mutex<VecDeque<Arc<Waiter>>>,
    data: UnsafeCell<T>,
}

// SAFETY: like std's Mutex: the lock hands out `&mut T` to one thread at a
// time, so `T: Send` suffices for both.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Holds a [`Mutex`] locked; unlocks on drop.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
}

// SAFETY: sharing the guard shares `&T`, which needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(UNLOCKED),
            queue: std::sync::Mutex::new(VecDeque::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the caller while another holds the lock.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_slow();
        }
        MutexGuard { lock: self }
    }

    /// Locks if that can be done without waiting.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).ok().map(|_| MutexGuard { lock: self })
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    #[cold]
    fn lock_slow(&self) {
        for _ in 0..64 {
            std::hint::spin_loop();
            if self.state.load(Relaxed) == UNLOCKED
                && self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok()
            {
                return;
            }
        }
        loop {
            let w = Waiter::new();
            {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                // Mark contended; if it was free meanwhile, we own it now.
                if self.state.swap(CONTENDED, Acquire) == UNLOCKED {
                    return;
                }
                q.push_back(w.clone());
            }
            w.wait(None);
        }
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Release) == CONTENDED {
            let w = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            if let Some(w) = w {
                w.notify();
            }
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the lock, so no `&mut` exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(g) => f.debug_struct("Mutex").field("data", &&*g).finish(),
            None => f.debug_struct("Mutex").field("data", &format_args!("<locked>")).finish(),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Waits for a collection of green threads (or OS threads) to finish, as Go's
/// `sync.WaitGroup`: [`add`](WaitGroup::add) before starting work,
/// [`done`](WaitGroup::done) when each piece ends, [`wait`](WaitGroup::wait)
/// until the count is zero.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// ffiber::run(|| {
///     let wg = Arc::new(ffiber::sync::WaitGroup::new());
///     let n = Arc::new(AtomicUsize::new(0));
///     for _ in 0..10 {
///         wg.add(1);
///         let (wg, n) = (wg.clone(), n.clone());
///         ffiber::go(move || {
///             n.fetch_add(1, Ordering::SeqCst);
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(n.load(Ordering::SeqCst), 10);
/// });
/// ```
#[derive(Default)]
pub struct WaitGroup {
    count: AtomicIsize,
    waiters: std::sync::Mutex<Vec<Arc<Waiter>>>,
}

impl WaitGroup {
    /// A wait group with count zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` to the count.
    pub fn add(&self, n: usize) {
        self.count.fetch_add(n as isize, SeqCst);
    }

    /// Subtracts one; wakes the waiters when the count reaches zero.
    ///
    /// # Panics
    ///
    /// If the count goes negative (more `done` than `add`), as Go does.
    pub fn done(&self) {
        let prev = self.count.fetch_sub(1, SeqCst);
        assert!(prev > 0, "ffiber::sync::WaitGroup: done() called more often than add()");
        if prev == 1 {
            let ws = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for w in ws {
                w.notify();
            }
        }
    }

    /// Blocks until the count is zero.
    pub fn wait(&self) {
        loop {
            let w = {
                let mut ws = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
                if self.count.load(SeqCst) <= 0 {
                    return;
                }
                let w = Waiter::new();
                ws.push(w.clone());
                w
            };
            w.wait(None);
        }
    }

    /// The current count.
    pub fn count(&self) -> usize {
        self.count.load(SeqCst).max(0) as usize
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}
