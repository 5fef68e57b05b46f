//! may's workloads: coroutines calling C directly (no stack switch, no
//! announcement), the runtime basics, the ticker, deep stacks and hogs.

use super::*;

/// The same with `may`: its coroutines call C directly (no announcement),
/// so a coroutine blocked in C holds its worker thread. The blockers stop
/// at a deadline: with every worker blocked, nothing else runs until then.
pub(crate) fn ticker_may(ms: u64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
    let blockers: Vec<_> = (0..2 * workers)
        .map(|_| {
            ::may::go!(move || {
                while Instant::now() < until {
                    block_ms(20);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (p50, p99) = ::may::go!(move || lateness(ms, ::may::coroutine::sleep)).join().unwrap();
    blockers.into_iter().for_each(|h| h.join().unwrap());
    println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
}

/// A `may` coroutine calling C directly: no stack switch, no scheduler
/// announcement (fast; a deep or blocking C call is the coroutine's
/// problem — may issue #51).
pub(crate) fn may_rows(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let t = ::may::go!(move || timed_auto(|x| plusone(x))).join().expect("may coroutine");
    t.print("may_direct_ns", "c_plt_ns", "");
}

/// The same with `may` coroutines calling C directly on their own stacks.
pub(crate) fn deep_may(n: usize) {
    let hs: Vec<_> = (0..n).map(|_| ::may::go!(|| use_stack(256))).collect();
    let ok = hs.into_iter().map(|h| h.join().map_or(0, |v| v as usize)).sum::<usize>() == n * 64;
    println!("deep_ok={}\ndeep_peak_mib={:.1}", u8::from(ok), peak_mib());
}

/// `hogs` on may: coroutines are never preempted; its timer thread resumes
/// sleepers whose time came (see the ticker table's note).
pub(crate) fn hogs_may(ms: u64) {
    let procs = std::thread::available_parallelism().map_or(2, |n| n.get());
    hogs(
        ms,
        procs,
        &|work, stop| {
            let h = ::may::go!(move || hog_loop(&work, &stop));
            Box::new(move || h.join().unwrap())
        },
        &|f| ::may::go!(f).join().unwrap(),
        ::may::coroutine::sleep,
        &|f| f(),
    );
}

/// may: the same workloads with may's coroutines (may's default config).
pub(crate) fn runtime_rows(n: impl Fn(usize) -> usize) {
    use ::may::coroutine;
    let batches = n(200);
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..1000).map(|_| ::may::go!(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    println!("spawn_join_ns={:.1}", per(t.elapsed(), batches * 1000));
    let at_once = n(100_000);
    let t = Instant::now();
    let hs: Vec<_> = (0..at_once).map(|_| ::may::go!(|| ())).collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("spawn_burst_ns={:.1}", per(t.elapsed(), at_once));

    // Yield: two coroutines; may's workers are fixed at start, so this row
    // runs on all of them (may has no per-run worker count).
    let yields = n(1_000_000);
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            ::may::go!(move || {
                for _ in 0..yields {
                    coroutine::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    println!("yield_ns={:.1}", per(t.elapsed(), 2 * yields));

    let rounds = n(200_000);
    let (a_tx, a_rx) = ::may::sync::mpsc::channel::<usize>();
    let (b_tx, b_rx) = ::may::sync::mpsc::channel::<usize>();
    let echo = ::may::go!(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    let pp = ::may::go!(move || pingpong(rounds, |v| a_tx.send(v).unwrap(), || b_rx.recv().unwrap()));
    println!("pingpong_ns={:.1}", pp.join().unwrap());
    echo.join().unwrap();

    let parked = n(20_000);
    let before = rss_kib();
    let (tx, rx) = ::may::sync::mpmc::channel::<()>();
    let wg = ::may::sync::WaitGroup::new();
    let hs: Vec<_> = (0..parked)
        .map(|_| {
            let (rx, wg) = (rx.clone(), wg.clone());
            ::may::go!(move || {
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
