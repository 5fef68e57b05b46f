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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes at the top of a pooled stack that are left committed: enough for a
/// green thread's first frames, and the budget a parked green thread has.
pub const KEEP_BYTES: usize = 8 * 1024;

/// Default reservation of a green thread's stack.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest stack we hand out: room for the entry frames and a panic.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest stack a green thread may reserve: 1 GiB, Go's limit too. A
/// request above it is refused with an error (it is almost certainly a
/// mistake, and sizes near `usize::MAX` would wrap around when rounded).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Checks a requested stack size and rounds it as [`round_size`] does.
pub(crate) fn checked_size(size: usize) -> io::Result<usize> {
    if size > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "ffiber: a stack of {size} bytes was asked for; the most a green thread may reserve is {} MiB \
                 (ffiber::MAX_STACK_SIZE). Pages are committed only when touched, so a few MiB is plenty \
                 for deep recursion; C called through ffiber::ffi runs on the OS thread's stack anyway.",
                MAX_STACK_SIZE >> 20
            ),
        ));
    }
    Ok(round_size(size))
}

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

/// Set once `MADV_GUARD_INSTALL` failed (an older kernel), or at start with
/// `FFIBER_NO_GUARD_REGIONS=1` (to test the fallback on a newer one).
static NO_LIGHT_GUARDS: AtomicBool = AtomicBool::new(false);

/// Whether stacks get guard regions that cost no mapping of their own.
fn light_guards() -> bool {
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        if std::env::var_os("FFIBER_NO_GUARD_REGIONS").is_some_and(|v| v == "1") {
            NO_LIGHT_GUARDS.store(true, Ordering::Relaxed);
        }
    });
    !NO_LIGHT_GUARDS.load(Ordering::Relaxed)
}

/// Makes `[base, base + len)` fault on any access: a light guard region where
/// the kernel has them, else a `PROT_NONE` page.
fn install_guard(base: *mut libc::c_void, len: usize) -> io::Result<()> {
    if light_guards() {
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
/// [`MIN_STACK_SIZE`], at most [`MAX_STACK_SIZE`], rounded up to whole
/// pages (callers check the upper bound first, with [`checked_size`]).
pub fn round_size(size: usize) -> usize {
    let page = page_size();
    size.clamp(MIN_STACK_SIZE, MAX_STACK_SIZE).div_ceil(page) * page
}

/// Turns a bare `ENOMEM` from mapping a stack into a message that names the
/// likely limit: without guard regions (kernels before 6.13) each stack
/// costs two memory mappings and `vm.max_map_count` (65,530 by default)
/// caps the number of live green threads near 32,000.
fn explain_map_failure(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    let live = LIVE_STACKS.load(Ordering::Relaxed);
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "ffiber: cannot map a stack for green thread number {} ({e}). The usual cause is the \
             kernel's limit on memory mappings per process, vm.max_map_count = {}: {} Raise it \
             (sysctl -w vm.max_map_count=1048576), keep fewer green threads alive at once, or check \
             that the address space is not exhausted (ulimit -v).",
            live + 1,
            max_map_count(),
            if light_guards() {
                "each stack costs one mapping on this kernel."
            } else {
                "each stack costs two mappings on this kernel (no guard regions before Linux 6.13)."
            }
        ),
    )
}

/// Stacks are carved from slabs of this many bytes, reserved with one
/// `mmap` each (stacks larger than a quarter of it get their own).
const SLAB_BYTES: usize = 32 << 20;

/// The slab being carved: `[next, end)` is reserved and unused.
static SLAB: std::sync::Mutex<(usize, usize)> = std::sync::Mutex::new((0, 0));

/// Reserves `len` bytes of stack address space (read-write, committed on
/// first touch). One `mmap` per slab rather than per stack: a burst of
/// spawns then makes few mapping changes, and mapping changes are what
/// stall every concurrent page fault of the process (the kernel's
/// per-mapping lock: adjacent stacks merge into one mapping). Each stack
/// still owns its own range and unmaps it alone (the kernel splits the
/// mapping), so nothing else changes.
fn reserve(len: usize) -> io::Result<*mut u8> {
    if len > SLAB_BYTES / 4 {
        return map(len);
    }
    let mut slab = SLAB.lock().unwrap_or_else(|e| e.into_inner());
    let (next, end) = *slab;
    if end - next < len {
        let base = map(SLAB_BYTES)? as usize;
        if end > next {
            // The old slab's tail is too small for this stack: give it back.
            // SAFETY: `[next, end)` is reserved by us and no stack uses it.
            unsafe { libc::munmap(next as *mut libc::c_void, end - next) };
        }
        *slab = (base, base + SLAB_BYTES);
    }
    let at = slab.0;
    slab.0 += len;
    Ok(at as *mut u8)
}

/// One anonymous mapping for stacks.
fn map(len: usize) -> io::Result<*mut u8> {
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
    if base == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(base.cast()) }
}

/// Stacks mapped and not yet unmapped, in the whole process.
static LIVE_STACKS: AtomicUsize = AtomicUsize::new(0);

/// Green-thread stacks mapped and not yet unmapped in the whole process
/// (live, pooled or quarantined): a leak check for tests.
#[doc(hidden)]
pub fn live_stacks() -> usize {
    LIVE_STACKS.load(Ordering::Relaxed)
}

/// The kernel's `vm.max_map_count` (read once; 65,530 if unreadable).
fn max_map_count() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(65_530)
    })
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
        if !light_guards() {
            // Each stack splits into two mappings. Stop well before the
            // kernel's limit: past it, creating an OS thread (its stack and
            // signal stack are mappings too) aborts the process inside std.
            let max_maps = max_map_count();
            let headroom = (max_maps / 8).max(4096);
            if 2 * (LIVE_STACKS.load(Ordering::Relaxed) + 1) + headroom > max_maps {
                return Err(explain_map_failure(io::Error::from_raw_os_error(libc::ENOMEM)));
            }
        }
        let len = round_size(size) + page;
        let base = reserve(len).map_err(explain_map_failure)?;
        LIVE_STACKS.fetch_add(1, Ordering::Relaxed);
        let stack = Stack { base, len };
        install_guard(base.cast(), page).map_err(explain_map_failure)?; // on error `stack` unmaps on drop
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

    /// Commits the top page now (the page a green thread's start frame
    /// goes in), so that the first switch to it does not fault.
    pub(crate) fn touch_top(&self) {
        // SAFETY: the byte just below `top` is inside the stack's usable,
        // read-write part, and nothing runs on the stack yet.
        unsafe { std::ptr::write_volatile(self.top().sub(64), 0u8) };
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
        LIVE_STACKS.fetch_sub(1, Ordering::Relaxed);
    }
}
