//! What `#[ffiber::foreign]` builds on: the types that travel in one
//! argument register of the System V x86-64 ABI ([`RegArg`]) or come back
//! in the return registers ([`RegRet`]).
//!
//! The attribute turns each declaration of an `extern "C"` block into a
//! wrapper that calls the C function through [`call_regs`](super::call_regs),
//! as the bindings `ffiber-build` generates do: no closure, arguments laid
//! out straight into registers. It cannot see through type aliases, so the
//! classification is done by these traits at compile time: a parameter
//! whose type implements neither (a struct or union passed by value) is a
//! compile error that names the type and the way out — the closure form,
//! [`call`](super::call), which carries anything.
//!
//! ```
//! use std::ffi::{c_int, c_long};
//!
//! #[ffiber::foreign(mode = nonblocking)]
//! unsafe extern "C" {
//!     fn labs(x: c_long) -> c_long;
//!     fn abs(x: c_int) -> c_int;
//! }
//!
//! let v = ffiber::run(|| unsafe { labs(-5) + abs(-2) as c_long });
//! assert_eq!(v, 7);
//! ```
//!
//! A struct by value does not compile:
//!
//! ```compile_fail
//! #[repr(C)]
//! #[derive(Clone, Copy)]
//! pub struct Pair { a: i64, b: f64 }
//!
//! #[ffiber::foreign]
//! unsafe extern "C" {
//!     fn make_pair(a: i64, b: f64) -> Pair;
//! }
//! ```
//!
//! Nor do more arguments than the registers hold:
//!
//! ```compile_fail
//! #[ffiber::foreign]
//! unsafe extern "C" {
//!     fn seven(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64) -> i64;
//! }
//! # fn main() { let _ = unsafe { seven(1, 2, 3, 4, 5, 6, 7) }; }
//! ```

use super::RegsOut;
use std::ptr::NonNull;

/// A value passed to C in one argument register: an integer, `bool`,
/// pointer or function pointer in a general-purpose register, an `f32` or
/// `f64` in a vector register.
///
/// # Safety
///
/// [`to_reg`](Self::to_reg) must produce the bits the System V x86-64 ABI
/// puts in the register for this type (its low bits for narrower types;
/// `f32` bits in the low 32 bits of the vector register), and `SSE` must
/// say which register class that is. Implement it for a
/// `#[repr(transparent)]` wrapper of such a type by forwarding.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed to a `#[ffiber::foreign]` function in a register",
    label = "not an integer, float, bool, pointer or function pointer",
    note = "a struct or union by value needs the closure form: declare the function in a plain `extern \"C\"` block \
            and call it inside `ffiber::ffi::call(|| ...)`"
)]
pub unsafe trait RegArg: Copy {
    /// Passed in a vector register (`xmm`), not a general-purpose one.
    const SSE: bool;
    /// The register's contents.
    fn to_reg(self) -> u64;
}

/// A value C returns in `rax` (integers, `bool`, pointers, function
/// pointers) or `xmm0` (`f32`, `f64`), or nothing (`()`).
///
/// # Safety
///
/// [`from_regs`](Self::from_regs) must read the value where the System V
/// x86-64 ABI returns it for this type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a `#[ffiber::foreign]` function in a register",
    label = "not an integer, float, bool, pointer, function pointer or ()",
    note = "a struct or union by value needs the closure form: declare the function in a plain `extern \"C\"` block \
            and call it inside `ffiber::ffi::call(|| ...)`"
)]
pub unsafe trait RegRet {
    /// The value, from the return registers.
    fn from_regs(out: &RegsOut) -> Self;
}

macro_rules! int_regs {
    ($($t:ty),*) => {$(
        // SAFETY: an integer travels in a general-purpose register; `as u64`
        // sign- or zero-extends it, and the callee reads only its low bits.
        unsafe impl RegArg for $t {
            const SSE: bool = false;
            #[inline(always)]
            fn to_reg(self) -> u64 {
                self as u64
            }
        }
        // SAFETY: an integer result is in `rax` (its low bits).
        unsafe impl RegRet for $t {
            #[inline(always)]
            fn from_regs(out: &RegsOut) -> Self {
                out.rax as $t
            }
        }
    )*};
}
int_regs!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

