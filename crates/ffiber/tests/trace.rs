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
