//! Scenario tables: blocking C with a ticker, CPU hogs with a ticker,
//! deep C stacks.

use super::{collect, scenario_rows};
use crate::peers::{cgo_peer, self_peer};
use crate::{Options, report};

/// Scenario (b): 10,000 threads of each runtime calling C that needs
/// 256 KiB of stack: does it complete, and at what peak memory.
pub(crate) fn deep_table(opts: &Options) -> report::Table {
    let n = if opts.quick { 1000 } else { 10_000 };
    let go = cgo_peer("deep", n);
    let scale = n as f64 / 10_000.0;
    let mut peers =
        vec![self_peer("deep-ffiber", scale), go, self_peer("deep-may", scale), self_peer("deep-golib", scale)];
    peers[0].name = "ffiber".into();
    peers[2].name = "may 0.3".into();
    peers[3].name = "go-lib 0.6".into();
    let (mut samples, errors) = collect("deep C stacks", &mut peers, 1);
    let mut t = report::Table {
        title: format!(
            "Deep C stacks: {n} green threads / goroutines / coroutines each call C that uses 256 KiB of stack"
        ),
        ..Default::default()
    };
    let rows = [("deep_ok", "completed correctly"), ("deep_peak_mib", "peak RSS, MiB")];
    scenario_rows(&mut t, "", &peers, &mut samples, &errors, &rows, |key, m| match key {
        "deep_ok" => (if m == 1.0 { "yes" } else { "no" }).into(),
        _ => format!("{m:.0}"),
    });
    t.notes.push(
        "ffiber and cgo run C on the OS thread's 8 MiB system stack; may runs it on the coroutine's own small stack; \
         go-lib 0.6's with_syscall hands off its P but runs C on the goroutine's own stack too."
            .into(),
    );
    t
}

/// Scenario (a) of issue 5: every P's thread blocked in C while a ticker
/// measures its lateness.
pub(crate) fn ticker_table(opts: &Options) -> report::Table {
    let ms = if opts.quick { 100 } else { 1000 };
    let go = cgo_peer("ticker", ms);
    let scale = ms as f64 / 1000.0;
    let mut peers = vec![
        self_peer("ticker-ffiber", scale),
        go,
        self_peer("ticker-may", scale),
        self_peer("ticker-tokio", scale),
        self_peer("ticker-golib", scale),
    ];
    peers[0].name = "ffiber".into();
    peers[2].name = "may 0.3".into();
    peers[3].name = "tokio (block_in_place)".into();
    peers[4].name = "go-lib 0.6 (with_syscall)".into();
    let (mut samples, errors) = collect("blocking C + ticker", &mut peers, opts.runs);
    let mut t = report::Table {
        title: "Blocking C on every P: 2 threads per P sleep in C (20 ms nanosleeps) while a ticker sleeps 1 ms at a \
                time — its lateness, µs (median of runs)"
            .into(),
        ..Default::default()
    };
    scenario_rows(
        &mut t,
        "lateness",
        &peers,
        &mut samples,
        &errors,
        &[("ticker_p50_us", "p50"), ("ticker_p99_us", "p99")],
        |_, m| format!("{m:.0}"),
    );
    t.notes.push(
        "ffiber's monitor and Go's sysmon hand a P whose thread is stuck in C to another thread. may's coroutines \
         call C on their worker threads, which all stay blocked; its ticker still runs because may resumes a \
         coroutine whose sleep expired on its timer thread — work woken any other way (a channel, an I/O event) \
         waits for a worker. tokio's tasks use block_in_place, which hands the worker's other tasks to a new thread; \
         tokio's timer has 1 ms resolution, so its ticker is ~1 ms late even when nothing blocks."
            .into(),
    );
    t
}

