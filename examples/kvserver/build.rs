//! Generates `sqlite.rs` from the system's `sqlite3.h` with ffiber-build.

fn main() {
    let r = ffiber_build::Build::new()
        .header("sqlite3.h")
        .allow([
            "sqlite3",
            "sqlite3_stmt",
            "sqlite3_open_v2",
            "sqlite3_close_v2",
            "sqlite3_exec",
            "sqlite3_errmsg",
            "sqlite3_busy_timeout",
            "sqlite3_prepare_v2",
            "sqlite3_bind_text",
            "sqlite3_bind_blob",
            "sqlite3_step",
            "sqlite3_column_blob",
            "sqlite3_column_bytes",
            "sqlite3_reset",
            "sqlite3_clear_bindings",
            "sqlite3_finalize",
            "SQLITE_OK",
            "SQLITE_ROW",
            "SQLITE_DONE",
            "SQLITE_OPEN_READWRITE",
            "SQLITE_OPEN_CREATE",
            "SQLITE_OPEN_NOMUTEX",
        ])
        .pkg_config("sqlite3")
        .generate("sqlite");
    if let Err(e) = r {
        e.exit();
    }
}
