//! C calling back into Rust (`#[ffiber::export]`): from foreign calls in
//! every mode that allows it, with the runtime usable inside, from threads
//! C created, and what happens to panics and broken `nocallback` promises.

use ffiber::Runtime;
use ffiber::ffi::{self, Mode};
use ffiber_testc as c;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).build().unwrap()
}

#[ffiber::export(name = "ffiber_test_double")]
fn double(x: i32) -> i32 {
    x * 2
}

/// Uses the runtime from inside the callback: spawn + join, a channel, a
/// sleep, and a nested foreign call.
#[ffiber::export(name = "ffiber_test_busy")]
fn busy(x: i32) -> i32 {
    let (tx, rx) = ffiber::chan::bounded(0);
    let h = ffiber::go(move || tx.send(x * 10).unwrap());
    let v = rx.recv().unwrap();
    h.join().unwrap();
    ffiber::sleep(Duration::from_micros(200));
    ffiber::yield_now();
    ffi::call(|| c::plusone(v))
}

#[ffiber::export(name = "ffiber_test_panics_at_3")]
fn panics_at_3(x: i32) -> i32 {
    if x == 3 {
        panic!("callback panicked at 3");
    }
    x
}

static FROM_C_THREAD: AtomicUsize = AtomicUsize::new(0);

/// Called on a thread C created: channels block that thread, spawning
/// goes to the adopted runtime.
#[ffiber::export(name = "ffiber_test_c_thread")]
fn on_c_thread(x: i32) -> i32 {
    FROM_C_THREAD.fetch_add(1, Ordering::SeqCst);
    let h = ffiber::go(move || x + 1);
    h.join().unwrap()
}

unsafe extern "C" {
    safe fn ffiber_test_double(x: i32) -> i32;
    safe fn ffiber_test_busy(x: i32) -> i32;
    safe fn ffiber_test_panics_at_3(x: i32) -> i32;
    safe fn ffiber_test_c_thread(x: i32) -> i32;
}

#[test]
fn callbacks_from_foreign_calls_in_each_mode() {
    rt(2).block_on(|| {
        for mode in [Mode::Default, Mode::NonBlocking, Mode::Blocking] {
            assert_eq!(ffi::call_mode(mode, || c::apply(ffiber_test_double, 20)), 41, "{mode:?}");
            assert_eq!(ffi::call_mode(mode, || c::apply_n(ffiber_test_double, 10)), 90, "{mode:?}");
        }
        // Called from Rust directly, it just runs.
        assert_eq!(ffiber_test_double(4), 8);
        assert_eq!(double(4), 8);
    });
}

#[test]
fn callbacks_can_use_the_runtime() {
    let total = rt(2).block_on(|| {
        let hs: Vec<_> = (0..16).map(|_| ffiber::go(|| ffi::call(|| c::apply_n(ffiber_test_busy, 8)))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    // Each apply_n: sum over i of (10 i + 1) = 10 * 28 + 8 = 288.
    assert_eq!(total, 16 * 288);
}

#[test]
fn callbacks_in_blocking_mode_can_use_the_runtime() {
    let v = rt(2).block_on(|| ffi::call_mode(Mode::Blocking, || c::apply_n(ffiber_test_busy, 4)));
    assert_eq!(v, 10 * 6 + 4);
}

#[test]
fn a_panic_in_a_callback_comes_back_when_the_call_returns() {
    rt(2).block_on(|| {
        let r = ffiber::go(|| ffi::call(|| c::apply_n(ffiber_test_panics_at_3, 6))).join();
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback panicked at 3"));
        // The runtime and the same callback still work afterwards.
        assert_eq!(ffi::call(|| c::apply_n(ffiber_test_panics_at_3, 3)), 3);
    });
}

#[test]
fn callbacks_from_a_thread_c_created() {
    let v = rt(2).block_on(|| ffi::call(|| c::apply_in_c_thread(ffiber_test_c_thread, 50)));
    // sum over i of (i + 1) for i in 0..50
    assert_eq!(v, 50 * 51 / 2);
    assert_eq!(FROM_C_THREAD.load(Ordering::SeqCst), 50);
}

/// Runs `test` in a child process (it is expected to abort) and returns
/// its stderr.
fn child_stderr(test: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--include-ignored"])
        .env("FFIBER_CALLBACK_CHILD", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was expected to abort");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn in_child() -> bool {
    std::env::var_os("FFIBER_CALLBACK_CHILD").is_some()
}

#[test]
fn a_callback_during_a_nocallback_call_is_a_clear_error() {
    if in_child() {
        rt(1).block_on(|| ffi::call_mode(Mode::NoCallback, || c::apply(ffiber_test_double, 1)));
        return;
    }
    let err = child_stderr("a_callback_during_a_nocallback_call_is_a_clear_error");
    assert!(err.contains("ffiber: C called back into Rust (ffiber_test_double)"), "{err}");
    assert!(err.contains("Mode::NoCallback"), "{err}");
}

#[test]
fn a_panic_in_a_callback_on_a_c_thread_aborts_with_the_function_name() {
    if in_child() {
        c::apply_in_c_thread(ffiber_test_panics_at_3, 5);
        return;
    }
    let err = child_stderr("a_panic_in_a_callback_on_a_c_thread_aborts_with_the_function_name");
    assert!(err.contains("exported function ffiber_test_panics_at_3 panicked (callback panicked at 3)"), "{err}");
}