// SAFETY: a `bool` travels as an integer 0 or 1.
unsafe impl RegArg for bool {
    const SSE: bool = false;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self as u64
    }
}

// SAFETY: a `_Bool` result is in `al`; any non-zero low byte is true.
unsafe impl RegRet for bool {
    #[inline(always)]
    fn from_regs(out: &RegsOut) -> Self {
        out.rax as u8 != 0
    }
}

// SAFETY: a `float` travels in the low 32 bits of a vector register.
unsafe impl RegArg for f32 {
    const SSE: bool = true;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self.to_bits() as u64
    }
}

// SAFETY: a `float` result is in the low 32 bits of `xmm0`.
unsafe impl RegRet for f32 {
    #[inline(always)]
    fn from_regs(out: &RegsOut) -> Self {
        f32::from_bits(out.xmm0 as u32)
    }
}

// SAFETY: a `double` travels in a vector register.
unsafe impl RegArg for f64 {
    const SSE: bool = true;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self.to_bits()
    }
}

// SAFETY: a `double` result is in `xmm0`.
unsafe impl RegRet for f64 {
    #[inline(always)]
    fn from_regs(out: &RegsOut) -> Self {
        f64::from_bits(out.xmm0)
    }
}

// SAFETY: a pointer travels in a general-purpose register.
unsafe impl<T> RegArg for *const T {
    const SSE: bool = false;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self as usize as u64
    }
}

// SAFETY: as above.
unsafe impl<T> RegArg for *mut T {
    const SSE: bool = false;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self as usize as u64
    }
}

// SAFETY: as above.
unsafe impl<T> RegArg for NonNull<T> {
    const SSE: bool = false;
    #[inline(always)]
    fn to_reg(self) -> u64 {
        self.as_ptr() as usize as u64
    }
}

// SAFETY: a pointer result is in `rax`.
unsafe impl<T> RegRet for *const T {
    #[inline(always)]
    fn from_regs(out: &RegsOut) -> Self {
        out.rax as usize as *const T
    }
}

// SAFETY: as above.
unsafe impl<T> RegRet for *mut T {
    #[inline(always)]
    fn from_regs(out: &RegsOut) -> Self {
        out.rax as usize as *mut T
    }
}

// SAFETY: nothing comes back.
unsafe impl RegRet for () {
    #[inline(always)]
    fn from_regs(_: &RegsOut) -> Self {}
}

/// Function pointers, plain and in `Option` (a nullable C function
/// pointer), of up to 8 parameters.
macro_rules! fn_regs {
    ($($a:ident),*) => {
        fn_regs!(@one extern "C" fn($($a),*) -> R, $($a),*);
        fn_regs!(@one unsafe extern "C" fn($($a),*) -> R, $($a),*);
    };
    (@one $f:ty, $($a:ident),*) => {
        // SAFETY: a function pointer travels in a general-purpose register.
        unsafe impl<R, $($a),*> RegArg for $f {
            const SSE: bool = false;
            #[inline(always)]
            fn to_reg(self) -> u64 {
                self as usize as u64
            }
        }
        // SAFETY: `Option<fn>` has the layout of a nullable pointer.
        unsafe impl<R, $($a),*> RegArg for Option<$f> {
            const SSE: bool = false;
            #[inline(always)]
            fn to_reg(self) -> u64 {
                self.map_or(0, |f| f as usize as u64)
            }
        }
        // SAFETY: a function pointer result is in `rax`; `Option<fn>` has
        // the nullable pointer's layout, so any value is valid.
        unsafe impl<R, $($a),*> RegRet for Option<$f> {
            #[inline(always)]
            fn from_regs(out: &RegsOut) -> Self {
                // SAFETY: as above; both are one pointer-sized word.
                unsafe { std::mem::transmute::<usize, Option<$f>>(out.rax as usize) }
            }
        }
    };
}
fn_regs!();
fn_regs!(A1);
fn_regs!(A1, A2);
fn_regs!(A1, A2, A3);
fn_regs!(A1, A2, A3, A4);
fn_regs!(A1, A2, A3, A4, A5);
fn_regs!(A1, A2, A3, A4, A5, A6);
fn_regs!(A1, A2, A3, A4, A5, A6, A7);
fn_regs!(A1, A2, A3, A4, A5, A6, A7, A8);
