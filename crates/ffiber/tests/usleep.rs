//! `usleep` from C (`ffi::usleep`, feature `usleep-hook`): during a
//! default-mode call it parks the green thread (a callback, counted by the
//! call trace); in every other mode, and for short sleeps, it sleeps the OS
//! thread. Either way C sees a sleep of at least the time it asked for.
#![cfg(feature = "usleep-hook")]

use ffiber::Runtime;
use ffiber::ffi::{self, Mode};
use ffiber_testc as c;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn traced(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).trace_calls(true).build().unwrap()
}

/// The trace's record of the one function called through `call_named`.
fn stats_of(rt: &Runtime, name: &str) -> ffi::CallStats {
    rt.call_stats().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no trace of {name}"))
}

#[test]
fn a_sleep_in_c_during_a_default_call_parks_the_green_thread() {
    let rt = traced(1);
    let looks = rt.block_on(|| {
        // The flag comes from another green thread on the same (only) P.
        let flag = Arc::new(AtomicI32::new(0));
        let setter = {
            let flag = flag.clone();
            ffiber::go(move || {
                ffiber::sleep(Duration::from_millis(5));
                flag.store(1, Ordering::Release);
            })
        };
        let looks = ffi::call_named(Mode::Default, "usleep_until", || c::usleep_until(&flag, 1_000, 5_000));
        setter.join().unwrap();
        looks
    });
    assert!((1..5_000).contains(&looks), "the flag came after {looks} looks");
    // Every sleep was a callback that parked the green thread.
    let s = stats_of(&rt, "usleep_until");
    assert_eq!((s.calls, s.callbacks), (1, looks as u64));
}

/// A `Blocking` call's caller said it blocks: C's sleeps sleep the OS
/// thread, whether the P was handed off before the call (green threads
/// waited for it) or is kept lazily (nothing waited).
#[test]
fn a_blocking_call_sleeps_the_os_thread() {
    let rt = traced(1);
    rt.block_on(|| {
        let never = Arc::new(AtomicI32::new(0));
        // Nothing else to run: the lazy hand-off.
        assert_eq!(ffi::call_named(Mode::Blocking, "lazy", || c::usleep_until(&never, 1_000, 3)), 4);
        // Another green thread queued on the only P: handed off at once.
        let other = ffiber::go(|| ());
        let t = Instant::now();
        assert_eq!(ffi::call_named(Mode::Blocking, "eager", || c::usleep_until(&never, 1_000, 3)), 4);
        assert!(t.elapsed() >= Duration::from_millis(3));
        other.join().unwrap();
    });
    assert_eq!(stats_of(&rt, "lazy").callbacks, 0);
    assert_eq!(stats_of(&rt, "eager").callbacks, 0);
}

#[test]
fn every_other_mode_and_short_sleeps_sleep_the_os_thread() {
    let rt = traced(2);
    rt.block_on(|| {
        let never = AtomicI32::new(0);
        for (mode, name) in [(Mode::NonBlocking, "nonblocking"), (Mode::NoCallback, "nocallback")] {
            let t = Instant::now();
            assert_eq!(ffi::call_named(mode, name, || c::usleep_until(&never, 1_000, 3)), 4);
            assert!(t.elapsed() >= Duration::from_millis(3), "{mode:?} slept {:?}", t.elapsed());
        }
        // Below `GREEN_SLEEP_MIN`: not worth a park.
        let us = (ffi::GREEN_SLEEP_MIN.as_micros() / 2) as u32;
        assert_eq!(ffi::call_named(Mode::Default, "short", || c::usleep_until(&never, us, 3)), 4);
    });
    for name in ["nonblocking", "nocallback", "short"] {
        assert_eq!(stats_of(&rt, name).callbacks, 0, "{name}");
    }
}

