//! C written inline with `ffiber::cgo!`, as Go's `import "C"` preamble:
//! errno from `sqrt(-1)` (libm's, by its versioned symbol), `log` and
//! `strtol` overflow (the `#cgo errno` directive asks for
//! `_errno` twins), and `static inline` functions of the preamble, which
//! have no symbol of their own.

use std::ffi::CStr;

ffiber::cgo! {
    mod c;
    r#"
    #include <errno.h>
    #include <math.h>
    #include <stdio.h>
    #include <stdlib.h>
    #cgo LDFLAGS: -lm
    #cgo errno sqrt log strtol libm_sqrt

    /* libm's own sqrt, by its versioned symbol: in a Rust binary a bare
       `sqrt` resolves to compiler-builtins' copy, which does not set errno. */
    double libm_sqrt(double);
    __asm__(".symver libm_sqrt,sqrt@GLIBC_2.2.5");
    #cgo nonblocking half

    #include "ffiber_export.h"

    static inline double half(double x) { return x / 2; }

    /* A function-pointer type, callable from Rust through the foreign-call path. */
    typedef int (*int_op)(int);
    static int triple(int x) { return 3 * x; }
    static int_op get_op(void) { return triple; }

    /* A C variable, read and written from Rust through its address. */
    static int counter = 40;
    static int bump(void) { return ++counter; }

    /* Bitfields (cgo drops them): the bindings get getters and setters. */
    typedef struct flags { unsigned a : 3; signed b : 5; unsigned c : 12; unsigned long wide : 40; int tail; } flags_t;
    static void fill_flags(flags_t *f) { f->a = 5; f->b = -3; f->c = 1000; f->wide = 0x12345678ffUL; f->tail = 7; }
    static int flags_are(const flags_t *f, unsigned a, int b, unsigned c, unsigned long wide) {
        return f->a == a && f->b == b && f->c == c && f->wide == wide && f->tail == 7;
    }
    /* C calling back into Rust through the generated exports header. */
    static int square_plus_one(int x) { return rust_square(x) + 1; }
    static int fail_with(int e) { errno = e; return -1; }
    "#
}

/// `sqrt(x)`, or the errno C set. (Linked into a Rust program, `sqrt`
/// resolves to the toolchain's compiler-builtins, which returns NaN for a
/// negative number without setting EDOM; `log` comes from libm and does.)
pub fn sqrt(x: f64) -> Result<f64, i32> {
    // SAFETY: sqrt takes and returns a double.
    let (r, errno) = unsafe { c::sqrt_errno(x) };
    if errno == 0 { Ok(r) } else { Err(errno) }
}

/// libm's `sqrt(x)`, or the errno it set (EDOM for a negative number).
pub fn libm_sqrt(x: f64) -> Result<f64, i32> {
    // SAFETY: takes and returns a double.
    let (r, errno) = unsafe { c::libm_sqrt_errno(x) };
    if errno == 0 { Ok(r) } else { Err(errno) }
}

/// `log(x)`, or the errno C set (EDOM below 0, ERANGE at 0).
pub fn log(x: f64) -> Result<f64, i32> {
    // SAFETY: log takes and returns a double.
    let (r, errno) = unsafe { c::log_errno(x) };
    if errno == 0 { Ok(r) } else { Err(errno) }
}

/// `strtol(s, NULL, 10)`, or the errno C set (ERANGE on overflow).
pub fn parse_long(s: &CStr) -> Result<i64, i32> {
    // SAFETY: `s` is a valid C string; a null end pointer is allowed.
    let (v, errno) = unsafe { c::strtol_errno(s.as_ptr(), std::ptr::null_mut(), 10) };
    if errno == 0 { Ok(v) } else { Err(errno) }
}

/// The preamble's `static inline double half(double)`.
pub fn half(x: f64) -> f64 {
    // SAFETY: takes and returns a double.
    unsafe { c::half(x) }
}

/// The preamble's `static int fail_with(int)`: sets errno, returns -1.
pub fn fail_with(e: i32) -> (i32, i32) {
    // SAFETY: takes and returns an int.
    unsafe { c::fail_with_errno(e) }
}

/// `snprintf` with an int, a double and a string: a variadic C function,
/// called through the generated binding (cgo cannot call these).
pub fn format3(i: i64, d: f64, s: &CStr) -> String {
    use ffiber::ffi::VarArg;
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is writable for its length, the format is a C string,
    // and the arguments match its conversions (%ld, %.2f, %s).
    let n = unsafe {
        c::snprintf(
            buf.as_mut_ptr().cast(),
            buf.len() as _,
            c"%ld %.2f %s".as_ptr(),
            &[VarArg::Int(i), VarArg::Double(d), VarArg::Ptr(s.as_ptr().cast())],
        )
    };
    String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
}

/// Exported to C (its prototype lands in `ffiber_export.h`, which the
/// preamble includes): squares its argument, sleeping a little first to
/// show that callbacks may block.
#[ffiber::export]
fn rust_square(x: i32) -> i32 {
    ffiber::sleep(std::time::Duration::from_micros(50));
    x * x
}

/// The preamble's `square_plus_one`: C that calls back into [`rust_square`].
pub fn square_plus_one(x: i32) -> i32 {
    // SAFETY: takes and returns an int.
    unsafe { c::square_plus_one(x) }
}

/// The preamble's `flags_t`, filled by C, read and changed through the
/// generated bitfield accessors, and checked by C again.
pub fn bitfields_round_trip() -> bool {
    let mut f = c::flags_t::default();
    // SAFETY: `f` is a valid flags_t for C to fill and read.
    unsafe { c::fill_flags(&mut f) };
    let read = (f.a(), f.b(), f.c(), f.wide(), f.tail);
    f.set_a(6);
    f.set_b(-9);
    f.set_c(4095);
    f.set_wide(0xff_0000_0001);
    // SAFETY: as above.
    let checked = unsafe { c::flags_are(&f, 6, -9, 4095, 0xff_0000_0001) };
    read == (5, -3, 1000, 0x12_3456_78ff, 7) && checked == 1
}

/// The preamble's `counter` variable, through its address, and C's `bump`.
pub fn counter_round_trip() -> (i32, i32, i32) {
    let p = c::counter();
    // SAFETY: `p` is the address of a live C int; no other thread uses it here.
    let before = unsafe { *p };
    // SAFETY: as above.
    unsafe { *p = 100 };
    // SAFETY: bump takes nothing and returns an int.
    let bumped = unsafe { c::bump() };
    // SAFETY: as above.
    (before, bumped, unsafe { *p })
}

/// Gets a C function pointer from C and calls it from Rust.
pub fn call_through_pointer(x: i32) -> i32 {
    // SAFETY: get_op returns `triple`, a C function of type int_op.
    let op = c::int_op(unsafe { c::get_op() });
    // SAFETY: `op` is an int(int) function.
    unsafe { op.call(x) }
}
