//! ffiber's workloads: the foreign-call rows (the talk's loop
//! `while x < count { x = plusone(x) }`, plainly from Rust and through
//! every ffiber mode from a green thread; Rust reaches `plusone` through
//! the GOT, an indirect call with no PLT stub, rustc's default), the
//! runtime basics, the blocking-C ticker, deep C stacks, the hogs and the
//! many blocking calls.

use super::*;
use ::ffiber::ffi::{self, Mode};

/// The plain callback baseline: a C-ABI Rust function, no runtime.
pub(crate) extern "C" fn plain_plusone(x: i32) -> i32 {
    x + 1
}

/// The ffiber callback: exported to C, run back on the green thread.
#[::ffiber::export(name = "ffibench_plusone")]
pub(crate) fn exported_plusone(x: i32) -> i32 {
    x + 1
}

unsafe extern "C" {
    safe fn ffibench_plusone(x: i32) -> i32;
}

/// `plusone` as a `-sys` crate would declare it (here: this crate's own
/// declaration, `from = super`), turned into a register-path wrapper by
/// `#[ffiber::foreign]` (default mode).
mod foreign_plusone {
    #[ffiber::foreign(from = super)]
    unsafe extern "C" {
        pub fn plusone(x: i32) -> i32;
    }
}

/// `plusone(x)` through the register pass-through trampoline, as
/// generated bindings call it.
#[inline(always)]
pub(crate) fn regs(mode: Mode, x: i32) -> i32 {
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

/// The rows (keys as in [`super::FFI_ROWS`]). Each is paired with the C
/// loop through the PLT (`<key>_vs_c_plt_ns`), and the `#[ffiber::export]`
/// callback loop with the plain callback loop
/// (`ffiber_callback_loop_ns_vs_plain_callback_loop_ns`), both timed in
/// alternating slices inside one green thread.
pub(crate) fn ffi_rows(n: impl Fn(usize) -> usize) {
    set_budget(&n);
    let batches = n(200);
    const C: &str = "c_plt_ns";
    // The base against itself: how far apart two timings of the same loop
    // come out (the pairing's own noise).
    paired(|n| ffibench_c_plt_loop(n), |n| ffibench_c_plt_loop(n)).print("c_plt_inproc_ns", C, "");
    timed_auto(|x| plusone(x)).print("rust_plt_ns", C, "");
    timed_auto(|x| call_cb(plain_plusone, x)).print("plain_callback_ns", C, "");
    paired(|n| ffibench_c_plt_loop(n), |n| loop_cb(plain_plusone, n)).print("plain_callback_loop_ns", C, "");
    let _ = exported_plusone; // reached through its C symbol
    let rt = ::ffiber::Runtime::builder().build().expect("runtime");
    let (rows, spawn) = rt.block_on(move || {
        // Warm the monitor up so that its start is not timed.
        ffi::call(|| plusone(0));
        let rows = vec![
            (
                "ffiber_on_stack_ns",
                C,
                timed_auto(|x| {
                    // SAFETY: plusone is a leaf using a few bytes of stack, never
                    // blocks and never calls back.
                    unsafe { ffi::call_on_green_stack(|| plusone(x)) }
                }),
            ),
            ("ffiber_nonblocking_ns", C, timed_auto(|x| ffi::call_mode(Mode::NonBlocking, || plusone(x)))),
            ("ffiber_nocallback_ns", C, timed_auto(|x| ffi::call_mode(Mode::NoCallback, || plusone(x)))),
            ("ffiber_default_ns", C, timed_auto(|x| ffi::call(|| plusone(x)))),
            // The same call with the argument captured by value: a closure
            // of up to 16 bytes travels in registers, so `x` is not stored
            // on the green stack and loaded back on the system stack.
            ("ffiber_default_move_ns", C, timed_auto(|x| ffi::call(move || plusone(x)))),
            ("ffiber_regs_ns", C, timed_auto(|x| regs(Mode::Default, x))),
            // SAFETY: plusone takes and returns a plain int.
            ("ffiber_foreign_ns", C, timed_auto(|x| unsafe { foreign_plusone::plusone(x) })),
            ("ffiber_regs_nonblocking_ns", C, timed_auto(|x| regs(Mode::NonBlocking, x))),
            ("ffiber_blocking_ns", C, timed_auto(|x| ffi::call_mode(Mode::Blocking, || plusone(x)))),
            ("ffiber_callback_ns", C, timed_auto(|x| ffi::call(|| call_cb(ffibench_plusone, x)))),
            // Both loops inside one foreign call from this green thread: the
            // ratio is what `#[ffiber::export]` adds to each callback.
            (
                "ffiber_callback_loop_ns",
                "plain_callback_loop_ns",
                paired(|n| ffi::call(|| loop_cb(plain_plusone, n)), |n| ffi::call(|| loop_cb(ffibench_plusone, n))),
            ),
        ];
        (rows, spawn_join(batches))
    });
    // Under FFIBER_CHECK=1 the same rows are reported as check-mode rows.
    let sfx = if std::env::var_os("FFIBER_CHECK").is_some_and(|v| v == "1") { "_check" } else { "" };
    for (key, base, t) in rows {
        t.print(key, base, sfx);
    }
    println!("spawn_join_ns{sfx}={spawn:.3}");
}

/// spawn+join of 1,000 green threads at a time, `batches` times; ns each.
pub(crate) fn spawn_join(batches: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..batches {
        let hs: Vec<_> = (0..1000).map(|_| ::ffiber::go(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    t.elapsed().as_nanos() as f64 / (batches * 1000) as f64
}

/// Scenario (a): 2 green threads per P loop in C (20 ms nanosleeps, until
/// a deadline) while a ticker green thread sleeps 1 ms at a time and
/// records how late it wakes. The monitor must hand the Ps to other
/// threads for it to run at all.
pub(crate) fn ticker_ffiber(ms: u64) {
    let rt = ::ffiber::Runtime::builder().build().expect("runtime");
    let procs = rt.max_procs();
    let (p50, p99) = rt.block_on(move || {
        let until = Instant::now() + std::time::Duration::from_millis(ms + 30);
        let blockers: Vec<_> = (0..2 * procs)
            .map(|_| {
                ::ffiber::go(move || {
                    while Instant::now() < until {
                        ffi::call(|| block_ms(20));
                    }
                })
            })
            .collect();
        ::ffiber::sleep(std::time::Duration::from_millis(5));
        let r = lateness(ms, ::ffiber::sleep);
        blockers.into_iter().for_each(|h| h.join().unwrap());
        r
    });
    println!("ticker_p50_us={p50:.1}\nticker_p99_us={p99:.1}");
}

/// Scenario (b): `n` green threads, each calling C that uses 256 KiB of
/// stack (default 256 KiB green stacks: the C code would not fit on them).
pub(crate) fn deep_ffiber(n: usize) {
    let ok = ::ffiber::run(move || {
        let hs: Vec<_> = (0..n).map(|_| ::ffiber::go(|| ffi::call(|| use_stack(256)))).collect();
        hs.into_iter().map(|h| h.join().unwrap() as usize).sum::<usize>() == n * 64
    });
    println!("deep_ok={}\ndeep_peak_mib={:.1}", u8::from(ok), peak_mib());
}

/// `hogs` on ffiber (preemption by hand-off on).
pub(crate) fn hogs_ffiber(ms: u64) {
    let rt = Arc::new(::ffiber::Runtime::builder().build().expect("runtime"));
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
        ::ffiber::sleep,
        &|f| f(),
    );
}

/// Issue 13's many-blockers row: `n` green threads, each making one call
/// to C that sleeps 1 ms, in `mode`; prints the wall time and the most OS
/// threads the process had at once.
pub(crate) fn sleepers_ffiber(n: usize, mode: Mode) {
    let peak = ThreadPeak::start();
    let start = Instant::now();
    ::ffiber::run(move || {
        let hs: Vec<_> = (0..n).map(|_| ::ffiber::go(move || ffi::call_mode(mode, || block_ms(1)))).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    let s = start.elapsed().as_secs_f64();
    println!("sleepers_s={s:.3}\nsleepers_threads={}", peak.stop());
}

/// ffiber: spawn+join, yield switch (1 P), ping-pong (2 Ps), parked memory.
pub(crate) fn runtime_rows(n: impl Fn(usize) -> usize) {
    let rt = ::ffiber::Runtime::builder().build().expect("runtime");
    let batches = n(200);
    let spawn_ns = rt.block_on(move || {
        let t = Instant::now();
        for _ in 0..batches {
            let hs: Vec<_> = (0..1000).map(|_| ::ffiber::go(|| ())).collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        }
        per(t.elapsed(), batches * 1000)
    });
    println!("spawn_join_ns={spawn_ns:.1}");
    let at_once = n(100_000);
    let burst_ns = rt.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..at_once).map(|_| ::ffiber::go(|| ())).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        per(t.elapsed(), at_once)
    });
    println!("spawn_burst_ns={burst_ns:.1}");

    let one = ::ffiber::Runtime::builder().max_procs(1).build().expect("runtime");
    let yields = n(1_000_000);
    let yield_ns = one.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                ::ffiber::go(move || {
                    for _ in 0..yields {
                        ::ffiber::yield_now();
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
        let (a_tx, a_rx) = ::ffiber::chan::bounded::<usize>(0);
        let (b_tx, b_rx) = ::ffiber::chan::bounded::<usize>(0);
        ::ffiber::go(move || {
            for v in a_rx.iter() {
                b_tx.send(v + 1).unwrap();
            }
        });
        pingpong(rounds, |v| a_tx.send(v).unwrap(), || b_rx.recv().unwrap())
    });
    println!("pingpong_ns={pp_ns:.1}");

    let parked = n(20_000);
    let kib = rt.block_on(move || {
        let before = rss_kib();
        let (tx, rx) = ::ffiber::chan::bounded::<()>(0);
        let wg = std::sync::Arc::new(::ffiber::sync::WaitGroup::new());
        wg.add(parked);
        let hs: Vec<_> = (0..parked)
            .map(|_| {
                let (rx, wg) = (rx.clone(), wg.clone());
                ::ffiber::go(move || {
                    wg.done();
                    rx.recv().ok();
                })
            })
            .collect();
        wg.wait();
        ::ffiber::sleep(Duration::from_millis(10));
        let after = rss_kib();
        drop(tx);
        hs.into_iter().for_each(|h| h.join().unwrap());
        (after - before) / parked as f64
    });
    println!("parked_kib={kib:.2}");

    for (label, base) in [("park300k", 300_000), ("park1m", 1_000_000)] {
        let n = n(base);
        let (spawn_ns, wake_ns) = rt.block_on(move || {
            let (tx, rx) = ::ffiber::chan::bounded::<()>(0);
            let wg = std::sync::Arc::new(::ffiber::sync::WaitGroup::new());
            wg.add(n);
            let t = Instant::now();
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, wg) = (rx.clone(), wg.clone());
                    ::ffiber::go(move || {
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
