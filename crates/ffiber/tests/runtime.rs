//! Scheduler, green threads, timers, OS-thread locking.

use ffiber::{Builder, Runtime};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn rt(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).build().unwrap()
}

#[test]
fn hundred_thousand_green_threads_spawned_and_joined() {
    let sum = rt(2).block_on(|| {
        let hs: Vec<_> = (0..100_000u64).map(|i| ffiber::go(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, 100_000 * 99_999 / 2);
}

#[test]
fn many_parked_green_threads_all_wake() {
    // 10,000 green threads all parked on one channel at once, then released.
    let n = 10_000;
    let got = rt(2).block_on(move || {
        let (tx, rx) = ffiber::chan::bounded::<usize>(0);
        let (done_tx, done_rx) = ffiber::chan::unbounded();
        for _ in 0..n {
            let (rx, done_tx) = (rx.clone(), done_tx.clone());
            ffiber::go(move || done_tx.send(rx.recv().unwrap()).unwrap());
        }
        for i in 0..n {
            tx.send(i).unwrap();
        }
        let mut seen: Vec<usize> = (0..n).map(|_| done_rx.recv().unwrap()).collect();
        seen.sort_unstable();
        seen
    });
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn cpu_bound_green_threads_use_every_p() {
    // Two green threads that spin (yielding now and then) for a while must
    // be seen running on two different OS threads at the same time.
    let procs = 2;
    let concurrent = rt(procs).block_on(move || {
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..procs)
            .map(|_| {
                let (running, max_seen) = (running.clone(), max_seen.clone());
                ffiber::go(move || {
                    let mut tids = HashSet::new();
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_secs(5) && max_seen.load(Ordering::SeqCst) < 2 {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(200) {
                            std::hint::spin_loop();
                        }
                        tids.insert(tid());
                        running.fetch_sub(1, Ordering::SeqCst);
                        ffiber::yield_now();
                    }
                    tids
                })
            })
            .collect();
        let tid_sets: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (max_seen.load(Ordering::SeqCst), tid_sets)
    });
    let (max_seen, tid_sets) = concurrent;
    assert_eq!(max_seen, 2, "two CPU-bound green threads never ran at the same time");
    let all: HashSet<_> = tid_sets.into_iter().flatten().collect();
    assert!(all.len() >= 2, "CPU-bound green threads all ran on one OS thread: {all:?}");
}

#[test]
fn panics_come_back_through_join() {
    let msg = rt(2).block_on(|| {
        let n = std::hint::black_box(7);
        let h = Builder::new().name("boom").spawn(move || -> u32 { panic!("kaboom {n}") }).unwrap();
        let err = h.join().unwrap_err();
        // The runtime keeps working after a green thread panicked.
        assert_eq!(ffiber::go(|| 5).join().unwrap(), 5);
        err.downcast_ref::<String>().cloned().unwrap()
    });
    assert_eq!(msg, "kaboom 7");
}

#[test]
fn block_on_resumes_main_panic() {
    let r = std::panic::catch_unwind(|| rt(1).block_on(|| panic!("main failed")));
    let err = r.unwrap_err();
    assert_eq!(*err.downcast_ref::<&str>().unwrap(), "main failed");
}

#[test]
fn sleeps_wake_in_order_and_not_early() {
    let order = rt(2).block_on(|| {
        let (tx, rx) = ffiber::chan::unbounded();
        let start = Instant::now();
        // Spawn in scrambled order; each records when it woke.
        for ms in [50u64, 10, 40, 20, 30, 0, 5] {
            let tx = tx.clone();
            ffiber::go(move || {
                let t = Instant::now();
                ffiber::sleep(Duration::from_millis(ms));
                let slept = t.elapsed();
                tx.send((ms, slept, start.elapsed())).unwrap();
            });
        }
        drop(tx);
        rx.iter().collect::<Vec<_>>()
    });
    for (ms, slept, _) in &order {
        assert!(*slept >= Duration::from_millis(*ms), "sleep({ms} ms) woke after {slept:?}");
    }
    let woke: Vec<u64> = order.iter().map(|(ms, _, _)| *ms).collect();
    let mut sorted = woke.clone();
    sorted.sort_unstable();
    assert_eq!(woke, sorted, "sleepers woke out of order");
}

#[test]
fn sleeping_green_threads_do_not_hold_their_p() {
    // One P: while 100 green threads sleep, another keeps running. If a
    // sleeper held the only P, the runner could not finish its 100 yields
    // before every sleeper had woken.
    let woken_before_runner_done = rt(1).block_on(|| {
        let woken = Arc::new(AtomicUsize::new(0));
        let sleepers: Vec<_> = (0..100)
            .map(|_| {
                let woken = woken.clone();
                ffiber::go(move || {
                    ffiber::sleep(Duration::from_secs(2));
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for _ in 0..100 {
            ffiber::yield_now();
        }
        let n = woken.load(Ordering::SeqCst);
        sleepers.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(woken.load(Ordering::SeqCst), 100);
        n
    });
    assert_eq!(woken_before_runner_done, 0, "the runner was starved while green threads slept");
}

#[test]
fn lock_os_thread_keeps_one_os_thread() {
    let ok = rt(2).block_on(|| {
        // Keep the other P busy so migration would be likely if allowed.
        let stop = Arc::new(AtomicUsize::new(0));
        let noise: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                ffiber::go(move || {
                    while stop.load(Ordering::SeqCst) == 0 {
                        ffiber::yield_now();
                    }
                })
            })
            .collect();
        let h = ffiber::go(|| {
            ffiber::lock_os_thread();
            let me = tid();
            let mut same = true;
            for i in 0..200 {
                if i % 3 == 0 {
                    ffiber::sleep(Duration::from_micros(100));
                } else {
                    ffiber::yield_now();
                }
                same &= tid() == me;
            }
            ffiber::unlock_os_thread();
            same
        });
        let same = h.join().unwrap();
        stop.store(1, Ordering::SeqCst);
        noise.into_iter().for_each(|h| h.join().unwrap());
        same
    });
    assert!(ok, "a locked green thread moved to another OS thread");
}

#[test]
fn unlocked_green_threads_do_migrate() {
    // The counterpart of the test above: without the lock, green threads do
    // move between OS threads (otherwise that test proves nothing).
    let moved = rt(2).block_on(|| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                ffiber::go(|| {
                    let mut tids = HashSet::new();
                    for _ in 0..200 {
                        tids.insert(tid());
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(50) {
                            std::hint::spin_loop();
                        }
                        ffiber::yield_now();
                    }
                    tids
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect::<HashSet<_>>().len()
    });
    assert!(moved >= 2);
}

#[test]
fn current_names_and_ids() {
    rt(2).block_on(|| {
        let main = ffiber::current();
        assert_eq!(main.name(), Some("main"));
        let h = Builder::new()
            .name("worker-1")
            .spawn(|| (ffiber::current().id(), ffiber::current().name().map(String::from)))
            .unwrap();
        let expect = h.thread().id();
        let (id, name) = h.join().unwrap();
        assert_eq!(id, expect);
        assert_ne!(id, main.id());
        assert_eq!(name.as_deref(), Some("worker-1"));
    });
    assert!(ffiber::try_current().is_none());
}

#[test]
fn spawn_outside_runtime_is_a_clear_error() {
    let err = Builder::new().spawn(|| ()).unwrap_err();
    assert!(err.to_string().contains("outside the runtime"), "{err}");
}

#[test]
fn runtime_spawn_from_os_thread() {
    let rt = rt(2);
    let h = rt.spawn(|| {
        ffiber::sleep(Duration::from_millis(1));
        ffiber::current().id()
    });
    assert!(h.join().unwrap().as_u64() > 0);
}

#[test]
fn maxprocs_from_environment_is_validated() {
    // Only the builder's parse path is exercised here (the env var is
    // process-wide, so set it in a child-free way: through the builder).
    assert_eq!(Runtime::builder().max_procs(3).build().unwrap().max_procs(), 3);
}

#[test]
fn deep_recursion_within_the_stack_works_and_trims() {
    // Use ~200 KiB of a 256 KiB stack, then exit; repeated so pooled stacks
    // get reused after being dirtied.
    fn recurse(n: usize) -> usize {
        let buf = [n as u8; 1024];
        if n == 0 {
            std::hint::black_box(&buf)[0] as usize
        } else {
            recurse(n - 1) + std::hint::black_box(&buf)[1] as usize
        }
    }
    let r = rt(2).block_on(|| (0..50).map(|_| ffiber::go(|| recurse(150)).join().unwrap()).sum::<usize>());
    assert!(r > 0);
}

/// Exited green threads are reused (with their stacks) by later spawns:
/// each incarnation still gets a fresh id, its own name, a clean start and
/// the stack size it asked for.
#[test]
fn reused_green_threads_get_fresh_identity_and_state() {
    rt(2).block_on(|| {
        let mut ids = HashSet::new();
        for round in 0..20 {
            let hs: Vec<_> = (0..200)
                .map(|i| {
                    let b = if i % 3 == 0 { Builder::new().name(format!("r{round}-{i}")) } else { Builder::new() };
                    let b = if i % 7 == 0 { b.stack_size(64 * 1024) } else { b };
                    b.spawn(move || {
                        // Leave something on the stack that a reuse must not see.
                        let probe = [i as u8; 512];
                        ffiber::yield_now();
                        let me = ffiber::current();
                        (me.id(), me.name().map(str::to_owned), probe[511])
                    })
                    .unwrap()
                })
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                let want = (i % 3 == 0).then(|| format!("r{round}-{i}"));
                let (id, name, b) = h.join().unwrap();
                assert_eq!(name, want);
                assert_eq!(b, i as u8);
                assert!(ids.insert(id), "green thread id {id} handed out twice");
            }
        }
    });
}

/// A result nobody joins is dropped by the green thread itself; a panic in
/// its destructor is reported, not propagated into the scheduler.
#[test]
fn panicking_destructor_of_an_unjoined_result_is_contained() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    let n = rt(2).block_on(|| {
        let (go_tx, go_rx) = ffiber::chan::bounded::<()>(0);
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let go_rx = go_rx.clone();
                ffiber::go(move || {
                    let _ = go_rx.recv();
                    Bomb
                })
            })
            .collect();
        drop(hs); // detach while they wait: each green thread drops its own result
        drop(go_tx); // release them
        ffiber::sleep(Duration::from_millis(20));
        ffiber::go(|| 7).join().unwrap()
    });
    assert_eq!(n, 7);
}
