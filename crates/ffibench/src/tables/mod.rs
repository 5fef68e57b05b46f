//! The tables, one module each, and what they share: running peers
//! (`collect`: every peer K times, interleaved) and turning their samples
//! into rows (`scenario_rows`, `stats`, `error_notes`).

pub(crate) mod calls;
pub(crate) mod runtime;
pub(crate) mod scenarios;
pub(crate) mod server;
pub(crate) mod sqlite;

use crate::peers::{Peer, run_once};
use crate::report;
use std::collections::BTreeMap;

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Samples of every metric of every peer: `samples[peer][metric]`, one
/// value per run; and each peer's error, if it could not run.
pub(crate) type Samples = (Vec<BTreeMap<String, Vec<f64>>>, Vec<Option<String>>);

/// Runs every peer `runs` times, interleaved (run 1 of each, then run 2...).
pub(crate) fn collect(what: &str, peers: &mut [Peer], runs: usize) -> Samples {
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); peers.len()];
    let mut errors: Vec<Option<String>> = peers.iter().map(|p| p.cmd.as_ref().err().cloned()).collect();
    for run in 0..runs {
        for (i, peer) in peers.iter_mut().enumerate() {
            eprint!("\r\x1b[Kffibench: {what}, run {}/{}: {}", run + 1, runs, peer.name);
            let Ok(cmd) = peer.cmd.as_mut() else { continue };
            if errors[i].is_some() {
                continue;
            }
            match run_once(cmd) {
                Ok(kv) => {
                    for (k, v) in kv {
                        if let Ok(x) = v.parse::<f64>() {
                            samples[i].entry(k).or_default().push(x);
                        }
                    }
                }
                Err(e) => errors[i] = Some(e),
            }
        }
    }
    eprint!("\r\x1b[K");
    (samples, errors)
}

/// Median and range of one metric's samples, if any.
pub(crate) fn stats(v: Option<&mut Vec<f64>>) -> Option<(f64, f64, f64)> {
    let v = v.filter(|v| !v.is_empty())?;
    let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    Some((median(v), lo, hi))
}

/// "<peer>: <why it has no figures>" for every peer that could not run
/// (first line of the reason; peers left out by `--rows` are not listed).
pub(crate) fn error_notes(peers: &[Peer], errors: &[Option<String>]) -> Vec<String> {
    peers
        .iter()
        .zip(errors)
        .filter_map(|(p, e)| e.as_ref().filter(|e| *e != "not selected").map(|e| (p, e)))
        .map(|(p, e)| format!("{}: {}", p.name, e.lines().next().unwrap_or("")))
        .collect()
}

/// The header, rows and notes of a scenario table: one column per peer,
/// one row per `(metric, label)`, cells from `cell(metric, median)`; a
/// peer that could not run shows "crashed" (it died of a signal or an exit
/// status) or "not available".
pub(crate) fn scenario_rows(
    t: &mut report::Table,
    corner: &str,
    peers: &[Peer],
    samples: &mut [BTreeMap<String, Vec<f64>>],
    errors: &[Option<String>],
    rows: &[(&str, &str)],
    cell: impl Fn(&str, f64) -> String,
) {
    t.header = vec![corner.into()];
    t.header.extend(peers.iter().map(|p| p.name.clone()));
    for (key, label) in rows {
        let mut row = vec![label.to_string()];
        let mut first = None;
        for i in 0..peers.len() {
            row.push(match (&errors[i], stats(samples[i].get_mut(*key))) {
                (None, Some((m, _, _))) => {
                    first = first.or(Some(m));
                    cell(key, m)
                }
                (Some(e), _) if e.contains("signal") || e.contains("exited") => "crashed".into(),
                (Some(_), _) => "not available".into(),
                _ => "—".into(),
            });
        }
        t.rows.push(row);
        t.values.push(first);
    }
    t.notes.extend(error_notes(peers, errors));
}
