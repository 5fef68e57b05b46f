//! The foreign-call rows: the talk's loop `while x < count { x = plusone(x) }`
//! against `plusone` in `libplusone.so` (built -O2 by build.rs), plainly
//! from Rust and through every ffiber mode from a green thread. Rust reaches
//! it through the GOT (an indirect call, no PLT stub: rustc's default), C
//! through the PLT. Prints `metric=value` lines, like every peer.

use ffiber::ffi::{self, Mode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

unsafe extern "C" {
    /// `int plusone(int x) { return x + 1; }` (bench/peers/c/plusone.c).
    /// It takes and returns an int and touches no memory: safe to call with
    /// any argument, which every `unsafe` block below relies on.
    safe fn plusone(x: i32) -> i32;
    /// `int call_cb(int (*cb)(int), int x) { return cb(x); }`: safe for any
    /// valid C function pointer, which the type guarantees.
    safe fn call_cb(cb: extern "C" fn(i32) -> i32, x: i32) -> i32;
    /// `while (x < n) x = cb(x);` in C: `n` callbacks inside one call.
    safe fn loop_cb(cb: extern "C" fn(i32) -> i32, n: i32) -> i32;
    /// Sleeps `ms` milliseconds in C (nanosleep): blocks the OS thread.
    safe fn block_ms(ms: i32);
    /// Uses `kib` KiB of stack in C; returns `kib / 4`.
    safe fn use_stack(kib: i32) -> std::os::raw::c_long;
}

/// The plain callback baseline: a C-ABI Rust function, no runtime.
extern "C" fn plain_plusone(x: i32) -> i32 {
    x + 1
}

/// The ffiber callback: exported to C, run back on the green thread.
#[ffiber::export(name = "ffibench_plusone")]
fn exported_plusone(x: i32) -> i32 {
    x + 1
}

unsafe extern "C" {
    safe fn ffibench_plusone(x: i32) -> i32;
}

/// Time budget of one row, ns (set from the run's scale: 0.1 s at full
/// scale, so that the ~a dozen rows of a process take about a second).
static ROW_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100_000_000);

fn set_budget(n: &impl Fn(usize) -> usize) {
    let scale = n(1_000_000) as f64 / 1e6;
    ROW_NS.store((1e8 * scale) as u64, std::sync::atomic::Ordering::Relaxed);
}

/// The talk's loop, calibrated: a short probe estimates the cost per call,
/// then the loop runs for about the row's budget; ns per call.
#[inline(always)]
fn timed_auto(call: impl Fn(i32) -> i32) -> f64 {
    let probe = timed(2_000, &call);
    let budget = std::time::Duration::from_nanos(ROW_NS.load(std::sync::atomic::Ordering::Relaxed));
    timed(crate::peers::calibrate(probe, budget) as i32, call)
}

