//! `ffibench --quick` end to end: every table prints, with a number for
//! every ffiber row; a peer that is missing is reported as such, never
//! dropped; `--rows` and `--json` do what they say.

use std::process::Command;
use std::sync::OnceLock;

/// One `--quick` run, shared by the tests that only read its output.
fn quick() -> &'static str {
    static OUT: OnceLock<String> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--quick").output().unwrap();
        assert!(out.status.success(), "ffibench failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// A table line's cells: columns are separated by two or more spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

fn row<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label:?} in\n{text}"));
    cells(line)
}

fn number(cell: &str) -> Option<f64> {
    cell.split_whitespace().next()?.parse().ok()
}

#[test]
fn quick_run_prints_the_runtime_table() {
    let text = quick();
    let header = text.lines().find(|l| l.starts_with("metric")).expect("table header");
    assert!(header.contains("ffiber") && header.contains("may 0.3"), "{header}");
    for label in ["spawn+join, 1,000 at a time", "yield switch (1 P)", "channel ping-pong", "memory per parked thread"]
    {
        // label, unit, ffiber, Go, may, ratio
        let r = row(text, label);
        let ffiber = number(r[2]).unwrap_or_else(|| panic!("no ffiber figure in {r:?}"));
        // (A quick run parks few threads: its memory figure may round to 0.)
        assert!(ffiber >= 0.0, "{r:?}");
    }
}

#[test]
fn quick_run_prints_the_foreign_call_table() {
    let text = quick();
    for label in [
        "C through the PLT (the talk's baseline)",
        "Rust extern",
        "ffiber NonBlocking, register trampoline",
        "ffiber ffi::call (default",
        "ffiber Blocking",
        "callback only (C loop): #[ffiber::export]",
    ] {
        let r = row(text, label);
        assert!(number(r[1]).is_some_and(|v| v > 0.0), "no figure in {r:?}");
        assert!(r[2].ends_with('x'), "no ratio in {r:?}");
    }
    // The paired base timed against itself prints a ratio. Its value is
    // the pairing's noise, which the table shows and a test must not judge:
    // a quick run's slices are short, and the suite runs its tests side by
    // side on two cores (CI saw 4.9x once).
    let r = row(text, "C through the PLT, inside ffibench");
    let self_ratio: f64 = r[2].trim_end_matches('x').parse().expect("a ratio");
    assert!(self_ratio.is_finite() && self_ratio > 0.0, "the C loop paired with itself: {r:?}");
    // Every peer row has a figure, or says it is not available and why.
    for label in
        ["Go cgo", "LuaJIT FFI", "Java JNI", "Node.js", "Python ctypes", "may coroutine", "tokio block_in_place"]
    {
        let r = row(text, label);
        assert!(r[1] == "not available" || number(r[1]).is_some(), "{r:?}");
        if r[1] == "not available" {
            assert!(text.contains(": not installed — ") || text.contains("failed"), "no reason given for {r:?}");
        }
    }
    // And the blocking-C ticker table.
    let r = row(text, "p99");
    assert!(number(r[1]).is_some(), "no ffiber ticker figure in {r:?}");
}

#[test]
fn missing_peers_are_reported_not_dropped() {
    // An empty PATH hides `go`, `python3`, `node` and `luajit`: each must
    // say why its row is empty.
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench"))
        .args(["--quick", "--rows", "cgo,python,node,luajit"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for peer in [
        "Go cgo: not installed — ",
        "Python: not installed — ",
        "Node.js: not installed — ",
        "LuaJIT: not installed — ",
    ] {
        assert!(text.contains(peer), "{peer:?} missing in\n{text}");
    }
    assert_eq!(row(&text, "Go cgo")[1], "not available");
}

#[test]
fn rows_selects_and_json_is_machine_readable() {
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench"))
        .args(["--quick", "--rows", "C direct,Rust extern", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8_lossy(&out.stdout);
    let json = json.trim();
    assert!(json.starts_with('[') && json.ends_with(']'), "{json}");
    assert!(
        json.contains("\"C direct call (the floor)\"") && json.contains("\"Rust extern \\\"C\\\" (through the GOT)\""),
        "{json}"
    );
    // Only the selected rows, and no runtime or ticker table.
    assert!(!json.contains("cgo") && !json.contains("spawn+join") && !json.contains("lateness"), "{json}");
    assert_eq!(json.matches("\"cells\"").count(), 2, "{json}");
}

#[test]
fn bad_options_are_rejected_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--runs").arg("zero").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs needs a positive integer"));
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--rows").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rows needs"));
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).args(["--compare", "/no/such.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--compare /no/such.csv"));
}

