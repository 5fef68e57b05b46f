//! Check mode (`FFIBER_CHECK=1`): catch what the types cannot.
//!
//! Rust's borrows make a pointer handed to C valid for the call, but C can
//! keep it: a C library that stores a pointer to a green thread's stack
//! variable and writes through it later corrupts whatever that memory holds
//! next — normally another green thread's stack, since exited stacks are
//! reused at once. cgo has the same hole and `cgocheck` for it.
//!
//! With `FFIBER_CHECK=1` (read once, when the first runtime is built), an
//! exited green thread's stack is not reused: its pages are released and
//! the whole mapping is made inaccessible (`PROT_NONE`) and *quarantined*
//! for a while (the last [`QUARANTINE`] exited stacks, and at least
//! [`QUARANTINE_MIN_AGE`]). A write or read through a kept pointer then
//! faults, and the fault handler names the dead green thread:
//!
//! ```text
//! ffiber: access to the stack of green thread 12 (worker), which has exited (FFIBER_CHECK quarantine) ...
//! ```
//!
//! The other check — C calling back during a call made with
//! `Mode::NoCallback` — is always on: it costs nothing until it fires.
//!
//! Cost: spawning maps a fresh stack and exiting unmaps one (no reuse), so
//! spawn+join is several times slower; foreign calls cost the same. The
//! benchmark has a row for each.

use crate::stack::Stack;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many exited stacks stay quarantined at most.
pub const QUARANTINE: usize = 4096;
/// How long an exited stack stays quarantined at least (unless more than
/// [`QUARANTINE`] newer ones push it out).
pub const QUARANTINE_MIN_AGE: Duration = Duration::from_millis(200);

static ON: AtomicBool = AtomicBool::new(false);

/// Reads `FFIBER_CHECK` (once per process, when a runtime is built).
pub(crate) fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| ON.store(std::env::var_os("FFIBER_CHECK").is_some_and(|v| v == "1"), Release));
}

/// Whether check mode is on (`FFIBER_CHECK=1`).
#[inline]
pub(crate) fn enabled() -> bool {
    ON.load(Acquire)
}

const NAME: usize = 32;

/// What the fault handler can read about a quarantined stack, lock-free.
struct Entry {
    lo: AtomicUsize,
    hi: AtomicUsize,
    id: AtomicU64,
    name_len: AtomicU8,
    name: [AtomicU8; NAME],
}

static ENTRIES: [Entry; QUARANTINE] = [const {
    Entry {
        lo: AtomicUsize::new(0),
        hi: AtomicUsize::new(0),
        id: AtomicU64::new(0),
        name_len: AtomicU8::new(0),
        name: [const { AtomicU8::new(0) }; NAME],
    }
}; QUARANTINE];

struct Quarantined {
    stack: Stack,
    slot: usize,
    since: Instant,
}

static QUEUE: Mutex<VecDeque<Quarantined>> = Mutex::new(VecDeque::new());
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Quarantines the stack of exited green thread `id` (`name`).
pub(crate) fn quarantine(stack: Stack, id: u64, name: Option<&str>) {
    stack.seal();
    let (lo, hi) = stack.range();
    // Release the oldest entries past the bounds (unmapped outside the lock).
    let mut released = Vec::new();
    {
        let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(old) = q.front() {
            if q.len() < QUARANTINE && old.since.elapsed() < QUARANTINE_MIN_AGE {
                break;
            }
            let old = q.pop_front().expect("front exists");
            ENTRIES[old.slot].lo.store(0, Release);
            ENTRIES[old.slot].hi.store(0, Release);
            FREE_SLOTS.lock().unwrap_or_else(|e| e.into_inner()).push(old.slot);
            released.push(old.stack);
            if q.len() < QUARANTINE / 2 && released.len() >= 64 {
                break;
            }
        }
        let slot = FREE_SLOTS.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(|| {
            let s = NEXT_SLOT.fetch_add(1, Relaxed);
            assert!(s < QUARANTINE, "ffiber: check-mode quarantine slots exhausted");
            s
        });
        let e = &ENTRIES[slot];
        let name = name.unwrap_or("unnamed").as_bytes();
        let n = name.len().min(NAME);
        for (i, b) in name[..n].iter().enumerate() {
            e.name[i].store(*b, Relaxed);
        }
        e.name_len.store(n as u8, Relaxed);
        e.id.store(id, Relaxed);
        e.hi.store(hi, Relaxed);
        e.lo.store(lo, Release);
        q.push_back(Quarantined { stack, slot, since: Instant::now() });
    }
    drop(released);
}

/// For the fault handler: the quarantined green thread whose stack holds
/// `addr`, as (id, name bytes, name length).
pub(crate) fn lookup(addr: usize) -> Option<(u64, [u8; NAME], usize)> {
    if !enabled() {
        return None;
    }
    for e in ENTRIES.iter().take(NEXT_SLOT.load(Relaxed).min(QUARANTINE)) {
        let lo = e.lo.load(Acquire);
        if lo != 0 && addr >= lo && addr < e.hi.load(Relaxed) {
            let mut name = [0u8; NAME];
            let n = e.name_len.load(Relaxed) as usize;
            for (i, b) in name.iter_mut().enumerate().take(n) {
                *b = e.name[i].load(Relaxed);
            }
            return Some((e.id.load(Relaxed), name, n));
        }
    }
    None
}
