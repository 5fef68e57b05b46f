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
    // The same baseline loop, linked into ffibench: the Rust peers time it
    // beside each of their rows (the paired ratios of the call table).
    let plt_loop = root.join("bench/peers/c/plt_loop.c");
    println!("cargo:rerun-if-changed={}", plt_loop.display());
    cc::Build::new().file(&plt_loop).opt_level(2).compile("ffibench_plt_loop");
    println!("cargo:rustc-env=FFIBENCH_C_BENCH={}", exe.display());
    println!("cargo:rustc-env=FFIBENCH_CC={}", compiler.path().display());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=dylib=plusone");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", out.display());
    println!("cargo:rustc-env=FFIBENCH_LIBDIR={}", out.display());
    sqlite_bindings();
}

/// The sqlite table's bindings, generated from sqlite3.h twice: every
/// function in the default mode (`sqlite_default.rs`), and with the calls
/// that never block — bind, column, reset — in NonBlocking mode
/// (`sqlite_tuned.rs`; `sqlite3_step` and `sqlite3_exec` may wait on disk
/// or a lock and stay in the default mode).
fn sqlite_bindings() {
    const FNS: &[&str] = &[
        "sqlite3",
        "sqlite3_stmt",
        "sqlite3_open_v2",
        "sqlite3_close_v2",
        "sqlite3_busy_timeout",
        "sqlite3_busy_handler",
        "sqlite3_exec",
        "sqlite3_errmsg",
        "sqlite3_prepare_v2",
        "sqlite3_bind_int64",
        "sqlite3_step",
        "sqlite3_column_int64",
        "sqlite3_column_text",
        "sqlite3_column_bytes",
        "sqlite3_column_double",
        "sqlite3_reset",
        "sqlite3_finalize",
        "SQLITE_OK",
        "SQLITE_ROW",
        "SQLITE_DONE",
        "SQLITE_OPEN_READWRITE",
        "SQLITE_OPEN_CREATE",
        "SQLITE_OPEN_NOMUTEX",
    ];
    const QUICK: &[&str] = &[
        "sqlite3_bind_int64",
        "sqlite3_column_int64",
        "sqlite3_column_text",
        "sqlite3_column_bytes",
        "sqlite3_column_double",
        "sqlite3_reset",
    ];
    let base = || ffiber_build::Build::new().header("sqlite3.h").allow(FNS).pkg_config("sqlite3");
    if let Err(e) = base().generate("sqlite_default") {
        e.exit();
    }
    let mut tuned = base();
    for f in QUICK {
        tuned = tuned.mode(f, ffiber_build::Mode::NonBlocking);
    }
    if let Err(e) = tuned.generate("sqlite_tuned") {
        e.exit();
    }
}
