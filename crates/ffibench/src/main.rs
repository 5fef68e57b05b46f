//! ffibench: ffiber measured side by side with its peers, in one run.
//!
//! `cargo run --release` prints, for this machine, the runtime-basics table
//! (spawn+join, a yield switch, channel ping-pong across Ps, resident memory
//! per parked green thread) for ffiber, Go's goroutines and the `may` crate.
//! Then the foreign-call table of "Why cgo is slow": one call to
//! `int plusone(int)` in a shared library, plainly and through each ffiber
//! mode, beside cgo on the machine's Go.
//!
//! Every peer runs in its own process, once per run, and runs are
//! interleaved (run 1 of every peer, then run 2, ...) so machine drift hits
//! all peers alike. The table shows the median of the runs and the range.
//!
//! Options: `--quick` (a few seconds; used by the tests), `--runs K`.

mod ffi;
mod peers;
mod report;
mod server;
mod sqlite;
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
    ("park300k_spawn_ns", "300,000 parked on one channel: spawn+park", "ns/thread"),
    ("park300k_wake_ns", "300,000 parked: close, wake+join", "ns/thread"),
    ("park1m_spawn_ns", "1,000,000 parked on one channel: spawn+park", "ns/thread"),
    ("park1m_wake_ns", "1,000,000 parked: close, wake+join", "ns/thread"),
];

struct Options {
    quick: bool,
    runs: usize,
    /// `--rows a,b`: only the tables/rows whose names contain one of these.
    rows: Option<Vec<String>>,
    json: bool,
    /// `--compare FILE.csv`: an earlier run to compare with.
    compare: Option<String>,
}

impl Options {
    /// Whether a row (or table) with these names is selected by `--rows`.
    fn wants(&self, names: &[&str]) -> bool {
        self.rows
            .as_ref()
            .is_none_or(|sel| sel.iter().any(|w| names.iter().any(|n| n.to_lowercase().contains(&w.to_lowercase()))))
    }
}

