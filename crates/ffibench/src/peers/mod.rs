//! The peers: how each is started (`Peer`), built and calibrated. Go's
//! are in `go.rs`, the other languages' in `langs.rs`; the Rust peers run
//! in a child of this binary (`self_peer`, `--internal <name>`), with
//! their workloads in `rust/`, one file per peer.

mod go;
mod langs;
pub(crate) mod rust;

pub(crate) use go::{cgo_peer, go_build, go_peer};
pub(crate) use langs::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A runnable peer: how to start one run of it.
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) cmd: Result<Command, String>,
    /// The last argument is an iteration count that `calibrate_peers` may
    /// replace (peers in other languages; the Rust ones calibrate per row).
    pub(crate) counted: bool,
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn self_peer(name: &str, scale: f64) -> Peer {
    let mut c = Command::new(std::env::current_exe().expect("own executable"));
    c.args(["--internal", name, &scale.to_string()]);
    Peer { name: name.to_string(), cmd: Ok(c), counted: false }
}

pub(crate) fn run_once(cmd: &mut Command) -> Result<BTreeMap<String, String>, String> {
    run_within(cmd, None)
}

/// [`run_once`], killing the peer if it runs past `limit` (a peer that
/// hangs becomes a row with its error, and the table still prints).
pub(crate) fn run_within(
    cmd: &mut Command,
    limit: Option<std::time::Duration>,
) -> Result<BTreeMap<String, String>, String> {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
    let tracked = crate::scratch::Child::new(child.id());
    // Drain both pipes on threads, so a chatty peer never blocks on them.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let so = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let se = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let start = std::time::Instant::now();
    let status = loop {
        // Poll without reaping (`waitid` with `WNOWAIT`): the pid stays
        // ours until `tracked` is dropped, so an interrupt never kills a
        // reused pid.
        if exited(child.id()) {
            drop(tracked);
            break child.wait().map_err(|e| e.to_string())?;
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            let _ = child.kill();
            drop(tracked);
            let _ = child.wait();
            return Err(format!("did not finish within {:?}: killed (it hangs)", limit.unwrap_or_default()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out =
        std::process::Output { status, stdout: so.join().unwrap_or_default(), stderr: se.join().unwrap_or_default() };
    if !out.status.success() {
        return Err(format!("exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// Whether child `pid` has exited, without reaping it.
fn exited(pid: u32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child, with a valid out pointer; WNOWAIT
    // leaves it waitable.
    let r = unsafe {
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
    };
    // SAFETY: reading the pid field of the siginfo waitid filled in.
    r != 0 || unsafe { info.si_pid() } != 0
}

/// Sets each counted peer's iteration count so that one run takes about a
/// second: a probe run with a small count measures the sum of its rows'
/// costs per iteration.
pub(crate) fn calibrate_peers(peers: &mut [Peer]) {
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
pub(crate) fn with_count(cmd: &Command, count: usize) -> Command {
    let args: Vec<_> = cmd.get_args().collect();
    let mut c = copy_of(cmd, &args[..args.len().saturating_sub(1)]);
    c.arg(count.to_string());
    c
}

/// A new `Command` like `cmd` — program, `args`, environment and
/// directory — to add arguments to (`Command` is not `Clone`).
pub(crate) fn copy_of(cmd: &Command, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(args);
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
pub(crate) fn calibrate(ns_per_call: f64, budget: std::time::Duration) -> usize {
    let n = if ns_per_call > 0.0 && ns_per_call.is_finite() { budget.as_nanos() as f64 / ns_per_call } else { 1_000.0 };
    (n as usize).clamp(1_000, 1 << 30)
}