/// The callback loop, calibrated the same way (`n` callbacks inside one
/// foreign call); ns per callback.
fn looped_auto(run: impl Fn(i32) -> i32) -> f64 {
    let probe = 2_000;
    let t = Instant::now();
    run(probe);
    let per = t.elapsed().as_nanos() as f64 / probe as f64;
    let budget = std::time::Duration::from_nanos(ROW_NS.load(std::sync::atomic::Ordering::Relaxed));
    let n = crate::peers::calibrate(per, budget) as i32;
    let t = Instant::now();
    run(n);
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Times `count` iterations of the talk's loop with `call` wrapped around
/// each C call; ns per call.
#[inline(always)]
fn timed(count: i32, call: impl Fn(i32) -> i32) -> f64 {
    let t = Instant::now();
    let mut x = 0;
    while x < count {
        x = call(x);
    }
    t.elapsed().as_nanos() as f64 / count as f64
}

/// `plusone(x)` through the register pass-through trampoline, as
/// generated bindings call it.
#[inline(always)]
fn regs(mode: Mode, x: i32) -> i32 {
    let f: extern "C" fn(i32) -> i32 = plusone;
    let regs = ffi::Regs::new([x as u64], []);
    // SAFETY: plusone takes one int (rdi) and returns one (eax): all in
    // registers, as `call_regs` requires; the fn-pointer cast keeps its ABI.
    let out = unsafe {
        ffi::call_regs(
            mode,
            "plusone",
            std::mem::transmute::<extern "C" fn(i32) -> i32, unsafe extern "C" fn()>(f),
            &regs,
        )
    };
    out.rax as i32
}

/// The rows (keys as in [`super::FFI_ROWS`]).
pub fn run(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let batches = n(200);
    println!("rust_plt_ns={:.3}", timed_auto(|x| plusone(x)));
    println!("plain_callback_ns={:.3}", timed_auto(|x| call_cb(plain_plusone, x)));
    println!("plain_callback_loop_ns={:.3}", looped_auto(|n| loop_cb(plain_plusone, n)));
    let _ = exported_plusone; // reached through its C symbol
    let rt = ffiber::Runtime::builder().build().expect("runtime");
    let rows = rt.block_on(move || {
        // Warm the monitor up so that its start is not timed.
        ffi::call(|| plusone(0));
        vec![
            (
                "ffiber_on_stack_ns",
                timed_auto(|x| {
                    // SAFETY: plusone is a leaf using a few bytes of stack, never
                    // blocks and never calls back.
                    unsafe { ffi::call_on_green_stack(|| plusone(x)) }
                }),
            ),
            ("ffiber_nonblocking_ns", timed_auto(|x| ffi::call_mode(Mode::NonBlocking, || plusone(x)))),
            ("ffiber_nocallback_ns", timed_auto(|x| ffi::call_mode(Mode::NoCallback, || plusone(x)))),
            ("ffiber_default_ns", timed_auto(|x| ffi::call(|| plusone(x)))),
            ("ffiber_regs_ns", timed_auto(|x| regs(Mode::Default, x))),
            ("ffiber_regs_nonblocking_ns", timed_auto(|x| regs(Mode::NonBlocking, x))),
            ("ffiber_blocking_ns", timed_auto(|x| ffi::call_mode(Mode::Blocking, || plusone(x)))),
            ("ffiber_callback_ns", timed_auto(|x| ffi::call(|| call_cb(ffibench_plusone, x)))),
            ("ffiber_callback_loop_ns", looped_auto(|n| ffi::call(|| loop_cb(ffibench_plusone, n)))),
            ("spawn_join_ns", spawn_join(batches)),
        ]
    });
    // Under FFIBER_CHECK=1 the same rows are reported as check-mode rows.
    let sfx = if std::env::var_os("FFIBER_CHECK").is_some_and(|v| v == "1") { "_check" } else { "" };
    for (k, v) in rows {
        println!("{k}{sfx}={v:.3}");
    }
}

/// spawn+join of 1,000 green threads at a time, `batches` times; ns each.
fn spawn_join(batches: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..1000).map(|_| ffiber::go(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    t.elapsed().as_nanos() as f64 / (batches * 1000) as f64
}

/// Lateness of 1 ms sleeps, in µs, over `ms` milliseconds; `(p50, p99)`.
fn lateness(ms: u64, sleep: impl Fn(std::time::Duration)) -> (f64, f64) {
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

/// Scenario (a): 2 green threads per P loop in C (20 ms nanosleeps, until
/// a deadline) while a ticker green thread sleeps 1 ms at a time and
/// records how late it wakes. The monitor must hand the Ps to other
/// threads for it to run at all.
pub fn ticker_ffiber(ms: u64) {
    let rt = ffiber::Runtime::builder().build().expect("runtime");
    let procs = rt.max_procs();
    let (p50, p99) = rt.block_on(move || {
        let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
        let blockers: Vec<_> = (0..2 * procs)
            .map(|_| {
                ffiber::go(move || {
                    while Instant::now() < until {
                        ffi::call(|| block_ms(20));
                    }
                })
            })
            .collect();
        ffiber::sleep(std::time::Duration::from_millis(5));
        let r = lateness(ms, ffiber::sleep);
        blockers.into_iter().for_each(|h| h.join().unwrap());
        r
    });
    println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
}

/// The same with `may`: its coroutines call C directly (no announcement),
/// so a coroutine blocked in C holds its worker thread. The blockers stop
/// at a deadline: with every worker blocked, nothing else runs until then.
pub fn ticker_may(ms: u64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
    let blockers: Vec<_> = (0..2 * workers)
        .map(|_| {
            may::go!(move || {
                while Instant::now() < until {
                    block_ms(20);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (p50, p99) = may::go!(move || lateness(ms, may::coroutine::sleep)).join().unwrap();
    blockers.into_iter().for_each(|h| h.join().unwrap());
    println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
}

/// tokio's scheduler-aware ways to call blocking code, per call:
/// `block_in_place` (from a worker) and `spawn_blocking` (awaited).
pub fn tokio_rows(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let rt = tokio::runtime::Builder::new_multi_thread().build().expect("tokio runtime");
    let (bip, sb) = rt.block_on(async move {
        tokio::spawn(async move {
            let bip = timed_auto(|x| tokio::task::block_in_place(|| plusone(x)));
            // spawn_blocking is awaited, so the loop is async: calibrate by hand.
            let budget = std::time::Duration::from_nanos(ROW_NS.load(std::sync::atomic::Ordering::Relaxed));
            let mut count = 200;
            let mut per = 0.0;
            for round in 0..2 {
                let t = Instant::now();
                let mut x = 0;
                while x < count {
                    x = tokio::task::spawn_blocking(move || plusone(x)).await.expect("spawn_blocking");
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
    println!("tokio_block_in_place_ns={bip:.3}\ntokio_spawn_blocking_ns={sb:.3}");
}

/// A `may` coroutine calling C directly: no stack switch, no scheduler
/// announcement (fast; a deep or blocking C call is the coroutine's
/// problem — may issue #51).
pub fn may_rows(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let ns = may::go!(move || timed_auto(|x| plusone(x))).join().expect("may coroutine");
    println!("may_direct_ns={ns:.3}");
}

/// go-lib 0.6's way to call C that may block: `with_syscall` (its P is
/// handed off around the call, as Go's entersyscall/exitsyscall).
pub fn golib_rows(n: impl Fn(usize) -> usize + Send + 'static) {
    set_budget(&n);
    let ns = go_lib::__main_entry(move || timed_auto(|x| go_lib::with_syscall(|| plusone(x))));
    println!("golib_with_syscall_ns={ns:.3}");
}

/// The blocking-C ticker with go-lib: blockers call C through
/// `with_syscall`; the ticker sleeps with go-lib's `sleep`.
pub fn ticker_golib(ms: u64) {
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
pub fn deep_golib(n: usize) {
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

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Scenario (b): `n` green threads, each calling C that uses 256 KiB of
/// stack (default 256 KiB green stacks: the C code would not fit on them).
pub fn deep_ffiber(n: usize) {
    let ok = ffiber::run(move || {
        let hs: Vec<_> = (0..n).map(|_| ffiber::go(|| ffi::call(|| use_stack(256)))).collect();
        hs.into_iter().map(|h| h.join().unwrap() as usize).sum::<usize>() == n * 64
    });
    println!("deep_ok={}\ndeep_peak_mib={:.1}", u8::from(ok), peak_mib());
}

/// The same with `may` coroutines calling C directly on their own stacks.
pub fn deep_may(n: usize) {
    let hs: Vec<_> = (0..n).map(|_| may::go!(|| use_stack(256))).collect();
    let ok = hs.into_iter().map(|h| h.join().map_or(0, |v| v as usize)).sum::<usize>() == n * 64;
    println!("deep_ok={}\ndeep_peak_mib={:.1}", u8::from(ok), peak_mib());
}

/// The same with tokio: tasks call C through `block_in_place` (tokio's
/// way to block a worker without stalling the others) while a ticker task
/// sleeps with `tokio::time::sleep`.
pub fn ticker_tokio(ms: u64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_time().build().expect("tokio runtime");
    let (p50, p99) = rt.block_on(async move {
        let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
        let blockers: Vec<_> = (0..2 * workers)
            .map(|_| {
                tokio::spawn(async move {
                    while Instant::now() < until {
                        tokio::task::block_in_place(|| block_ms(20));
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let ticker = tokio::spawn(async move {
            let mut late = Vec::new();
            let end = Instant::now() + std::time::Duration::from_millis(ms);
            while Instant::now() < end {
                let want = Instant::now() + std::time::Duration::from_millis(1);
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
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

/// The `hogs` scenario for a runtime: one green thread per P counts in a
/// tight loop (no scheduling point) for `ms`, first alone, then while a
/// ticker sleeps 1 ms at a time. Prints the ticker's lateness (p50, p99,
/// max, µs) and the hogs' work per second with the ticker over without.
/// `spawn(work, stop)` starts one hog; `sleep` is the runtime's sleep;
/// `run_ticker` runs a closure as a green thread and waits for it.
pub fn hogs(
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
pub fn hog_loop(work: &AtomicU64, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        std::hint::black_box(n);
    }
    work.fetch_add(n, Ordering::SeqCst);
}

/// `hogs` on ffiber (preemption by hand-off on).
pub fn hogs_ffiber(ms: u64) {
    let rt = Arc::new(ffiber::Runtime::builder().build().expect("runtime"));
    let procs = rt.max_procs();
    let r1 = rt.clone();
    let r2 = rt.clone();
    hogs(
        ms,
        procs,
        &move |work, stop| {
            let h = r1.spawn(move || hog_loop(&work, &stop));
            Box::new(move || h.join().unwrap())
        },
        &move |f| r2.block_on(f),
        ffiber::sleep,
        &|f| f(),
    );
}

/// `hogs` on may: coroutines are never preempted; its timer thread resumes
/// sleepers whose time came (see the ticker table's note).
pub fn hogs_may(ms: u64) {
    let procs = std::thread::available_parallelism().map_or(2, |n| n.get());
    hogs(
        ms,
        procs,
        &|work, stop| {
            let h = may::go!(move || hog_loop(&work, &stop));
            Box::new(move || h.join().unwrap())
        },
        &|f| may::go!(f).join().unwrap(),
        may::coroutine::sleep,
        &|f| f(),
    );
}

/// `hogs` on go-lib 0.6 (a port of Go's scheduler, with its sysmon
/// preemption): everything runs inside its main goroutine; hogs are joined
/// through a WaitGroup each.
pub fn hogs_golib(ms: u64) {
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

/// Issue 13's many-blockers row: `n` green threads, each making one call
/// to C that sleeps 1 ms, in `mode`; prints the wall time and the most OS
/// threads the process had at once.
pub fn sleepers_ffiber(n: usize, mode: Mode) {
    let peak = ThreadPeak::start();
    let start = Instant::now();
    ffiber::run(move || {
        let hs: Vec<_> = (0..n).map(|_| ffiber::go(move || ffi::call_mode(mode, || block_ms(1)))).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    let s = start.elapsed().as_secs_f64();
    println!("sleepers_s={s:.3}\nsleepers_threads={}", peak.stop());
}

/// The same with tokio: each task awaits `spawn_blocking` for its call.
pub fn sleepers_tokio(n: usize) {
    let peak = ThreadPeak::start();
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().build().expect("tokio runtime");
    rt.block_on(async move {
        let hs: Vec<_> = (0..n)
            .map(|_| tokio::spawn(async { tokio::task::spawn_blocking(|| block_ms(1)).await.unwrap() }))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let s = start.elapsed().as_secs_f64();
    drop(rt);
    println!("sleepers_s={s:.3}\nsleepers_threads={}", peak.stop());
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
fn threads_now() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}
