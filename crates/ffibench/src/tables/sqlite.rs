//! The `sqlite` table (issue 14): the talk's question in a real workload.
//! 64 workers, each with its own connection and prepared statements, run
//! point reads (every column of a random row) or a mix with 10% single-row
//! updates in transactions, for a fixed time, against one on-disk
//! database in WAL mode with 100,000 rows. Same SQL, same data, same
//! system SQLite for every row.
//!
//! Rows measured here: ffiber with bindings ffiber-build generated from
//! `sqlite3.h` in the default mode, and with the calls that never block in
//! NonBlocking mode ("tuned"); 64 plain OS threads calling libsqlite3
//! through a hand-written `extern "C"` block (the floor); rusqlite on 64 OS
//! threads; tokio with rusqlite through `spawn_blocking` per query; go-lib
//! 0.6 with each query inside `with_syscall`; and Go
//! (`bench/peers/go/sqlite`) with `github.com/mattn/go-sqlite3` through
//! `database/sql` and through its driver directly, and with
//! `modernc.org/sqlite` (no cgo). Each worker times each query; the Rust
//! rows on the C API also count their C calls.

use super::scenario_rows;
use crate::peers::{Peer, go_build};
use crate::{Options, report};
use std::collections::BTreeMap;
use std::ffi::{CString, c_char, c_void};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Rows in the table.
pub const ROWS: i64 = 100_000;
/// Workers (connections).
pub const WORKERS: usize = 64;

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, clippy::all)]
mod sqlite_default {
    include!(concat!(env!("OUT_DIR"), "/sqlite_default.rs"));
}

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, clippy::all)]
mod sqlite_tuned {
    include!(concat!(env!("OUT_DIR"), "/sqlite_tuned.rs"));
}

/// The C floor: libsqlite3 called directly (the generated modules link it).
mod raw {
    use super::sqlite_default::{sqlite3, sqlite3_stmt};
    use std::ffi::{c_char, c_void};
    // The types of the generated declarations of the same symbols, so
    // that the two agree (rustc checks that clashing declarations match).
    unsafe extern "C" {
        pub fn sqlite3_open_v2(p: *const c_char, db: *mut *mut sqlite3, flags: i32, vfs: *const c_char) -> i32;
        pub fn sqlite3_close_v2(db: *mut sqlite3) -> i32;
        pub fn sqlite3_busy_timeout(db: *mut sqlite3, ms: i32) -> i32;
        pub fn sqlite3_exec(
            db: *mut sqlite3,
            sql: *const c_char,
            cb: Option<unsafe extern "C" fn(*mut c_void, i32, *mut *mut c_char, *mut *mut c_char) -> i32>,
            a: *mut c_void,
            e: *mut *mut c_char,
        ) -> i32;
        pub fn sqlite3_prepare_v2(
            db: *mut sqlite3,
            sql: *const c_char,
            n: i32,
            st: *mut *mut sqlite3_stmt,
            tail: *mut *const c_char,
        ) -> i32;
        pub fn sqlite3_bind_int64(st: *mut sqlite3_stmt, i: i32, v: i64) -> i32;
        pub fn sqlite3_step(st: *mut sqlite3_stmt) -> i32;
        pub fn sqlite3_column_int64(st: *mut sqlite3_stmt, i: i32) -> i64;
        pub fn sqlite3_column_text(st: *mut sqlite3_stmt, i: i32) -> *const u8;
        pub fn sqlite3_column_bytes(st: *mut sqlite3_stmt, i: i32) -> i32;
        pub fn sqlite3_column_double(st: *mut sqlite3_stmt, i: i32) -> f64;
        pub fn sqlite3_reset(st: *mut sqlite3_stmt) -> i32;
        pub fn sqlite3_finalize(st: *mut sqlite3_stmt) -> i32;
    }
}

const SQLITE_ROW: i32 = 100;
const SQLITE_DONE: i32 = 101;

/// The C calls the workload makes, three ways (all `unsafe`: raw C).
trait Api {
    unsafe fn open(p: *const c_char, db: *mut *mut c_void) -> i32;
    unsafe fn close(db: *mut c_void);
    unsafe fn busy(db: *mut c_void, ms: i32);
    unsafe fn exec(db: *mut c_void, sql: *const c_char) -> i32;
    unsafe fn prepare(db: *mut c_void, sql: *const c_char, st: *mut *mut c_void) -> i32;
    unsafe fn bind_int64(st: *mut c_void, i: i32, v: i64) -> i32;
    unsafe fn step(st: *mut c_void) -> i32;
    unsafe fn col_int64(st: *mut c_void, i: i32) -> i64;
    unsafe fn col_text(st: *mut c_void, i: i32) -> *const u8;
    unsafe fn col_bytes(st: *mut c_void, i: i32) -> i32;
    unsafe fn col_double(st: *mut c_void, i: i32) -> f64;
    unsafe fn reset(st: *mut c_void) -> i32;
    unsafe fn finalize(st: *mut c_void);
}

