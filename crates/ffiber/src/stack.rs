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
//! A stack stays with its green thread's `G` after the thread exits: the
//! scheduler keeps exited Gs on free lists and a spawn reuses both (see
//! `sched::gfree`). A stack that went deep keeps its committed pages after
//! the green thread exits, so before reuse it is *trimmed*:
//! `madvise(MADV_DONTNEED)` on everything below the first [`KEEP_BYTES`]
//! gives those pages back. The scheduler records the lowest stack pointer
//! seen at each switch; a stack seen below `KEEP_BYTES` is trimmed when its
//! green thread exits. A shallow stack is kept as it is: it holds at most
//! `KEEP_BYTES` resident.

use std::io;

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

/// The usable size of a stack asked for with `size` bytes: at least
/// [`MIN_STACK_SIZE`], rounded up to whole pages.
pub fn round_size(size: usize) -> usize {
    let page = page_size();
    size.max(MIN_STACK_SIZE).div_ceil(page) * page
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
        let len = round_size(size) + page;
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

    /// The whole mapping's address range (guard included).
    pub fn range(&self) -> (usize, usize) {
        (self.base as usize, self.base as usize + self.len)
    }

    /// Releases every page and makes the whole mapping inaccessible (check
    /// mode's quarantine of an exited green thread's stack).
    pub(crate) fn seal(&self) {
        // SAFETY: the mapping is ours and nothing runs on it (its green
        // thread exited); dropping its contents and protecting it affects
        // only this mapping.
        unsafe {
            libc::madvise(self.base.cast(), self.len, libc::MADV_DONTNEED);
            libc::mprotect(self.base.cast(), self.len, libc::PROT_NONE);
        }
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
