//! Builds `bench/peers/c/plusone.c` into a shared library (`-O2 -shared`)
//! with the C compiler `cc` finds, and links ffibench against it, so that
//! every Rust and ffiber row calls `plusone` in a shared library as the
//! talk's C baseline does (Rust through the GOT, C through the PLT). The library's directory is passed on (FFIBENCH_LIBDIR)
//! for the peers that link against the same library.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let src = root.join("bench/peers/c/plusone.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let lib = out.join("libplusone.so");
    let compiler = cc::Build::new().opt_level(2).pic(true).cargo_metadata(false).get_compiler();
    let status =
        compiler.to_command().args(["-O2", "-fPIC", "-shared", "-o"]).arg(&lib).arg(&src).status().unwrap_or_else(
            |e| panic!("ffibench: could not run the C compiler ({e}); install one: apt-get install build-essential"),
        );
    if !status.success() {
        panic!("ffibench: the C compiler failed on {}", src.display());
    }
    // The C peer: the talk's baseline (through the PLT) and a direct call.
    let bench_c = root.join("bench/peers/c/bench.c");
    println!("cargo:rerun-if-changed={}", bench_c.display());
    let exe = out.join("c-bench");
    let status = compiler
        .to_command()
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&bench_c)
        .arg(format!("-L{}", out.display()))
        .args(["-lplusone", &format!("-Wl,-rpath,{}", out.display())])
        .status()
        .unwrap_or_else(|e| panic!("ffibench: could not run the C compiler ({e})"));
    if !status.success() {
        panic!("ffibench: the C compiler failed on {}", bench_c.display());
    }
    println!("cargo:rustc-env=FFIBENCH_C_BENCH={}", exe.display());
    println!("cargo:rustc-env=FFIBENCH_CC={}", compiler.path().display());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=dylib=plusone");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", out.display());
    println!("cargo:rustc-env=FFIBENCH_LIBDIR={}", out.display());
}
