//! Foreign calls into real C (crates/ffiber-testc, compiled by cc): every
//! mode, arguments and returns, errno, blocking C with the monitor, deep C
//! stacks, OS-thread affinity.

mod common;

use ffiber::Runtime;
use ffiber::ffi::{self, Mode};
use ffiber_testc as c;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const MODES: [Mode; 4] = [Mode::Default, Mode::NoCallback, Mode::NonBlocking, Mode::Blocking];

fn rt(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).build().unwrap()
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4
}

#[test]
fn arguments_and_returns_in_every_mode() {
    rt(2).block_on(|| {
        for mode in MODES {
            assert_eq!(ffi::call_mode(mode, || c::plusone(41)), 42);
            assert_eq!(ffi::call_mode(mode, || c::sum8(1, 2, 3, 4, 5, 6, 7, 8)), 204);
            assert_eq!(ffi::call_mode(mode, || c::fsum8(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)), 102.0);
            let m = ffi::call_mode(mode, || c::mixed(1, 2.5, 3, 0.25, 4, 8.0));
            assert_eq!(m, 18.75);
            assert_eq!(ffi::call_mode(mode, || c::make_pair(21, 1.25)), c::Pair { a: 42, b: 2.5 });
            assert_eq!(ffi::call_mode(mode, || c::make_big(10)).v, [10, 11, 12, 13, 14]);
        }
        // SAFETY: a leaf with a tiny stack bound.
        assert_eq!(unsafe { ffi::call_on_green_stack(|| c::plusone(1)) }, 2);
    });
}

#[test]
fn calls_work_outside_the_runtime_and_nested() {
    assert_eq!(ffi::call(|| c::plusone(1)), 2);
    let r = rt(1).block_on(|| {
        // A foreign call made from inside another one's closure (already on
        // the system stack) runs in place.
        ffi::call(|| {
            let a = c::plusone(1);
            a + ffi::call_mode(Mode::Blocking, || c::plusone(2))
        })
    });
    assert_eq!(r, 5);
}

#[test]
fn errno_comes_back_with_the_result() {
    rt(2).block_on(|| {
        for mode in MODES {
            let (r, e) = ffi::call_errno(mode, || c::fail_with(libc::ERANGE));
            assert_eq!((r, e), (-1, libc::ERANGE), "{mode:?}");
            // errno is cleared before the call: a success reports 0.
            let (r, e) = ffi::call_errno(mode, || c::plusone(1));
            assert_eq!((r, e), (2, 0), "{mode:?}");
        }
        // A real libc case: strtol overflow.
        let s = c"99999999999999999999999";
        // SAFETY: a valid C string; a null end pointer is allowed.
        let (v, e) = ffi::call_errno(Mode::Default, || unsafe { libc::strtol(s.as_ptr(), std::ptr::null_mut(), 10) });
        assert_eq!((v, e), (libc::c_long::MAX, libc::ERANGE));
    });
}

#[test]
fn a_panic_inside_the_call_closure_comes_back_after_the_call() {
    let r = rt(2).block_on(|| {
        ffiber::go(|| {
            ffi::call(|| {
                let v = c::plusone(1);
                if v == 2 {
                    panic!("rust code around C panicked");
                }
            })
        })
        .join()
    });
    let msg = r.unwrap_err();
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"rust code around C panicked"));
}

