//! Faults in green threads, each run in a child process (the child aborts or
//! dies of a signal; the parent checks how and what it printed).

use std::process::Command;
use std::time::Duration;

const CHILD: &str = "FFIBER_FAULT_CHILD";

/// Re-runs this test binary with only `test` selected and the child switch set.
fn run_child(test: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[inline(never)]
fn eat_stack(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 256]); // 2 KiB a frame
    if n == 0 { buf[0] } else { eat_stack(n - 1).wrapping_add(buf[1]) }
}

#[test]
fn stack_overflow_names_the_green_thread() {
    if is_child() {
        ffiber::run(|| {
            let h =
                ffiber::Builder::new().name("deep-diver").stack_size(64 * 1024).spawn(|| eat_stack(1 << 20)).unwrap();
            h.join().ok();
        });
        return;
    }
    let out = run_child("stack_overflow_names_the_green_thread");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ffiber: green thread ")
            && err.contains(" (deep-diver) overflowed its 64 KiB stack; raise it with Builder::stack_size or Runtime::builder().stack_size"),
        "unexpected stderr: {err}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}

#[test]
fn other_segfaults_are_not_swallowed() {
    if is_child() {
        ffiber::run(|| {
            ffiber::go(|| {
                ffiber::sleep(Duration::from_millis(1));
                // SAFETY: deliberately invalid: this test checks the crash
                // reaches the default action.
                unsafe { std::ptr::write_volatile(16 as *mut u64, 1) };
            })
            .join()
            .ok();
        });
        return;
    }
    let out = run_child("other_segfaults_are_not_swallowed");
    let err = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "status {:?}, stderr: {err}", out.status);
    assert!(!err.contains("overflowed"), "a plain segfault was reported as an overflow: {err}");
    // Issue 15, item 7: not silent either — it names the green thread.
    assert!(
        err.contains("ffiber: SIGSEGV at address 0x0000000000000010 (a null pointer) in green thread ")
            && err.contains("(unnamed), in Rust code outside any foreign call"),
        "{err}"
    );
}

#[ffiber::export(name = "ffiber_test_recurse_forever")]
fn recurse_forever(x: i32) -> i32 {
    eat_stack(1 << 40) as i32 + x
}

unsafe extern "C" {
    safe fn ffiber_test_recurse_forever(x: i32) -> i32;
}

/// Issue 15, item 7: unbounded recursion in an exported function that C
/// calls on a thread it created: named, not a silent SIGSEGV.
#[test]
fn a_callback_overflowing_a_c_threads_stack_is_named() {
    if is_child() {
        ffiber::run(|| ffiber::ffi::call(|| ffiber_testc::apply_in_c_thread(ffiber_test_recurse_forever, 1)));
        return;
    }
    let out = run_child("a_callback_overflowing_a_c_threads_stack_is_named");
    let err = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "status {:?}, stderr: {err}", out.status);
    assert!(
        err.contains("ffiber: the exported function ffiber_test_recurse_forever, called from a thread C created (tid ")
            && err.contains("overflowed that thread's stack"),
        "{err}"
    );
}

/// Issue 15, item 8: a C library that replaces the SIGSEGV handler after
/// the runtime started is noticed and named once.
#[test]
fn a_replaced_fault_handler_is_reported_once() {
    if is_child() {
        ffiber::run(|| {
            assert_eq!(ffiber::ffi::call(ffiber_testc::install_plain_segv_handler), 0);
            // The runtime notices within ~100 ms of work and idling.
            for _ in 0..6 {
                ffiber::go(|| ffiber::sleep(Duration::from_millis(30))).join().unwrap();
                ffiber::sleep(Duration::from_millis(30));
            }
        });
        return;
    }
    let out = run_child("a_replaced_fault_handler_is_reported_once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("the SIGSEGV handler was replaced").count(), 1, "{err}");
    assert!(err.contains("without SA_ONSTACK") && err.contains("kills the process with no message"), "{err}");
}

#[test]
fn main_thread_overflow_still_reported_by_rust() {
    // Our handler chains to Rust's own: a std thread's overflow keeps its
    // usual message.
    if is_child() {
        ffiber::run(|| ()); // installs our handler
        std::thread::Builder::new().stack_size(64 * 1024).spawn(|| eat_stack(1 << 20)).unwrap().join().ok();
        return;
    }
    let out = run_child("main_thread_overflow_still_reported_by_rust");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has overflowed its stack"), "stderr: {err}");
}

#[test]
fn a_crash_inside_c_names_the_foreign_call_and_the_green_thread() {
    if is_child() {
        ffiber::run(|| {
            ffiber::Builder::new()
                .name("crasher")
                .spawn(|| {
                    // SAFETY: deliberately crashes: the test checks the report.
                    ffiber::ffi::call_named(ffiber::ffi::Mode::Default, "crash_null", || unsafe {
                        ffiber_testc::crash_null(1)
                    })
                })
                .unwrap()
                .join()
                .ok();
        });
        return;
    }
    let out = run_child("a_crash_inside_c_names_the_foreign_call_and_the_green_thread");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "ffiber: SIGSEGV at address 0x0000000000000000 inside the foreign call to crash_null from green thread "
        ) && err.contains("(crasher)"),
        "unexpected stderr: {err}"
    );
    // Chained to the default action: the process dies of the signal.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
}

#[test]
fn a_c_stack_overflow_names_the_foreign_call() {
    if is_child() {
        ffiber::run(|| {
            // 64 MiB of C frames: far past the 8 MiB system stack.
            ffiber::ffi::call_named(ffiber::ffi::Mode::Default, "recurse", || ffiber_testc::recurse(64 * 1024));
        });
        return;
    }
    let out = run_child("a_c_stack_overflow_names_the_foreign_call");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ffiber: the foreign call to recurse overflowed its OS thread's 8 MiB system stack (called from green thread ")
            && err.contains("(main)"),
        "unexpected stderr: {err}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}

#[test]
fn check_mode_catches_c_writing_into_a_dead_green_threads_stack() {
    if is_child() {
        ffiber::run(|| {
            ffiber::Builder::new()
                .name("short-lived")
                .spawn(|| {
                    let mut local = 0i32;
                    // SAFETY: valid for the call; C keeping it is the bug
                    // under test.
                    ffiber::ffi::call(|| unsafe { ffiber_testc::sys::keep_pointer(&mut local) });
                })
                .unwrap()
                .join()
                .unwrap();
            // SAFETY: deliberately writes through the kept, now dangling,
            // pointer: check mode must catch it.
            ffiber::ffi::call_named(ffiber::ffi::Mode::Default, "write_kept", || unsafe {
                ffiber_testc::sys::write_kept(42)
            });
        });
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "check_mode_catches_c_writing_into_a_dead_green_threads_stack", "--nocapture"])
        .env(CHILD, "1")
        .env("FFIBER_CHECK", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ffiber: access to the stack of green thread ")
            && err.contains(
                "(short-lived), which has exited (FFIBER_CHECK quarantine), during the foreign call to write_kept"
            ),
        "unexpected stderr: {err}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}
