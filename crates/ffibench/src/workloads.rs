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
