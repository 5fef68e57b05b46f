//! ffibench: ffiber measured side by side with its peers, in one run.
//!
//! `cargo run --release` prints, for this machine, the runtime-basics table
//! (spawn+join, a yield switch, channel ping-pong across Ps, resident memory
//! per parked green thread) for ffiber, Go's goroutines and the `may` crate.
//! The foreign-call table of "Why cgo is slow" joins it as the foreign-call
//! layer lands.
//!
//! Every peer runs in its own process, once per run, and runs are
//! interleaved (run 1 of every peer, then run 2, ...) so machine drift hits
//! all peers alike. The table shows the median of the runs and the range.
//!
//! Options: `--quick` (a few seconds; used by the tests), `--runs K`.

mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The metrics every runtime peer reports, with their labels and units.
const METRICS: &[(&str, &str, &str)] = &[
    ("spawn_join_ns", "spawn+join, 1,000 at a time", "ns/thread"),
    ("spawn_burst_ns", "spawn+join, 100,000 at once", "ns/thread"),
    ("yield_ns", "yield switch (1 P)", "ns/switch"),
    ("pingpong_ns", "channel ping-pong", "ns/round trip"),
    ("parked_kib", "memory per parked thread", "KiB RSS"),
];

struct Options {
    quick: bool,
    runs: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--internal") {
        return internal(&args[1..]);
    }
    let mut opts = Options { quick: false, runs: 5 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                opts.quick = true;
                opts.runs = 1;
            }
            "--runs" => {
                opts.runs = it.next().and_then(|v| v.parse().ok()).filter(|&k| k > 0).unwrap_or_else(|| {
                    eprintln!("ffibench: --runs needs a positive integer");
                    std::process::exit(2)
                })
            }
            "-h" | "--help" => {
                println!("usage: ffibench [--quick] [--runs K]");
                return;
            }
            other => {
                eprintln!("ffibench: unknown option {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    runtime_table(&opts);
}

/// Child mode: `--internal <peer> <scale>` runs one peer's workloads.
fn internal(args: &[String]) {
    let scale: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let n = move |base: usize| ((base as f64 * scale) as usize).max(10);
    match args.first().map(String::as_str) {
        Some("ffiber") => workloads::ffiber(n),
        Some("may") => workloads::may(n),
        other => {
            eprintln!("ffibench: unknown internal peer {other:?}");
            std::process::exit(2);
        }
    }
}

/// A runnable peer: how to start one run of it.
struct Peer {
    name: String,
    cmd: Result<Command, String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn self_peer(name: &str, scale: f64) -> Peer {
    let mut c = Command::new(std::env::current_exe().expect("own executable"));
    c.args(["--internal", name, &scale.to_string()]);
    Peer { name: name.to_string(), cmd: Ok(c) }
}

/// Builds the Go peer with the machine's Go (offline: it has no imports
/// beyond the standard library).
fn go_peer(scale: f64) -> Peer {
    let version = Command::new("go").arg("version").output().ok();
    let Some(version) = version.filter(|o| o.status.success()) else {
        return Peer { name: "Go".into(), cmd: Err("not installed — apt-get install golang-go".into()) };
    };
    let v = String::from_utf8_lossy(&version.stdout);
    let name = v.split_whitespace().nth(2).unwrap_or("go").replacen("go", "Go ", 1);
    let src = repo_root().join("bench/peers/go/runtime");
    let out = repo_root().join("target/peers/go-runtime");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output();
    match built {
        Ok(o) if o.status.success() => {
            let mut c = Command::new(out);
            c.arg(scale.to_string());
            Peer { name, cmd: Ok(c) }
        }
        Ok(o) => Peer { name, cmd: Err(format!("build failed: {}", String::from_utf8_lossy(&o.stderr).trim())) },
        Err(e) => Peer { name, cmd: Err(format!("build failed: {e}")) },
    }
}

fn run_once(cmd: &mut Command) -> Result<BTreeMap<String, String>, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn runtime_table(opts: &Options) {
    let scale = if opts.quick { 0.02 } else { 1.0 };
    let mut peers = vec![self_peer("ffiber", scale), go_peer(scale), self_peer("may", scale)];
    if let Some(p) = peers.iter_mut().find(|p| p.name == "may") {
        p.name = "may 0.3".into();
    }
    // samples[peer][metric] = values over runs
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); peers.len()];
    let mut errors: Vec<Option<String>> = peers.iter().map(|p| p.cmd.as_ref().err().cloned()).collect();
    for run in 0..opts.runs {
        for (i, peer) in peers.iter_mut().enumerate() {
            eprint!("\r\x1b[Kffibench: runtime basics, run {}/{}: {}", run + 1, opts.runs, peer.name);
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
    let runs = opts.runs;
    println!(
        "Runtime basics — median of {runs} run{} (min–max); one process per run, runs interleaved",
        if runs == 1 { "" } else { "s" }
    );
    println!();
    let mut header = format!("{:<30} {:<14}", "metric", "unit");
    for p in &peers {
        header += &format!(" {:>22}", p.name);
    }
    header += &format!(" {:>10}", "ffiber/Go");
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for (key, label, unit) in METRICS {
        let mut line = format!("{label:<30} {unit:<14}");
        let mut meds = Vec::new();
        for (i, _) in peers.iter().enumerate() {
            let cell = match (&errors[i], samples[i].get_mut(*key)) {
                (None, Some(v)) if !v.is_empty() => {
                    let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
                    let m = median(v);
                    meds.push(Some(m));
                    if runs > 1 { format!("{m:.1} ({lo:.0}–{hi:.0})") } else { format!("{m:.1}") }
                }
                _ => {
                    meds.push(None);
                    "—".to_string()
                }
            };
            line += &format!(" {cell:>22}");
        }
        let ratio = match (meds.first().copied().flatten(), meds.get(1).copied().flatten()) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "—".into(),
        };
        line += &format!(" {ratio:>10}");
        println!("{line}");
    }
    println!();
    for (i, p) in peers.iter().enumerate() {
        if let Some(e) = &errors[i] {
            println!("{}: {e}", p.name);
        }
    }
    println!(
        "Lower is better. ffiber/Go < 1 means ffiber is faster (or smaller). Go's yield row runs with GOMAXPROCS(1) and \
         ffiber's with max_procs 1; may's workers are fixed per process, so its yield row uses all of them. may's \
         ping-pong uses its unbounded mpsc channels (it has no rendezvous channel); ffiber and Go use unbuffered ones."
    );
}