/// `Api` through one of the generated modules.
macro_rules! generated_api {
    ($name:ident, $m:ident) => {
        struct $name;
        impl Api for $name {
            unsafe fn open(p: *const c_char, db: *mut *mut c_void) -> i32 {
                let flags = $m::SQLITE_OPEN_READWRITE | $m::SQLITE_OPEN_CREATE | $m::SQLITE_OPEN_NOMUTEX;
                // SAFETY: forwarded: the caller passes a C path and an out pointer.
                unsafe { $m::sqlite3_open_v2(p, db.cast(), flags, std::ptr::null()) }
            }
            unsafe fn close(db: *mut c_void) {
                // SAFETY: forwarded: a connection this workload opened.
                unsafe { $m::sqlite3_close_v2(db.cast()) };
            }
            unsafe fn busy(db: *mut c_void, ms: i32) {
                // SAFETY: forwarded: a live connection. SQLite's own busy
                // handler: it sleeps with `usleep`, inside C (which, in the
                // default mode, gives the P up for the sleep: `ffiber::ffi::usleep`).
                unsafe { $m::sqlite3_busy_timeout(db.cast(), ms) };
            }
            unsafe fn exec(db: *mut c_void, sql: *const c_char) -> i32 {
                let n = std::ptr::null_mut();
                // SAFETY: forwarded: a live connection and a C string; no callback.
                unsafe { $m::sqlite3_exec(db.cast(), sql, None, n, std::ptr::null_mut()) }
            }
            unsafe fn prepare(db: *mut c_void, sql: *const c_char, st: *mut *mut c_void) -> i32 {
                // SAFETY: forwarded: a live connection, a C string, an out pointer.
                unsafe { $m::sqlite3_prepare_v2(db.cast(), sql, -1, st.cast(), std::ptr::null_mut()) }
            }
            unsafe fn bind_int64(st: *mut c_void, i: i32, v: i64) -> i32 {
                // SAFETY: forwarded: a live statement.
                unsafe { $m::sqlite3_bind_int64(st.cast(), i, v) }
            }
            unsafe fn step(st: *mut c_void) -> i32 {
                // SAFETY: forwarded: a live statement.
                unsafe { $m::sqlite3_step(st.cast()) }
            }
            unsafe fn col_int64(st: *mut c_void, i: i32) -> i64 {
                // SAFETY: forwarded: a statement on a row.
                unsafe { $m::sqlite3_column_int64(st.cast(), i) }
            }
            unsafe fn col_text(st: *mut c_void, i: i32) -> *const u8 {
                // SAFETY: forwarded: a statement on a row.
                unsafe { $m::sqlite3_column_text(st.cast(), i) }
            }
            unsafe fn col_bytes(st: *mut c_void, i: i32) -> i32 {
                // SAFETY: forwarded: a statement on a row.
                unsafe { $m::sqlite3_column_bytes(st.cast(), i) }
            }
            unsafe fn col_double(st: *mut c_void, i: i32) -> f64 {
                // SAFETY: forwarded: a statement on a row.
                unsafe { $m::sqlite3_column_double(st.cast(), i) }
            }
            unsafe fn reset(st: *mut c_void) -> i32 {
                // SAFETY: forwarded: a live statement.
                unsafe { $m::sqlite3_reset(st.cast()) }
            }
            unsafe fn finalize(st: *mut c_void) {
                // SAFETY: forwarded: a statement finalized once.
                unsafe { $m::sqlite3_finalize(st.cast()) };
            }
        }
    };
}

generated_api!(Default_, sqlite_default);
generated_api!(Tuned, sqlite_tuned);

/// Every connection's busy timeout.
const BUSY_TIMEOUT_MS: i32 = 5000;

struct Raw;
impl Api for Raw {
    unsafe fn open(p: *const c_char, db: *mut *mut c_void) -> i32 {
        // SAFETY: forwarded (see `Api`).
        unsafe { raw::sqlite3_open_v2(p, db.cast(), 2 | 4 | 0x8000, std::ptr::null()) }
    }
    unsafe fn close(db: *mut c_void) {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_close_v2(db.cast()) };
    }
    unsafe fn busy(db: *mut c_void, ms: i32) {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_busy_timeout(db.cast(), ms) };
    }
    unsafe fn exec(db: *mut c_void, sql: *const c_char) -> i32 {
        let n = std::ptr::null_mut();
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_exec(db.cast(), sql, None, n, std::ptr::null_mut()) }
    }
    unsafe fn prepare(db: *mut c_void, sql: *const c_char, st: *mut *mut c_void) -> i32 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_prepare_v2(db.cast(), sql, -1, st.cast(), std::ptr::null_mut()) }
    }
    unsafe fn bind_int64(st: *mut c_void, i: i32, v: i64) -> i32 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_bind_int64(st.cast(), i, v) }
    }
    unsafe fn step(st: *mut c_void) -> i32 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_step(st.cast()) }
    }
    unsafe fn col_int64(st: *mut c_void, i: i32) -> i64 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_column_int64(st.cast(), i) }
    }
    unsafe fn col_text(st: *mut c_void, i: i32) -> *const u8 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_column_text(st.cast(), i) }
    }
    unsafe fn col_bytes(st: *mut c_void, i: i32) -> i32 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_column_bytes(st.cast(), i) }
    }
    unsafe fn col_double(st: *mut c_void, i: i32) -> f64 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_column_double(st.cast(), i) }
    }
    unsafe fn reset(st: *mut c_void) -> i32 {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_reset(st.cast()) }
    }
    unsafe fn finalize(st: *mut c_void) {
        // SAFETY: forwarded.
        unsafe { raw::sqlite3_finalize(st.cast()) };
    }
}

