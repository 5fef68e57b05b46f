//! C fixtures for ffiber's tests (see `c/testc.c`), compiled by the build
//! script with the system C compiler.

#![allow(missing_docs)]

/// `struct pair` of `testc.c`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub a: i64,
    pub b: f64,
}

/// `struct big` of `testc.c` (returned in memory, not registers).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Big {
    pub v: [i64; 5],
}

/// The raw C declarations.
pub mod sys {
    use super::{Big, Pair};
    unsafe extern "C" {
        pub fn plusone(x: i32) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn sum8(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64) -> i64;
        #[allow(clippy::too_many_arguments)]
        pub fn fsum8(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64, g: f64, h: f64) -> f64;
        pub fn mixed(a: i32, b: f64, c: i64, d: f32, e: libc::c_char, f: f64) -> f64;
        pub fn make_pair(a: i64, b: f64) -> Pair;
        pub fn make_big(x: i64) -> Big;
        pub fn sleep_ms(ms: i32);
        pub fn sleep_us(us: u32);
        pub fn spin_us(us: u32) -> u64;
        pub fn spin_until(flag: *const i32, max_us: u32) -> i32;
        pub fn usleep_until(flag: *const i32, us: u32, tries: i32) -> i32;
        pub fn deep_stack(kib: i32) -> i64;
        pub fn fail_with(e: i32) -> i32;
        pub fn crash_null(x: i32) -> i32;
        pub fn recurse(n: i32) -> i32;
        pub fn keep_pointer(p: *mut i32);
        pub fn write_kept(v: i32);
        pub fn apply(f: super::IntFn, x: i32) -> i32;
        pub fn apply_n(f: super::IntFn, n: i32) -> i32;
        pub fn apply_then_sleep(f: super::IntFn, x: i32, us: u32) -> i32;
        pub fn apply_in_c_thread(f: super::IntFn, n: i32) -> i32;
        pub fn call_with_ctx(f: super::CtxFn, ctx: *mut libc::c_void, x: i32) -> i32;
        pub fn install_plain_segv_handler() -> i32;
    }
}

// Safe wrappers: every fixture takes and returns plain values and touches
// no memory of the caller's, so each call below is sound for any argument
// (`deep_stack` asserts its one precondition).

pub fn plusone(x: i32) -> i32 {
    // SAFETY: plain values in and out (see above).
    unsafe { sys::plusone(x) }
}

#[allow(clippy::too_many_arguments)]
pub fn sum8(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64) -> i64 {
    // SAFETY: plain values in and out.
    unsafe { sys::sum8(a, b, c, d, e, f, g, h) }
}

#[allow(clippy::too_many_arguments)]
pub fn fsum8(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64, g: f64, h: f64) -> f64 {
    // SAFETY: plain values in and out.
    unsafe { sys::fsum8(a, b, c, d, e, f, g, h) }
}

pub fn mixed(a: i32, b: f64, c: i64, d: f32, e: libc::c_char, f: f64) -> f64 {
    // SAFETY: plain values in and out.
    unsafe { sys::mixed(a, b, c, d, e, f) }
}

pub fn make_pair(a: i64, b: f64) -> Pair {
    // SAFETY: plain values in and out; `Pair` matches `struct pair`.
    unsafe { sys::make_pair(a, b) }
}

pub fn make_big(x: i64) -> Big {
    // SAFETY: plain values in and out; `Big` matches `struct big`.
    unsafe { sys::make_big(x) }
}

/// Blocks the calling OS thread for `ms` milliseconds (nanosleep).
pub fn sleep_ms(ms: i32) {
    // SAFETY: plain value in.
    unsafe { sys::sleep_ms(ms) }
}

/// Waits in C, as SQLite's busy handler does, until `flag` is non-zero:
/// `usleep(us)` between looks, at most `tries` sleeps. Returns the looks it
/// took (`tries + 1` if the flag never came, -1 if `usleep` failed).
pub fn usleep_until(flag: &std::sync::atomic::AtomicI32, us: u32, tries: i32) -> i32 {
    // SAFETY: `flag` is a live, aligned i32 the C code only reads
    // atomically, for the duration of the call.
    unsafe { sys::usleep_until(flag.as_ptr(), us, tries) }
}

