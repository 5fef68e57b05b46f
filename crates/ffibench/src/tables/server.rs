//! The `server` table (issue 11): a real HTTP server on each runtime,
//! loaded by `wrk` over loopback — 64 keep-alive connections, requests/s
//! and latency percentiles — and the memory each idle keep-alive
//! connection costs.
//!
//! Peers: ffiber's `examples/kvserver` (run in a child of this binary,
//! `--internal server-ffiber`); go-lib 0.6, may_minihttp and tokio + hyper
//! (children too: `server-golib`, `server-may`, `server-tokio`); and Go's
//! `net/http` with the same routes (`bench/peers/go/server`), whose `/kv`
//! goes through
//! `github.com/mattn/go-sqlite3` built with `-tags libsqlite3`: both sides
//! use the system SQLite, so `/kv` compares the call layers (cgo against
//! ffiber's) in a real program. The Go module comes from the module cache
//! (`bench/peers/setup.sh` downloads it); nothing is fetched at run time.

use super::scenario_rows;
use crate::peers::{Peer, go_build};
use crate::{Options, report};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Connections wrk keeps open.
const CONNS: usize = 64;
/// Idle keep-alive connections for the memory row.
const IDLE_CONNS: usize = 10_000;

/// Child mode: serve kvserver's routes on ffiber until killed.
pub fn serve_ffiber(db: &str) {
    let rt = ffiber::Runtime::builder().build().expect("runtime");
    let db = PathBuf::from(db);
    rt.block_on(move || {
        let server = match ffiber_kvserver::Server::bind("127.0.0.1:0", &db) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        println!("listening on {}", server.local_addr());
        let _ = std::io::stdout().flush();
        server.serve();
    });
}

/// The `/hello` answer of the peers that have no HTTP stack of their own
/// (go-lib): keep-alive, pipelining, parsed with httparse.
const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!";

/// Serves `/hello` on one connection until the client closes it.
fn hello_conn(mut s: impl Read + Write) {
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Request::new(&mut h);
            match r.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    out.extend_from_slice(HELLO);
                    buf.drain(..n);
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Child mode: `/hello` on go-lib 0.6 (its netpoller and `TcpStream`).
pub fn serve_golib() {
    go_lib::__main_entry(|| {
        let l = go_lib::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        // go-lib's listener has no local_addr: ask the fd.
        // SAFETY: borrows go-lib's open listener fd without taking it
        // (ManuallyDrop: never closed here).
        let std_l = std::mem::ManuallyDrop::new(unsafe {
            <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(l.as_raw_fd())
        });
        println!("listening on {}", std_l.local_addr().expect("addr"));
        let _ = std::io::stdout().flush();
        loop {
            match l.accept() {
                Ok(s) => {
                    go_lib::go!(move || hello_conn(s));
                }
                Err(_) => go_lib::sleep(Duration::from_millis(1)),
            }
        }
    });
}

/// Child mode: `/hello` on may_minihttp (may's HTTP server).
pub fn serve_may() {
    use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};
    #[derive(Clone)]
    struct Hello;
    impl HttpService for Hello {
        fn call(&mut self, _req: Request, rsp: &mut Response) -> std::io::Result<()> {
            rsp.body("Hello, World!");
            Ok(())
        }
    }
    struct Factory;
    impl HttpServiceFactory for Factory {
        type Service = Hello;
        fn new_service(&self, _: usize) -> Hello {
            Hello
        }
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    may::config().set_workers(workers);
    // may_minihttp binds the address it is given: find a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let addr = format!("127.0.0.1:{port}");
    let server = Factory.start(&addr).expect("may_minihttp start");
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let _ = server.join();
}

/// Child mode: tokio + hyper; `/kv` runs SQLite (kvserver's store, the
/// same generated bindings, here plain C calls) through `spawn_blocking`.
pub fn serve_tokio(db: &str) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response, StatusCode};
    use std::sync::Arc;
    let store = match ffiber_kvserver::db::Store::open(Path::new(db)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening on {}", l.local_addr().expect("addr"));
        let _ = std::io::stdout().flush();
        loop {
            let Ok((s, _)) = l.accept().await else { continue };
            let _ = s.set_nodelay(true);
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let reply = |code: StatusCode, body: Vec<u8>| {
                            let mut r = Response::new(Full::new(Bytes::from(body)));
                            *r.status_mut() = code;
                            Ok::<_, std::convert::Infallible>(r)
                        };
                        let path = req.uri().path().to_string();
                        let key = path.strip_prefix("/kv/").map(str::to_string);
                        match (req.method().clone(), path.as_str(), key) {
                            (Method::GET, "/hello", _) => reply(StatusCode::OK, b"Hello, World!".to_vec()),
                            (Method::GET, _, Some(k)) => {
                                match tokio::task::spawn_blocking(move || store.with(|c| c.get(&k))).await {
                                    Ok(Ok(Some(v))) => reply(StatusCode::OK, v),
                                    Ok(Ok(None)) => reply(StatusCode::NOT_FOUND, b"no such key".to_vec()),
                                    _ => reply(StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
                                }
                            }
                            (Method::PUT, _, Some(k)) => {
                                let body = match req.into_body().collect().await {
                                    Ok(b) => b.to_bytes().to_vec(),
                                    Err(_) => return reply(StatusCode::BAD_REQUEST, Vec::new()),
                                };
                                match tokio::task::spawn_blocking(move || store.with(|c| c.put(&k, &body))).await {
                                    Ok(Ok(())) => reply(StatusCode::NO_CONTENT, Vec::new()),
                                    _ => reply(StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
                                }
                            }
                            _ => reply(StatusCode::NOT_FOUND, Vec::new()),
                        }
                    }
                });
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
}