/// The closure's result comes back in `rax:rdx` when it fits (16 bytes,
/// alignment 8) and through memory otherwise: every shape, in every mode,
/// including ones with padding, floats, zero-sized and owning ones.
#[test]
fn results_of_every_shape_come_back_in_every_mode() {
    #[derive(Debug, PartialEq, Clone, Copy)]
    struct Padded {
        a: u8,
        b: u64,
    }
    #[derive(Debug, PartialEq, Clone, Copy)]
    #[repr(align(16))]
    struct Aligned(u32);
    rt(2).block_on(|| {
        for mode in MODES {
            ffi::call_mode(mode, || assert_eq!(c::plusone(1), 2));
            assert!(ffi::call_mode(mode, || c::plusone(0) == 1));
            assert_eq!(ffi::call_mode(mode, || c::plusone(-2) as i8), -1);
            assert_eq!(ffi::call_mode(mode, || c::plusone(1) as f32 / 4.0), 0.5);
            assert_eq!(ffi::call_mode(mode, || c::plusone(1) as f64 * 0.5), 1.0);
            assert_eq!(ffi::call_mode(mode, || char::from_u32(c::plusone(0x40) as u32)), Some('A'));
            assert_eq!(ffi::call_mode(mode, || c::plusone(0x41) as u8 as char), 'B');
            assert_eq!(ffi::call_mode(mode, || u128::MAX - c::plusone(0) as u128), u128::MAX - 1);
            let base = MODES.as_ptr();
            let p = ffi::call_mode(mode, || base.wrapping_add(c::plusone(0) as usize));
            assert_eq!(p, base.wrapping_add(1));
            let r: &'static str = ffi::call_mode(mode, || if c::plusone(0) == 1 { "one" } else { "other" });
            assert_eq!(r, "one");
            let n: &'static Mode = ffi::call_mode(mode, || &MODES[c::plusone(0) as usize]);
            assert_eq!(*n, Mode::NoCallback);
            // A newtype of f64 is returned in xmm0 by the ABI: it comes back
            // as bytes, not through a register guess.
            #[derive(Debug, PartialEq)]
            struct Meters(f64);
            assert_eq!(ffi::call_mode(mode, || Meters(c::plusone(2) as f64)), Meters(3.0));
            let p = ffi::call_mode(mode, || Padded { a: c::plusone(6) as u8, b: u64::MAX - 1 });
            assert_eq!(p, Padded { a: 7, b: u64::MAX - 1 });
            let t = ffi::call_mode(mode, || (c::plusone(1) as u16, -0.25f64));
            assert_eq!(t, (2, -0.25));
            assert_eq!(ffi::call_mode(mode, || Aligned(c::plusone(8) as u32)), Aligned(9));
            let big = ffi::call_mode(mode, || [c::plusone(0) as u64; 9]);
            assert_eq!(big, [1; 9]);
            let s = ffi::call_mode(mode, || format!("{}", c::plusone(99)));
            assert_eq!(s, "100");
            let b = ffi::call_mode(mode, || Some(Box::new(c::plusone(2))));
            assert_eq!(b.as_deref(), Some(&3));
            let none: Option<Box<i32>> = ffi::call_mode(mode, || (c::plusone(0) == 0).then(|| Box::new(0)));
            assert!(none.is_none());
            // And with errno, small and big.
            assert_eq!(ffi::call_errno(mode, || c::fail_with(libc::EDOM) as i64), (-1, libc::EDOM));
            let (big, e) = ffi::call_errno(mode, || [c::fail_with(libc::EINTR); 7]);
            assert_eq!((big, e), ([-1; 7], libc::EINTR));
        }
    });
}

/// A closure of up to 16 bytes travels to the system stack by value, in two
/// registers; a bigger one by address. Captures of every shape arrive
/// intact in every mode — by reference and by `move`, with padding, owned
/// values (dropped exactly once) — and a `move` closure's captures are its
/// own (the caller's copies are untouched).
#[test]
fn captures_of_every_shape_reach_the_system_stack_in_every_mode() {
    struct Counted(Arc<AtomicUsize>, u8);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    rt(2).block_on(|| {
        for mode in MODES {
            let x = 41;
            assert_eq!(ffi::call_mode(mode, || c::plusone(x)), 42);
            assert_eq!(ffi::call_mode(mode, move || c::plusone(x)), 42);
            let (a, b) = (1u8, u64::MAX - 5);
            let r = ffi::call_mode(mode, move || b - c::plusone(a as i32) as u64);
            assert_eq!(r, u64::MAX - 7);
            let (a, b) = (7u32, 9u16);
            assert_eq!(ffi::call_mode(mode, move || c::plusone((a + b as u32) as i32)), 17);
            let bytes = [3u8; 16];
            let r = ffi::call_mode(mode, move || c::plusone(bytes.iter().map(|&v| v as i32).sum()));
            assert_eq!(r, 49);
            let s: &str = "seven";
            assert_eq!(ffi::call_mode(mode, move || c::plusone(s.len() as i32)), 6);
            let (p, q) = (&x, &bytes);
            assert_eq!(ffi::call_mode(mode, || c::plusone(*p + q[15] as i32)), 45);
            let big = [5u64; 3];
            assert_eq!(ffi::call_mode(mode, move || c::plusone(big.iter().sum::<u64>() as i32)), 16);
            let f = 0.5f32;
            assert_eq!(ffi::call_mode(mode, move || c::plusone(1) as f32 * f), 1.0);
            // Owned captures: consumed once on the system stack, small and big.
            let drops = Arc::new(AtomicUsize::new(0));
            let small = Counted(drops.clone(), 4);
            assert_eq!(std::mem::size_of::<Counted>(), 16);
            let r = ffi::call_mode(mode, move || {
                let small = small; // the whole value, not just the field
                c::plusone(small.1 as i32)
            });
            assert_eq!(r, 5);
            let v = [Counted(drops.clone(), 1), Counted(drops.clone(), 2)];
            let r = ffi::call_mode(mode, move || c::plusone(v.iter().map(|c| c.1 as i32).sum()));
            assert_eq!(r, 4);
            assert_eq!(drops.load(Ordering::SeqCst), 3, "{mode:?}");
            // A `move` closure works on its own copy.
            let mut n = 10;
            let r = ffi::call_mode(mode, move || {
                n += c::plusone(0);
                n
            });
            assert_eq!((r, n), (11, 10));
        }
    });
}

