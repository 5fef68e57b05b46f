//! An existing `-sys` crate at register speed: `libsqlite3-sys` (bindgen
//! declarations of the system SQLite) called from green threads through
//! `#[ffiber::foreign(from = libsqlite3_sys)]`. Each wrapper calls the
//! crate's own declaration — the signatures below are checked against it by
//! the compiler — through ffiber's register path: the calls that never
//! wait (bind, column, reset) in `NonBlocking` mode, the ones that may wait
//! on disk or a lock (open, prepare, step, finalize, close) in the default
//! mode, which hands the P off if they block.

use libsqlite3_sys::{sqlite3, sqlite3_stmt};
use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// The calls that never block.
pub mod quick {
    use super::*;
    #[ffiber::foreign(mode = nonblocking, from = libsqlite3_sys)]
    unsafe extern "C" {
        pub fn sqlite3_bind_int64(s: *mut sqlite3_stmt, i: c_int, v: i64) -> c_int;
        pub fn sqlite3_column_int64(s: *mut sqlite3_stmt, i: c_int) -> i64;
        pub fn sqlite3_column_text(s: *mut sqlite3_stmt, i: c_int) -> *const u8;
        pub fn sqlite3_column_double(s: *mut sqlite3_stmt, i: c_int) -> f64;
        pub fn sqlite3_reset(s: *mut sqlite3_stmt) -> c_int;
        pub fn sqlite3_errmsg(db: *mut sqlite3) -> *const c_char;
    }
}

/// The calls that may wait on disk or a lock: default mode.
pub mod slow {
    use super::*;
    #[ffiber::foreign(from = libsqlite3_sys)]
    unsafe extern "C" {
        pub fn sqlite3_open_v2(path: *const c_char, db: *mut *mut sqlite3, flags: c_int, vfs: *const c_char) -> c_int;
        pub fn sqlite3_prepare_v2(
            db: *mut sqlite3,
            sql: *const c_char,
            n: c_int,
            st: *mut *mut sqlite3_stmt,
            tail: *mut *const c_char,
        ) -> c_int;
        pub fn sqlite3_exec(
            db: *mut sqlite3,
            sql: *const c_char,
            cb: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int>,
            arg: *mut c_void,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn sqlite3_step(s: *mut sqlite3_stmt) -> c_int;
        pub fn sqlite3_finalize(s: *mut sqlite3_stmt) -> c_int;
        pub fn sqlite3_close(db: *mut sqlite3) -> c_int;
        pub fn sqlite3_busy_timeout(db: *mut sqlite3, ms: c_int) -> c_int;
    }
}

/// A connection with one prepared point query.
pub struct Db {
    db: *mut sqlite3,
    get: *mut sqlite3_stmt,
}

// SAFETY: opened with SQLITE_OPEN_NOMUTEX and used by one green thread at a
// time (`&mut self`); a connection may move between threads.
unsafe impl Send for Db {}

impl Db {
    /// Opens (creating) `path` and prepares the point query on table
    /// `t(id INTEGER PRIMARY KEY, name TEXT, score REAL)`.
    pub fn open(path: &str) -> Result<Db, String> {
        let p = CString::new(path).map_err(|e| e.to_string())?;
        let mut db = std::ptr::null_mut();
        let flags = libsqlite3_sys::SQLITE_OPEN_READWRITE
            | libsqlite3_sys::SQLITE_OPEN_CREATE
            | libsqlite3_sys::SQLITE_OPEN_NOMUTEX;
        // SAFETY: a C path and an out pointer.
        let rc = unsafe { slow::sqlite3_open_v2(p.as_ptr(), &mut db, flags, std::ptr::null()) };
        if rc != libsqlite3_sys::SQLITE_OK {
            // SAFETY: open returns a handle to close even on failure.
            unsafe { slow::sqlite3_close(db) };
            return Err(format!("cannot open {path}: error {rc}"));
        }
        // Connections opened at once contend for the file's locks while
        // they set it up: wait for them (SQLite's busy handler) rather than
        // fail with "database is locked".
        // SAFETY: a live connection.
        unsafe { slow::sqlite3_busy_timeout(db, 5000) };
        let mut me = Db { db, get: std::ptr::null_mut() };
        me.exec(
            "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, score REAL)",
        )?;
        let sql = c"SELECT id, name, score FROM t WHERE id = ?1";
        // SAFETY: a live connection, a C string, an out pointer.
        let rc = unsafe { slow::sqlite3_prepare_v2(me.db, sql.as_ptr(), -1, &mut me.get, std::ptr::null_mut()) };
        if rc != libsqlite3_sys::SQLITE_OK {
            return Err(me.error("prepare"));
        }
        Ok(me)
    }

    /// Runs SQL without results.
    pub fn exec(&mut self, sql: &str) -> Result<(), String> {
        let s = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: a live connection and a C string; no callback.
        let rc = unsafe { slow::sqlite3_exec(self.db, s.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut()) };
        if rc != libsqlite3_sys::SQLITE_OK { Err(self.error(sql)) } else { Ok(()) }
    }

    /// The row with `id`: (name, score), or `None`.
    pub fn get(&mut self, id: i64) -> Option<(String, f64)> {
        // SAFETY: our statement; the text is copied before the reset that
        // invalidates it.
        unsafe {
            quick::sqlite3_bind_int64(self.get, 1, id);
            let row = if slow::sqlite3_step(self.get) == libsqlite3_sys::SQLITE_ROW {
                let got = quick::sqlite3_column_int64(self.get, 0);
                debug_assert_eq!(got, id);
                let name = quick::sqlite3_column_text(self.get, 1);
                let name = if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name.cast()).to_string_lossy().into_owned()
                };
                Some((name, quick::sqlite3_column_double(self.get, 2)))
            } else {
                None
            };
            quick::sqlite3_reset(self.get);
            row
        }
    }

    fn error(&self, what: &str) -> String {
        // SAFETY: a live connection; the message is copied at once.
        let m = unsafe { CStr::from_ptr(quick::sqlite3_errmsg(self.db)) };
        format!("{what}: {}", m.to_string_lossy())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: finalized and closed once.
        unsafe {
            slow::sqlite3_finalize(self.get);
            slow::sqlite3_close(self.db);
        }
    }
}
