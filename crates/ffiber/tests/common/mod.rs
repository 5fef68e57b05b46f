//! Helpers shared by the integration tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Asserts that `procs` Ps all still run green threads: starts `procs`
/// green threads that spin until every one of them is running at once,
/// which only happens if no P was lost (a P lost to a broken hand-off
/// leaves one spinner waiting forever). Call from inside the runtime, one
/// built with `preempt(false)`: spare Ps would run a spinner too.
pub fn assert_every_p_runs(procs: usize) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let spinners: Vec<_> = (0..procs)
        .map(|_| {
            let arrived = arrived.clone();
            ffiber::go(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                let t = Instant::now();
                while arrived.load(Ordering::SeqCst) < procs {
                    assert!(t.elapsed() < Duration::from_secs(20), "only some Ps run: a P was lost");
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    spinners.into_iter().for_each(|h| h.join().unwrap());
}

/// Spawns `n` green threads that each sleep 300 µs and yield, `rounds`
/// times: Ps with work queued and timers due, so that the monitor hands off
/// the P of a thread that stays in C. Join them when done.
pub fn spawn_wanting_ps(n: usize, rounds: usize) -> Vec<ffiber::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            ffiber::go(move || {
                for _ in 0..rounds {
                    ffiber::sleep(Duration::from_micros(300));
                    ffiber::yield_now();
                }
            })
        })
        .collect()
}
