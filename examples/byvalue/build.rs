//! Binds the `ffiber::cgo!` block of src/lib.rs.

fn main() {
    if let Err(e) = ffiber_build::Build::new().file("src/lib.rs").compile() {
        e.exit();
    }
}
