//! tokio's workloads: its ways to call blocking C (`block_in_place`,
//! `spawn_blocking`), the ticker and the many blocking calls.

use super::*;

/// tokio's scheduler-aware ways to call blocking code, per call:
/// `block_in_place` (from a worker) and `spawn_blocking` (awaited).
pub(crate) fn tokio_rows(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let rt = ::tokio::runtime::Builder::new_multi_thread().build().expect("tokio runtime");
    let (bip, sb) = rt.block_on(async move {
        ::tokio::spawn(async move {
            let bip = timed_auto(|x| ::tokio::task::block_in_place(|| plusone(x)));
            // spawn_blocking is awaited, so the loop is async: calibrate by hand.
            let budget = std::time::Duration::from_nanos(ROW_NS.load(std::sync::atomic::Ordering::Relaxed));
            let mut count = 200;
            let mut per = 0.0;
            for round in 0..2 {
                let t = Instant::now();
                let mut x = 0;
                while x < count {
                    x = ::tokio::task::spawn_blocking(move || plusone(x)).await.expect("spawn_blocking");
                }
                per = t.elapsed().as_nanos() as f64 / count as f64;
                if round == 0 {
                    count = crate::peers::calibrate(per, budget) as i32;
                }
            }
            (bip, per)
        })
        .await
        .expect("tokio task")
    });
    bip.print("tokio_block_in_place_ns", "c_plt_ns", "");
    println!("tokio_spawn_blocking_ns={sb:.3}");
}

/// The same with tokio: tasks call C through `block_in_place` (tokio's
/// way to block a worker without stalling the others) while a ticker task
/// sleeps with `tokio::time::sleep`.
pub(crate) fn ticker_tokio(ms: u64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = ::tokio::runtime::Builder::new_multi_thread().enable_time().build().expect("tokio runtime");
    let (p50, p99) = rt.block_on(async move {
        let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
        let blockers: Vec<_> = (0..2 * workers)
            .map(|_| {
                ::tokio::spawn(async move {
                    while Instant::now() < until {
                        ::tokio::task::block_in_place(|| block_ms(20));
                    }
                })
            })
            .collect();
        ::tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let ticker = ::tokio::spawn(async move {
            let mut late = Vec::new();
            let end = Instant::now() + std::time::Duration::from_millis(ms);
            while Instant::now() < end {
                let want = Instant::now() + std::time::Duration::from_millis(1);
                ::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                late.push(want.elapsed().as_secs_f64() * 1e6);
            }
            late.sort_by(|a, b| a.total_cmp(b));
            (late[late.len() / 2], late[late.len() * 99 / 100])
        });
        let r = ticker.await.expect("ticker task");
        for b in blockers {
            b.await.expect("blocker task");
        }
        r
    });
    println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
}

/// The same with tokio: each task awaits `spawn_blocking` for its call.
pub(crate) fn sleepers_tokio(n: usize) {
    let peak = ThreadPeak::start();
    let start = Instant::now();
    let rt = ::tokio::runtime::Builder::new_multi_thread().build().expect("tokio runtime");
    rt.block_on(async move {
        let hs: Vec<_> = (0..n)
            .map(|_| ::tokio::spawn(async { ::tokio::task::spawn_blocking(|| block_ms(1)).await.unwrap() }))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let s = start.elapsed().as_secs_f64();
    drop(rt);
    println!("sleepers_s={s:.3}\nsleepers_threads={}", peak.stop());
}
