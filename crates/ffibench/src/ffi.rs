//! The foreign-call rows: the talk's loop `while x < count { x = plusone(x) }`
//! against `plusone` in `libplusone.so` (built -O2 by build.rs, reached
//! through the PLT), plainly from Rust and through every ffiber mode from a
//! green thread. Prints `metric=value` lines, like every peer.

use ffiber::ffi::{self, Mode};
use std::time::Instant;

unsafe extern "C" {
    /// `int plusone(int x) { return x + 1; }` (bench/peers/c/plusone.c).
    /// It takes and returns an int and touches no memory: safe to call with
    /// any argument, which every `unsafe` block below relies on.
    safe fn plusone(x: i32) -> i32;
}

/// Times `count` iterations of the talk's loop with `call` wrapped around
/// each C call; ns per call.
#[inline(always)]
fn timed(count: i32, call: impl Fn(i32) -> i32) -> f64 {
    let t = Instant::now();
    let mut x = 0;
    while x < count {
        x = call(x);
    }
    t.elapsed().as_nanos() as f64 / count as f64
}

/// `plusone(x)` through the register pass-through trampoline, as
/// generated bindings call it.
#[inline(always)]
fn regs(mode: Mode, x: i32) -> i32 {
    let f: extern "C" fn(i32) -> i32 = plusone;
    let regs = ffi::Regs { int: [x as u64, 0, 0, 0, 0, 0], ..Default::default() };
    // SAFETY: plusone takes one int (rdi) and returns one (eax): all in
    // registers, as `call_regs` requires; the fn-pointer cast keeps its ABI.
    let out = unsafe {
        ffi::call_regs(
            mode,
            "plusone",
            std::mem::transmute::<extern "C" fn(i32) -> i32, unsafe extern "C" fn()>(f),
            &regs,
        )
    };
    out.rax as i32
}

/// The rows (keys as in [`super::FFI_ROWS`]).
pub fn run(n: impl Fn(usize) -> usize) {
    let count = n(20_000_000) as i32;
    let slow = n(200_000) as i32;
    println!("rust_plt_ns={:.3}", timed(count, |x| plusone(x)));
    let rt = ffiber::Runtime::builder().build().expect("runtime");
    let rows = rt.block_on(move || {
        // Warm the monitor up so that its start is not timed.
        ffi::call(|| plusone(0));
        vec![
            (
                "ffiber_on_stack_ns",
                timed(count, |x| {
                    // SAFETY: plusone is a leaf using a few bytes of stack, never
                    // blocks and never calls back.
                    unsafe { ffi::call_on_green_stack(|| plusone(x)) }
                }),
            ),
            ("ffiber_nonblocking_ns", timed(count, |x| ffi::call_mode(Mode::NonBlocking, || plusone(x)))),
            ("ffiber_nocallback_ns", timed(count, |x| ffi::call_mode(Mode::NoCallback, || plusone(x)))),
            ("ffiber_default_ns", timed(count, |x| ffi::call(|| plusone(x)))),
            ("ffiber_regs_ns", timed(count, |x| regs(Mode::Default, x))),
            ("ffiber_regs_nonblocking_ns", timed(count, |x| regs(Mode::NonBlocking, x))),
            ("ffiber_blocking_ns", timed(slow, |x| ffi::call_mode(Mode::Blocking, || plusone(x)))),
        ]
    });
    for (k, v) in rows {
        println!("{k}={v:.3}");
    }
}
