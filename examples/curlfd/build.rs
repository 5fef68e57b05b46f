//! Binds the `ffiber::cgo!` block of src/lib.rs (libcurl through pkg-config).

fn main() {
    if let Err(e) = ffiber_build::Build::new().file("src/lib.rs").compile() {
        e.exit();
    }
}
