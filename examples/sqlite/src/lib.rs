//! SQLite from green threads, through bindings ffiber-build generated from
//! `sqlite3.h`; `sqlite3_exec` calls back into Rust (`#[ffiber::export]`)
//! for every row, and the callback finds its Rust state through an
//! `ffiber::Handle` passed as sqlite's `void *` context.

use ffiber::Handle;
use std::ffi::{CStr, CString};
use std::sync::Mutex;

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
pub mod sqlite {
    include!(concat!(env!("OUT_DIR"), "/sqlite.rs"));
}

/// An open database connection.
pub struct Db {
    raw: *mut sqlite::sqlite3,
}

// SAFETY: SQLite's default build is serialized (thread-safe); a connection
// may be used from any thread, one call at a time (`&mut self` for exec).
unsafe impl Send for Db {}

/// Rows collected by the `sqlite3_exec` callback.
type Rows = Mutex<Vec<Vec<Option<String>>>>;

/// Called by sqlite3_exec for every row (C -> Rust, back on the green thread).
#[ffiber::export(name = "ffiber_sqlite_row")]
fn on_row(ctx: *mut std::ffi::c_void, n: i32, values: *mut *mut i8, _names: *mut *mut i8) -> i32 {
    let Some(h) = Handle::<Rows>::from_raw(ctx as usize) else { return 1 };
    let row: Vec<Option<String>> = (0..n as usize)
        .map(|i| {
            // SAFETY: sqlite passes `n` column values, each NULL or a C string
            // valid during the callback.
            let p = unsafe { *values.add(i) };
            (!p.is_null()).then(|| {
                // SAFETY: non-null: a NUL-terminated string sqlite owns for
                // the duration of the callback; we copy it.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            })
        })
        .collect();
    h.with(|rows| rows.lock().unwrap().push(row)).map_or(1, |_| 0)
}

unsafe extern "C" {
    fn ffiber_sqlite_row(ctx: *mut std::ffi::c_void, n: i32, values: *mut *mut i8, names: *mut *mut i8) -> i32;
}

impl Db {
    /// Opens (or creates) a database; `":memory:"` for an in-memory one.
    pub fn open(path: &str) -> Result<Db, String> {
        let c = CString::new(path).map_err(|e| e.to_string())?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `c` is a valid C string and `raw` a valid out pointer.
        let rc = unsafe { sqlite::sqlite3_open(c.as_ptr(), &mut raw) };
        if rc != sqlite::SQLITE_OK {
            // SAFETY: sqlite3_close accepts the handle sqlite3_open returned (or null).
            unsafe { sqlite::sqlite3_close(raw) };
            return Err(format!("sqlite3_open({path}) failed: {rc}"));
        }
        Ok(Db { raw })
    }

    /// Runs `sql`, returning the rows it produced (through the callback).
    pub fn exec(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let c = CString::new(sql).map_err(|e| e.to_string())?;
        let rows = Handle::new(Rows::default());
        let mut err: *mut i8 = std::ptr::null_mut();
        let cb = Some(ffiber_sqlite_row as unsafe extern "C" fn(_, _, _, _) -> _);
        // SAFETY: a live connection, a valid SQL string, a C-ABI callback
        // with sqlite's signature, a context C hands back to it, and a valid
        // out pointer for the error message.
        let rc = unsafe { sqlite::sqlite3_exec(self.raw, c.as_ptr(), cb, rows.as_raw() as *mut _, &mut err) };
        let collected = rows.delete().map(|r| std::mem::take(&mut *r.lock().unwrap())).unwrap_or_default();
        if rc != sqlite::SQLITE_OK {
            let msg = if err.is_null() {
                format!("error {rc}")
            } else {
                // SAFETY: sqlite set `err` to a NUL-terminated message it allocated.
                unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
            };
            // SAFETY: `err` is sqlite's allocation (or null, which it accepts); freed once.
            unsafe { sqlite::sqlite3_free(err.cast()) };
            return Err(msg);
        }
        Ok(collected)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: closes the connection this value owns, once.
        unsafe { sqlite::sqlite3_close(self.raw) };
    }
}
