//! Green-thread stacks: mmap'd, guarded, committed lazily, pooled.
//!
//! A stack is one anonymous private mapping: the lowest page is `PROT_NONE`
//! (the guard), the rest is read-write but reserved only virtually
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
//! Freed stacks are cached per P (no lock) and in a global pool. A stack that
//! went deep keeps its committed pages after the green thread exits, so
//! before reuse it is *trimmed*: `madvise(MADV_DONTNEED)` on everything below
//! the first [`KEEP_BYTES`] gives those pages back. Stacks known to have gone
//! deep (the scheduler records the lowest stack pointer seen at each switch)
//! are trimmed when they enter the per-P cache; every stack is trimmed when
//! it enters the global pool, which is where stacks wait longest.

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
        // SAFETY: [base, base + page) lies inside the mapping we own.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error()); // `stack` unmaps on drop
        }
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
pub(crate) const P_CACHE: usize = 64;
/// Stacks the global pool keeps; beyond that they are unmapped.
pub(crate) const GLOBAL_POOL: usize = 1024;

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
            if let Some(s) = cache.and_then(|c| c.pop()) {
                return Ok(s);
            }
            if let Some(s) = self.stacks.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                return Ok(s);
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
        match cache {
            Some(cache) => {
                if deep {
                    stack.trim();
                }
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
        for s in &spill {
            s.trim();
        }
        let mut pool = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        for s in spill {
            if pool.len() < GLOBAL_POOL {
                pool.push(s);
            }
        }
    }
}
