//! The key-value store: SQLite (the system library, in WAL mode) through
//! bindings ffiber-build generated from `sqlite3.h`. Every call is a
//! default-mode foreign call: if SQLite blocks (disk, a busy lock), the
//! monitor hands the P to another OS thread and other connections run.

use std::ffi::CString;
use std::path::{Path, PathBuf};

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, clippy::all)]
mod sqlite {
    include!(concat!(env!("OUT_DIR"), "/sqlite.rs"));
}

/// One SQLite connection with its prepared statements (reused for every
/// request that borrows the connection).
pub struct Conn {
    db: *mut sqlite::sqlite3,
    get: *mut sqlite::sqlite3_stmt,
    put: *mut sqlite::sqlite3_stmt,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX, which lets a
// connection move between threads as long as one thread uses it at a time;
// `Conn` is used through `&mut self` only.
unsafe impl Send for Conn {}

impl Conn {
    /// Opens (creating if needed) the database at `path`: WAL mode, a
    /// 5-second busy timeout, and the `kv` table.
    pub fn open(path: &Path) -> Result<Conn, String> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let mut db = std::ptr::null_mut();
        let flags = sqlite::SQLITE_OPEN_READWRITE | sqlite::SQLITE_OPEN_CREATE | sqlite::SQLITE_OPEN_NOMUTEX;
        // SAFETY: a valid C path and out pointer; no VFS name (null).
        let rc = unsafe { sqlite::sqlite3_open_v2(cpath.as_ptr(), &mut db, flags, std::ptr::null()) };
        let mut c = Conn { db, get: std::ptr::null_mut(), put: std::ptr::null_mut() };
        if rc != sqlite::SQLITE_OK {
            return Err(format!("opening {}: {}", path.display(), c.errmsg()));
        }
        // SAFETY: a live connection.
        unsafe { sqlite::sqlite3_busy_timeout(c.db, 5000) };
        c.exec(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v BLOB NOT NULL)",
        )?;
        c.get = c.prepare("SELECT v FROM kv WHERE k = ?1")?;
        c.put = c.prepare("INSERT INTO kv(k, v) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v")?;
        Ok(c)
    }

    fn errmsg(&self) -> String {
        // SAFETY: sqlite3_errmsg accepts any connection handle (even null)
        // and returns a NUL-terminated string it owns.
        unsafe { ffiber::ffi::rust_string(sqlite::sqlite3_errmsg(self.db)) }
    }

    fn exec(&mut self, sql: &str) -> Result<(), String> {
        let c = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: a live connection, a valid SQL string, no callback.
        let rc = unsafe { sqlite::sqlite3_exec(self.db, c.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut()) };
        if rc != sqlite::SQLITE_OK {
            return Err(format!("{sql}: {}", self.errmsg()));
        }
        Ok(())
    }

    fn prepare(&mut self, sql: &str) -> Result<*mut sqlite::sqlite3_stmt, String> {
        let c = CString::new(sql).map_err(|e| e.to_string())?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: a live connection, a valid SQL string (-1: up to its NUL),
        // a valid out pointer; the tail is not wanted.
        let rc = unsafe { sqlite::sqlite3_prepare_v2(self.db, c.as_ptr(), -1, &mut stmt, std::ptr::null_mut()) };
        if rc != sqlite::SQLITE_OK {
            return Err(format!("{sql}: {}", self.errmsg()));
        }
        Ok(stmt)
    }

    /// The value stored under `key`, if any.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let s = self.get;
        // SAFETY: `s` is this connection's prepared statement; the key's
        // bytes stay valid until the reset below (SQLITE_STATIC: null
        // destructor), and the column's bytes are copied before the reset.
        unsafe {
            sqlite::sqlite3_bind_text(s, 1, key.as_ptr().cast(), key.len() as i32, None);
            let rc = sqlite::sqlite3_step(s);
            let out = match rc {
                sqlite::SQLITE_ROW => {
                    let p = sqlite::sqlite3_column_blob(s, 0);
                    let n = sqlite::sqlite3_column_bytes(s, 0) as usize;
                    Ok(Some(if n == 0 { Vec::new() } else { std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec() }))
                }
                sqlite::SQLITE_DONE => Ok(None),
                _ => Err(format!("get {key:?}: {}", self.errmsg())),
            };
            sqlite::sqlite3_reset(s);
            sqlite::sqlite3_clear_bindings(s);
            out
        }
    }

    /// Stores `value` under `key`; returns once SQLite committed it.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let s = self.put;
        // SAFETY: as in `get`: the bound bytes outlive the step (reset
        // before returning).
        unsafe {
            sqlite::sqlite3_bind_text(s, 1, key.as_ptr().cast(), key.len() as i32, None);
            sqlite::sqlite3_bind_blob(s, 2, value.as_ptr().cast(), value.len() as i32, None);
            let rc = sqlite::sqlite3_step(s);
            let out = if rc == sqlite::SQLITE_DONE { Ok(()) } else { Err(format!("put {key:?}: {}", self.errmsg())) };
            sqlite::sqlite3_reset(s);
            sqlite::sqlite3_clear_bindings(s);
            out
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the statements belong to this connection and are
        // finalized once, before it closes (null is accepted too).
        unsafe {
            sqlite::sqlite3_finalize(self.get);
            sqlite::sqlite3_finalize(self.put);
            sqlite::sqlite3_close_v2(self.db);
        }
    }
}

/// A pool of connections to one database: a request borrows one (opening
/// a new one when all are busy) and gives it back.
pub struct Store {
    path: PathBuf,
    idle: ffiber::sync::Mutex<Vec<Conn>>,
}

impl Store {
    /// Opens the database (one connection, to create the table and catch
    /// errors now rather than at the first request).
    pub fn open(path: &Path) -> Result<Store, String> {
        let first = Conn::open(path)?;
        Ok(Store { path: path.to_owned(), idle: ffiber::sync::Mutex::new(vec![first]) })
    }

    /// Runs `f` with a connection.
    pub fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, String>) -> Result<T, String> {
        let conn = self.idle.lock().pop();
        let mut conn = match conn {
            Some(c) => c,
            None => Conn::open(&self.path)?,
        };
        let r = f(&mut conn);
        self.idle.lock().push(conn);
        r
    }

    /// Closes every connection (the last one checkpoints the WAL).
    pub fn close(&self) {
        drop(std::mem::take(&mut *self.idle.lock()));
    }
}
