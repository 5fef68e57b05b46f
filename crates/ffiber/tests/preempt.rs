//! Fairness for CPU-bound green threads (issue 12): preemption by hand-off.
//! A green thread that never reaches a scheduling point keeps its OS thread
//! and is never interrupted; the work waiting behind it moves to a spare
//! processor slot on another OS thread.

use ffiber::Runtime;
use ffiber::chan;
use ffiber::ffi::{self, Mode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

fn rt(procs: usize, preempt: bool) -> Runtime {
    Runtime::builder().max_procs(procs).preempt(preempt).build().unwrap()
}

/// Spins until `stop` (no scheduling point), counting; returns once the
/// hog is running.
fn hog(stop: Arc<AtomicBool>) -> ffiber::JoinHandle<u64> {
    let started = Arc::new(AtomicBool::new(false));
    let st = started.clone();
    let h = ffiber::go(move || {
        st.store(true, SeqCst);
        let mut n = 0u64;
        while !stop.load(SeqCst) {
            n = n.wrapping_add(1);
            std::hint::spin_loop();
        }
        n
    });
    while !started.load(SeqCst) {
        ffiber::yield_now();
    }
    h
}

/// A channel ping-pong of `rounds` between two green threads.
fn ping_pong(rounds: u64) -> u64 {
    let (a_tx, a_rx) = chan::bounded::<u64>(0);
    let (b_tx, b_rx) = chan::bounded::<u64>(0);
    let echo = ffiber::go(move || {
        for v in a_rx.iter() {
            b_tx.send(v + 1).unwrap();
        }
    });
    let mut v = 0;
    for _ in 0..rounds {
        a_tx.send(v).unwrap();
        v = b_rx.recv().unwrap();
    }
    drop(a_tx);
    echo.join().unwrap();
    v
}

#[test]
fn endless_loops_on_every_p_do_not_stop_a_ping_pong() {
    for procs in [1, 2] {
        let r = rt(procs, true);
        let v = r.block_on(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let hogs: Vec<_> = (0..procs).map(|_| hog(stop.clone())).collect();
            // The hogs never yield and are still running when this ends: the
            // ping-pong ran on spares.
            let v = ping_pong(2_000);
            stop.store(true, SeqCst);
            hogs.into_iter().for_each(|h| assert!(h.join().unwrap() > 0));
            v
        });
        assert_eq!(v, 2_000, "{procs} Ps");
        // Spares retire once the hogs reach the scheduler.
        let t = Instant::now();
        while r.active_spares() > 0 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.active_spares(), 0, "{procs} Ps: a spare outlived its hog");
    }
}

#[test]
fn spares_run_while_the_hog_lasts_and_retire_after() {
    let r = rt(1, true);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = r.spawn(move || {
        let h = hog(s);
        // Something that waits behind the hog: a sleeper on the same P.
        let ticks = ffiber::go(|| {
            for _ in 0..20 {
                ffiber::sleep(Duration::from_millis(1));
            }
        });
        ticks.join().unwrap();
        h
    });
    let hog = h.join().unwrap();
    let during = r.active_spares();
    stop.store(true, SeqCst);
    // Join the hog from an OS thread: its result comes back.
    assert!(hog.join().unwrap() > 0);
    assert_eq!(during, 1, "one spare covers the one hogged P");
    let t = Instant::now();
    while r.active_spares() > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(r.active_spares(), 0);
}

#[test]
fn a_long_nonblocking_c_spin_does_not_stop_the_others() {
    for procs in [1, 2] {
        let finished_first = rt(procs, true).block_on(move || {
            let spin_done = Arc::new(AtomicBool::new(false));
            let spinners: Vec<_> = (0..procs)
                .map(|_| {
                    let d = spin_done.clone();
                    ffiber::go(move || {
                        // 1 s of C (ample margin over the 10 ms hand-off on a loaded machine) that never sleeps, not announced.
                        let n = ffi::call_mode(Mode::NonBlocking, || ffiber_testc::spin_us(1_000_000));
                        d.store(true, SeqCst);
                        n
                    })
                })
                .collect();
            ffiber::sleep(Duration::from_millis(1));
            let v = ping_pong(500);
            let first = !spin_done.load(SeqCst);
            spinners.into_iter().for_each(|h| assert!(h.join().unwrap() > 0));
            assert_eq!(v, 500);
            first
        });
        assert!(finished_first, "{procs} Ps: the ping-pong waited for the C spin to end");
    }
}

/// One P: a green thread queued behind a 1 s loop (a wide margin over the 10 ms hand-off). With preemption it
/// runs while the loop does; without, only after it.
fn queued_behind_a_bounded_hog(r: &Runtime) -> bool {
    r.block_on(|| {
        let hog_done = Arc::new(AtomicBool::new(false));
        let d = hog_done.clone();
        // Queued first; the hog goes in `run_next` and runs first.
        let other = ffiber::go(move || d.load(SeqCst));
        let d = hog_done.clone();
        let hog = ffiber::go(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(1000) {
                std::hint::spin_loop();
            }
            d.store(true, SeqCst);
        });
        let saw_done = other.join().unwrap();
        hog.join().unwrap();
        saw_done
    })
}