/// One worker's connection and statements.
struct Conn<A: Api> {
    db: *mut c_void,
    get: *mut c_void,
    upd: *mut c_void,
    begin: CString,
    commit: CString,
    _api: std::marker::PhantomData<A>,
}

// SAFETY: a connection opened with SQLITE_OPEN_NOMUTEX may move between
// threads if one thread uses it at a time: each worker owns its `Conn`.
unsafe impl<A: Api> Send for Conn<A> {}

impl<A: Api> Conn<A> {
    fn open(path: &Path) -> Result<Conn<A>, String> {
        let p = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let mut db = std::ptr::null_mut();
        // SAFETY: a C path and an out pointer.
        if unsafe { A::open(p.as_ptr(), &mut db) } != 0 {
            return Err(format!("cannot open {}", path.display()));
        }
        // SAFETY: a live connection.
        unsafe { A::busy(db, BUSY_TIMEOUT_MS) };
        // `synchronous` is per connection (WAL mode is kept in the file):
        // NORMAL, as Go's DSN asks, or every commit would fsync.
        let sync = CString::new("PRAGMA synchronous=NORMAL").expect("no NUL");
        // SAFETY: a live connection and a C string.
        unsafe { A::exec(db, sync.as_ptr()) };
        let prep = |sql: &str| {
            let c = CString::new(sql).expect("no NUL");
            let mut st = std::ptr::null_mut();
            // SAFETY: a live connection, a C string, an out pointer.
            match unsafe { A::prepare(db, c.as_ptr(), &mut st) } {
                0 => Ok(st),
                rc => Err(format!("prepare {sql}: error {rc}")),
            }
        };
        let get = prep("SELECT id, name, score FROM t WHERE id = ?1")?;
        let upd = prep("UPDATE t SET score = score + 1 WHERE id = ?1")?;
        Ok(Conn {
            db,
            get,
            upd,
            begin: CString::new("BEGIN IMMEDIATE").expect("no NUL"),
            commit: CString::new("COMMIT").expect("no NUL"),
            _api: std::marker::PhantomData,
        })
    }

    /// A point read of every column; returns the C calls made.
    fn read(&mut self, id: i64) -> u32 {
        // SAFETY: this worker's statement; the text pointer is read before
        // the reset that invalidates it.
        unsafe {
            A::bind_int64(self.get, 1, id);
            let rc = A::step(self.get);
            assert_eq!(rc, SQLITE_ROW, "row {id} missing");
            let got = A::col_int64(self.get, 0);
            let name = A::col_text(self.get, 1);
            let n = A::col_bytes(self.get, 1);
            let score = A::col_double(self.get, 2);
            std::hint::black_box((got, name, n, score));
            debug_assert_eq!(got, id);
            A::reset(self.get);
        }
        8
    }

    /// A single-row update in a transaction; returns the C calls made.
    fn update(&mut self, id: i64) -> u32 {
        // SAFETY: this worker's connection and statement.
        unsafe {
            if A::exec(self.db, self.begin.as_ptr()) != 0 {
                return 1; // busy past the timeout: counted, not retried
            }
            A::bind_int64(self.upd, 1, id);
            let rc = A::step(self.upd);
            assert_eq!(rc, SQLITE_DONE, "update {id}: {rc}");
            A::reset(self.upd);
            A::exec(self.db, self.commit.as_ptr());
        }
        5
    }
}

impl<A: Api> Drop for Conn<A> {
    fn drop(&mut self) {
        // SAFETY: statements finalized once, then their connection closed.
        unsafe {
            A::finalize(self.get);
            A::finalize(self.upd);
            A::close(self.db);
        }
    }
}

/// Creates the database: `t(id INTEGER PRIMARY KEY, name TEXT, score
/// REAL)` with `ROWS` rows, WAL mode.
pub fn create(path: &Path) -> Result<(), String> {
    let c = Conn::<Raw>::open_bare(path)?;
    let sql = format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         INSERT INTO t SELECT i, 'name-' || i, i * 0.5 FROM n;"
    );
    let s = CString::new(sql).expect("no NUL");
    // SAFETY: a live connection and a C string.
    let rc = unsafe { Raw::exec(c, s.as_ptr()) };
    // SAFETY: opened above, closed once.
    unsafe { Raw::close(c) };
    if rc != 0 { Err(format!("creating the table: error {rc}")) } else { Ok(()) }
}

