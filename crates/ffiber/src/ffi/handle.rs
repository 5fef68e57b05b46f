//! `Handle<T>`: a Rust value C can hold as an integer (cgo's
//! `runtime/cgo.Handle`).
//!
//! C may keep a pointer only for the duration of a call (a Rust borrow
//! passed in). A value C must keep longer — a context passed to a C
//! library and handed back in callbacks — goes through a handle: an integer
//! that names an entry of a process-wide table, O(1) to create, look up and
//! delete. The table is sharded (64 shards, each its own lock, chosen by
//! the creating thread), so no global lock is taken; a generation number
//! in every handle makes a stale handle (used after `delete`) fail
//! cleanly instead of finding a newer value, and the value's type is
//! checked on every lookup.
//!
//! ```
//! use ffiber::Handle;
//! let h = Handle::new(String::from("context"));
//! let raw: usize = h.as_raw(); // what C stores, e.g. in a void*
//! let back = Handle::<String>::from_raw(raw).unwrap();
//! assert_eq!(back.with(|s| s.len()), Some(7));
//! assert_eq!(back.delete().as_deref().map(String::as_str), Some("context"));
//! assert!(back.get().is_none()); // deleted: stale handles fail cleanly
//! ```

use std::any::Any;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
const INDEX_BITS: u32 = 34;
const GEN_MASK: u64 = (1 << (64 - SHARD_BITS - INDEX_BITS)) - 1;

type Value = Arc<dyn Any + Send + Sync>;

struct Slot {
    generation: u64,
    value: Option<Value>,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

static TABLE: [Mutex<Shard>; SHARDS] = [const { Mutex::new(Shard { slots: Vec::new(), free: Vec::new() }) }; SHARDS];

fn shard(i: usize) -> std::sync::MutexGuard<'static, Shard> {
    TABLE[i].lock().unwrap_or_else(|e| e.into_inner())
}

/// The shard new handles of this thread go to. Never inlined: a green
/// thread may move to another OS thread between two calls, and an inlined
/// thread-local access may reuse the first thread's address.
#[inline(never)]
fn home_shard() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static HOME: Cell<usize> = const { Cell::new(usize::MAX) });
    HOME.with(|h| {
        if h.get() == usize::MAX {
            h.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        h.get()
    })
}

/// A value of type `T` kept for C, named by an integer. `Copy`: the handle
/// is just the integer; the value lives in the table until
/// [`delete`](Handle::delete).
pub struct Handle<T> {
    raw: NonZeroUsize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Handle<T> {}

impl<T> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Handle").field(&self.raw).finish()
    }
}

impl<T> PartialEq for Handle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<T> Eq for Handle<T> {}

impl<T: Send + Sync + 'static> Handle<T> {
    /// Stores `value` and returns its handle.
    pub fn new(value: T) -> Handle<T> {
        let s = home_shard();
        let mut sh = shard(s);
        let index = match sh.free.pop() {
            Some(i) => i,
            None => {
                sh.slots.push(Slot { generation: 0, value: None });
                sh.slots.len() - 1
            }
        };
        assert!(index < (1 << INDEX_BITS), "ffiber: more than 2^34 live handles in one shard");
        let slot = &mut sh.slots[index];
        slot.value = Some(Arc::new(value));
        let raw =
            ((slot.generation & GEN_MASK) << (SHARD_BITS + INDEX_BITS)) | ((index as u64) << SHARD_BITS) | s as u64;
        // +1 keeps it non-zero (C code often treats 0 as "no context").
        Handle { raw: NonZeroUsize::new(raw as usize + 1).expect("raw + 1 is not zero"), _type: PhantomData }
    }

    /// The integer to give C.
    pub fn as_raw(self) -> usize {
        self.raw.get()
    }

    /// A handle from an integer C gave back; `None` for 0. Any other value
    /// is accepted here, and [`get`](Self::get) checks it.
    pub fn from_raw(raw: usize) -> Option<Handle<T>> {
        NonZeroUsize::new(raw).map(|raw| Handle { raw, _type: PhantomData })
    }

    fn parts(self) -> (usize, usize, u64) {
        let raw = (self.raw.get() - 1) as u64;
        let s = (raw & (SHARDS as u64 - 1)) as usize;
        let index = ((raw >> SHARD_BITS) & ((1 << INDEX_BITS) - 1)) as usize;
        (s, index, raw >> (SHARD_BITS + INDEX_BITS))
    }

    /// Looks the value up, under its shard's lock.
    fn lookup<R>(self, f: impl FnOnce(&mut Option<Value>) -> R) -> Option<R> {
        let (s, index, generation) = self.parts();
        let mut sh = shard(s);
        let slot = sh.slots.get_mut(index)?;
        if slot.generation & GEN_MASK != generation || slot.value.is_none() {
            return None;
        }
        Some(f(&mut slot.value))
    }

    /// The value, shared; `None` if the handle was deleted, is not one of
    /// ours, or holds another type.
    pub fn get(self) -> Option<Arc<T>> {
        self.lookup(|v| v.clone())?.and_then(|v| v.downcast::<T>().ok())
    }

    /// Runs `f` on the value (no reference count traffic); `None` as for
    /// [`get`](Self::get).
    pub fn with<R>(self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let v = self.lookup(|v| v.clone())??;
        v.downcast_ref::<T>().map(f)
    }

    /// Removes the value from the table and returns it; the handle (and
    /// every copy of it) is stale from now on. `None` as for
    /// [`get`](Self::get).
    pub fn delete(self) -> Option<Arc<T>> {
        let (s, index, generation) = self.parts();
        let mut sh = shard(s);
        let slot = sh.slots.get_mut(index)?;
        if slot.generation & GEN_MASK != generation || !slot.value.as_ref().is_some_and(|v| v.is::<T>()) {
            return None;
        }
        let taken = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        sh.free.push(index);
        drop(sh);
        taken.downcast::<T>().ok()
    }
}
