//! Green-thread stacks: mmap'd, guarded, committed lazily, pooled.
//!
//! A stack is one anonymous private mapping: the lowest page is a guard (a
//! `MADV_GUARD_INSTALL` region where the kernel has them, which costs no
//! extra VMA, else `PROT_NONE`), the rest is read-write but reserved only virtually
//! (`MAP_NORESERVE`): the kernel commits a page the first time it is
//! touched, so a green thread that never goes deep costs one or two resident
//! pages whatever its reservation (Go's goroutines cost 2-8 KiB; we aim for
//! the same without copying stacks).
//!
//! ```text
//!   base                base+page                               top
//!    | guard (PROT_NONE) | usable, committed on first touch ... |
//!                         <------------- size ----------------->
//!                         grows down from top
//! ```
//!
//! Freed stacks are cached per P (no lock) and in a global pool, so that a
//! program that keeps spawning short-lived green threads makes no system
//! call for their stacks (fresh memory costs an `mmap`, a guard `madvise` and
//! a page fault: several microseconds on a VM). A stack that went deep keeps
//! its committed pages after the green thread exits, so before reuse it is
//! *trimmed*: `madvise(MADV_DONTNEED)` on everything below the first
//! [`KEEP_BYTES`] gives those pages back. The scheduler records the lowest
//! stack pointer seen at each switch; a stack seen below `KEEP_BYTES` is
//! trimmed when it is freed. A shallow stack is pooled as it is: it holds at
//! most `KEEP_BYTES` resident. The pools are bounded ([`P_CACHE`],
//! [`GLOBAL_POOL`]); stacks beyond them are unmapped.

use std::io;
use std::sync::Mutex;

/// Bytes at the top of a pooled stack that are left committed: enough for a
/// green thread's first frames, and the budget a parked green thread has.
pub const KEEP_BYTES: usize = 8 * 1024;

/// Default reservation of a green thread's stack.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest stack we hand out: room for the entry frames and a panic.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The system page size.
pub fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// `MADV_GUARD_INSTALL` (Linux 6.13+): a guard region that is not a
/// separate VMA. With `mprotect`, every stack costs two VMAs and a process
/// stops at `vm.max_map_count / 2` (about 32,000) live green threads.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Makes `[base, base + len)` fault on any access: a light guard region where
/// the kernel has them, else a `PROT_NONE` page.
fn install_guard(base: *mut libc::c_void, len: usize) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NO_LIGHT_GUARDS: AtomicBool = AtomicBool::new(false);
    if !NO_LIGHT_GUARDS.load(Ordering::Relaxed) {
        // SAFETY: the range is inside a private anonymous mapping the caller
        // owns and nothing lives there yet.
        if unsafe { libc::madvise(base, len, MADV_GUARD_INSTALL) } == 0 {
            return Ok(());
        }
        NO_LIGHT_GUARDS.store(true, Ordering::Relaxed);
    }
    // SAFETY: as above.
    if unsafe { libc::mprotect(base, len, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One guarded stack mapping. Unmapped on drop.
#[derive(Debug)]
pub struct Stack {
    base: *mut u8,
    len: usize,
}

// SAFETY: a Stack exclusively owns its mapping; nothing about it is tied to
// the thread that created it.
unsafe impl Send for Stack {}

impl Stack {
    /// Maps a stack with `size` usable bytes (rounded up to whole pages) and
    /// one guard page below them.
    pub fn new(size: usize) -> io::Result<Stack> {
        let page = page_size();
        let size = size.max(MIN_STACK_SIZE).div_ceil(page) * page;
        let len = size + page;
        // SAFETY: an anonymous mapping at an address of the kernel's choice
        // touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base: base.cast(), len };
        install_guard(base, page)?; // on error `stack` unmaps on drop
        Ok(stack)
    }

    /// One past the highest usable byte; 16-byte aligned.
    pub fn top(&self) -> *mut u8 {
        self.base.wrapping_add(self.len)
    }

    /// Usable bytes (the guard page excluded).
    pub fn size(&self) -> usize {
        self.len - page_size()
    }

    /// The guard page's address range.
    pub fn guard(&self) -> std::ops::Range<usize> {
        let lo = self.base as usize;
        lo..lo + page_size()
    }

    /// Gives back every committed page below the top [`KEEP_BYTES`].
    pub fn trim(&self) {
        let lo = self.base as usize + page_size();
        let hi = self.top() as usize - KEEP_BYTES;
        // SAFETY: [lo, hi) is inside the usable part of our mapping and no
        // green thread runs on this stack (it is being pooled), so dropping
        // its contents is harmless.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: we own the mapping [base, base + len) and nothing runs on it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Stacks a P keeps for itself before spilling half to the global pool.
pub(crate) const P_CACHE: usize = 256;
/// Stacks the global pool keeps; beyond that they are unmapped.
pub(crate) const GLOBAL_POOL: usize = 16 * 1024;

/// Global pool of trimmed stacks of one size (the runtime's default).
pub(crate) struct StackPool {
    size: usize,
    stacks: Mutex<Vec<Stack>>,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> Self {
        Self { size, stacks: Mutex::new(Vec::new()) }
    }

    /// The size of the stacks this pool holds.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A stack of `size` bytes: from `cache` (a P's), else the pool, else new.
    pub(crate) fn get(&self, cache: Option<&mut Vec<Stack>>, size: usize) -> io::Result<Stack> {
        if size == self.size {
            match cache {
                Some(c) => {
                    if c.is_empty() {
                        self.refill(c);
                    }
                    if let Some(s) = c.pop() {
                        return Ok(s);
                    }
                }
                None => {
                    if let Some(s) = self.stacks.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                        return Ok(s);
                    }
                }
            }
        }
        Stack::new(size)
    }

    /// Returns a stack whose green thread exited. `deep` says whether the
    /// thread was seen below [`KEEP_BYTES`].
    pub(crate) fn put(&self, cache: Option<&mut Vec<Stack>>, stack: Stack, deep: bool) {
        if stack.size() != self.size {
            return; // a custom size: unmap it
        }
        if deep {
            stack.trim();
        }
        match cache {
            Some(cache) => {
                cache.push(stack);
                if cache.len() > P_CACHE {
                    let spill: Vec<Stack> = cache.drain(..P_CACHE / 2).collect();
                    self.put_global(spill);
                }
            }
            None => self.put_global(vec![stack]),
        }
    }

    fn put_global(&self, spill: Vec<Stack>) {
        let mut pool = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        let room = GLOBAL_POOL.saturating_sub(pool.len());
        let mut spill = spill;
        let excess = spill.split_off(room.min(spill.len()));
        pool.extend(spill);
        drop(pool);
        drop(excess); // unmapped outside the lock
    }

    /// Refills a P's empty cache from the global pool in one lock.
    pub(crate) fn refill(&self, cache: &mut Vec<Stack>) {
        let mut pool = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        let n = pool.len().min(P_CACHE / 2);
        let at = pool.len() - n;
        cache.extend(pool.drain(at..));
    }
}