/// A panic in the closure, whatever the result's shape and the mode, comes
/// back on the green thread after the call, and the runtime goes on.
#[test]
fn a_panic_inside_the_closure_comes_back_in_every_mode_and_shape() {
    fn caught<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> String {
        let r = ffiber::go(f).join();
        let e = r.err().expect("the closure panicked");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }
    rt(2).block_on(|| {
        for mode in MODES {
            let m = caught(move || {
                ffi::call_mode(mode, || {
                    if c::plusone(1) == 2 {
                        panic!("small {mode:?}")
                    }
                })
            });
            assert_eq!(m, format!("small {mode:?}"));
            let m = caught(move || {
                ffi::call_mode(mode, || {
                    if c::plusone(1) == 2 {
                        panic!("boxed {mode:?}")
                    }
                    Box::new(1)
                })
            });
            assert_eq!(m, format!("boxed {mode:?}"));
            let m = caught(move || {
                ffi::call_mode(mode, || {
                    if c::plusone(1) == 2 {
                        panic!("big {mode:?}")
                    }
                    [0u64; 9]
                })
            });
            assert_eq!(m, format!("big {mode:?}"));
            let m = caught(move || {
                ffi::call_errno(mode, || {
                    if c::fail_with(libc::EIO) == -1 {
                        panic!("errno {mode:?}")
                    }
                    0u8
                })
            });
            assert_eq!(m, format!("errno {mode:?}"));
            // The green thread that made the call is fine afterwards.
            assert_eq!(ffi::call_mode(mode, || c::plusone(1)), 2);
        }
    });
}

/// A green thread whose call blocked until the monitor gave its P away
/// comes back to find every P busy with green threads that loop on short
/// foreign calls, which never reach a scheduling point. It must still get
/// to run soon — one of their exits yields to it (issue 14: the SQLite
/// lock holder) — not when they stop. (Preemption off, so that only this
/// mechanism can help; the loopers give up after 20 s, so that a failure
/// is an assertion, not a hang.)
#[test]
fn a_green_thread_back_from_a_blocked_call_runs_among_short_call_loops() {
    for procs in [1, 2] {
        let rt = Runtime::builder().max_procs(procs).preempt(false).build().unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let all_saw_it = rt.block_on(move || {
            back_from_c_among_loops(procs, 50, give_up, |_| assert_eq!(ffi::call(|| c::plusone(1)), 2))
        });
        assert!(all_saw_it, "procs={procs}: the green thread back from C never ran while the loops went on");
    }
}

/// A green thread sleeps `sleep_ms` in C (long enough that the monitor
/// surely takes its P: its own exit then never serves a yield request —
/// a green thread that yields to a loop that never yields would wait,
/// preemption being off) while `2 * procs` green threads loop on
/// `call(n)`. Whether every loop saw it back before `give_up`.
fn back_from_c_among_loops(
    procs: usize,
    sleep_ms: i32,
    give_up: std::time::Instant,
    call: impl Fn(u32) + Clone + Send + 'static,
) -> bool {
    let back = Arc::new(AtomicBool::new(false));
    let in_c = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let (back, in_c) = (back.clone(), in_c.clone());
        ffiber::go(move || {
            in_c.store(true, Ordering::SeqCst);
            ffi::call(|| c::sleep_ms(sleep_ms));
            back.store(true, Ordering::SeqCst);
        })
    };
    while !in_c.load(Ordering::SeqCst) {
        ffiber::yield_now();
    }
    let loopers: Vec<_> = (0..2 * procs as u32)
        .map(|i| {
            let (back, call) = (back.clone(), call.clone());
            ffiber::go(move || {
                let mut n = i;
                while !back.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
                    call(n);
                    n = n.wrapping_add(7);
                }
                back.load(Ordering::SeqCst)
            })
        })
        .collect();
    let seen: Vec<bool> = loopers.into_iter().map(|h| h.join().unwrap()).collect();
    sleeper.join().unwrap();
    seen.iter().all(|&b| b)
}

