//! libsqlite3-sys through `#[ffiber::foreign]`, from many green threads.

use ffiber_example_sqlitesys::Db;

#[test]
fn point_reads_from_many_green_threads_find_every_row() {
    let dir = std::env::temp_dir().join(format!("ffiber-sqlitesys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db").display().to_string();
    {
        let mut db = Db::open(&path).unwrap();
        db.exec(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             INSERT INTO t SELECT i, 'name-' || i, i * 0.5 FROM n; COMMIT",
        )
        .unwrap();
    }
    let p = path.clone();
    let sum = ffiber::Runtime::builder().max_procs(2).build().unwrap().block_on(move || {
        let hs: Vec<_> = (0..16)
            .map(|w| {
                let p = p.clone();
                ffiber::go(move || {
                    let mut db = Db::open(&p).unwrap();
                    let mut sum = 0.0;
                    for k in 0..500 {
                        let id = 1 + (w * 500 + k) % 1000;
                        let (name, score) = db.get(id).unwrap_or_else(|| panic!("row {id} missing"));
                        assert_eq!(name, format!("name-{id}"));
                        sum += score;
                    }
                    assert!(db.get(5000).is_none());
                    sum
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<f64>()
    });
    // Every id 1..=1000 is read 8 times: 8 * sum(i * 0.5).
    assert_eq!(sum, 8.0 * 0.5 * (1000.0 * 1001.0 / 2.0));
    // A bad statement comes back as an error with SQLite's message.
    let mut db = Db::open(&path).unwrap();
    let e = db.exec("SELEC nonsense").unwrap_err();
    assert!(e.contains("syntax error"), "{e}");
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}