/// `--compare` prints each number beside the earlier run's: here the
/// earlier run is made up, with a deep-stack peak of 1 MiB for ffiber.
#[test]
fn compare_prints_changes_against_an_earlier_csv() {
    let csv = std::env::temp_dir().join(format!("ffibench-compare-{}.csv", std::process::id()));
    std::fs::write(&csv, "table,row,column,value\n\"Deep C stacks: 10 green threads\",\"peak RSS, MiB\",ffiber,1\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench"))
        .args(["--quick", "--rows", "deep", "--compare"])
        .arg(&csv)
        .output()
        .unwrap();
    std::fs::remove_file(&csv).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Change against"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Deep C stacks") && l.contains("peak RSS"))
        .unwrap_or_else(|| panic!("no comparison row in\n{text}"));
    let r = cells(line);
    // table, row, column, before, now, change
    assert_eq!((r[1], r[2], r[3]), ("peak RSS, MiB", "ffiber", "1"), "{r:?}");
    assert!(r[5].ends_with('!'), "a peak far above 1 MiB is flagged: {r:?}");
}

#[test]
fn quick_run_prints_the_server_table() {
    let text = quick();
    assert!(text.contains("A real HTTP server"), "no server table in\n{text}");
    let wrk = Command::new("wrk").arg("--version").output().is_ok();
    for label in ["GET /hello, requests/s", "GET /kv/<key> (SQLite), requests/s", "RSS per idle keep-alive connection"]
    {
        let r = row(text, label);
        if wrk {
            // label, ffiber, Go
            assert!(number(r[1]).is_some_and(|v| v > 0.0), "no ffiber figure in {r:?}");
        } else {
            assert_eq!(r[1], "not available", "{r:?}");
        }
    }
    if !wrk {
        assert!(text.contains("wrk not installed — apt-get install wrk"), "{text}");
    }
}

#[test]
fn quick_run_prints_the_sqlite_table() {
    let text = quick();
    assert!(text.contains("SQLite from 64 workers"), "no sqlite table in\n{text}");
    for label in ["reads: queries/s", "10% writes: queries/s"] {
        let r = row(text, label);
        // label, ffiber default, ffiber tuned, ffiber without the usleep
        // hook, OS threads, ...
        for (i, who) in [(1, "ffiber default"), (2, "ffiber tuned"), (3, "ffiber no hook"), (4, "OS threads")] {
            assert!(number(r[i]).is_some_and(|v| v > 0.0), "no {who} figure in {r:?}");
        }
    }
    // The same-run ratios to the OS threads: theirs to themselves is 1.
    for label in ["reads: queries/s vs 64 OS threads", "10% writes: queries/s vs 64 OS threads"] {
        let r = row(text, label);
        assert_eq!(r[4], "1.00x", "{r:?}");
        assert!(r[1].strip_suffix('x').and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 0.0), "{r:?}");
    }
    let r = row(text, "reads: C calls per query");
    assert_eq!(number(r[1]), Some(8.0), "{r:?}");
}

#[test]
fn quick_run_prints_the_many_blocking_calls_table() {
    let text = quick();
    let header = text.lines().find(|l| l.contains("ffiber default") && l.contains("ffiber Blocking")).expect("header");
    assert!(header.contains("tokio spawn_blocking"), "{header}");
    let wall = row(text, "wall time, s");
    // Both ffiber modes finished, with a time.
    assert!(number(wall[1]).is_some_and(|s| s > 0.0) && number(wall[2]).is_some_and(|s| s > 0.0), "{wall:?}");
    let threads = row(text, "most OS threads at once");
    assert!(number(threads[1]).is_some_and(|n| n >= 2.0), "{threads:?}");
}

/// Ctrl-C in the middle of the sqlite table: the run stops with 130 and
/// its database directory is gone.
#[test]
fn an_interrupted_run_removes_its_scratch_files() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ffibench"))
        .args(["--quick", "--rows", "sqlite"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ffibench-sqlite-{}", child.id()));
    let start = std::time::Instant::now();
    while !dir.join("bench.db").exists() {
        assert!(start.elapsed().as_secs() < 120, "the sqlite table never created {}", dir.display());
        assert!(child.try_wait().unwrap().is_none(), "ffibench ended before the table started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill takes a pid and a signal number; the child is ours and
    // has not been waited for, so the pid is still its own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.exists(), "{} is still there after Ctrl-C", dir.display());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    // No peer outlives it: none has the database on its command line.
    let db = dir.join("bench.db").display().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(!cmd.contains(&db), "a peer still runs after Ctrl-C: {cmd}");
        }
    }
}