const USAGE: &str = "usage: ffibench [--quick] [--runs K] [--rows NAMES] [--json]
  --quick       a few seconds per table (smoke run; writes no results file)
  --runs K      runs per row, one process each, interleaved (default 5)
  --rows NAMES  comma-separated: run only tables/rows whose names contain one
                (e.g. --rows cgo,ffiber or --rows runtime,ticker)
  --json        print the tables as JSON instead of text
  --compare F   after the tables, each number beside the same cell of an
                earlier run's CSV (results/<date>-<host>.csv), with the change";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--internal") {
        return internal(&args[1..]);
    }
    let mut opts = Options { quick: false, runs: 5, rows: None, json: false, compare: None };
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
            "--rows" => {
                let v = it.next().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| {
                    eprintln!("ffibench: --rows needs comma-separated names (try --help)");
                    std::process::exit(2)
                });
                opts.rows = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
            }
            "--json" => opts.json = true,
            "--compare" => {
                let f = it.next().unwrap_or_else(|| {
                    eprintln!("ffibench: --compare needs the CSV file of an earlier run (results/<date>-<host>.csv)");
                    std::process::exit(2)
                });
                if let Err(e) = std::fs::metadata(f) {
                    eprintln!("ffibench: --compare {f}: {e}");
                    std::process::exit(2);
                }
                opts.compare = Some(f.clone());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("ffibench: unknown option {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    let mut tables = Vec::new();
    if opts.wants(&["runtime", "spawn", "yield", "ping", "memory", "park"]) {
        tables.push(runtime_table(&opts));
        emit(&opts, tables.last());
    }
    for t in ffi_table(&opts) {
        tables.push(t);
        emit(&opts, tables.last());
    }
    if opts.wants(&["ticker", "blocking"]) {
        tables.push(ticker_table(&opts));
        emit(&opts, tables.last());
    }
    if opts.wants(&["hogs", "preempt", "fair"]) {
        tables.push(hogs_table(&opts));
        emit(&opts, tables.last());
    }
    if opts.wants(&["server", "http", "wrk"]) {
        tables.push(server::table(&opts));
        emit(&opts, tables.last());
    }
    if opts.wants(&["sqlite", "database"]) {
        tables.push(sqlite::table(&opts));
        emit(&opts, tables.last());
    }
    if opts.wants(&["deep", "stack"]) {
        tables.push(deep_table(&opts));
        emit(&opts, tables.last());
    }
    if let Some(f) = &opts.compare {
        match std::fs::read_to_string(f) {
            Ok(old) => {
                let c = report::compare(&tables, &old, f);
                emit(&opts, Some(&c));
                tables.push(c);
            }
            Err(e) => eprintln!("ffibench: --compare {f}: {e}"),
        }
    }
    if opts.json {
        println!("[{}]", tables.iter().map(report::Table::json).collect::<Vec<_>>().join(",\n"));
    }
    if !opts.quick && opts.rows.is_none() {
        save(&opts, &tables);
    }
}

/// Prints a table as text as soon as it is done (unless `--json`).
fn emit(opts: &Options, t: Option<&report::Table>) {
    if let (false, Some(t)) = (opts.json, t) {
        println!("{}", t.text());
    }
}

/// Writes `results/<date>-<host>.{md,csv,svg}`.
fn save(opts: &Options, tables: &[report::Table]) {
    let dir = repo_root().join("results");
    let _ = std::fs::create_dir_all(&dir);
    let stem = dir.join(format!("{}-{}", report::today(), report::host()));
    let mut md =
        format!("# ffibench results, {}\n\n`cargo run --release -- --runs {}`\n\n", report::today(), opts.runs);
    for (k, v) in report::machine() {
        md += &format!("- {k}: {v}\n");
    }
    let mut csv = String::from("table,row,column,value\n");
    for t in tables {
        md += "\n";
        md += &t.markdown();
        t.csv(&mut csv);
    }
    // Charts: the foreign-call table's (log scale, with the talk's 2018
    // figures) as <stem>.svg, every other table's as <stem>-<table>.svg.
    let chart = tables.iter().find(|t| t.title.starts_with("Foreign calls"));
    let mut results = vec![
        (stem.with_extension("md"), md),
        (stem.with_extension("csv"), csv),
        (stem.with_extension("svg"), chart.map(report::svg).unwrap_or_default()),
    ];
    for t in tables.iter().filter(|t| !t.title.starts_with("Foreign calls") && !t.title.starts_with("Change against")) {
        let slug: String = report::table_key(&t.title)
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!(
            "{}-{}.svg",
            stem.file_name().and_then(|n| n.to_str()).unwrap_or("ffibench"),
            slug.trim_matches('-')
        );
        results.push((stem.with_file_name(name), report::svg_grouped(t)));
    }
    for (path, text) in results {
        if text.is_empty() {
            continue;
        }
        match std::fs::write(&path, text) {
            Ok(()) => eprintln!("ffibench: wrote {}", path.display()),
            Err(e) => eprintln!("ffibench: could not write {}: {e}", path.display()),
        }
    }
}

/// Child mode: `--internal <peer> <scale>` runs one peer's workloads.
fn internal(args: &[String]) {
    let scale: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let n = move |base: usize| ((base as f64 * scale) as usize).max(10);
    match args.first().map(String::as_str) {
        Some("ffiber") => workloads::ffiber(n),
        Some("may") => workloads::may(n),
        Some("golib") => workloads::golib(n),
        Some("ffi") => ffi::run(n),
        Some("ticker-ffiber") => ffi::ticker_ffiber(n(1000) as u64),
        Some("ticker-may") => ffi::ticker_may(n(1000) as u64),
        Some("ticker-tokio") => ffi::ticker_tokio(n(1000) as u64),
        Some("hogs-ffiber") => ffi::hogs_ffiber(n(2000) as u64),
        Some("hogs-may") => ffi::hogs_may(n(2000) as u64),
        Some("hogs-golib") => ffi::hogs_golib(n(2000) as u64),
        Some("tokio") => ffi::tokio_rows(n),
        Some("deep-ffiber") => ffi::deep_ffiber(n(10_000)),
        Some("deep-may") => ffi::deep_may(n(10_000)),
        Some("may-ffi") => ffi::may_rows(n),
        Some("golib-ffi") => ffi::golib_rows(n),
        Some("ticker-golib") => ffi::ticker_golib(n(1000) as u64),
        Some("deep-golib") => ffi::deep_golib(n(10_000)),
        Some("server-ffiber") => server::serve_ffiber(args.get(1).map_or("kv.db", String::as_str)),
        Some("server-golib") => server::serve_golib(),
        Some(v) if v.starts_with("sqlite-") => sqlite::run(&v["sqlite-".len()..], &args[1..]),
        Some("server-may") => server::serve_may(),
        Some("server-tokio") => server::serve_tokio(args.get(1).map_or("kv.db", String::as_str)),
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
    /// The last argument is an iteration count that `calibrate_peers` may
    /// replace (peers in other languages; the Rust ones calibrate per row).
    counted: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn self_peer(name: &str, scale: f64) -> Peer {
    let mut c = Command::new(std::env::current_exe().expect("own executable"));
    c.args(["--internal", name, &scale.to_string()]);
    Peer { name: name.to_string(), cmd: Ok(c), counted: false }
}

/// Builds the Go peer with the machine's Go (offline: it has no imports
/// beyond the standard library).
fn go_peer(scale: f64) -> Peer {
    go_build("runtime", "go-runtime", &[], scale.to_string())
}

/// The cgo peer (`bench/peers/go/cgo`, linked against `libplusone.so`),
/// run as `go-cgo <mode> <n>`.
fn cgo_peer(mode: &str, n: usize) -> Peer {
    let libdir = env!("FFIBENCH_LIBDIR");
    let cgo_env = [("CGO_LDFLAGS", format!("-L{libdir} -Wl,-rpath,{libdir}")), ("CGO_ENABLED", "1".to_string())];
    let mut go = go_build("cgo", "go-cgo", &cgo_env, mode.into());
    if let Ok(c) = go.cmd.as_mut() {
        c.arg(n.to_string());
    }
    go
}

/// Builds `bench/peers/go/<dir>` into `target/peers/<bin>`; the run gets `arg`.
fn go_build(dir: &str, bin: &str, env: &[(&str, String)], arg: String) -> Peer {
    let version = Command::new("go").arg("version").output().ok();
    let Some(version) = version.filter(|o| o.status.success()) else {
        return Peer {
            name: "Go".into(),
            cmd: Err("not installed — apt-get install golang-go".into()),
            counted: false,
        };
    };
    let v = String::from_utf8_lossy(&version.stdout);
    let name = v.split_whitespace().nth(2).unwrap_or("go").replacen("go", "Go ", 1);
    let src = repo_root().join("bench/peers/go").join(dir);
    let out = repo_root().join("target/peers").join(bin);
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    match built {
        Ok(o) if o.status.success() => {
            let mut c = Command::new(out);
            c.arg(arg);
            Peer { name, cmd: Ok(c), counted: false }
        }
        Ok(o) => Peer {
            name,
            cmd: Err(format!("build failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            counted: false,
        },
        Err(e) => Peer { name, cmd: Err(format!("build failed: {e}")), counted: false },
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

/// Sets each counted peer's iteration count so that one run takes about a
/// second: a probe run with a small count measures the sum of its rows'
/// costs per iteration.
fn calibrate_peers(peers: &mut [Peer]) {
    const PROBE: usize = 20_000;
    for p in peers.iter_mut().filter(|p| p.counted) {
        let Ok(cmd) = p.cmd.as_ref() else { continue };
        eprint!("\r\x1b[Kffibench: calibrating {}", p.name);
        let Ok(kv) = run_once(&mut with_count(cmd, PROBE)) else { continue };
        let per: f64 = kv.iter().filter(|(k, _)| k.ends_with("_ns")).filter_map(|(_, v)| v.parse::<f64>().ok()).sum();
        p.cmd = Ok(with_count(cmd, calibrate(per, std::time::Duration::from_secs(1))));
    }
    eprint!("\r\x1b[K");
}

/// A copy of `cmd` with its last argument replaced by `count`.
fn with_count(cmd: &Command, count: usize) -> Command {
    let mut c = Command::new(cmd.get_program());
    let args: Vec<_> = cmd.get_args().collect();
    c.args(&args[..args.len().saturating_sub(1)]).arg(count.to_string());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// How many iterations fill `budget` at `ns_per_call` (from a probe run):
/// at least 1,000 (so a fast row is not all timer overhead), at most
/// 2^30 (the loops count in a C `int`).
fn calibrate(ns_per_call: f64, budget: std::time::Duration) -> usize {
    let n = if ns_per_call > 0.0 && ns_per_call.is_finite() { budget.as_nanos() as f64 / ns_per_call } else { 1_000.0 };
    (n as usize).clamp(1_000, 1 << 30)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Samples of every metric of every peer: `samples[peer][metric]`, one
/// value per run; and each peer's error, if it could not run.
type Samples = (Vec<BTreeMap<String, Vec<f64>>>, Vec<Option<String>>);

/// Runs every peer `runs` times, interleaved (run 1 of each, then run 2...).
fn collect(what: &str, peers: &mut [Peer], runs: usize) -> Samples {
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
fn stats(v: Option<&mut Vec<f64>>) -> Option<(f64, f64, f64)> {
    let v = v.filter(|v| !v.is_empty())?;
    let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    Some((median(v), lo, hi))
}

fn runtime_table(opts: &Options) -> report::Table {
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

/// The foreign-call rows: (metric key, label, the peer that reports it,
/// the row it is compared with).
const FFI_ROWS: &[(&str, &str, &str, &str)] = &[
    ("c_plt_ns", "C through the PLT (the talk's baseline)", "c", "c_plt_ns"),
    ("c_direct_ns", "C direct call (the floor)", "c", "c_plt_ns"),
    ("rust_plt_ns", "Rust extern \"C\" (through the GOT)", "ffiber", "c_plt_ns"),
    ("ffiber_on_stack_ns", "ffiber call_on_green_stack (unsafe: no switch)", "ffiber", "c_plt_ns"),
    ("ffiber_regs_nonblocking_ns", "ffiber NonBlocking, register trampoline", "ffiber", "c_plt_ns"),
    ("ffiber_regs_ns", "ffiber default, register trampoline (generated)", "ffiber", "c_plt_ns"),
    ("ffiber_nonblocking_ns", "ffiber NonBlocking, closure", "ffiber", "c_plt_ns"),
    ("ffiber_nocallback_ns", "ffiber NoCallback, closure", "ffiber", "c_plt_ns"),
    ("ffiber_default_ns", "ffiber ffi::call (default: fully safe), closure", "ffiber", "c_plt_ns"),
    ("ffiber_blocking_ns", "ffiber Blocking (P handed off per call)", "ffiber", "c_plt_ns"),
    ("cgo_ns", "Go cgo", "cgo", "c_plt_ns"),
    ("cgo_nc_ns", "Go cgo, #cgo noescape + nocallback", "cgo", "c_plt_ns"),
    ("luajit_ns", "LuaJIT FFI", "luajit", "c_plt_ns"),
    ("java_jni_ns", "Java JNI", "jni", "c_plt_ns"),
    ("java_ffm_ns", "Java FFM (Panama)", "ffm", "c_plt_ns"),
    ("node_napi_ns", "Node.js, Node-API addon", "node", "c_plt_ns"),
    ("python_ctypes_ns", "Python ctypes", "python", "c_plt_ns"),
    ("python_cffi_ns", "Python cffi (ABI mode)", "python", "c_plt_ns"),
    ("may_direct_ns", "may coroutine, direct call (no protection)", "may", "c_plt_ns"),
    ("golib_with_syscall_ns", "go-lib 0.6 with_syscall per call", "golib", "c_plt_ns"),
    ("tokio_block_in_place_ns", "tokio block_in_place per call", "tokio", "c_plt_ns"),
    ("tokio_spawn_blocking_ns", "tokio spawn_blocking per call (awaited)", "tokio", "c_plt_ns"),
    ("plain_callback_ns", "callback round trip, plain: Rust -> C -> Rust", "ffiber", "c_plt_ns"),
    ("ffiber_callback_ns", "callback round trip, ffiber: call -> C -> export", "ffiber", "c_plt_ns"),
    ("cgo_callback_ns", "callback round trip, cgo: Go -> C -> Go", "cgo", "c_plt_ns"),
    ("plain_callback_loop_ns", "callback only (C loop): plain extern \"C\" fn", "ffiber", "c_plt_ns"),
    ("ffiber_callback_loop_ns", "callback only (C loop): #[ffiber::export]", "ffiber", "c_plt_ns"),
    ("cgo_callback_loop_ns", "callback only (C loop): cgo //export", "cgo", "c_plt_ns"),
    ("ffiber_default_ns_check", "ffiber ffi::call, FFIBER_CHECK=1 (vs off)", "check", "ffiber_default_ns"),
    ("spawn_join_ns_check", "spawn+join ns/thread, FFIBER_CHECK=1 (vs off)", "check", "spawn_join_ns"),
];

fn ffi_table(opts: &Options) -> Vec<report::Table> {
    let selected: Vec<_> = FFI_ROWS.iter().filter(|r| opts.wants(&[r.0, r.1, r.2])).collect();
    if selected.is_empty() {
        return Vec::new();
    }
    let scale = if opts.quick { 0.01 } else { 1.0 };
    let count = ((20_000_000.0 * scale) as usize).max(10);
    let mut cgo = cgo_peer("all", count);
    cgo.name = format!("{} cgo", cgo.name);
    cgo.counted = true;
    let mut check = self_peer("ffi", scale);
    if let Ok(c) = check.cmd.as_mut() {
        c.env("FFIBER_CHECK", "1");
    }
    check.name = "ffiber (FFIBER_CHECK=1)".into();
    let mut tokio = self_peer("tokio", scale);
    tokio.name = "tokio".into();
    let mut may = self_peer("may-ffi", scale);
    may.name = "may 0.3".into();
    let mut golib = self_peer("golib-ffi", scale);
    golib.name = "go-lib 0.6".into();
    let mut ffiber = self_peer("ffi", scale);
    ffiber.name = "ffiber".into();
    let ids = ["ffiber", "c", "cgo", "luajit", "jni", "ffm", "node", "python", "may", "golib", "tokio", "check"];
    let mut peers = vec![
        ffiber,
        peers::c(count),
        cgo,
        peers::luajit(count),
        peers::java_jni(count),
        peers::java_ffm(count),
        peers::node(count),
        peers::python((count / 10).max(10)),
        may,
        golib,
        tokio,
        check,
    ];
    // Peers none of whose rows are selected (nor needed as a base) do not run.
    for (i, id) in ids.iter().enumerate() {
        let needed = selected.iter().any(|r| r.2 == *id || (r.3 == "c_plt_ns" && *id == "c"))
            || (*id == "ffiber" && selected.iter().any(|r| r.3 != "c_plt_ns"));
        if !needed {
            peers[i].cmd = Err("not selected".into());
        }
    }
    if !opts.quick {
        calibrate_peers(&mut peers);
    }
    let (mut samples, errors) = collect("foreign calls", &mut peers, opts.runs);
    let idx = |id: &str| ids.iter().position(|x| *x == id).expect("known peer id");
    let runs = opts.runs;
    let mut t = report::Table {
        title: format!(
            "Foreign calls: int plusone(int) in a shared library (-O2), the talk's loop — median of {runs} run{} (min–max)",
            if runs == 1 { "" } else { "s" }
        ),
        header: vec!["row".into(), "ns/call".into(), "vs C PLT".into()],
        ..Default::default()
    };
    for (key, label, peer, base_key) in selected.iter().map(|r| **r) {
        // A base key that is not a row of its own (spawn_join_ns) comes
        // from the ffiber peer.
        let base_peer = FFI_ROWS.iter().find(|r| r.0 == base_key).map_or("ffiber", |r| r.2);
        let base = stats(samples[idx(base_peer)].get_mut(base_key)).map(|s| s.0);
        let i = idx(peer);
        let (cell, ratio, value) = match (&errors[i], stats(samples[i].get_mut(key))) {
            (None, Some((m, lo, hi))) => {
                let cell = if runs > 1 { format!("{m:.2} ({lo:.2}–{hi:.2})") } else { format!("{m:.2}") };
                let ratio = base.filter(|&b| b > 0.0).map_or("—".into(), |b| format!("{:.2}x", m / b));
                (cell, ratio, (base_key == "c_plt_ns").then_some(m))
            }
            (Some(_), _) => ("not available".to_string(), "—".to_string(), None),
            _ => ("—".to_string(), "—".to_string(), None),
        };
        t.rows.push(vec![label.to_string(), cell, ratio]);
        t.values.push(value);
    }
    t.notes.extend(error_notes(&peers, &errors));
    t.notes.push(
        "Every row calls the same plusone in libplusone.so; ratios are to C through the PLT unless marked. ffiber \
         rows run in a green thread: NonBlocking adds the switch to the OS thread's stack; default/NoCallback add \
         the scheduler announcement (plain stores and a load); the register trampoline is what generated bindings \
         use (no closure frame); Blocking hands the P to another thread per call."
            .into(),
    );
    let mut out = vec![t];
    if opts.rows.is_none() {
        out.push(reasons_table(&mut samples, &errors, &|id| idx(id)));
    }
    out
}

/// The four reasons, decomposed: ffiber's mechanisms added one at a time,
/// and what Go lets us separate of cgo's, each with what it adds.
fn reasons_table(
    samples: &mut [BTreeMap<String, Vec<f64>>],
    errors: &[Option<String>],
    idx: &dyn Fn(&str) -> usize,
) -> report::Table {
    let mut t = report::Table {
        title: "Where the time goes: each mechanism added in turn (medians, ns/call)".into(),
        header: vec!["step".into(), "ns/call".into(), "adds".into(), "the talk's reason".into()],
        ..Default::default()
    };
    let steps: &[(&str, &str, &str, &str)] = &[
        ("c_plt_ns", "c", "C through the PLT", "—"),
        ("ffiber_on_stack_ns", "ffiber", "ffiber: from a green thread, no switch", "—"),
        ("ffiber_regs_nonblocking_ns", "ffiber", "+ switch to the system stack", "2. small stacks"),
        ("ffiber_regs_ns", "ffiber", "+ scheduler announcement (store, store+load)", "3. the scheduler"),
        ("ffiber_default_ns", "ffiber", "+ closure form (frame, catch_unwind)", "1. calling convention"),
        ("ffiber_default_ns_check", "check", "+ check mode (FFIBER_CHECK=1)", "4. memory rules"),
        ("go_call_ns", "cgo", "Go: a Go function call", "—"),
        ("cgo_nc_ns", "cgo", "Go: cgo with noescape + nocallback", "1-3"),
        ("cgo_ns", "cgo", "Go: cgo", "1-4"),
    ];
    let mut prev: Option<f64> = None;
    for (i, (key, peer, label, reason)) in steps.iter().enumerate() {
        let p = idx(peer);
        let m = if errors[p].is_none() { stats(samples[p].get_mut(*key)).map(|s| s.0) } else { None };
        if i == 6 {
            prev = None; // Go's steps start over
        }
        let adds = match (m, prev) {
            (Some(a), Some(b)) => format!("{:+.2}", a - b),
            _ => "—".into(),
        };
        t.rows.push(vec![
            label.to_string(),
            m.map_or("not available".into(), |m| format!("{m:.2}")),
            adds,
            reason.to_string(),
        ]);
        t.values.push(m);
        if m.is_some() {
            prev = m;
        }
    }
    t.notes.push(
        "The talk's four reasons: (1) calling convention: cgo packs arguments into a struct for a generated C stub; \
         (2) small stacks: C must run on the thread's system stack; (3) the scheduler: every call announces itself \
         so that a blocked call can lose its P; (4) the garbage collector's pointer rules, checked at run time. \
         ffiber's check mode does its work at green-thread exit, so per call it adds nothing measurable."
            .into(),
    );
    t
}

/// "<peer>: <why it has no figures>" for every peer that could not run
/// (first line of the reason; peers left out by `--rows` are not listed).
fn error_notes(peers: &[Peer], errors: &[Option<String>]) -> Vec<String> {
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
fn scenario_rows(
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

/// Scenario (b): 10,000 threads of each runtime calling C that needs
/// 256 KiB of stack: does it complete, and at what peak memory.
fn deep_table(opts: &Options) -> report::Table {
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
fn ticker_table(opts: &Options) -> report::Table {
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

/// Issue 12: every P runs a green thread in a tight loop (no scheduling
/// point) for 2 s while a ticker sleeps 1 ms at a time: the ticker's
/// lateness, and the hogs' throughput against a run without the ticker.
fn hogs_table(opts: &Options) -> report::Table {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        let mut v = vec![5.0, 1.0, 9.0];
        assert_eq!(stats(Some(&mut v)), Some((5.0, 1.0, 9.0)));
        assert_eq!(stats(Some(&mut Vec::new())), None);
        assert_eq!(stats(None), None);
    }

    #[test]
    fn calibration_fills_the_budget_within_bounds() {
        use std::time::Duration;
        assert_eq!(calibrate(2.0, Duration::from_secs(1)), 500_000_000);
        assert_eq!(calibrate(250.0, Duration::from_millis(100)), 400_000);
        assert_eq!(calibrate(1e9, Duration::from_secs(1)), 1_000); // at least 1,000
        assert_eq!(calibrate(0.001, Duration::from_secs(10)), 1 << 30); // fits a C int
        assert_eq!(calibrate(0.0, Duration::from_secs(1)), 1_000);
        assert_eq!(calibrate(f64::NAN, Duration::from_secs(1)), 1_000);
    }

    #[test]
    fn row_selection() {
        let mut o = Options { quick: true, runs: 1, rows: None, json: false, compare: None };
        assert!(o.wants(&["anything"]));
        o.rows = Some(vec!["CGO".into(), "ticker".into()]);
        assert!(o.wants(&["Go cgo, #cgo noescape"]));
        assert!(o.wants(&["x", "ticker"]));
        assert!(!o.wants(&["LuaJIT FFI", "luajit_ns"]));
    }

    #[test]
    fn peer_output_is_parsed_as_key_value_lines() {
        let mut c = Command::new("printf");
        c.arg("a_ns=1.5\nnoise\nb_us = 2\n");
        let kv = run_once(&mut c).unwrap();
        assert_eq!(kv.get("a_ns").map(String::as_str), Some("1.5"));
        assert_eq!(kv.get("b_us").map(String::as_str), Some("2"));
        assert_eq!(kv.len(), 2);
        let mut bad = Command::new("false");
        assert!(run_once(&mut bad).unwrap_err().contains("exited with"));
    }
}
