//! The talk's example ("Why cgo is slow"): `plusone`, as a Go programmer
//! would write it with `import "C"` — here with `ffiber::cgo!`. The binding
//! calls C through ffiber's register trampoline in the default mode (fully
//! safe: if it blocked, other green threads would keep running).

ffiber::cgo! {
    mod c;
    r#"
    int plusone(int x) { return x + 1; }
    "#
}

/// `x + 1`, computed by C.
pub fn plusone(x: i32) -> i32 {
    // SAFETY: plusone takes and returns an int.
    unsafe { c::plusone(x) }
}

/// The talk's loop: `while (x < count) x = plusone(x);`.
pub fn count_to(count: i32) -> i32 {
    let mut x = 0;
    while x < count {
        x = plusone(x);
    }
    x
}
