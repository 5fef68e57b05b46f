//! The Rust peers, one file each, run in a child of ffibench
//! (`--internal <peer>`; see `main::internal`): ffiber, may, tokio and
//! go-lib. Each prints `metric=value` lines, like the Go peers; one process
//! per run keeps them independent. This file holds what they share: the C
//! functions they call (`plusone` and friends in `libplusone.so`, built
//! -O2 by build.rs), the calibrated timing loops, the ticker's lateness,
//! the `hogs` scenario, and process measurements (memory, OS threads).
//!
//! Adding a Rust peer: a file here with its workloads, a line in
//! `main::internal`, and its `self_peer` in the tables it joins.

pub(crate) mod ffiber;
pub(crate) mod golib;
pub(crate) mod may;
pub(crate) mod tokio;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

unsafe extern "C" {
    /// `int plusone(int x) { return x + 1; }` (bench/peers/c/plusone.c).
    /// It takes and returns an int and touches no memory: safe to call with
    /// any argument, which every `unsafe` block below relies on.
    pub(crate) safe fn plusone(x: i32) -> i32;
    /// `int call_cb(int (*cb)(int), int x) { return cb(x); }`: safe for any
    /// valid C function pointer, which the type guarantees.
    pub(crate) safe fn call_cb(cb: extern "C" fn(i32) -> i32, x: i32) -> i32;
    /// `while (x < n) x = cb(x);` in C: `n` callbacks inside one call.
    pub(crate) safe fn loop_cb(cb: extern "C" fn(i32) -> i32, n: i32) -> i32;
    /// Sleeps `ms` milliseconds in C (nanosleep): blocks the OS thread.
    pub(crate) safe fn block_ms(ms: i32);
    /// Uses `kib` KiB of stack in C; returns `kib / 4`.
    pub(crate) safe fn use_stack(kib: i32) -> std::os::raw::c_long;
    /// The talk's baseline, `while (x < count) x = plusone(x);` in C,
    /// compiled into ffibench (bench/peers/c/plt_loop.c): through the PLT.
    pub(crate) safe fn ffibench_c_plt_loop(count: i32) -> i32;
}

/// Time budget of one row, ns (set from the run's scale: 0.1 s at full
/// scale, so that the ~a dozen rows of a process take about a second).
pub(crate) static ROW_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100_000_000);

pub(crate) fn set_budget(n: &impl Fn(usize) -> usize) {
    let scale = n(1_000_000) as f64 / 1e6;
    ROW_NS.store((1e8 * scale) as u64, std::sync::atomic::Ordering::Relaxed);
}

/// A row's time, and its ratio to a base timed beside it in the same
/// process (see [`paired`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timed {
    /// ns per operation of the row.
    pub(crate) ns: f64,
    /// The row's time per operation over the base's, slices summed.
    pub(crate) vs_base: f64,
}

impl Timed {
    /// Prints `key=ns` and `key_vs_base=ratio` (the call table takes the
    /// paired ratio from the second line); `sfx` ends both keys.
    pub(crate) fn print(&self, key: &str, base: &str, sfx: &str) {
        println!("{key}{sfx}={:.3}\n{key}_vs_{base}{sfx}={:.4}", self.ns, self.vs_base);
    }
}

/// Slices a row's budget is cut into (and the base's too), alternating.
const SLICES: u32 = 10;

/// Times `row(n)` against `base(n)` (each runs `n` operations): both are
/// calibrated to the row budget, then run in [`SLICES`] alternating
/// slices, so that whatever the host does to one (another VM's load, a
/// clock change) it does to the other within a few milliseconds. Returns
/// the row's ns per operation and its ratio to the base.
pub(crate) fn paired(base: impl Fn(i32) -> i32, row: impl Fn(i32) -> i32) -> Timed {
    let budget = std::time::Duration::from_nanos(ROW_NS.load(std::sync::atomic::Ordering::Relaxed)) / SLICES;
    let time = |f: &dyn Fn(i32) -> i32, n: i32| {
        let t = Instant::now();
        std::hint::black_box(f(n));
        t.elapsed().as_nanos() as f64
    };
    let probe = 2_000;
    let nb = crate::peers::calibrate(time(&base, probe) / probe as f64, budget) as i32;
    let nr = crate::peers::calibrate(time(&row, probe) / probe as f64, budget) as i32;
    let (mut tb, mut tr) = (0.0, 0.0);
    for _ in 0..SLICES {
        tb += time(&base, nb);
        tr += time(&row, nr);
    }
    let ns = tr / (SLICES as f64 * nr as f64);
    Timed { ns, vs_base: ns / (tb / (SLICES as f64 * nb as f64)) }
}

/// The talk's loop, `x = call(x)` until `count`, with `call` inlined.
#[inline(always)]
fn talk_loop(count: i32, call: &impl Fn(i32) -> i32) -> i32 {
    let mut x = 0;
    while x < count {
        x = call(x);
    }
    x
}

/// The talk's loop with `call` wrapped around each C call, paired with the
/// same loop in C ([`ffibench_c_plt_loop`]): ns per call, and the ratio to
/// C through the PLT measured beside it.
pub(crate) fn timed_auto(call: impl Fn(i32) -> i32) -> Timed {
    paired(|n| ffibench_c_plt_loop(n), |n| talk_loop(n, &call))
}

