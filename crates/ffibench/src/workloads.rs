//! The runtime-basics workloads for the in-process peers (ffiber, may).
//! Each prints `metric=value` lines, like the Go peer in
//! `bench/peers/go/runtime`; one process per run keeps them independent.

use std::time::{Duration, Instant};

/// Resident memory of this process, KiB.
pub fn rss_kib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / 1024.0
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// ffiber: spawn+join, yield switch (1 P), ping-pong (2 Ps), parked memory.
pub fn ffiber(n: impl Fn(usize) -> usize) {
    let rt = ffiber::Runtime::builder().build().expect("runtime");
    let batches = n(200);
    let spawn_ns = rt.block_on(move || {
        let t = Instant::now();
        for _ in 0..batches {
            let hs: Vec<_> = (0..1000).map(|_| ffiber::go(|| ())).collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        }
        per(t.elapsed(), batches * 1000)
    });
    println!("spawn_join_ns={spawn_ns:.1}");
    let at_once = n(100_000);
    let burst_ns = rt.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..at_once).map(|_| ffiber::go(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        per(t.elapsed(), at_once)
    });
    println!("spawn_burst_ns={burst_ns:.1}");

    let one = ffiber::Runtime::builder().max_procs(1).build().expect("runtime");
    let yields = n(1_000_000);
    let yield_ns = one.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                ffiber::go(move || {
                    for _ in 0..yields {
                        ffiber::yield_now();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        per(t.elapsed(), 2 * yields)
    });
    drop(one);
    println!("yield_ns={yield_ns:.1}");

    let rounds = n(200_000);
    let pp_ns = rt.block_on(move || {
        let (a_tx, a_rx) = ffiber::chan::bounded::<usize>(0);
        let (b_tx, b_rx) = ffiber::chan::bounded::<usize>(0);
        ffiber::go(move || {
            for v in a_rx.iter() {
                b_tx.send(v + 1).unwrap();
            }
        });
        let t = Instant::now();
        let mut v = 0;
        for _ in 0..rounds {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
        }
        per(t.elapsed(), rounds)
    });
    println!("pingpong_ns={pp_ns:.1}");

    let parked = n(20_000);
    let kib = rt.block_on(move || {
        let before = rss_kib();
        let (tx, rx) = ffiber::chan::bounded::<()>(0);
        let wg = std::sync::Arc::new(ffiber::sync::WaitGroup::new());
        wg.add(parked);
        let hs: Vec<_> = (0..parked)
            .map(|_| {
                let (rx, wg) = (rx.clone(), wg.clone());
                ffiber::go(move || {
                    wg.done();
                    rx.recv().ok();
                })
            })
            .collect();
        wg.wait();
        ffiber::sleep(Duration::from_millis(10));
        let after = rss_kib();
        drop(tx);
        hs.into_iter().for_each(|h| h.join().unwrap());
        (after - before) / parked as f64
    });
    println!("parked_kib={kib:.2}");

    for (label, base) in [("park300k", 300_000), ("park1m", 1_000_000)] {
        let n = n(base);
        let (spawn_ns, wake_ns) = rt.block_on(move || {
            let (tx, rx) = ffiber::chan::bounded::<()>(0);
            let wg = std::sync::Arc::new(ffiber::sync::WaitGroup::new());
            wg.add(n);
            let t = Instant::now();
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, wg) = (rx.clone(), wg.clone());
                    ffiber::go(move || {
                        wg.done();
                        rx.recv().is_err()
                    })
                })
                .collect();
            wg.wait();
            let spawn = per(t.elapsed(), n);
            let t = Instant::now();
            drop(tx);
            let woke = hs.into_iter().map(|h| h.join().unwrap()).filter(|&closed| closed).count();
            assert_eq!(woke, n, "every parked green thread sees the close");
            (spawn, per(t.elapsed(), n))
        });
        println!("{label}_spawn_ns={spawn_ns:.1}");
        println!("{label}_wake_ns={wake_ns:.1}");
    }
}