impl Conn<Raw> {
    fn open_bare(path: &Path) -> Result<*mut c_void, String> {
        let p = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let mut db = std::ptr::null_mut();
        // SAFETY: a C path and an out pointer.
        if unsafe { Raw::open(p.as_ptr(), &mut db) } != 0 {
            return Err(format!("cannot open {}", path.display()));
        }
        Ok(db)
    }
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    queries: u64,
    calls: u64,
    lat_ns: Vec<u32>,
}

/// The next pseudo-random row and whether it is a write.
fn next(x: &mut u64, writes_pct: u64) -> (i64, bool) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    ((*x % ROWS as u64) as i64 + 1, *x % 100 < writes_pct)
}

/// One worker: queries until `stop`, `writes_pct` of them updates.
fn work<A: Api>(path: &Path, seed: u64, writes_pct: u64, stop: &AtomicBool) -> Tally {
    work_with::<A>(path, seed, writes_pct, stop, &|q| q())
}

/// [`work`], each query run through `wrap` (go-lib's `with_syscall`).
fn work_with<A: Api>(
    path: &Path,
    seed: u64,
    writes_pct: u64,
    stop: &AtomicBool,
    wrap: &dyn Fn(&mut dyn FnMut() -> u32) -> u32,
) -> Tally {
    let mut c = Conn::<A>::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut t = Tally { lat_ns: Vec::with_capacity(1 << 16), ..Default::default() };
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        let (id, write) = next(&mut x, writes_pct);
        let start = Instant::now();
        let calls = wrap(&mut || if write { c.update(id) } else { c.read(id) });
        let ns = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        t.queries += 1;
        t.calls += calls as u64;
        if t.queries.is_multiple_of(8) {
            t.lat_ns.push(ns);
        }
    }
    t
}

/// A rusqlite connection with the same statements (cached).
fn rusqlite_conn(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("rusqlite: {e}"));
    c.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    c.pragma_update(None, "synchronous", "NORMAL").expect("synchronous");
    c
}

/// One query through rusqlite (its own C calls: not counted).
fn rusqlite_query(c: &rusqlite::Connection, id: i64, write: bool) {
    if write {
        c.execute_batch("BEGIN IMMEDIATE").expect("begin");
        c.prepare_cached("UPDATE t SET score = score + 1 WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .expect("update");
        c.execute_batch("COMMIT").expect("commit");
    } else {
        let row = c
            .prepare_cached("SELECT id, name, score FROM t WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, f64>(2)?)))
            })
            .expect("read");
        std::hint::black_box(row);
    }
}

/// rusqlite on a plain OS thread.
fn work_rusqlite(path: &Path, seed: u64, writes_pct: u64, stop: &AtomicBool) -> Tally {
    let c = rusqlite_conn(path);
    let mut t = Tally { lat_ns: Vec::with_capacity(1 << 16), ..Default::default() };
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        let (id, write) = next(&mut x, writes_pct);
        let start = Instant::now();
        rusqlite_query(&c, id, write);
        t.record(start);
    }
    t
}

