//! Generates `sqlite.rs` from `sqlite3.h` with ffiber-build.

fn main() {
    let r = ffiber_build::Build::new()
        .header("sqlite3.h")
        .allow([
            "sqlite3",
            "sqlite3_open",
            "sqlite3_close",
            "sqlite3_exec",
            "sqlite3_free",
            "sqlite3_errmsg",
            "sqlite3_libversion",
            "SQLITE_OK",
            "SQLITE_VERSION",
        ])
        .pkg_config("sqlite3")
        .generate("sqlite");
    if let Err(e) = r {
        e.exit();
    }
}