/// A running server peer; killed when dropped.
struct Running {
    child: Child,
    addr: SocketAddr,
    /// Registered for an interrupt while the child is not yet reaped.
    tracked: Option<crate::scratch::Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        self.tracked = None;
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with `db` as its last argument and waits for its
/// "listening on ADDR" line.
fn start(cmd: &Command, db: &Path, db_flag: &str) -> Result<Running, String> {
    let mut c = crate::peers::copy_of(cmd, &cmd.get_args().collect::<Vec<_>>());
    c.arg(format!("{db_flag}{}", db.display()));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let tracked = crate::scratch::Child::new(child.id());
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let Some(addr) = line.split("listening on ").nth(1).and_then(|a| a.trim().parse().ok()) else {
        let mut err = String::new();
        let _ = child.kill();
        drop(tracked);
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        return Err(format!("did not start: {}", err.trim()));
    };
    Ok(Running { child, addr, tracked: Some(tracked) })
}

/// One request on a new connection; the response's status.
fn request(addr: SocketAddr, req: &str) -> Result<u16, String> {
    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    (&s).write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(|e| e.to_string())?;
    line.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad response {line:?}"))
}

/// Parses a wrk latency like `1.56ms`, `850.00us`, `1.20s` into µs.
fn wrk_us(v: &str) -> Option<f64> {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * mul)
}

/// Requests/s, p50 and p99 latency (µs) from wrk's `--latency` output;
/// an error if any response was not 2xx or any socket failed.
fn parse_wrk(out: &str) -> Result<(f64, f64, f64), String> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = wrk_us(v),
            ["99%", v] => p99 = wrk_us(v),
            ["Non-2xx", ..] => return Err(format!("wrk: {}", l.trim())),
            _ => {}
        }
    }
    match (rps, p50, p99) {
        (Some(r), Some(a), Some(b)) => Ok((r, a, b)),
        _ => Err(format!("could not read wrk's output: {}", out.lines().last().unwrap_or(""))),
    }
}

fn wrk(addr: SocketAddr, route: &str, secs: u64) -> Result<(f64, f64, f64), String> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNS}"), &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://{addr}{route}"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Raises this process's fd limit to its hard limit (children inherit it).
fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    r.rlim_cur
}

