//! `ffibench --quick` end to end: the table prints, with a number for every
//! ffiber metric, and a missing peer is reported as such, not dropped.

use std::process::Command;

#[test]
fn quick_run_prints_the_runtime_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--quick").output().unwrap();
    assert!(out.status.success(), "ffibench failed: {}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().find(|l| l.starts_with("metric")).expect("table header");
    assert!(header.contains("ffiber") && header.contains("may 0.3"), "{header}");
    for label in ["spawn+join, 1,000 at a time", "yield switch (1 P)", "channel ping-pong", "memory per parked thread"]
    {
        let row =
            table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label:?} in\n{table}"));
        // The ffiber column (first after the unit) holds a number.
        let cells: Vec<&str> = row[30..].split_whitespace().collect();
        let ffiber: f64 = cells[cells.len() - 4].parse().unwrap_or_else(|_| panic!("no ffiber figure in {row:?}"));
        assert!(ffiber >= 0.0);
    }
}

#[test]
fn missing_go_is_reported_not_dropped() {
    // An empty PATH hides `go`: the Go column must say why it is empty.
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--quick").env("PATH", "").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Go: not installed — "), "{text}");
}

#[test]
fn bad_options_are_rejected_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--runs").arg("zero").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs needs a positive integer"));
}

#[test]
fn quick_run_prints_the_foreign_call_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ffibench")).arg("--quick").output().unwrap();
    assert!(out.status.success(), "ffibench failed: {}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    for label in [
        "C through the PLT (the talk's baseline)",
        "Rust extern",
        "ffiber NonBlocking, register trampoline",
        "ffiber ffi::call (default",
        "ffiber Blocking",
        "callback only (C loop): #[ffiber::export]",
    ] {
        let row =
            table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label:?} in\n{table}"));
        let cells: Vec<&str> = row[52..].split_whitespace().collect();
        let ns: f64 = cells[0].parse().unwrap_or_else(|_| panic!("no figure in {row:?}"));
        assert!(ns > 0.0, "{row}");
        assert!(cells[1].ends_with('x'), "no ratio in {row:?}");
    }
    // Every peer row has a figure, or says it is not available and why.
    for label in
        ["Go cgo ", "LuaJIT FFI", "Java JNI", "Node.js", "Python ctypes", "may coroutine", "tokio block_in_place"]
    {
        let row = table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label:?}"));
        let cell = row[52..].trim_start();
        assert!(cell.starts_with("not available") || cell.chars().next().is_some_and(|c| c.is_ascii_digit()), "{row}");
        if cell.starts_with("not available") {
            assert!(table.contains(": not installed — ") || table.contains("failed"), "no reason given for {row}");
        }
    }
}
