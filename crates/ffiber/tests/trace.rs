//! The per-function call trace (`trace_calls`, `FFIBER_TRACE=calls`):
//! exact counts, hand-offs for calls that block, callbacks, and nothing
//! recorded when it is off.

use ffiber::Runtime;
use ffiber::ffi::{self, Mode};
use ffiber_testc as c;

#[ffiber::foreign]
unsafe extern "C" {
    fn plusone(x: i32) -> i32;
    fn sleep_ms(ms: i32);
    fn apply_n(f: c::IntFn, n: i32) -> i32;
}

#[ffiber::export(name = "ffiber_test_trace_cb")]
fn traced_cb(x: i32) -> i32 {
    x + 1
}

unsafe extern "C" {
    safe fn ffiber_test_trace_cb(x: i32) -> i32;
}

#[test]
fn counts_times_handoffs_and_callbacks_per_function() {
    let rt = Runtime::builder().max_procs(1).trace_calls(true).build().unwrap();
    rt.block_on(|| {
        let mut x = 0;
        for _ in 0..1000 {
            // SAFETY: plain values.
            x = unsafe { plusone(x) };
        }
        assert_eq!(x, 1000);
        // Blocking calls while another green thread waits for the only P:
        // the monitor hands it off.
        let spinner = ffiber::go(|| {
            for _ in 0..50 {
                ffiber::yield_now();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        for _ in 0..5 {
            // SAFETY: sleeps in C.
            unsafe { sleep_ms(10) };
        }
        spinner.join().unwrap();
        // SAFETY: a C-ABI callback; apply_n calls it for 0..7.
        let sum = unsafe { apply_n(ffiber_test_trace_cb, 7) };
        assert_eq!(sum, (1..=7).sum::<i32>());
        // A closure call is recorded under the closure's name.
        ffi::call_mode(Mode::NonBlocking, || c::plusone(1));
    });
    let stats = rt.call_stats();
    let get = |n: &str| stats.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no {n} in {stats:?}"));
    let p = get("plusone");
    assert_eq!((p.calls, p.handoffs, p.callbacks), (1000, 0, 0));
    assert!(p.max <= p.total);
    assert!(p.suggestion().starts_with("NonBlocking"), "{}", p.suggestion());
    let s = get("sleep_ms");
    assert_eq!(s.calls, 5);
    assert!(s.total >= std::time::Duration::from_millis(50), "{s:?}");
    assert!(s.handoffs >= 1, "{s:?}");
    assert_eq!(get("apply_n").callbacks, 7);
    assert!(stats.iter().any(|s| s.name.contains("closure") && s.calls == 1), "{stats:?}");
    // Sorted by total time: the sleeps first.
    assert_eq!(stats[0].name, "sleep_ms");
}

#[test]
fn nothing_is_recorded_when_off() {
    let rt = Runtime::builder().max_procs(1).trace_calls(false).build().unwrap();
    // SAFETY: plain values.
    rt.block_on(|| unsafe { plusone(1) });
    assert!(rt.call_stats().is_empty());
}

/// The child's part of the `FFIBER_TRACE` tests below: a runtime that
/// reads the variable, 100 calls to `plusone`, and the table at its drop.
/// Does nothing unless run as that child.
#[test]
fn child_traced_by_the_environment() {
    if std::env::var_os("FFIBER_TEST_TRACE_CHILD").is_none() {
        return;
    }
    let rt = Runtime::builder().max_procs(1).build().unwrap();
    rt.block_on(|| {
        for i in 0..100 {
            // SAFETY: plain values.
            assert_eq!(unsafe { plusone(i) }, i + 1);
        }
    });
}

/// Runs [`child_traced_by_the_environment`] in a child process with
/// `FFIBER_TRACE=value`; its standard error.
fn traced_child(value: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_traced_by_the_environment", "--nocapture", "--test-threads=1"])
        .env("FFIBER_TEST_TRACE_CHILD", "1")
        .env("FFIBER_TRACE", value)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the child failed: {err}");
    err
}

/// The row of `plusone` in a printed table: its call count.
fn plusone_calls(table: &str) -> Option<u64> {
    let line = table.lines().find(|l| l.contains(" plusone — "))?;
    line.split_whitespace().next()?.parse().ok()
}

#[test]
fn the_environment_prints_the_table_at_exit() {
    let err = traced_child("calls");
    assert!(err.contains("foreign calls by C function"), "{err}");
    assert_eq!(plusone_calls(&err), Some(100), "{err}");
}

#[test]
fn the_environment_writes_the_table_to_a_file() {
    let path = std::env::temp_dir().join(format!("ffiber-trace-{}.txt", std::process::id()));
    let err = traced_child(&format!("calls:{}", path.display()));
    let table = std::fs::read_to_string(&path).expect("the trace file was written");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(plusone_calls(&table), Some(100), "{table}");
    assert!(!err.contains("foreign calls by C function"), "printed as well: {err}");
}

#[test]
fn a_trace_file_that_cannot_be_written_is_reported_and_the_table_kept() {
    let err = traced_child("calls:/nonexistent-ffiber-dir/trace.txt");
    assert!(
        err.contains("could not write the call trace to /nonexistent-ffiber-dir/trace.txt")
            && err.contains("set FFIBER_TRACE=calls to print it"),
        "{err}"
    );
    // Nothing measured is lost: the table follows on standard error.
    assert_eq!(plusone_calls(&err), Some(100), "{err}");
}

#[test]
fn a_trace_value_that_is_not_understood_is_reported() {
    let err = traced_child("cals");
    assert!(err.contains("FFIBER_TRACE=\"cals\" is not understood (use `calls` or `calls:FILE`)"), "{err}");
    assert_eq!(plusone_calls(&err), None, "{err}");
}