impl Tally {
    fn record(&mut self, start: Instant) {
        self.queries += 1;
        if self.queries.is_multiple_of(8) {
            self.lat_ns.push(start.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        }
    }
}

/// The call layer's cost per read query: the same read, of one cached row
/// on one connection, timed through `layer` and through the plain C API
/// (`Raw`), alternating, fastest of several rounds each; the difference in
/// ns (0 if the layer measured faster: it adds nothing measurable).
fn layer_ns(path: &Path, layer: &mut dyn FnMut(i64)) -> f64 {
    const K: u32 = 5_000;
    let mut raw = Conn::<Raw>::open(path).unwrap_or_else(|e| panic!("{e}"));
    let time = |f: &mut dyn FnMut(i64)| {
        let t = Instant::now();
        for i in 0..K {
            f(1 + (i % 8) as i64);
        }
        t.elapsed().as_nanos() as f64 / K as f64
    };
    let (mut best_layer, mut best_raw) = (f64::MAX, f64::MAX);
    for _ in 0..15 {
        best_raw = best_raw.min(time(&mut |id| {
            raw.read(id);
        }));
        best_layer = best_layer.min(time(layer));
    }
    (best_layer - best_raw).max(0.0)
}

/// [`layer_ns`] for a generated API `A` (on the calling green thread).
fn layer_ns_of<A: Api>(path: &Path) -> f64 {
    let mut c = Conn::<A>::open(path).unwrap_or_else(|e| panic!("{e}"));

    layer_ns(path, &mut |id| {
        c.read(id);
    })
}

/// Child mode: `--internal sqlite-<variant> <db> <read|mix> <ms>`; prints
/// `queries_per_s`, `calls_per_query`, `p50_us`, `p99_us`.
pub fn run(variant: &str, args: &[String]) {
    let db = Path::new(args.first().map_or("", String::as_str)).to_owned();
    let writes = if args.get(1).map(String::as_str) == Some("mix") { 10 } else { 0 };
    let ms: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3000);
    let stop = Arc::new(AtomicBool::new(false));
    let mut started = Instant::now();
    // The call layer's cost per read query (see `layer_ns`), measured
    // before the workers start; NaN where it is not measured.
    let mut layer = f64::NAN;
    let tallies: Vec<Tally> = match variant {
        "threads" => {
            layer = 0.0; // the floor: this row is the plain C API
            started = Instant::now();
            let hs: Vec<_> = (0..WORKERS)
                .map(|i| {
                    let (db, stop) = (db.clone(), stop.clone());
                    std::thread::spawn(move || work::<Raw>(&db, i as u64 * 7919 + 1, writes, &stop))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(ms));
            stop.store(true, Ordering::Relaxed);
            hs.into_iter().map(|h| h.join().expect("worker")).collect()
        }
        "ffiber" | "ffiber-tuned" | "ffiber-nohook" => {
            let which = variant.to_string();
            let rt = ffiber::Runtime::builder().build().expect("runtime");
            let (tallies, l, t0) = rt.block_on(move || {
                let layer = match which.as_str() {
                    "ffiber-tuned" => layer_ns_of::<Tuned>(&db),
                    _ => layer_ns_of::<Default_>(&db),
                };
                let started = Instant::now();
                let hs: Vec<_> = (0..WORKERS)
                    .map(|i| {
                        let (db, stop, which) = (db.clone(), stop.clone(), which.clone());
                        ffiber::go(move || {
                            let seed = i as u64 * 7919 + 1;
                            match which.as_str() {
                                "ffiber-tuned" => work::<Tuned>(&db, seed, writes, &stop),
                                _ => work::<Default_>(&db, seed, writes, &stop),
                            }
                        })
                    })
                    .collect();
                ffiber::sleep(Duration::from_millis(ms));
                stop.store(true, Ordering::Relaxed);
                (hs.into_iter().map(|h| h.join().expect("worker")).collect(), layer, started)
            });
            (layer, started) = (l, t0);
            tallies
        }
        "rusqlite" => {
            let c = rusqlite_conn(&db);
            layer = layer_ns(&db, &mut |id| rusqlite_query(&c, id, false));
            drop(c);
            started = Instant::now();
            let hs: Vec<_> = (0..WORKERS)
                .map(|i| {
                    let (db, stop) = (db.clone(), stop.clone());
                    std::thread::spawn(move || work_rusqlite(&db, i as u64 * 7919 + 1, writes, &stop))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(ms));
            stop.store(true, Ordering::Relaxed);
            hs.into_iter().map(|h| h.join().expect("worker")).collect()
        }
        "tokio" => {
            // 64 tasks; each query moves the task's rusqlite connection to
            // a blocking thread and back (spawn_blocking per query).
            let rt = tokio::runtime::Builder::new_multi_thread().enable_time().build().expect("tokio runtime");
            // Per query: the hop to a blocking thread and back, around a
            // rusqlite read, awaited from a task (as the workers do).
            let d = db.clone();
            layer = rt.block_on(async move {
                const K: u32 = 2_000;
                let c = Arc::new(std::sync::Mutex::new(rusqlite_conn(&d)));
                let mut raw = Conn::<Raw>::open(&d).unwrap_or_else(|e| panic!("{e}"));
                let (mut best_hop, mut best_raw) = (f64::MAX, f64::MAX);
                for _ in 0..15 {
                    let t = Instant::now();
                    for i in 0..K {
                        raw.read(1 + (i % 8) as i64);
                    }
                    best_raw = best_raw.min(t.elapsed().as_nanos() as f64 / K as f64);
                    let t = Instant::now();
                    for i in 0..K {
                        let c = c.clone();
                        let id = 1 + (i % 8) as i64;
                        tokio::task::spawn_blocking(move || rusqlite_query(&c.lock().expect("conn"), id, false))
                            .await
                            .expect("query");
                    }
                    best_hop = best_hop.min(t.elapsed().as_nanos() as f64 / K as f64);
                }
                (best_hop - best_raw).max(0.0)
            });
            started = Instant::now();
            rt.block_on(async move {
                let hs: Vec<_> = (0..WORKERS)
                    .map(|i| {
                        let (db, stop) = (db.clone(), stop.clone());
                        tokio::spawn(async move {
                            let mut c = Some(rusqlite_conn(&db));
                            let mut t = Tally { lat_ns: Vec::with_capacity(1 << 16), ..Default::default() };
                            let mut x = (i as u64 * 7919 + 1) | 1;
                            while !stop.load(Ordering::Relaxed) {
                                let (id, write) = next(&mut x, writes);
                                let start = Instant::now();
                                let conn = c.take().expect("connection");
                                c = Some(
                                    tokio::task::spawn_blocking(move || {
                                        rusqlite_query(&conn, id, write);
                                        conn
                                    })
                                    .await
                                    .expect("query"),
                                );
                                t.record(start);
                            }
                            t
                        })
                    })
                    .collect();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                stop.store(true, Ordering::Relaxed);
                let mut out = Vec::new();
                for h in hs {
                    out.push(h.await.expect("worker"));
                }
                out
            })
        }
        "golib" => go_lib::__main_entry(move || {
            // go-lib's goroutines, each query inside `with_syscall` (its P
            // handed off around the call).
            let out = Arc::new(std::sync::Mutex::new(Vec::new()));
            let done = Arc::new(go_lib::sync::WaitGroup::new());
            done.add(WORKERS as i64);
            for i in 0..WORKERS {
                let (db, stop, out, done) = (db.clone(), stop.clone(), out.clone(), done.clone());
                go_lib::go!(move || {
                    // go-lib keeps running after a goroutine panics: end the
                    // process instead, with the message, so that the table
                    // reports it rather than waiting for ever.
                    let run = std::panic::AssertUnwindSafe(|| {
                        work_with::<Raw>(&db, i as u64 * 7919 + 1, writes, &stop, &|q| go_lib::with_syscall(q))
                    });
                    match std::panic::catch_unwind(run) {
                        Ok(t) => out.lock().expect("tallies").push(t),
                        Err(_) => std::process::exit(1),
                    }
                    done.done();
                });
            }
            go_lib::sleep(Duration::from_millis(ms));
            stop.store(true, Ordering::Relaxed);
            done.wait();
            std::mem::take(&mut *out.lock().expect("tallies"))
        }),
        other => {
            eprintln!("ffibench: unknown sqlite variant {other}");
            std::process::exit(2);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    // Fairness: the slowest worker's queries over the mean worker's. A
    // runtime that lets a few workers keep the CPU and starves the rest
    // serves fewer connections, whose caches stay warm: faster, and wrong.
    let slowest = tallies.iter().map(|t| t.queries).min().unwrap_or(0);
    let queries: u64 = tallies.iter().map(|t| t.queries).sum();
    let fair = if queries == 0 { 0.0 } else { slowest as f64 * tallies.len() as f64 / queries as f64 };
    let calls: u64 = tallies.iter().map(|t| t.calls).sum();
    let mut lat: Vec<u32> = tallies.into_iter().flat_map(|t| t.lat_ns).collect();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!("queries_per_s={:.0}", queries as f64 / secs);
    if calls > 0 {
        println!("calls_per_query={:.2}", calls as f64 / queries.max(1) as f64);
    }
    if layer.is_finite() {
        println!("layer_ns={layer:.1}");
    }
    println!("p50_us={:.1}", pct(0.5) as f64 / 1000.0);
    println!("p99_us={:.1}", pct(0.99) as f64 / 1000.0);
    println!("slowest_share={fair:.2}");
}

/// Builds the table: every peer on reads, then on the write mix, runs
/// interleaved (every other run in the reverse order); a fresh database
/// per table run.
pub fn table(opts: &Options) -> report::Table {
    let ms = if opts.quick { 300 } else { 3000 };
    let runs = opts.runs.min(5);
    let dir = match crate::scratch::ScratchDir::new("ffibench-sqlite") {
        Ok(d) => d,
        Err(e) => {
            return report::Table {
                title: "SQLite from many workers".into(),
                notes: vec![format!("could not create a scratch directory: {e}")],
                ..Default::default()
            };
        }
    };
    let db = dir.path().join("bench.db");
    let mut t = report::Table {
        title: format!(
            "SQLite from {WORKERS} workers: point reads of every column, and a mix with 10% single-row updates \
             ({ROWS} rows on disk, WAL; {} s a run, median of {runs})",
            ms as f64 / 1000.0
        ),
        ..Default::default()
    };
    if let Err(e) = create(&db) {
        t.notes.push(format!("could not create the database: {e}"));
        return t;
    }
    let me = |v: &str, name: &str| {
        let mut c = Command::new(std::env::current_exe().expect("own executable"));
        c.args(["--internal", &format!("sqlite-{v}")]).arg(&db);
        if v == "ffiber-nohook" {
            c.env("FFIBER_USLEEP_HOOK", "0");
        }
        Peer { name: name.into(), cmd: Ok(c), counted: false }
    };
    let env = [
        ("CGO_ENABLED", "1".to_string()),
        ("GOPROXY", "off".to_string()),
        ("GOFLAGS", "-mod=mod -tags=libsqlite3".to_string()),
    ];
    let mut go = go_build("sqlite", "go-sqlite", &env, db.display().to_string());
    if let Err(e) = &mut go.cmd
        && e.contains("go-sqlite3")
    {
        *e = "github.com/mattn/go-sqlite3 is not in the Go module cache — run bench/peers/setup.sh".into();
    }
    // One Go binary, three ways to reach SQLite (its last argument).
    let go_way = |how: &str, label: &str| {
        let cmd = go.cmd.as_ref().map(|c| crate::peers::copy_of(c, &c.get_args().collect::<Vec<_>>()));
        (
            Peer { name: format!("{} + {label}", go.name), cmd: cmd.map_err(Clone::clone), counted: false },
            how.to_string(),
        )
    };
    let gos = [
        go_way("mattn", "mattn/go-sqlite3 (database/sql)"),
        go_way("mattn-driver", "mattn/go-sqlite3 (its driver directly)"),
        go_way("modernc", "modernc.org/sqlite (no cgo)"),
    ];
    let mut peers: Vec<(Peer, String)> = vec![
        (me("ffiber", "ffiber, generated, default mode"), String::new()),
        (me("ffiber-tuned", "ffiber, generated, per-function modes"), String::new()),
        (me("ffiber-nohook", "ffiber, default mode, usleep hook off"), String::new()),
        (me("threads", "64 OS threads, plain extern \"C\""), String::new()),
        (me("rusqlite", "rusqlite, 64 OS threads"), String::new()),
        (me("tokio", "tokio + rusqlite, spawn_blocking per query"), String::new()),
        (me("golib", "go-lib 0.6, with_syscall per query"), String::new()),
    ];
    peers.extend(gos);
    let (peers, tails): (Vec<Peer>, Vec<String>) = peers.into_iter().unzip();
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); peers.len()];
    let mut errors: Vec<Option<String>> = peers.iter().map(|p| p.cmd.as_ref().err().cloned()).collect();
    for run in 0..runs {
        // Every other run in the reverse order: the host's speed drifts
        // over minutes, and a row that always ran seconds before the
        // threads' row would carry that drift into every ratio the same
        // way (session 16 saw 112–166k queries/s for the threads' mix
        // within one hour).
        let order: Vec<usize> =
            if run % 2 == 0 { (0..peers.len()).collect() } else { (0..peers.len()).rev().collect() };
        for mode in ["read", "mix"] {
            for &i in &order {
                let p = &peers[i];
                if errors[i].is_some() {
                    continue;
                }
                eprint!("\rffibench: sqlite table, run {}/{runs}, {mode}: {}        ", run + 1, p.name);
                let base = p.cmd.as_ref().expect("checked");
                // (With the environment: the "usleep hook off" row's is
                // what makes it that row.)
                let mut c = crate::peers::copy_of(base, &base.get_args().collect::<Vec<_>>());
                c.args([mode, &ms.to_string()]);
                if !tails[i].is_empty() {
                    c.arg(&tails[i]);
                }
                match crate::peers::run_within(&mut c, Some(Duration::from_millis(3 * ms) + Duration::from_secs(20))) {
                    Ok(m) => {
                        for (k, v) in m {
                            if let Ok(v) = v.parse::<f64>() {
                                samples[i].entry(format!("{mode}_{k}")).or_default().push(v);
                            }
                        }
                    }
                    Err(e) => errors[i] = Some(e),
                }
            }
        }
    }
    drop(dir);
    eprint!("\r{:70}\r", "");
    // The call layer's share of the CPU time of a read: its cost per query
    // times queries per second, over the CPU time there is (every core
    // busy: 64 workers on this machine's cores), run by run.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for s in samples.iter_mut() {
        let (Some(l), Some(q)) = (s.get("read_layer_ns"), s.get("read_queries_per_s")) else { continue };
        let share: Vec<f64> = l.iter().zip(q).map(|(l, q)| 100.0 * l * q / (cores * 1e9)).collect();
        s.insert("read_layer_share".into(), share);
    }
    // Each row's queries/s over the plain threads' in the same run (the two
    // ran under a minute apart, in alternating order): the median of these
    // per-run ratios is what the goals compare, steadier than a ratio of
    // medians taken from different runs.
    let threads = peers.iter().position(|p| p.name.starts_with("64 OS threads"));
    for mode in ["read", "mix"] {
        let Some(base) = threads.and_then(|i| samples[i].get(&format!("{mode}_queries_per_s")).cloned()) else {
            continue;
        };
        for s in samples.iter_mut() {
            let Some(q) = s.get(&format!("{mode}_queries_per_s")) else { continue };
            let ratios: Vec<f64> = q.iter().zip(&base).filter(|(_, b)| **b > 0.0).map(|(q, b)| q / b).collect();
            s.insert(format!("{mode}_vs_threads"), ratios);
        }
    }
    scenario_rows(
        &mut t,
        "sqlite",
        &peers,
        &mut samples,
        &errors,
        &[
            ("read_queries_per_s", "reads: queries/s"),
            ("read_vs_threads", "reads: queries/s vs 64 OS threads, same run"),
            ("read_p50_us", "reads: p50 µs"),
            ("read_p99_us", "reads: p99 µs"),
            ("read_calls_per_query", "reads: C calls per query"),
            ("read_layer_ns", "reads: call layer, ns per query"),
            ("read_layer_share", "reads: call layer, % of CPU time"),
            ("read_slowest_share", "reads: slowest worker's queries / mean"),
            ("mix_queries_per_s", "10% writes: queries/s"),
            ("mix_vs_threads", "10% writes: queries/s vs 64 OS threads, same run"),
            ("mix_p50_us", "10% writes: p50 µs"),
            ("mix_p99_us", "10% writes: p99 µs"),
            ("mix_slowest_share", "10% writes: slowest worker's queries / mean"),
        ],
        |k, m| match k {
            _ if k.ends_with("vs_threads") => format!("{m:.2}x"),
            _ if k.ends_with("slowest_share") => format!("{m:.2}"),
            _ if k.ends_with("calls_per_query") || k.ends_with("share") => format!("{m:.1}"),
            _ => format!("{m:.0}"),
        },
    );
    t.notes.push(
        "Each worker owns a connection (SQLITE_OPEN_NOMUTEX) and two prepared statements; a read binds the id, steps, \
         reads id, name (text and its length) and score, and resets (8 C calls); an update runs BEGIN IMMEDIATE, bind, \
         step, reset, COMMIT (5 calls; writers serialize on SQLite's lock and wait in its busy handler, inside C). \
         ffiber's tuned bindings make bind, column and reset NonBlocking (they never wait); step and exec stay in the \
         default mode. SQLite's busy handler sleeps 1, 2, 5, 10… ms with usleep, inside C: ffiber's usleep \
         (ffiber::ffi::usleep) gives the P up during a default-mode call, so that it runs others at once, and when \
         the kernel wakes the thread the writer retries with a P (an idle or a spare one); the \"usleep hook off\" row (FFIBER_USLEEP_HOOK=0) sleeps the OS \
         thread instead, holding the P until the monitor takes it. Go's C calls per query are not counted (database/sql adds its own), nor rusqlite's. A peer \
         that does not finish within 3x its run plus 20 s is killed and reported (go-lib 0.6 with 64 goroutines in \
         with_syscall hangs here). The slowest worker's share of the mean worker's queries shows fairness: a runtime \
         that lets a few workers keep the CPU serves fewer connections, whose page caches stay warm — faster, and \
         unfair (ffiber did that before session 10: the slowest worker made no query at all)."
            .into(),
    );
    t.notes.push(format!(
        "Call layer: what a read costs over the plain C API. ffiber, rusqlite and tokio: the same read of a cached \
         row on one connection, timed through the layer and through a plain extern \"C\" block, alternating, fastest \
         of 15 rounds each, the difference (tokio: the spawn_blocking hop around a rusqlite read). Go + mattn: 8 cgo \
         calls (what a read needs at least) times one measured cgo call to a trivial SQLite function — a lower \
         bound, mattn makes more. 0 means no difference was measurable. The share: that cost times queries per second over the CPU time of {cores} cores."
    ));
    t
}

/// For tests: the workload on a small database, in this process.
#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database for test `tag`: its directory (to remove) and path.
    fn test_db(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ffibench-sqlite-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        create(&db).unwrap();
        (dir, db)
    }

