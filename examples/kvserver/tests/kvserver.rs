//! The kvserver binary driven over loopback with real sockets: routes,
//! keep-alive and pipelining, bad input, clients that vanish, running out
//! of fds, and a graceful stop followed by a restart that finds every
//! acknowledged write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ffiber-kv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(db: &Path, fd_limit: Option<u64>) -> Server {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvserver"));
    c.args(["--addr", "127.0.0.1:0", "--procs", "2", "--db"]).arg(db);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(n) = fd_limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches only the
        // child's own limits, between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let r = libc::rlimit { rlim_cur: n, rlim_max: n };
                libc::setrlimit(libc::RLIMIT_NOFILE, &r);
                Ok(())
            });
        }
    }
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("kvserver listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Server { child, addr }
}

impl Server {
    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> (i32, String) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let st = self.child.wait().unwrap();
        (st.code().unwrap_or(-1), err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response: status, body, whether it said `Connection: close`.
fn read_response(r: &mut BufReader<&TcpStream>) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut status = String::new();
    if r.read_line(&mut status)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let code: u16 = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap();
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.trim() == "close";
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((code, body, close))
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let s = TcpStream::connect(addr).unwrap();
    (&s).write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    let (c, b, _) = read_response(&mut BufReader::new(&s)).unwrap();
    (c, b)
}

fn live_connections(addr: SocketAddr) -> usize {
    let (_, b) = get(addr, "/stats");
    let s = String::from_utf8(b).unwrap();
    s.lines().find_map(|l| l.strip_prefix("connections ")).unwrap().parse().unwrap()
}

#[test]
fn routes_keep_alive_and_pipelining() {
    let dir = tmpdir("routes");
    let srv = start(&dir.join("kv.db"), None);
    let s = TcpStream::connect(srv.addr).unwrap();
    // Four requests in one write (pipelined), on one keep-alive connection.
    (&s).write_all(
        b"PUT /kv/alpha HTTP/1.1\r\nContent-Length: 5\r\n\r\nfirst\
          GET /kv/alpha HTTP/1.1\r\n\r\n\
          GET /kv/missing HTTP/1.1\r\n\r\n\
          GET /hello HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(&s);
    assert_eq!(read_response(&mut r).unwrap().0, 204);
    assert_eq!(read_response(&mut r).unwrap().1, b"first");
    assert_eq!(read_response(&mut r).unwrap().0, 404);
    assert_eq!(read_response(&mut r).unwrap(), (200, b"Hello, World!".to_vec(), false));
    // Overwrite, binary value, then read back on the same connection.
    let v: Vec<u8> = (0..=255).collect();
    (&s).write_all(format!("PUT /kv/alpha HTTP/1.1\r\nContent-Length: {}\r\n\r\n", v.len()).as_bytes()).unwrap();
    (&s).write_all(&v).unwrap();
    assert_eq!(read_response(&mut r).unwrap().0, 204);
    (&s).write_all(b"GET /kv/alpha HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).unwrap(), (200, v, true));
    assert!(read_response(&mut r).is_err(), "closed after Connection: close");
    assert_eq!(get(srv.addr, "/nope").0, 404);
    assert_eq!(get(srv.addr, "/kv/").0, 400);
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_requests_get_400_or_413_and_the_connection_closes() {
    let dir = tmpdir("bad");
    let srv = start(&dir.join("kv.db"), None);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\x01 / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), 400),
        (b"PUT /kv/a HTTP/1.1\r\nContent-Length: nope\r\n\r\n".to_vec(), 400),
        (b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        (format!("PUT /kv/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 2 << 20).into_bytes(), 413),
        (format!("GET /hello HTTP/1.1\r\nX-Big: {}\r\n\r\n", "y".repeat(20_000)).into_bytes(), 413),
    ];
    for (req, want) in cases {
        let s = TcpStream::connect(srv.addr).unwrap();
        (&s).write_all(&req).unwrap();
        let mut r = BufReader::new(&s);
        let (code, _, close) = read_response(&mut r).unwrap();
        assert_eq!(code, want, "{:?}", String::from_utf8_lossy(&req[..req.len().min(60)]));
        assert!(close);
        assert!(read_response(&mut r).is_err(), "the connection closes after {want}");
    }
    assert_eq!(get(srv.addr, "/hello").0, 200, "the server still serves");
    srv.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clients_that_disconnect_mid_request_free_their_green_threads() {
    let dir = tmpdir("vanish");
    let srv = start(&dir.join("kv.db"), None);
    for i in 0..50 {
        let s = TcpStream::connect(srv.addr).unwrap();
        let partial: &[u8] = match i % 3 {
            0 => b"PUT /kv/x HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
            1 => b"GET /hel",
            _ => b"",
        };
        (&s).write_all(partial).unwrap();
        drop(s);
    }
    let t = Instant::now();
    // Only the /stats connection itself is left, once the others noticed.
    while live_connections(srv.addr) != 1 {
        assert!(t.elapsed() < Duration::from_secs(20), "connections of vanished clients are still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(srv.addr, "/kv/x").0, 404, "a half-sent PUT stored nothing");
    srv.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_graceful_stop_keeps_every_acknowledged_write() {
    let dir = tmpdir("stop");
    let db = dir.join("kv.db");
    let srv = start(&db, None);
    let addr = srv.addr;
    // 16 clients PUT as fast as they can; each remembers what was acked.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(s) = TcpStream::connect(addr) else { return acked };
                let mut r = BufReader::new(&s);
                for i in 0.. {
                    let (k, v) = (format!("w{w}-{i}"), format!("value {w} {i}"));
                    let req = format!("PUT /kv/{k} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{v}", v.len());
                    if (&s).write_all(req.as_bytes()).is_err() {
                        break;
                    }
                    match read_response(&mut r) {
                        Ok((204, _, close)) => {
                            acked.push((k, v));
                            if close {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (code, err) = srv.stop();
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("stopping"), "stderr: {err}");
    let acked: Vec<(String, String)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(acked.len() > 16, "only {} writes acknowledged", acked.len());
    assert!(TcpStream::connect(addr).is_err(), "new connections are refused once stopped");
    // Restart on the same database: every acknowledged write is there.
    let srv = start(&db, None);
    let s = TcpStream::connect(srv.addr).unwrap();
    let mut r = BufReader::new(&s);
    for (k, v) in &acked {
        (&s).write_all(format!("GET /kv/{k} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        let (code, body, _) = read_response(&mut r).unwrap();
        assert_eq!((code, String::from_utf8(body).unwrap()), (200, v.clone()), "key {k}");
    }
    srv.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CPU time (user + system, in clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_fds_is_reported_once_and_accept_backs_off() {
    let dir = tmpdir("emfile");
    let srv = start(&dir.join("kv.db"), Some(48));
    // More connections than fds: the extra ones wait in the backlog.
    let clients: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(srv.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(srv.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(srv.child.id()) - before;
    // A loop retrying accept at once would burn the whole second (100
    // ticks); backing off costs next to nothing.
    assert!(spent < 30, "the server spent {spent} ticks in 1 s at EMFILE: it spins");
    drop(clients);
    // Once fds free up, the server serves again.
    let t = Instant::now();
    loop {
        let ok = TcpStream::connect(srv.addr).ok().and_then(|s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            (&s).write_all(b"GET /hello HTTP/1.1\r\n\r\n").ok()?;
            read_response(&mut BufReader::new(&s)).ok()
        });
        if ok.is_some_and(|(c, _, _)| c == 200) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "the server did not recover from EMFILE");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, err) = srv.stop();
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(err.matches("Too many open files").count(), 1, "reported once: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
