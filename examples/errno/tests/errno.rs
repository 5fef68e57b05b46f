//! errno and static inline functions through a `ffiber::cgo!` preamble.

use ffiber_example_errno::{
    bitfields_round_trip, call_through_pointer, counter_round_trip, fail_with, format3, half, libm_sqrt, log,
    parse_long, sqrt, square_plus_one,
};

const EDOM: i32 = 33;
const ERANGE: i32 = 34;

#[test]
fn errno_comes_back_from_c() {
    assert_eq!(sqrt(16.0), Ok(4.0));
    // sqrt(-1) is NaN, and errno stays 0 here: the Rust toolchain's
    // compiler-builtins defines `sqrt` itself, and the linker resolves the
    // preamble's reference to it rather than to libm's (which sets EDOM).
    assert!(matches!(sqrt(-1.0), Ok(r) if r.is_nan()) || sqrt(-1.0) == Err(EDOM));
    // libm's sqrt, bound by its versioned symbol, reports EDOM.
    assert_eq!(libm_sqrt(-1.0), Err(EDOM));
    assert_eq!(libm_sqrt(9.0), Ok(3.0));
    assert_eq!(log(-1.0), Err(EDOM));
    assert_eq!(log(0.0), Err(ERANGE));
    assert_eq!(parse_long(c"123"), Ok(123));
    assert_eq!(parse_long(c"99999999999999999999999"), Err(ERANGE));
    assert_eq!(fail_with(ERANGE), (-1, ERANGE));
}

#[test]
fn static_inline_functions_of_the_preamble_are_callable() {
    assert_eq!(half(3.0), 1.5);
}

#[test]
fn from_green_threads() {
    let ok = ffiber::run(|| {
        let hs: Vec<_> = (0..32)
            .map(|i| ffiber::go(move || log(-(i as f64) - 1.0) == Err(EDOM) && half(i as f64) == i as f64 / 2.0))
            .collect();
        hs.into_iter().all(|h| h.join().unwrap())
    });
    assert!(ok);
}

#[test]
fn variadic_functions_are_callable() {
    assert_eq!(format3(42, 1.5, c"green"), "42 1.50 green");
    let from_green = ffiber::run(|| ffiber::go(|| format3(-7, 0.125, c"x")).join().unwrap());
    assert_eq!(from_green, "-7 0.12 x"); // printf rounds half to even
}

#[test]
fn preamble_c_calls_back_into_exported_rust() {
    let v = ffiber::run(|| {
        let hs: Vec<_> = (0..8).map(|i| ffiber::go(move || square_plus_one(i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(v, (0..8).map(|i| i * i + 1).collect::<Vec<_>>());
}

#[test]
fn bitfields_have_getters_and_setters() {
    assert!(bitfields_round_trip());
}

#[test]
fn c_variables_are_reachable_through_their_address() {
    assert_eq!(counter_round_trip(), (40, 101, 101));
}

#[test]
fn c_function_pointers_are_callable() {
    assert_eq!(call_through_pointer(5), 15);
    assert_eq!(ffiber::run(|| ffiber::go(|| call_through_pointer(7)).join().unwrap()), 21);
}