/// KiB of server RSS per idle keep-alive connection: `n` connections each
/// make one request (so each has its green thread or goroutine waiting
/// for the next) and stay open.
fn idle_kib(s: &Running, n: usize) -> Result<f64, String> {
    let pid = s.child.id();
    request(s.addr, "GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid).ok_or("no RSS")?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(s.addr).map_err(|e| format!("connection {}: {e}", conns.len()))?;
        (&c).write_all(b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n").map_err(|e| e.to_string())?;
        conns.push(c);
    }
    let mut buf = [0u8; 256];
    for c in &conns {
        c.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        let got = (&*c).read(&mut buf).map_err(|e| format!("no response: {e}"))?;
        if got == 0 {
            return Err("a connection closed".into());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(pid).ok_or("no RSS")?;
    drop(conns);
    Ok((after - before) / n as f64)
}

/// How a server peer is started: its command (without the database
/// argument), the flag that precedes the database path, and what it
/// serves.
struct ServerPeer {
    peer: Peer,
    db_flag: &'static str,
    /// Serves `/kv` (else `/hello` only).
    kv: bool,
    /// Measured for memory per idle connection (ffiber and Go).
    idle: bool,
}

/// A peer run in a child of this binary: `--internal <mode>`.
fn me(mode: &str, name: &str, kv: bool) -> ServerPeer {
    let mut c = Command::new(std::env::current_exe().expect("own executable"));
    c.args(["--internal", mode]);
    ServerPeer { peer: Peer { name: name.into(), cmd: Ok(c), counted: false }, db_flag: "", kv, idle: false }
}

fn peers() -> Vec<ServerPeer> {
    let mut ffiber = me("server-ffiber", "ffiber", true);
    ffiber.idle = true;
    // The module cache only: GOPROXY=off (setup.sh fills the cache).
    let env = [
        ("CGO_ENABLED", "1".to_string()),
        ("GOPROXY", "off".to_string()),
        ("GOFLAGS", "-mod=mod -tags=libsqlite3".to_string()),
    ];
    let mut go = go_build("server", "go-server", &env, "-addr=127.0.0.1:0".into());
    if let Err(e) = &mut go.cmd
        && e.contains("go-sqlite3")
    {
        *e = "github.com/mattn/go-sqlite3 is not in the Go module cache — run bench/peers/setup.sh".into();
    }
    go.name = format!("{} net/http + mattn/go-sqlite3", go.name);
    vec![
        ffiber,
        ServerPeer { peer: go, db_flag: "-db=", kv: true, idle: true },
        me("server-golib", "go-lib 0.6", false),
        me("server-may", "may_minihttp", false),
        me("server-tokio", "tokio + hyper", true),
    ]
}

/// Builds the table.
pub fn table(opts: &Options) -> report::Table {
    let secs = if opts.quick { 2 } else { 10 };
    let runs = opts.runs.min(3);
    let mut sp = peers();
    let wrk_ok = Command::new("wrk").arg("--version").output().is_ok();
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); sp.len()];
    let mut errors: Vec<Option<String>> = sp.iter().map(|p| p.peer.cmd.as_ref().err().cloned()).collect();
    if !wrk_ok {
        for e in errors.iter_mut() {
            e.get_or_insert_with(|| "wrk not installed — apt-get install wrk".into());
        }
    }
    let scratch = crate::scratch::ScratchDir::new("ffibench-server");
    if let Err(e) = &scratch {
        for err in errors.iter_mut() {
            err.get_or_insert_with(|| format!("could not create a scratch directory: {e}"));
        }
    }
    let dir = scratch.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
    let limit = raise_fd_limit();
    let idle_conns = if opts.quick { 1000 } else { IDLE_CONNS };
    for run in 0..runs {
        for (i, p) in sp.iter_mut().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            eprint!("\rffibench: server table, run {}/{runs}: {}        ", run + 1, p.peer.name);
            let cmd = p.peer.cmd.as_ref().expect("checked");
            let db = dir.join(format!("{i}-{run}.db"));
            let idle = if p.idle && run == 0 && limit > idle_conns as u64 + 100 { idle_conns } else { 0 };
            let r = run_peer(cmd, &db, p.db_flag, secs, p.kv, idle);
            match r {
                Ok(m) => {
                    for (k, v) in m {
                        samples[i].entry(k).or_default().push(v);
                    }
                }
                Err(e) => errors[i] = Some(e),
            }
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(PathBuf::from(format!("{}{ext}", db.display())));
            }
        }
    }
    drop(scratch);
    eprint!("\r{:70}\r", "");
    let mut t = report::Table {
        title: format!(
            "A real HTTP server: wrk, {CONNS} keep-alive connections on loopback, {secs} s per run (median of {runs} runs)"
        ),
        ..Default::default()
    };
    let peers_only: Vec<Peer> = sp.into_iter().map(|p| p.peer).collect();
    scenario_rows(
        &mut t,
        "server",
        &peers_only,
        &mut samples,
        &errors,
        &[
            ("hello_rps", "GET /hello, requests/s"),
            ("hello_p50_us", "GET /hello, p50 µs"),
            ("hello_p99_us", "GET /hello, p99 µs"),
            ("kv_rps", "GET /kv/<key> (SQLite), requests/s"),
            ("kv_p50_us", "GET /kv/<key>, p50 µs"),
            ("kv_p99_us", "GET /kv/<key>, p99 µs"),
            ("idle_kib", "RSS per idle keep-alive connection, KiB"),
        ],
        |k, m| if k == "idle_kib" { format!("{m:.1}") } else { format!("{m:.0}") },
    );
    t.notes.push(format!(
        "wrk runs on the same 2 cores as the server, for every peer alike. /kv reads one key from an on-disk SQLite \
         database in WAL mode (the system library on both sides): ffiber through bindings ffiber-build generated \
         from sqlite3.h (default mode), Go through mattn/go-sqlite3 (cgo, database/sql). ffiber's server is \
         examples/kvserver; Go's is bench/peers/go/server with the same routes. go-lib 0.6 (its netpoller and \
         TcpStream, a loop with httparse) and may_minihttp (may's HTTP server) serve /hello only; tokio + hyper \
         serve /kv with the same store as kvserver (generated bindings, plain C calls) through spawn_blocking. \
         Idle memory: {idle_conns} \
         connections that each made one request and stay open, server RSS growth / {idle_conns} (first run)."
    ));
    t
}

