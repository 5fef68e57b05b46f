//! `#[ffiber::foreign]` on real C (crates/ffiber-testc): arguments of every
//! register class, results, function pointers, every mode, `from = path`
//! against a crate's own declarations, callbacks, blocking calls from many
//! green threads, and calls outside the runtime.

use ffiber::Runtime;
use ffiber_testc as c;
use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};

// Declared here, as one would copy them from bindgen output.
#[ffiber::foreign]
unsafe extern "C" {
    fn plusone(x: i32) -> i32;
    #[link_name = "mixed"]
    fn mixed_args(a: i32, b: f64, c: i64, d: f32, e: c_char, f: f64) -> f64;
    fn fsum8(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64, g: f64, h: f64) -> f64;
    fn sleep_ms(ms: i32);
    fn apply(f: c::IntFn, x: i32) -> i32;
}

// The same C functions through the declarations the fixture crate already
// has (the signatures below are checked against them).
#[ffiber::foreign(mode = nonblocking, from = ffiber_testc::sys)]
unsafe extern "C" {
    fn spin_us(us: u32) -> u64;
    fn keep_pointer(p: *mut i32);
}

mod modes {
    #[ffiber::foreign(mode = nocallback)]
    unsafe extern "C" {
        pub fn plusone(x: i32) -> i32;
    }
}

mod blocking {
    #[ffiber::foreign(mode = blocking)]
    unsafe extern "C" {
        pub fn sleep_us(us: u32);
        pub fn plusone(x: i32) -> i32;
    }
}

#[ffiber::export(name = "ffiber_test_foreign_twice")]
fn twice(x: i32) -> i32 {
    // Needs the P: a callback that parks, from a register-path call.
    ffiber::yield_now();
    2 * x
}

unsafe extern "C" {
    safe fn ffiber_test_foreign_twice(x: i32) -> i32;
}

fn rt(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).build().unwrap()
}

#[test]
fn arguments_of_every_class_and_results_come_through() {
    rt(2).block_on(|| {
        // SAFETY: the fixtures take plain values.
        unsafe {
            assert_eq!(plusone(41), 42);
            assert_eq!(mixed_args(1, 2.5, 3, 0.25, 4, 8.0), c::mixed(1, 2.5, 3, 0.25, 4, 8.0));
            assert_eq!(fsum8(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0), c::fsum8(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0));
            assert_eq!(modes::plusone(1), 2);
            assert_eq!(blocking::plusone(2), 3);
            let _ = spin_us(1);
            let mut v = 0;
            keep_pointer(&mut v);
            c::sys::write_kept(9);
            assert_eq!(v, 9);
            keep_pointer(std::ptr::null_mut());
            // A function pointer argument, and a callback that parks.
            assert_eq!(apply(ffiber_test_foreign_twice, 20), c::apply(ffiber_test_foreign_twice, 20));
        }
    });
    // Outside the runtime the wrappers just call.
    // SAFETY: as above.
    assert_eq!(unsafe { plusone(1) }, 2);
}

#[test]
fn blocking_calls_through_the_register_path_keep_other_green_threads_running() {
    for procs in [1, 2] {
        let during = rt(procs).block_on(move || {
            let done = std::sync::Arc::new(AtomicUsize::new(0));
            let d2 = done.clone();
            // Ticks while the sleepers are still in C.
            let ticker = ffiber::go(move || {
                let mut during = 0;
                while d2.load(Ordering::SeqCst) < 8 {
                    ffiber::sleep(std::time::Duration::from_millis(1));
                    during += 1;
                }
                during
            });
            let sleepers: Vec<_> = (0..8)
                .map(|i| {
                    let done = done.clone();
                    ffiber::go(move || {
                        for _ in 0..5 {
                            // SAFETY: sleeps in C.
                            unsafe {
                                if i % 2 == 0 {
                                    sleep_ms(10);
                                } else {
                                    blocking::sleep_us(10_000);
                                }
                            }
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            sleepers.into_iter().for_each(|h| h.join().unwrap());
            ticker.join().unwrap()
        });
        // 8 green threads x 50 ms of C sleep: with their Ps handed off the
        // ticker ticks through it (~50 times); with the Ps stuck in C it
        // would tick only between calls.
        assert!(during >= 20, "{procs} Ps: the ticker ticked {during} times while C slept");
    }
}