/// Busy-waits `us` microseconds in C (no sleeping system call); returns
/// the loop's count.
pub fn spin_us(us: u32) -> u64 {
    // SAFETY: plain value in.
    unsafe { sys::spin_us(us) }
}

/// Busy-waits in C (no sleeping system call) until `flag` is non-zero, for
/// at most `max_us` microseconds; returns whether the flag came.
pub fn spin_until(flag: &std::sync::atomic::AtomicI32, max_us: u32) -> bool {
    // SAFETY: `flag` is a live, aligned i32 the C code only reads
    // atomically, for the duration of the call.
    unsafe { sys::spin_until(flag.as_ptr(), max_us) == 1 }
}

/// Blocks the calling OS thread for `us` microseconds (nanosleep).
pub fn sleep_us(us: u32) {
    // SAFETY: plain value in.
    unsafe { sys::sleep_us(us) }
}

/// Uses `kib` KiB of stack in C; returns `kib * 1024 / 4096 + 1`.
pub fn deep_stack(kib: i32) -> i64 {
    assert!(kib > 0, "deep_stack needs kib > 0");
    // SAFETY: plain value in; the stack it needs is the caller's business
    // (that is what the tests check).
    unsafe { sys::deep_stack(kib) }
}

/// Sets errno to `e` and returns -1.
pub fn fail_with(e: i32) -> i32 {
    // SAFETY: plain value in.
    unsafe { sys::fail_with(e) }
}

/// A C `int (*)(int)`.
pub type IntFn = extern "C" fn(i32) -> i32;

/// Replaces the process's SIGSEGV handler with a plain one (no
/// `SA_ONSTACK`, no chaining), as some C libraries do at init. Returns 0.
pub fn install_plain_segv_handler() -> i32 {
    // SAFETY: no arguments; it changes a process-wide disposition, which is
    // what the caller asks for.
    unsafe { sys::install_plain_segv_handler() }
}

/// C calls `f(x)` and returns that plus one.
pub fn apply(f: IntFn, x: i32) -> i32 {
    // SAFETY: `f` is a valid C-ABI function pointer (its type says so).
    unsafe { sys::apply(f, x) }
}

/// C returns the sum of `f(i)` for `i` in `0..n`, calling from this thread.
pub fn apply_n(f: IntFn, n: i32) -> i32 {
    // SAFETY: as above.
    unsafe { sys::apply_n(f, n) }
}

/// C calls `f(x)`, then sleeps `us` microseconds (still inside the call),
/// and returns what `f` returned.
pub fn apply_then_sleep(f: IntFn, x: i32, us: u32) -> i32 {
    // SAFETY: as above.
    unsafe { sys::apply_then_sleep(f, x, us) }
}

/// As [`apply_n`], but C calls `f` from a pthread it creates (and joins).
pub fn apply_in_c_thread(f: IntFn, n: i32) -> i32 {
    // SAFETY: as above; `f` may be called from any thread.
    unsafe { sys::apply_in_c_thread(f, n) }
}

/// Writes through a null pointer in C (for crash-reporting tests).
///
/// # Safety
///
/// None: it crashes the process. Only for tests that expect that.
pub unsafe fn crash_null(x: i32) -> i32 {
    // SAFETY: the caller accepts the crash.
    unsafe { sys::crash_null(x) }
}

/// Recurses `n` levels in C with 1 KiB frames (about `n` KiB of stack).
pub fn recurse(n: i32) -> i32 {
    // SAFETY: plain value in; the stack it needs is what tests check.
    unsafe { sys::recurse(n) }
}

/// A C `int (*)(void *ctx, int)`.
pub type CtxFn = extern "C" fn(*mut libc::c_void, i32) -> i32;

/// C calls `f(ctx, x)`: an opaque context (here an integer, such as a
/// `Handle`) handed back, as C libraries do.
pub fn call_with_ctx(f: CtxFn, ctx: usize, x: i32) -> i32 {
    // SAFETY: `f` is a valid C-ABI function pointer; C only passes `ctx`
    // on, never dereferences it.
    unsafe { sys::call_with_ctx(f, ctx as *mut libc::c_void, x) }
}
