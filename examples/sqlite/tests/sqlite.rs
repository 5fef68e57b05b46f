//! SQLite in memory and on disk, from green threads, through the generated
//! bindings; rows come back through a callback from sqlite3_exec.

use ffiber_example_sqlite::{Db, sqlite};

#[test]
fn version_constant_matches_the_library() {
    // SAFETY: returns a static C string.
    let lib = unsafe { std::ffi::CStr::from_ptr(sqlite::sqlite3_libversion()) };
    assert_eq!(sqlite::SQLITE_VERSION, lib);
}

#[test]
fn in_memory_databases_from_many_green_threads() {
    let sums = ffiber::run(|| {
        let hs: Vec<_> = (0..16i64)
            .map(|g| {
                ffiber::go(move || {
                    let mut db = Db::open(":memory:").unwrap();
                    db.exec("CREATE TABLE t (x INTEGER, s TEXT)").unwrap();
                    for i in 0..20 {
                        db.exec(&format!("INSERT INTO t VALUES ({}, 'row {i}')", g * 100 + i)).unwrap();
                        ffiber::yield_now();
                    }
                    let rows = db.exec("SELECT sum(x), count(*) FROM t").unwrap();
                    rows[0][0].as_deref().unwrap().parse::<i64>().unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (g, s) in sums.into_iter().enumerate() {
        assert_eq!(s, (0..20).map(|i| g as i64 * 100 + i).sum::<i64>());
    }
}

#[test]
fn on_disk_database_and_errors() {
    let path = std::env::temp_dir().join(format!("ffiber-sqlite-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap().to_string();
    let rows = ffiber::run(move || {
        let mut db = Db::open(&p).unwrap();
        db.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)").unwrap();
        db.exec("INSERT INTO kv VALUES ('a', '1'), ('b', NULL)").unwrap();
        drop(db);
        // Reopened: the data is on disk.
        let mut db = Db::open(&p).unwrap();
        let err = db.exec("SELECT * FROM missing").unwrap_err();
        assert!(err.contains("no such table"), "{err}");
        db.exec("SELECT k, v FROM kv ORDER BY k").unwrap()
    });
    let _ = std::fs::remove_file(&path);
    assert_eq!(rows, vec![vec![Some("a".into()), Some("1".into())], vec![Some("b".into()), None]]);
}