/// Issue 13: many green threads whose calls block, each one call to C that
/// sleeps 1 ms: how fast each runtime gets them all into C, and with how
/// many OS threads.
pub(crate) fn sleepers_table(opts: &Options) -> report::Table {
    let n = if opts.quick { 10_000 } else { 100_000 };
    let scale = n as f64 / 100_000.0;
    let mut peers = vec![
        self_peer("sleepers-ffiber", scale),
        self_peer("sleepers-ffiber-blocking", scale),
        cgo_peer("sleepers", n),
        self_peer("sleepers-tokio", scale),
    ];
    peers[0].name = "ffiber default".into();
    peers[1].name = "ffiber Blocking".into();
    peers[2].name = format!("{} cgo", peers[2].name);
    peers[3].name = "tokio spawn_blocking".into();
    let (mut samples, errors) = collect("many blocking calls", &mut peers, opts.runs);
    let mut t = report::Table {
        title: format!(
            "Many blocking calls: {n} green threads / goroutines / tasks each make one call to C that sleeps 1 ms \
             (median of runs)"
        ),
        ..Default::default()
    };
    let rows = [("sleepers_s", "wall time, s"), ("sleepers_threads", "most OS threads at once")];
    scenario_rows(&mut t, "", &peers, &mut samples, &errors, &rows, |key, m| match key {
        "sleepers_s" => format!("{m:.2}"),
        _ => format!("{m:.0}"),
    });
    t.notes.push(
        "ffiber default: the monitor takes the P of a call it has seen last 20 µs (at its first look if the M's \
         last call was proven to block), and an M whose last call blocked hands its P off before the next one when \
         green threads wait; Blocking hands the P off before the call when green threads are queued. Go's sysmon \
         takes a P after it has seen the same call for one tick (20 µs or more). tokio runs each call on its \
         blocking pool (at most 512 threads)."
            .into(),
    );
    t
}

/// Issue 12: every P runs a green thread in a tight loop (no scheduling
/// point) for 2 s while a ticker sleeps 1 ms at a time: the ticker's
/// lateness, and the hogs' throughput against a run without the ticker.
pub(crate) fn hogs_table(opts: &Options) -> report::Table {
    let ms = if opts.quick { 200 } else { 2000 };
    let go = cgo_peer("hogs", ms);
    let scale = ms as f64 / 2000.0;
    let mut peers =
        vec![self_peer("hogs-ffiber", scale), go, self_peer("hogs-golib", scale), self_peer("hogs-may", scale)];
    peers[0].name = "ffiber".into();
    peers[2].name = "go-lib 0.6".into();
    peers[3].name = "may 0.3".into();
    let (mut samples, errors) = collect("hogs + ticker", &mut peers, opts.runs);
    let mut t = report::Table {
        title: format!(
            "CPU-bound green threads on every P: each counts in a tight loop for {} s while a ticker sleeps 1 ms at a \
             time (median of runs)",
            ms as f64 / 1000.0
        ),
        ..Default::default()
    };
    scenario_rows(
        &mut t,
        "ticker lateness / hogs",
        &peers,
        &mut samples,
        &errors,
        &[
            ("hogs_p50_us", "lateness p50, µs"),
            ("hogs_p99_us", "lateness p99, µs"),
            ("hogs_max_us", "lateness max, µs"),
            ("hogs_work_ratio", "hogs' work, with ticker / without"),
        ],
        |k, m| if k == "hogs_work_ratio" { format!("{m:.3}") } else { format!("{m:.0}") },
    );
    t.notes.push(
        "ffiber never interrupts a green thread: after 10 ms the work waiting behind one moves to a spare processor \
         slot on another OS thread (preemption by hand-off). Go preempts after 10 ms (sysmon; SIGURG since 1.14). \
         go-lib 0.6 ports Go's scheduler and its sysmon preemption (its ticker runs in its main goroutine); its hogs \
         do less work in the phase without the ticker (a ratio above 1), not yet explained. \
         may never preempts: its ticker cannot even start until the hogs end (its lateness is the whole run). The \
         first tick is due 1 ms after the hogs start, so the max includes the time to notice the hogs \
         (ffiber and Go: 10 ms plus a monitor tick)."
            .into(),
    );
    t
}