#[test]
fn green_sleeps_in_c_last_as_long_as_asked_and_others_run_meanwhile() {
    for procs in [1, 2, 8] {
        let rt = Runtime::builder().max_procs(procs).build().unwrap();
        rt.block_on(move || {
            let ticks = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicI32::new(0));
            let ticker = {
                let (ticks, stop) = (ticks.clone(), stop.clone());
                ffiber::go(move || {
                    while stop.load(Ordering::Acquire) == 0 {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        ffiber::sleep(Duration::from_micros(200));
                    }
                })
            };
            let t = Instant::now();
            let sleepers: Vec<_> = (0..32)
                .map(|_| {
                    ffiber::go(|| {
                        let never = AtomicI32::new(0);
                        let t = Instant::now();
                        let looks = ffi::call(|| c::usleep_until(&never, 2_000, 4));
                        (looks, t.elapsed())
                    })
                })
                .collect();
            for h in sleepers {
                let (looks, took) = h.join().unwrap();
                assert_eq!(looks, 5, "{procs} Ps");
                assert!(took >= Duration::from_millis(8), "{procs} Ps: slept {took:?}");
            }
            assert!(t.elapsed() >= Duration::from_millis(8));
            stop.store(1, Ordering::Release);
            ticker.join().unwrap();
            assert!(ticks.load(Ordering::Relaxed) > 0, "{procs} Ps: the ticker never ran");
        });
    }
}

#[test]
fn usleep_from_rust_inside_a_call_closure_and_outside_the_runtime() {
    // Outside the runtime: the OS thread sleeps.
    let t = Instant::now();
    // SAFETY: usleep has no preconditions.
    assert_eq!(unsafe { libc::usleep(1_000) }, 0);
    assert!(t.elapsed() >= Duration::from_millis(1));
    let rt = traced(1);
    rt.block_on(|| {
        // In a call's closure, as from C: a green sleep.
        let t = Instant::now();
        // SAFETY: as above.
        let r = ffi::call_named(Mode::Default, "closure", || unsafe { libc::usleep(3_000) });
        assert_eq!(r, 0);
        assert!(t.elapsed() >= Duration::from_millis(3));
        // From the green thread itself (no foreign call): the OS thread
        // sleeps, as `std::thread::sleep` would.
        let t = Instant::now();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::usleep(1_000) }, 0);
        assert!(t.elapsed() >= Duration::from_millis(1));
    });
    assert_eq!(stats_of(&rt, "closure").callbacks, 1);
}

/// A child forked inside a default-mode call keeps the forking thread's
/// state but has no runtime: its `usleep` is an ordinary sleep (parking
/// would need the scheduler, which stops a forked child with a message).
#[test]
fn a_forked_child_sleeps_its_os_thread() {
    let rt = Runtime::builder().max_procs(1).build().unwrap();
    let status = rt.block_on(|| {
        let pid = ffi::call(|| {
            // SAFETY: fork; the child only sleeps and exits, both plain
            // system calls in the copy of this thread.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    let r = libc::usleep(2_000);
                    libc::_exit(if r == 0 { 5 } else { 6 });
                }
                pid
            }
        });
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: waiting for our own child, with a valid status pointer.
        let r = ffi::call(|| unsafe { libc::waitpid(pid, &mut status, 0) });
        assert_eq!(r, pid);
        status
    });
    assert!(libc::WIFEXITED(status), "{status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 5);
}

/// A green thread sleeping inside C (SQLite's busy handler, here a loop of
/// `usleep`s) while every P runs green threads that loop on short calls
/// (SQLite's readers) wakes onto a sleepers' spare P: C goes on at its
/// timer, as an OS thread's would, instead of when some P's holder next
/// reaches a scheduling point. With preemption on and off (the sleepers'
/// spares do not depend on it), on 1 and 2 Ps.
#[test]
fn a_green_sleeper_in_c_wakes_onto_a_spare_while_every_p_is_busy() {
    for (procs, preempt) in [(1, true), (1, false), (2, true), (2, false)] {
        let rt = Runtime::builder().max_procs(procs).preempt(preempt).build().unwrap();
        let before = rt.sleeper_spare_runs();
        rt.block_on(move || {
            let stop = Arc::new(AtomicI32::new(0));
            let loopers: Vec<_> = (0..procs)
                .map(|_| {
                    let stop = stop.clone();
                    ffiber::go(move || {
                        let mut x = 0;
                        while stop.load(Ordering::SeqCst) == 0 {
                            x = ffi::call(|| c::plusone(x)) % 1000;
                        }
                        x
                    })
                })
                .collect();
            let never = AtomicI32::new(0);
            // Twenty 1 ms sleeps in C, each a green sleep.
            let looks = ffi::call(|| c::usleep_until(&never, 1_000, 20));
            stop.store(1, Ordering::SeqCst);
            for l in loopers {
                l.join().unwrap();
            }
            assert_eq!(looks, 21, "twenty sleeps, twenty-one looks");
        });
        assert!(
            rt.sleeper_spare_runs() > before,
            "no sleep in C woke onto a spare with every P busy ({procs} P, preemption {preempt})"
        );
    }
}
