//! Runtime basics: spawn+join, yield, ping-pong, parked memory, and the
//! 300k / 1M parked rows, for ffiber, Go, may and go-lib.

use super::{collect, error_notes, stats};
use crate::peers::{go_peer, self_peer};
use crate::{Options, report};

/// The metrics every runtime peer reports, with their labels and units.
pub(crate) const METRICS: &[(&str, &str, &str)] = &[
    ("spawn_join_ns", "spawn+join, 1,000 at a time", "ns/thread"),
    ("spawn_burst_ns", "spawn+join, 100,000 at once", "ns/thread"),
    ("yield_ns", "yield switch (1 P)", "ns/switch"),
    ("pingpong_ns", "channel ping-pong", "ns/round trip"),
    ("parked_kib", "memory per parked thread", "KiB RSS"),
    ("park300k_spawn_ns", "300,000 parked on one channel: spawn+park", "ns/thread"),
    ("park300k_wake_ns", "300,000 parked: close, wake+join", "ns/thread"),
    ("park1m_spawn_ns", "1,000,000 parked on one channel: spawn+park", "ns/thread"),
    ("park1m_wake_ns", "1,000,000 parked: close, wake+join", "ns/thread"),
];

pub(crate) fn runtime_table(opts: &Options) -> report::Table {
    let scale = if opts.quick { 0.02 } else { 1.0 };
    let mut peers =
        vec![self_peer("ffiber", scale), go_peer(scale), self_peer("may", scale), self_peer("golib", scale)];
    for p in peers.iter_mut() {
        match p.name.as_str() {
            "may" => p.name = "may 0.3".into(),
            "golib" => p.name = "go-lib 0.6".into(),
            _ => {}
        }
    }
    let (mut samples, errors) = collect("runtime basics", &mut peers, opts.runs);
    let runs = opts.runs;
    let mut t = report::Table {
        title: format!(
            "Runtime basics — median of {runs} run{} (min–max); one process per run, runs interleaved",
            if runs == 1 { "" } else { "s" }
        ),
        ..Default::default()
    };
    t.header = vec!["metric".into(), "unit".into()];
    t.header.extend(peers.iter().map(|p| p.name.clone()));
    t.header.push("ffiber/Go".into());
    for (key, label, unit) in METRICS {
        let mut row = vec![label.to_string(), unit.to_string()];
        let mut meds = Vec::new();
        for i in 0..peers.len() {
            let cell = match (&errors[i], stats(samples[i].get_mut(*key))) {
                (None, Some((m, lo, hi))) => {
                    meds.push(Some(m));
                    if runs > 1 { format!("{m:.1} ({lo:.0}–{hi:.0})") } else { format!("{m:.1}") }
                }
                _ => {
                    meds.push(None);
                    "—".to_string()
                }
            };
            row.push(cell);
        }
        row.push(match (meds.first().copied().flatten(), meds.get(1).copied().flatten()) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "—".into(),
        });
        t.values.push(meds.first().copied().flatten());
        t.rows.push(row);
    }
    t.notes.extend(error_notes(&peers, &errors));
    t.notes.push(
        "Lower is better. ffiber/Go < 1 means ffiber is faster (or smaller). Go's yield row runs with GOMAXPROCS(1) and \
         ffiber's with max_procs 1; may's workers are fixed per process, so its yield row uses all of them. may's \
         ping-pong uses its unbounded mpsc channels (it has no rendezvous channel); ffiber and Go use unbuffered ones. \
         The parked rows: N green threads / goroutines each mark a WaitGroup and block receiving on one unbuffered \
         channel (spawn+park: until all have marked), then the channel is closed and all are joined (wake+join); may has \
         no multi-consumer channel, so it has no such rows. go-lib 0.6 has no join handle (its spawn+join waits on a \
         WaitGroup per batch); at 300,000 parked goroutines it aborts the process (\"stack alloc failed: mprotect guard \
         page failed\": its guard pages exhaust vm.max_map_count), so its parked rows run only with FFIBENCH_GOLIB_PARK=1."
            .into(),
    );
    t
}
