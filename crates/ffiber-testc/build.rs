//! Compiles the C fixtures with the C compiler `cc` finds (as users' code is).

fn main() {
    println!("cargo:rerun-if-changed=c/testc.c");
    println!("cargo:rerun-if-changed=c/callbacks.c");
    cc::Build::new().file("c/testc.c").file("c/callbacks.c").opt_level(2).warnings(true).compile("ffiber_testc");
}