/// Lateness of 1 ms sleeps, in µs, over `ms` milliseconds; `(p50, p99)`.
pub(crate) fn lateness(ms: u64, sleep: impl Fn(std::time::Duration)) -> (f64, f64) {
    let mut late = Vec::new();
    let end = Instant::now() + std::time::Duration::from_millis(ms);
    while Instant::now() < end {
        let want = Instant::now() + std::time::Duration::from_millis(1);
        sleep(std::time::Duration::from_millis(1));
        late.push(want.elapsed().as_secs_f64() * 1e6);
    }
    late.sort_by(|a, b| a.total_cmp(b));
    (late[late.len() / 2], late[late.len() * 99 / 100])
}

/// Peak resident memory of this process (VmHWM), MiB.
pub(crate) fn peak_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The `hogs` scenario for a runtime: one green thread per P counts in a
/// tight loop (no scheduling point) for `ms`, first alone, then while a
/// ticker sleeps 1 ms at a time. Prints the ticker's lateness (p50, p99,
/// max, µs) and the hogs' work per second with the ticker over without.
/// `spawn(work, stop)` starts one hog; `sleep` is the runtime's sleep;
/// `run_ticker` runs a closure as a green thread and waits for it.
pub(crate) fn hogs(
    ms: u64,
    procs: usize,
    spawn: &dyn Fn(Arc<AtomicU64>, Arc<AtomicBool>) -> Box<dyn FnOnce() + Send>,
    run_ticker: &dyn Fn(Box<dyn FnOnce() -> Vec<f64> + Send>) -> Vec<f64>,
    sleep: fn(std::time::Duration),
    blocking: &dyn Fn(&mut dyn FnMut()),
) {
    let phase = |with_ticker: bool| -> (f64, Vec<f64>) {
        let stop = Arc::new(AtomicBool::new(false));
        let work = Arc::new(AtomicU64::new(0));
        let joins: Vec<_> = (0..procs).map(|_| spawn(work.clone(), stop.clone())).collect();
        let start = Instant::now();
        // The hogs stop at the deadline whatever the runtime does (a runtime
        // that never preempts would not run a ticker that stops them).
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                stop.store(true, Ordering::SeqCst);
            })
        };
        let late = if with_ticker {
            run_ticker(Box::new(move || {
                let mut late = Vec::new();
                let end = start + std::time::Duration::from_millis(ms);
                // The first wake-up is due 1 ms after the hogs started: a
                // ticker that could not even start counts as that late.
                let mut want = start + std::time::Duration::from_millis(1);
                loop {
                    let now = Instant::now();
                    if want > now {
                        sleep(want - now);
                    }
                    late.push(want.elapsed().as_secs_f64() * 1e6);
                    if Instant::now() >= end {
                        break late;
                    }
                    want = Instant::now() + std::time::Duration::from_millis(1);
                }
            }))
        } else {
            Vec::new()
        };
        // Waiting for the OS thread blocks the caller's thread: say so to a
        // runtime that runs the caller as a green thread (go-lib).
        let mut stopper = Some(stopper);
        blocking(&mut || {
            if let Some(s) = stopper.take() {
                s.join().unwrap();
            }
        });
        joins.into_iter().for_each(|j| j());
        (work.load(Ordering::SeqCst) as f64 / start.elapsed().as_secs_f64(), late)
    };
    let (alone, _) = phase(false);
    let (with, mut late) = phase(true);
    late.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: usize| late.get(late.len().saturating_sub(1).min(late.len() * q / 100)).copied().unwrap_or(0.0);
    println!(
        "hogs_p50_us={:.1}\nhogs_p99_us={:.1}\nhogs_max_us={:.1}",
        pick(50),
        pick(99),
        late.last().copied().unwrap_or(0.0)
    );
    println!("hogs_work_ratio={:.3}", with / alone);
}

/// One hog's loop: counts until `stop`, then adds its count to `work`.
#[inline(never)]
pub(crate) fn hog_loop(work: &AtomicU64, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        std::hint::black_box(n);
    }
    work.fetch_add(n, Ordering::SeqCst);
}

/// Samples this process's OS thread count every 2 ms on a plain thread.
pub(crate) struct ThreadPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl ThreadPeak {
    pub(crate) fn start() -> ThreadPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(threads_now(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        ThreadPeak { stop, peak, handle }
    }

    /// The peak, not counting the sampler itself.
    pub(crate) fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.peak.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// The `Threads:` line of /proc/self/status.
pub(crate) fn threads_now() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Resident memory of this process, KiB.
pub(crate) fn rss_kib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / 1024.0
}

pub(crate) fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// The ping-pong loop: `rounds` round trips, each a `send` of the value
/// and a `recv` of its successor from the echoing side; ns per round trip.
pub(crate) fn pingpong(rounds: usize, send: impl Fn(usize), recv: impl Fn() -> usize) -> f64 {
    let t = Instant::now();
    let mut v = 0;
    for _ in 0..rounds {
        send(v);
        v = recv();
    }
    per(t.elapsed(), rounds)
}