/// The same, many times over, while the loops' calls last about the
/// monitor's retake threshold (20–40 µs), so that the loopers' own calls
/// are often taken and they come back to wait for a P too. Two ways the
/// returning green thread was lost (preemption off: nothing else makes the
/// loops yield): the monitor stored its request for a loop's call over
/// the yield request and then found the call over ("kept"), dropping the
/// yield; and the yield made for the waiter ran instead a green thread
/// that an earlier yield had put ahead of it, which then looped. Each
/// failed about every other run of this test. See
/// `CallState::request_yield` and `yield_behind_waiters`.
#[test]
fn a_returning_green_thread_is_not_lost_to_the_monitors_kept_requests() {
    const TIMES: usize = 30;
    for procs in [1, 2] {
        let rt = Runtime::builder().max_procs(procs).preempt(false).build().unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let seen = rt.block_on(move || {
            (0..TIMES)
                // 20–40 µs: about `RETAKE_AFTER`.
                .filter(|_| back_from_c_among_loops(procs, 30, give_up, |n| _ = ffi::call(|| c::spin_us(20 + n % 21))))
                .count()
        });
        assert_eq!(seen, TIMES, "procs={procs}: a green thread back from C never ran while the loops went on");
    }
}

/// Every P's OS thread blocked in C for 300 ms: the monitor must hand the
/// Ps to other threads so that a ticker green thread keeps ticking. Without
/// it the ticker could not run at all until a call returns.
/// With `idle_first`, the runtime first makes one call and then sleeps with
/// every P idle, so the monitor parks: the P taken to run the blocking
/// calls must wake it again.
fn ticker_keeps_ticking_while_every_p_blocks(mode: Mode, idle_first: bool) {
    let procs = 2;
    let ticks = rt(procs).block_on(move || {
        if idle_first {
            assert_eq!(ffi::call(|| c::plusone(1)), 2);
            ffiber::sleep(Duration::from_millis(200));
        }
        let done = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let blockers: Vec<_> = (0..procs)
            .map(|_| {
                let started = started.clone();
                ffiber::go(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..3 {
                        ffi::call_mode(mode, || c::sleep_ms(100));
                    }
                })
            })
            .collect();
        let ticker = {
            let done = done.clone();
            ffiber::go(move || {
                let mut ticks = 0u32;
                while !done.load(Ordering::SeqCst) {
                    ffiber::sleep(Duration::from_millis(1));
                    ticks += 1;
                }
                ticks
            })
        };
        while started.load(Ordering::SeqCst) < procs {
            ffiber::yield_now();
        }
        blockers.into_iter().for_each(|h| h.join().unwrap());
        done.store(true, Ordering::SeqCst);
        ticker.join().unwrap()
    });
    // 300 ms of 1 ms sleeps: a working hand-off gives ~100-300 ticks even on
    // a slow machine; a stuck P gives a handful (between the calls).
    assert!(ticks >= 30, "{mode:?}: the ticker ticked only {ticks} times while C blocked");
}

#[test]
fn blocking_c_in_default_mode_does_not_stop_other_green_threads() {
    ticker_keeps_ticking_while_every_p_blocks(Mode::Default, false);
}

#[test]
fn a_parked_monitor_is_woken_when_a_p_gets_busy() {
    ticker_keeps_ticking_while_every_p_blocks(Mode::Default, true);
}

#[test]
fn blocking_c_in_blocking_mode_does_not_stop_other_green_threads() {
    ticker_keeps_ticking_while_every_p_blocks(Mode::Blocking, false);
}