/// may: the same workloads with may's coroutines (may's default config).
pub fn may(n: impl Fn(usize) -> usize) {
    use may::coroutine;
    let batches = n(200);
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..1000).map(|_| may::go!(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    println!("spawn_join_ns={:.1}", per(t.elapsed(), batches * 1000));
    let at_once = n(100_000);
    let t = Instant::now();
    let hs: Vec<_> = (0..at_once).map(|_| may::go!(|| ())).collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("spawn_burst_ns={:.1}", per(t.elapsed(), at_once));

    // Yield: two coroutines; may's workers are fixed at start, so this row
    // runs on all of them (may has no per-run worker count).
    let yields = n(1_000_000);
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            may::go!(move || {
                for _ in 0..yields {
                    coroutine::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("yield_ns={:.1}", per(t.elapsed(), 2 * yields));

    let rounds = n(200_000);
    let (a_tx, a_rx) = may::sync::mpsc::channel::<usize>();
    let (b_tx, b_rx) = may::sync::mpsc::channel::<usize>();
    let echo = may::go!(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    let pp = may::go!(move || {
        let t = Instant::now();
        let mut v = 0;
        for _ in 0..rounds {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
        }
        per(t.elapsed(), rounds)
    });
    println!("pingpong_ns={:.1}", pp.join().unwrap());
    echo.join().unwrap();

    let parked = n(20_000);
    let before = rss_kib();
    let (tx, rx) = may::sync::mpmc::channel::<()>();
    let wg = may::sync::WaitGroup::new();
    let hs: Vec<_> = (0..parked)
        .map(|_| {
            let (rx, wg) = (rx.clone(), wg.clone());
            may::go!(move || {
                drop(wg);
                rx.recv().ok();
            })
        })
        .collect();
    wg.wait();
    std::thread::sleep(Duration::from_millis(10));
    let after = rss_kib();
    for _ in 0..parked {
        tx.send(()).unwrap();
    }
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("parked_kib={:.2}", (after - before) / parked as f64);
}

/// go-lib 0.6: the same workloads with its goroutines (one `main` entry
/// for all of them: go-lib's runtime starts once per process). It has no
/// join handle: spawn+join waits on a WaitGroup per batch.
pub fn golib(n: impl Fn(usize) -> usize + Send + 'static) {
    use go_lib::sync::WaitGroup;
    use std::sync::Arc;
    go_lib::__main_entry(move || {
        let spawn_wait = |count: usize| {
            let wg = Arc::new(WaitGroup::new());
            wg.add(count as i64);
            for _ in 0..count {
                let wg = wg.clone();
                go_lib::go!(move || wg.done());
            }
            wg.wait();
        };
        let batches = n(200);
        let t = Instant::now();
        for _ in 0..batches {
            spawn_wait(1000);
        }
        println!("spawn_join_ns={:.1}", per(t.elapsed(), batches * 1000));
        let at_once = n(100_000);
        let t = Instant::now();
        spawn_wait(at_once);
        println!("spawn_burst_ns={:.1}", per(t.elapsed(), at_once));

        // Yield with one P, as Go's row (GOMAXPROCS(1)).
        let procs = go_lib::set_gomaxprocs(1);
        let yields = n(1_000_000);
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        let t = Instant::now();
        for _ in 0..2 {
            let wg = wg.clone();
            go_lib::go!(move || {
                for _ in 0..yields {
                    go_lib::gosched();
                }
                wg.done();
            });
        }
        wg.wait();
        println!("yield_ns={:.1}", per(t.elapsed(), 2 * yields));
        go_lib::set_gomaxprocs(procs);

        let rounds = n(200_000);
        let (a_tx, a_rx) = go_lib::chan::chan::<usize>(0);
        let (b_tx, b_rx) = go_lib::chan::chan::<usize>(0);
        go_lib::go!(move || {
            while let Some(v) = a_rx.recv() {
                b_tx.send(v + 1);
            }
        });
        let t = Instant::now();
        let mut v = 0;
        for _ in 0..rounds {
            a_tx.send(v);
            v = b_rx.recv().unwrap_or(0);
        }
        println!("pingpong_ns={:.1}", per(t.elapsed(), rounds));
        a_tx.close();

        // `count` goroutines that each mark a WaitGroup and block receiving
        // on one channel; returns once all have marked, with the channel
        // (close it to wake them) and the group they leave through.
        let park = |count: usize| {
            let (tx, rx) = go_lib::chan::chan::<()>(0);
            let marked = Arc::new(WaitGroup::new());
            marked.add(count as i64);
            let gone = Arc::new(WaitGroup::new());
            gone.add(count as i64);
            for _ in 0..count {
                let (rx, marked, gone) = (rx.clone(), marked.clone(), gone.clone());
                go_lib::go!(move || {
                    marked.done();
                    rx.recv();
                    gone.done();
                });
            }
            marked.wait();
            (tx, gone)
        };
        let parked = n(20_000);
        let before = rss_kib();
        let (tx, gone) = park(parked);
        go_lib::sleep(Duration::from_millis(10));
        let after = rss_kib();
        tx.close();
        gone.wait();
        println!("parked_kib={:.2}", (after - before) / parked as f64);

        // 300,000 and 1,000,000 parked: go-lib 0.6 aborts the process
        // ("stack alloc failed: mprotect guard page failed", vm.max_map_count)
        // and would take every other row with it; run only on request.
        let rows: &[(&str, usize)] = if std::env::var_os("FFIBENCH_GOLIB_PARK").is_some() {
            &[("park300k", 300_000), ("park1m", 1_000_000)]
        } else {
            &[]
        };
        for &(label, base) in rows {
            let count = n(base);
            let t = Instant::now();
            let (tx, gone) = park(count);
            println!("{label}_spawn_ns={:.1}", per(t.elapsed(), count));
            let t = Instant::now();
            tx.close();
            gone.wait();
            println!("{label}_wake_ns={:.1}", per(t.elapsed(), count));
        }
    });
}
