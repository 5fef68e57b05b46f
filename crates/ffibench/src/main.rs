//! ffibench: ffiber measured side by side with its peers, in one run.
//!
//! `cargo run --release` prints, for this machine, every table: runtime
//! basics, the foreign-call table of "Why cgo is slow" (one call to
//! `int plusone(int)` in a shared library, plainly, through each ffiber
//! mode, and through every peer) with its four reasons decomposed, blocking
//! C and CPU hogs with a ticker, a real HTTP server under `wrk`, SQLite
//! from 64 workers, and deep C stacks.
//!
//! Every peer runs in its own process, once per run, and runs are
//! interleaved (run 1 of every peer, then run 2, ...) so machine drift hits
//! all peers alike. The table shows the median of the runs and the range.
//!
//! Layout: this file is the command line, the results files and the
//! child-mode dispatch (`--internal <peer>`); `tables/` has one module
//! per table and what they share; `peers/` how each peer is started and
//! built (Go in `go.rs`, other languages in `langs.rs`) and, under
//! `peers/rust/`, the Rust peers' workloads, one file per peer, run in
//! child processes; `scratch.rs` cleans up after an interrupted run;
//! `report.rs` renders tables (text, Markdown, CSV, JSON, SVG) and
//! compares runs.

mod peers;
mod report;
mod scratch;
mod tables;

use peers::{repo_root, rust};

pub(crate) struct Options {
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
    // Before any other thread exists (see `scratch`): Ctrl-C removes the
    // databases and server files of the table in progress.
    scratch::install();
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
    let mut done = Vec::new();
    if opts.wants(&["runtime", "spawn", "yield", "ping", "memory", "park"]) {
        done.push(tables::runtime::runtime_table(&opts));
        emit(&opts, done.last());
    }
    for t in tables::calls::ffi_table(&opts) {
        done.push(t);
        emit(&opts, done.last());
    }
    if opts.wants(&["ticker", "blocking"]) {
        done.push(tables::scenarios::ticker_table(&opts));
        emit(&opts, done.last());
    }
    if opts.wants(&["sleepers", "blocking"]) {
        done.push(tables::scenarios::sleepers_table(&opts));
        emit(&opts, done.last());
    }
    if opts.wants(&["hogs", "preempt", "fair"]) {
        done.push(tables::scenarios::hogs_table(&opts));
        emit(&opts, done.last());
    }
    if opts.wants(&["server", "http", "wrk"]) {
        done.push(tables::server::table(&opts));
        emit(&opts, done.last());
    }
    if opts.wants(&["sqlite", "database"]) {
        done.push(tables::sqlite::table(&opts));
        emit(&opts, done.last());
    }
    if opts.wants(&["deep", "stack"]) {
        done.push(tables::scenarios::deep_table(&opts));
        emit(&opts, done.last());
    }
    if let Some(f) = &opts.compare {
        match std::fs::read_to_string(f) {
            Ok(old) => {
                let c = report::compare(&done, &old, f);
                emit(&opts, Some(&c));
                done.push(c);
            }
            Err(e) => eprintln!("ffibench: --compare {f}: {e}"),
        }
    }
    if opts.json {
        println!("[{}]", done.iter().map(report::Table::json).collect::<Vec<_>>().join(",\n"));
    }
    if !opts.quick && opts.rows.is_none() {
        save(&opts, &done);
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
        Some("ffiber") => rust::ffiber::runtime_rows(n),
        Some("may") => rust::may::runtime_rows(n),
        Some("golib") => rust::golib::runtime_rows(n),
        Some("ffi") => rust::ffiber::ffi_rows(n),
        Some("ticker-ffiber") => rust::ffiber::ticker_ffiber(n(1000) as u64),
        Some("ticker-may") => rust::may::ticker_may(n(1000) as u64),
        Some("ticker-tokio") => rust::tokio::ticker_tokio(n(1000) as u64),
        Some("hogs-ffiber") => rust::ffiber::hogs_ffiber(n(2000) as u64),
        Some("hogs-may") => rust::may::hogs_may(n(2000) as u64),
        Some("hogs-golib") => rust::golib::hogs_golib(n(2000) as u64),
        Some("tokio") => rust::tokio::tokio_rows(n),
        Some("deep-ffiber") => rust::ffiber::deep_ffiber(n(10_000)),
        Some("sleepers-ffiber") => rust::ffiber::sleepers_ffiber(n(100_000), ffiber::ffi::Mode::Default),
        Some("sleepers-ffiber-blocking") => rust::ffiber::sleepers_ffiber(n(100_000), ffiber::ffi::Mode::Blocking),
        Some("sleepers-tokio") => rust::tokio::sleepers_tokio(n(100_000)),
        Some("deep-may") => rust::may::deep_may(n(10_000)),
        Some("may-ffi") => rust::may::may_rows(n),
        Some("golib-ffi") => rust::golib::golib_rows(n),
        Some("ticker-golib") => rust::golib::ticker_golib(n(1000) as u64),
        Some("deep-golib") => rust::golib::deep_golib(n(10_000)),
        Some("server-ffiber") => tables::server::serve_ffiber(args.get(1).map_or("kv.db", String::as_str)),
        Some("server-golib") => tables::server::serve_golib(),
        Some(v) if v.starts_with("sqlite-") => tables::sqlite::run(&v["sqlite-".len()..], &args[1..]),
        Some("server-may") => tables::server::serve_may(),
        Some("server-tokio") => tables::server::serve_tokio(args.get(1).map_or("kv.db", String::as_str)),
        other => {
            eprintln!("ffibench: unknown internal peer {other:?}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::{calibrate, run_once};
    use crate::tables::{median, stats};
    use std::process::Command;

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