#[test]
fn preempt_off_restores_cooperative_scheduling() {
    assert!(
        queued_behind_a_bounded_hog(&rt(1, false)),
        "preempt(false): the queued green thread ran before the hog yielded"
    );
    assert!(!queued_behind_a_bounded_hog(&rt(1, true)), "preempt(true): the queued green thread waited for the hog");
}

#[test]
fn ffiber_preempt_0_turns_it_off() {
    if std::env::var_os("FFIBER_PREEMPT_CHILD").is_some() {
        let saw_done = queued_behind_a_bounded_hog(&Runtime::builder().max_procs(1).build().unwrap());
        println!("RESULT {saw_done}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ffiber_preempt_0_turns_it_off", "--nocapture"])
        .env("FFIBER_PREEMPT_CHILD", "1")
        .env("FFIBER_PREEMPT", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RESULT true"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

thread_local! {
    static LOG: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The hog holds a `RefCell` borrow of a thread-local for its whole run; the
/// green threads that run meanwhile use the same thread-local. Since the hog
/// is never suspended and nothing else runs on its OS thread, they never
/// see its borrow: no "already borrowed" panic, no deadlock.
#[test]
fn a_hog_holding_a_thread_local_borrow_is_never_interleaved() {
    let panics = rt(1, true).block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let holding = Arc::new(AtomicBool::new(false));
        let (s, h) = (stop.clone(), holding.clone());
        let hog = ffiber::go(move || {
            #[inline(never)]
            fn hold(stop: &AtomicBool, holding: &AtomicBool) {
                LOG.with(|l| {
                    let mut b = l.borrow_mut();
                    holding.store(true, SeqCst);
                    while !stop.load(SeqCst) {
                        b.push(1);
                        b.clear();
                        std::hint::spin_loop();
                    }
                });
            }
            hold(&s, &h);
        });
        while !holding.load(SeqCst) {
            ffiber::yield_now();
        }
        let users: Vec<_> = (0..50)
            .map(|i| {
                ffiber::go(move || {
                    #[inline(never)]
                    fn use_it(i: u32) {
                        LOG.with(|l| l.borrow_mut().push(i));
                    }
                    use_it(i);
                    ffiber::yield_now();
                    use_it(i);
                })
            })
            .collect();
        let panics = users.into_iter().map(|h| h.join().is_err() as u32).sum::<u32>();
        stop.store(true, SeqCst);
        hog.join().unwrap();
        panics
    });
    assert_eq!(panics, 0);
}

/// One and two Ps: green threads that loop on short default-mode C calls (5 µs
/// each: never long enough for the monitor to take the P from one) are hogs
/// as much as plain loops, though the monitor mostly finds them inside C.
/// The green threads queued behind it get twenty turns each while the loop
/// lasts (the loop gives up after 5 s, so a failure is an assertion, not a
/// hang; before the monitor preempted such loops at a call's exit, one
/// turn took 0.15 s to over 5 s).
#[test]
fn a_loop_of_short_default_mode_calls_does_not_starve_the_queue() {
    for procs in [1, 2] {
        let (ran_during, calls) = rt(procs, true).block_on(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let loopers: Vec<_> = (0..procs)
                .map(|_| {
                    let s = stop.clone();
                    ffiber::go(move || {
                        let t = Instant::now();
                        let mut calls = 0u64;
                        while !s.load(SeqCst) && t.elapsed() < Duration::from_secs(5) {
                            ffi::call(|| ffiber_testc::spin_us(5));
                            calls += 1;
                        }
                        (calls, s.load(SeqCst))
                    })
                })
                .collect();
            // Let the loops take every P, then queue work behind them that
            // needs twenty turns (a yield goes to the tail, behind the loop).
            ffiber::sleep(Duration::from_millis(1));
            let s = stop.clone();
            let others: Vec<_> = (0..4 * procs)
                .map(|_| {
                    let s = s.clone();
                    ffiber::go(move || {
                        for _ in 0..20 {
                            ffiber::yield_now();
                        }
                        !s.load(SeqCst)
                    })
                })
                .collect();
            let ran_during = others.into_iter().all(|h| h.join().unwrap());
            stop.store(true, SeqCst);
            let mut calls = 0;
            for h in loopers {
                let (n, stopped) = h.join().unwrap();
                assert!(stopped || !ran_during, "a loop ended on its deadline though the others ran");
                calls += n;
            }
            (ran_during, calls)
        });
        assert!(calls > 0);
        assert!(ran_during, "{procs} Ps: green threads queued behind loops of short C calls waited for them to end");
    }
}