/// A default-mode call that computes (it never blocks) still loses its P
/// to the green thread queued behind it: the monitor cannot tell a call
/// that computes from one that blocks, and either way the queue must not
/// wait for the call. Its P goes to another M, which runs the green thread
/// that ends the C loop. Preemption is off, so that only the retake can
/// save it: without it, the loop would spin for its whole 20 s bound on
/// the one P.
#[test]
fn a_computing_default_mode_call_still_gives_its_p_to_queued_green_threads() {
    for _ in 0..5 {
        Runtime::builder().max_procs(1).preempt(false).build().unwrap().block_on(|| {
            let flag = Arc::new(std::sync::atomic::AtomicI32::new(0));
            let setter = {
                let flag = flag.clone();
                ffiber::go(move || flag.store(1, Ordering::SeqCst))
            };
            let came = ffi::call(|| c::spin_until(&flag, 20_000_000));
            assert!(came, "the green thread queued behind a computing C call never ran while it lasted (20 s)");
            setter.join().unwrap();
        });
    }
}

/// C that needs 1 MiB of stack, from 10,000 green threads whose own stacks
/// are 64 KiB: it runs on the OS threads' system stacks, so nothing
/// overflows and resident memory stays far below 10,000 x 1 MiB.
#[test]
fn deep_c_stacks_from_small_green_threads() {
    let before = rss_kib();
    let peak = Arc::new(AtomicUsize::new(0));
    let p2 = peak.clone();
    let sum: i64 = Runtime::builder().max_procs(2).stack_size(64 * 1024).build().unwrap().block_on(move || {
        let hs: Vec<_> = (0..10_000)
            .map(|i| {
                let peak = p2.clone();
                ffiber::go(move || {
                    // SAFETY: plain-value fixture; it needs 1 MiB of stack.
                    let v = ffi::call(|| c::deep_stack(1024));
                    if i % 1000 == 0 {
                        peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    }
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(sum, 10_000 * 257);
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(grew < 512 * 1024, "resident memory grew by {grew} KiB for 10,000 deep C calls");
}

#[test]
fn locked_green_thread_calls_c_on_one_os_thread() {
    rt(2).block_on(|| {
        ffiber::go(|| {
            ffiber::lock_os_thread();
            let first = ffi::call(tid);
            for mode in MODES {
                for _ in 0..20 {
                    assert_eq!(ffi::call_mode(mode, tid), first, "{mode:?}");
                    ffiber::sleep(Duration::from_micros(50));
                    ffiber::yield_now();
                }
            }
            // Blocking long enough for the monitor to act does not move it.
            ffi::call(|| c::sleep_ms(5));
            assert_eq!(ffi::call(tid), first);
            ffiber::unlock_os_thread();
        })
        .join()
        .unwrap();
    });
}

#[test]
fn many_green_threads_blocking_in_c_at_once() {
    // More blocked calls than Ps: the monitor hands the Ps to new OS
    // threads for the green threads still queued, so the calls overlap.
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (i2, m2) = (inside.clone(), most.clone());
    let n = rt(2).block_on(move || {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let (inside, most) = (i2.clone(), m2.clone());
                ffiber::go(move || {
                    ffi::call(|| {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        c::sleep_ms(50);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    });
                    1
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    assert_eq!(n, 16);
    let most = most.load(Ordering::SeqCst);
    assert!(most > 2, "at most {most} calls were in C at once with 2 Ps: the Ps were not handed off");
}

/// Calls that end just as the monitor retakes their P: many short blocking
/// calls while the Ps have queued work. Every call completes once, and no
/// P is lost — afterwards two spinning green threads must still run at the
/// same time on the two Ps (a lost P would leave one of them waiting).
fn retake_races_lose_no_p() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(8));
        eprintln!("retake_races_lose_no_p still running after 8 s; scheduler: {}", ffiber::debug_dump());
    });
    // No spares: `assert_every_p_runs` must see the two regular Ps run.
    Runtime::builder().max_procs(2).preempt(false).build().unwrap().block_on(|| {
        let calls = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..8)
            .map(|i| {
                let calls = calls.clone();
                ffiber::go(move || {
                    for k in 0..40 {
                        // 0.2-2.2 ms in C: around the monitor's polling
                        // period, so calls often end while being retaken.
                        let us = 200 + ((i * 7 + k * 13) % 5) as u32 * 500;
                        ffi::call(|| c::sleep_us(us));
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let busy = common::spawn_wanting_ps(4, 200);
        callers.into_iter().chain(busy).for_each(|h| h.join().unwrap());
        assert_eq!(calls.load(Ordering::Relaxed), 8 * 40);
        // Both Ps still work.
        common::assert_every_p_runs(2);
    });
}

#[test]
fn retake_races_lose_no_p_asymmetric() {
    retake_races_lose_no_p();
}

/// The same with the symmetric protocol (an atomic swap on exit), which
/// the runtime uses where membarrier is unavailable; run in a child
/// process because the choice is made once per process.
#[test]
fn retake_races_lose_no_p_symmetric() {
    if std::env::var_os("FFIBER_NO_MEMBARRIER").is_some() {
        return retake_races_lose_no_p();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "retake_races_lose_no_p_symmetric", "--nocapture"])
        .env("FFIBER_NO_MEMBARRIER", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// The register pass-through form (what generated bindings use): integer,
/// floating-point and mixed arguments, and a struct returned in `rax` +
/// `xmm0`, in every mode, from green threads and from a plain thread.
#[test]
fn register_trampoline_passes_arguments_through() {
    use ffi::Regs;
    fn f<T>(p: T) -> unsafe extern "C" fn() {
        // SAFETY: only reinterprets one C function pointer type as another
        // of the same size; `call_regs` calls it with the registers of the
        // real signature.
        unsafe { std::mem::transmute_copy(&p) }
    }
    fn call<const NI: usize, const NS: usize>(
        mode: Mode,
        name: &'static str,
        func: unsafe extern "C" fn(),
        regs: &Regs<NI, NS>,
    ) -> ffi::RegsOut {
        // SAFETY: each fixture below is called with its parameters in
        // exactly the registers set, and its result read from the
        // registers it comes back in.
        unsafe { ffi::call_regs(mode, name, func, regs) }
    }
    let check = |mode: Mode| {
        let plusone = f(c::sys::plusone as unsafe extern "C" fn(i32) -> i32);
        assert_eq!(call(mode, "plusone", plusone, &Regs::new([41], [])).rax as i32, 42);
        // The full register set (as variadic calls use it) works too.
        let regs: Regs = Regs { int: [41, 0, 0, 0, 0, 0], ..Regs::default() };
        assert_eq!(call(mode, "plusone", plusone, &regs).rax as i32, 42);

        let fsum8 = f(c::sys::fsum8 as unsafe extern "C" fn(f64, f64, f64, f64, f64, f64, f64, f64) -> f64);
        let sse = [0.5f64, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0].map(f64::to_bits);
        let out = call(mode, "fsum8", fsum8, &Regs::new([], sse));
        assert_eq!(f64::from_bits(out.xmm0), 102.0);

        // mixed(int a, double b, long c, float d, char e, double f)
        let mixed = f(c::sys::mixed as unsafe extern "C" fn(i32, f64, i64, f32, libc::c_char, f64) -> f64);
        let sse = [2.5f64.to_bits(), 0.25f32.to_bits() as u64, 8.0f64.to_bits()];
        let out = call(mode, "mixed", mixed, &Regs::new([1, 3, 4], sse));
        assert_eq!(f64::from_bits(out.xmm0), 18.75);
        let regs: Regs = Regs { int: [1, 3, 4, 0, 0, 0], sse: [sse[0], sse[1], sse[2], 0, 0, 0, 0, 0], nsse: 3 };
        assert_eq!(f64::from_bits(call(mode, "mixed", mixed, &regs).xmm0), 18.75);

        // struct pair { long a; double b; } comes back in rax and xmm0.
        let make_pair = f(c::sys::make_pair as unsafe extern "C" fn(i64, f64) -> c::Pair);
        let out = call(mode, "make_pair", make_pair, &Regs::new([21], [1.25f64.to_bits()]));
        assert_eq!((out.rax as i64, f64::from_bits(out.xmm0)), (42, 2.5));
    };
    rt(2).block_on(move || {
        for mode in MODES {
            check(mode);
        }
    });
    check(Mode::Default); // outside the runtime: called in place
}

/// `plusone` through the register trampoline, as generated code calls it.
#[inline(always)]
fn plusone_regs(mode: Mode, x: i32) -> i32 {
    let f: unsafe extern "C" fn(i32) -> i32 = c::sys::plusone;
    let regs = ffi::Regs::new([x as u64], []);
    // SAFETY: plusone takes one int in rdi and returns one in eax.
    unsafe {
        ffi::call_regs(
            mode,
            "plusone",
            std::mem::transmute::<unsafe extern "C" fn(i32) -> i32, unsafe extern "C" fn()>(f),
            &regs,
        )
    }
    .rax as i32
}

/// Three inlined foreign calls, with a `Blocking` one between them that
/// hands the P away (the green thread may come back on another OS thread).
#[inline(never)]
fn calls_around_a_migration(i: i32) -> i32 {
    let a = plusone_regs(Mode::Default, i);
    let s: unsafe extern "C" fn(u32) = c::sys::sleep_us;
    let regs = ffi::Regs::new([1], []);
    // SAFETY: sleep_us takes one unsigned int in rdi.
    unsafe {
        ffi::call_regs(
            Mode::Blocking,
            "sleep_us",
            std::mem::transmute::<unsafe extern "C" fn(u32), unsafe extern "C" fn()>(s),
            &regs,
        )
    };
    let b = plusone_regs(Mode::Default, a);
    plusone_regs(Mode::NoCallback, b)
}

/// One function making several inlined foreign calls with migrations to
/// other OS threads in between (a `Blocking` call hands its P away and may
/// come back on another thread; `yield_now` may be stolen). The call path
/// finds its M in a thread-local slot: if the compiler kept the slot's
/// address from before a migration, the later calls would do their
/// bookkeeping in the previous thread's M, and a green thread would later
/// find another call's name in its M (and panic) or a P would be lost.
#[test]
fn inlined_calls_find_their_own_m_after_migrating() {
    let moved = rt(2).block_on(|| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                ffiber::go(|| {
                    let mut moved = 0;
                    for i in 0..300 {
                        let before = tid();
                        assert_eq!(calls_around_a_migration(i), i + 3);
                        ffiber::yield_now();
                        moved += usize::from(tid() != before);
                    }
                    moved
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    // Not asserted (scheduling decides), but the test means something only
    // if green threads did move; print it for whoever reads the log.
    eprintln!("green threads changed OS thread {moved} times");
}

/// A `Blocking` call made while nothing is queued keeps its P (lazy
/// hand-off); a timer that comes due meanwhile must still get the P. One
/// P: the sleeper can only run if the P is taken from the call.
#[test]
fn a_lazy_blocking_call_gives_its_p_to_a_due_timer() {
    let woke = rt(1).block_on(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f2 = flag.clone();
        let sleeper = ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(20));
            f2.store(true, Ordering::SeqCst);
        });
        // Let the sleeper park on its timer: the run queue is then empty.
        ffiber::yield_now();
        let woke = ffi::call_mode(Mode::Blocking, || {
            c::sleep_ms(400);
            flag.load(Ordering::SeqCst)
        });
        sleeper.join().unwrap();
        woke
    });
    assert!(woke, "the sleeper did not run while the only P sat in a Blocking call");
}

/// Every P in a lazy `Blocking` call, and work arrives from outside the
/// runtime (a plain OS thread sends on a channel): the receiver must run
/// while the calls still block.
#[test]
fn lazy_blocking_calls_give_their_ps_to_work_from_outside() {
    let (during_other, during_main) = rt(2).block_on(move || {
        let (tx, rx) = ffiber::chan::bounded::<u32>(0);
        let got = Arc::new(AtomicBool::new(false));
        let g2 = got.clone();
        let receiver = ffiber::go(move || {
            assert_eq!(rx.recv().unwrap(), 7);
            g2.store(true, Ordering::SeqCst);
        });
        ffiber::yield_now();
        // One call on the other P, made when nothing is queued...
        let entered = Arc::new(AtomicBool::new(false));
        let (e2, got2) = (entered.clone(), got.clone());
        let other = ffiber::go(move || {
            ffi::call_mode(Mode::Blocking, || {
                e2.store(true, Ordering::SeqCst);
                c::sleep_ms(500);
                got2.load(Ordering::SeqCst)
            })
        });
        // (Spin without yielding: a yield would queue this green thread
        // on the P the call is made from, and the call would hand it off.)
        while !entered.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        // ...and one on this P, with nothing queued either.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(7).unwrap();
        });
        let during_main = ffi::call_mode(Mode::Blocking, || {
            c::sleep_ms(500);
            got.load(Ordering::SeqCst)
        });
        let during_other = other.join().unwrap();
        receiver.join().unwrap();
        sender.join().unwrap();
        (during_other, during_main)
    });
    assert!(during_other && during_main, "the receiver waited for the Blocking calls to return");
}

/// Many green threads whose calls block, in the default mode, mixed with
/// green threads making short calls in a loop: the monitor's hand-offs,
/// and the eager ones of an M whose last call blocked (`HOT`), must lose
/// no call and no P, under 1, 2 and 8 Ps; and the blocking calls overlap.
#[test]
fn default_mode_hands_off_runs_of_blocking_calls() {
    for procs in [1, 2, 8] {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (i2, m2) = (inside.clone(), most.clone());
        let (sleeps, sums) = rt(procs).block_on(move || {
            let sleepers: Vec<_> = (0..2000)
                .map(|i| {
                    let (inside, most) = (i2.clone(), m2.clone());
                    ffiber::go(move || {
                        let mut n = 0;
                        for _ in 0..2 {
                            n += ffi::call(|| {
                                most.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                                c::sleep_us(500 + (i % 7) * 100);
                                inside.fetch_sub(1, Ordering::SeqCst);
                                1
                            });
                            // A short call right after: mispredicted as
                            // blocking on a `HOT` M, it must still work.
                            n += ffi::call(|| c::plusone(0)) - 1;
                        }
                        n
                    })
                })
                .collect();
            let loopers: Vec<_> = (0..4)
                .map(|_| {
                    ffiber::go(|| {
                        let mut x = 0;
                        while x < 200_000 {
                            x = ffi::call(|| c::plusone(x));
                        }
                        x
                    })
                })
                .collect();
            let sleeps: i32 = sleepers.into_iter().map(|h| h.join().unwrap()).sum();
            let sums: i32 = loopers.into_iter().map(|h| h.join().unwrap()).sum();
            (sleeps, sums)
        });
        assert_eq!((sleeps, sums), (4000, 800_000), "{procs} Ps");
        let most = most.load(Ordering::SeqCst);
        assert!(most > procs, "{procs} Ps: at most {most} blocking calls were in C at once");
    }
}

/// A green thread that only makes short calls, on the only P, while a
/// sleeper's timer keeps coming due: the monitor asks it to yield at a
/// call's exit each time, and it goes back ahead of the P's queue, behind
/// the sleeper — but not for ever: a green thread queued behind them still
/// runs (`FRONT_YIELDS_MAX`). Preemption by hand-off is off, so nothing
/// else would run it. The sleeper's timer is also fired, now and then, by
/// the idle M that watches timers: that M asks for the yield then
/// (`Sched::run_all_timers`; when it put the sleeper on the global queue
/// without asking, this failed in most runs on a loaded machine).
#[test]
fn yields_at_call_exits_for_late_timers_do_not_starve_the_queue() {
    let rt = Runtime::builder().max_procs(1).preempt(false).build().unwrap();
    let (by_queued, ticks) = rt.block_on(|| {
        let done = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicUsize::new(0));
        let sleeper = {
            let (done, ticks) = (done.clone(), ticks.clone());
            ffiber::go(move || {
                while !done.load(Ordering::Acquire) {
                    ffiber::sleep(Duration::from_micros(200));
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // The sleeper goes first, and has a timer from then on.
        ffiber::sleep(Duration::from_millis(1));
        let looper = {
            let (done, ticks) = (done.clone(), ticks.clone());
            ffiber::go(move || {
                // Start the loop while the sleeper sleeps: right after it
                // ticked (on the only P, it went on to sleep before this
                // green thread ran again). Had it been queued when the loop
                // began, nothing would make the loop yield for it:
                // preemption is off, and no timer of it would come due.
                let t0 = ticks.load(Ordering::Relaxed);
                while ticks.load(Ordering::Relaxed) == t0 {
                    ffiber::yield_now();
                }
                // Queued behind the looper: `last` goes to `run_next`
                // (which the first yield lets go first), `queued` to the
                // queue's tail, which only the bound lets through.
                let queued = {
                    let done = done.clone();
                    ffiber::go(move || done.store(true, Ordering::Release))
                };
                let last = ffiber::go(|| ());
                let give_up = std::time::Instant::now() + Duration::from_secs(20);
                let mut x = 0;
                while !done.load(Ordering::Acquire) && std::time::Instant::now() < give_up {
                    x = ffi::call(|| c::plusone(x));
                }
                let by_queued = done.load(Ordering::Acquire);
                done.store(true, Ordering::Release);
                queued.join().unwrap();
                last.join().unwrap();
                by_queued
            })
        };
        let by_queued = looper.join().unwrap();
        sleeper.join().unwrap();
        (by_queued, ticks.load(Ordering::Relaxed))
    });
    assert!(by_queued, "the queued green thread did not run in 20 s (the sleeper woke {ticks} times)");
    assert!(ticks > 0, "the sleeper never woke");
}