/// Starts one server, loads it on both routes, and measures the memory of
/// `idle` idle connections (none if 0).
fn run_peer(
    cmd: &Command,
    db: &Path,
    db_flag: &str,
    secs: u64,
    kv: bool,
    idle: usize,
) -> Result<BTreeMap<String, f64>, String> {
    let s = start(cmd, db, db_flag)?;
    if kv {
        let st = request(s.addr, "PUT /kv/k1 HTTP/1.1\r\nHost: bench\r\nContent-Length: 11\r\n\r\nhello value")?;
        if st != 204 && st != 200 {
            return Err(format!("PUT /kv/k1 answered {st}"));
        }
    }
    let mut m = BTreeMap::new();
    let routes: &[(&str, &str)] = if kv { &[("/hello", "hello"), ("/kv/k1", "kv")] } else { &[("/hello", "hello")] };
    for &(route, key) in routes {
        let (rps, p50, p99) = wrk(s.addr, route, secs)?;
        m.insert(format!("{key}_rps"), rps);
        m.insert(format!("{key}_p50_us"), p50);
        m.insert(format!("{key}_p99_us"), p99);
    }
    if idle > 0 {
        m.insert("idle_kib".into(), idle_kib(&s, idle)?);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let out = "Running 2s test @ http://127.0.0.1:1/hello\n  2 threads and 64 connections\n  Latency Distribution\n     50%    1.56ms\n     75%    2.00ms\n     99%  850.00us\nRequests/sec:  30477.12\nTransfer/sec:      2.15MB\n";
        assert_eq!(parse_wrk(out).unwrap(), (30477.12, 1560.0, 850.0));
        assert!(parse_wrk("  Non-2xx or 3xx responses: 5\nRequests/sec: 1\n").is_err());
        assert!(parse_wrk("garbage").is_err());
        assert_eq!(wrk_us("1.20s"), Some(1.2e6));
    }
}