    #[test]
    fn every_variant_reads_and_updates() {
        let (dir, db) = test_db("test");
        let stop = AtomicBool::new(false);
        let mut c = Conn::<Raw>::open(&db).unwrap();
        assert_eq!(c.read(42), 8);
        assert_eq!(c.update(42), 5);
        drop(c);
        let mut c = Conn::<Default_>::open(&db).unwrap();
        assert_eq!(c.read(ROWS), 8);
        drop(c);
        stop.store(true, Ordering::Relaxed);
        let t = work::<Tuned>(&db, 3, 10, &stop);
        assert_eq!(t.queries, 0, "a stopped worker makes no queries");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// SQLite's own busy handler, from a green thread: a writer that finds
    /// the write lock taken sleeps in it with `usleep`, which gives the P
    /// up for the sleep (a callback, in the trace), and gets the lock once
    /// the holder, on the same single P, commits.
    #[test]
    fn a_writer_waits_for_the_lock_parked_in_sqlites_busy_handler() {
        let (dir, db) = test_db("busy");
        let rt = ffiber::Runtime::builder().max_procs(1).trace_calls(true).build().unwrap();
        let path = db.clone();
        let rc = rt.block_on(move || {
            let holder = Conn::<Default_>::open(&path).unwrap();
            // SAFETY: a live connection and C strings, here and below.
            assert_eq!(unsafe { Default_::exec(holder.db, holder.begin.as_ptr()) }, 0);
            let waiter = ffiber::go(move || {
                let w = Conn::<Default_>::open(&path).unwrap();
                // SAFETY: as above.
                let rc = unsafe { Default_::exec(w.db, w.begin.as_ptr()) };
                // SAFETY: as above.
                unsafe { Default_::exec(w.db, w.commit.as_ptr()) };
                rc
            });
            // The one P runs this green thread while the waiter sleeps in
            // the busy handler; commit after a few of its sleeps.
            ffiber::sleep(Duration::from_millis(20));
            // SAFETY: as above.
            assert_eq!(unsafe { Default_::exec(holder.db, holder.commit.as_ptr()) }, 0);
            waiter.join().unwrap()
        });
        assert_eq!(rc, 0, "BEGIN IMMEDIATE got the lock once the holder committed");
        let exec = rt.call_stats().into_iter().find(|s| s.name == "sqlite3_exec").expect("traced");
        assert!(exec.callbacks >= 1, "the busy handler's sleeps gave the P up: {exec:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
