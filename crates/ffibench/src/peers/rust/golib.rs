//! go-lib 0.6's workloads (a port of Go's scheduler): `with_syscall`
//! calls, the runtime basics, the ticker, deep stacks and hogs.

use super::*;

/// go-lib 0.6's way to call C that may block: `with_syscall` (its P is
/// handed off around the call, as Go's entersyscall/exitsyscall).
pub(crate) fn golib_rows(n: impl Fn(usize) -> usize + Send + 'static) {
    set_budget(&n);
    let t = go_lib::__main_entry(move || timed_auto(|x| go_lib::with_syscall(|| plusone(x))));
    t.print("golib_with_syscall_ns", "c_plt_ns", "");
}

/// The blocking-C ticker with go-lib: blockers call C through
/// `with_syscall`; the ticker sleeps with go-lib's `sleep`.
pub(crate) fn ticker_golib(ms: u64) {
    go_lib::__main_entry(move || {
        let procs = go_lib::gomaxprocs();
        let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
        let done = std::sync::Arc::new(go_lib::sync::WaitGroup::new());
        done.add(2 * procs as i64);
        for _ in 0..2 * procs {
            let done = done.clone();
            go_lib::go!(move || {
                while Instant::now() < until {
                    go_lib::with_syscall(|| block_ms(20));
                }
                done.done();
            });
        }
        go_lib::sleep(std::time::Duration::from_millis(5));
        let (p50, p99) = lateness(ms, go_lib::sleep);
        done.wait();
        println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
    });
}

/// Deep C stacks with go-lib: goroutines call C through `with_syscall`,
/// which stays on the goroutine's own (growable, copied) stack.
pub(crate) fn deep_golib(n: usize) {
    let ok = go_lib::__main_entry(move || {
        let sum = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = std::sync::Arc::new(go_lib::sync::WaitGroup::new());
        done.add(n as i64);
        for _ in 0..n {
            let (sum, done) = (sum.clone(), done.clone());
            go_lib::go!(move || {
                let v = go_lib::with_syscall(|| use_stack(256));
                sum.fetch_add(v as usize, std::sync::atomic::Ordering::Relaxed);
                done.done();
            });
        }
        done.wait();
        sum.load(std::sync::atomic::Ordering::Relaxed) == n * 64
    });
    println!("deep_ok={}\ndeep_peak_mib={:.1}", u8::from(ok), peak_mib());
}

/// `hogs` on go-lib 0.6 (a port of Go's scheduler, with its sysmon
/// preemption): everything runs inside its main goroutine; hogs are joined
/// through a WaitGroup each.
pub(crate) fn hogs_golib(ms: u64) {
    go_lib::__main_entry(move || {
        let procs = go_lib::gomaxprocs();
        hogs(
            ms,
            procs,
            &|work, stop| {
                let wg = Arc::new(go_lib::sync::WaitGroup::new());
                wg.add(1);
                let w = wg.clone();
                go_lib::go!(move || {
                    hog_loop(&work, &stop);
                    w.done();
                });
                Box::new(move || wg.wait())
            },
            &|f| f(),
            go_lib::sleep,
            &|f| go_lib::with_syscall(f),
        );
    });
}

/// go-lib 0.6: the same workloads with its goroutines (one `main` entry
/// for all of them: go-lib's runtime starts once per process). It has no
/// join handle: spawn+join waits on a WaitGroup per batch.
pub(crate) fn runtime_rows(n: impl Fn(usize) -> usize + Send + 'static) {
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
