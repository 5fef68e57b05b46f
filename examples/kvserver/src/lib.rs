//! An HTTP/1.1 keep-alive key-value server on [`ffiber::net`]: a green
//! thread per connection, requests parsed with `httparse`, values stored in
//! SQLite (WAL mode, on disk) through bindings ffiber-build generated from
//! `sqlite3.h` — a real program that calls C on every `/kv` request.
//!
//! Routes: `GET /hello`; `GET /kv/<key>` (200 with the value, or 404);
//! `PUT /kv/<key>` (204 once SQLite committed the value); `GET /stats`
//! (live connections and requests served).
//!
//! Bad input: a malformed request gets 400, a head over 16 KiB or a body
//! over 1 MiB gets 413, and the connection closes; a client that
//! disconnects mid-request just ends its green thread.
//!
//! Stopping ([`Stopper::stop`], wired to SIGINT/SIGTERM by the binary):
//! new connections are refused (the listener closes), connections waiting
//! for their next request are closed, requests being served finish and
//! get their response (with `Connection: close`), then the database closes
//! — so every acknowledged write is on disk.

pub mod db;

use ffiber::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// Bytes read at a time (the input buffer's size while requests are small).
const READ_CHUNK: usize = 4096;

/// A bound server, ready to [`serve`](Server::serve).
pub struct Server {
    listener: TcpListener,
    store: Arc<db::Store>,
    shared: Arc<Shared>,
}

/// State shared by the accept loop, the connections and the stopper.
struct Shared {
    addr: SocketAddr,
    stopping: AtomicBool,
    requests: AtomicU64,
    next_id: AtomicU64,
    /// Live connections (shared with their green thread, to close idle
    /// ones at stop) and whether each waits for a new request.
    conns: ffiber::sync::Mutex<HashMap<u64, Live>>,
    done: ffiber::sync::WaitGroup,
}

/// A live connection as the stopper sees it: the stream (shared with its
/// green thread) and whether it waits for a new request.
type Live = (Arc<TcpStream>, Arc<AtomicBool>);

/// Stops a running server from anywhere (another green thread, a signal
/// watcher); cloneable.
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

/// What [`Server::serve`] returns.
#[derive(Debug)]
pub struct Stats {
    pub requests: u64,
}

impl Server {
    /// Binds `addr` and opens (or creates) the database at `db`.
    pub fn bind(addr: &str, db: &Path) -> Result<Server, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        let store = db::Store::open(db)?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        Ok(Server {
            listener,
            store: Arc::new(store),
            shared: Arc::new(Shared {
                addr,
                stopping: AtomicBool::new(false),
                requests: AtomicU64::new(0),
                next_id: AtomicU64::new(0),
                conns: ffiber::sync::Mutex::new(HashMap::new()),
                done: ffiber::sync::WaitGroup::new(),
            }),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// Accepts and serves connections (a green thread each) until stopped;
    /// then waits for the connections to finish and closes the database.
    /// Call on a green thread.
    pub fn serve(self) -> Stats {
        let Server { listener, store, shared } = self;
        let mut backoff = Duration::ZERO;
        let mut said_fds = false;
        while !shared.stopping.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    // Out of fds: the connection stays queued in the kernel.
                    // Say so once and back off (5 ms, doubling to 1 s)
                    // instead of spinning on accept.
                    if !said_fds {
                        eprintln!(
                            "kvserver: accept: {e}; connections wait in the backlog until some close \
                             (raise the limit with ulimit -n). Said once."
                        );
                        said_fds = true;
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    ffiber::sleep(backoff);
                    continue;
                }
                Err(e) => {
                    eprintln!("kvserver: accept: {e}");
                    ffiber::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            backoff = Duration::ZERO;
            if shared.stopping.load(Ordering::SeqCst) {
                break; // the stopper's own wake-up connection, or a late one
            }
            let _ = stream.set_nodelay(true);
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let idle = Arc::new(AtomicBool::new(true));
            let stream = Arc::new(stream);
            shared.conns.lock().insert(id, (stream.clone(), idle.clone()));
            shared.done.add(1);
            let (store, sh) = (store.clone(), shared.clone());
            ffiber::go(move || {
                let _ = serve_conn(&stream, &store, &sh, &idle);
                sh.conns.lock().remove(&id);
                drop(stream);
                sh.done.done();
            });
        }
        drop(listener); // refuse new connections
        shared.done.wait();
        store.close();
        Stats { requests: shared.requests.load(Ordering::SeqCst) }
    }
}

impl Stopper {
    /// Starts a graceful stop (see the crate docs); returns at once.
    pub fn stop(&self) {
        let sh = &self.0;
        if sh.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect(sh.addr);
        // Close the connections that wait for a next request; the others
        // close after their response (they see `stopping`).
        for (s, idle) in sh.conns.lock().values() {
            if idle.load(Ordering::SeqCst) {
                let _ = s.shutdown(Shutdown::Read);
            }
        }
    }
}

/// A parsed request, owning what the handler needs.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Outcome of looking at the buffered bytes.
enum Parsed {
    /// A whole request, and the bytes it used.
    Request(Request, usize),
    /// Need more bytes.
    Partial,
    /// Reply with this status and close.
    Reject(u16, &'static str),
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Parsed::Reject(413, "request head too large"),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(431, "too many headers"),
        Err(_) => return Parsed::Reject(400, "malformed request"),
    };
    if head > MAX_HEAD {
        return Parsed::Reject(413, "request head too large");
    }
    let mut len = 0usize;
    let mut close = req.version == Some(0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok()) {
                Some(n) => len = n,
                None => return Parsed::Reject(400, "bad content-length"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Reject(400, "chunked bodies are not supported; send content-length");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            close = v.contains("close") || (req.version == Some(0) && !v.contains("keep-alive"));
        }
    }
    if len > MAX_BODY {
        return Parsed::Reject(413, "request body too large");
    }
    if buf.len() < head + len {
        return Parsed::Partial;
    }
    let r = Request {
        method: req.method.unwrap_or("").to_owned(),
        path: req.path.unwrap_or("").to_owned(),
        body: buf[head..head + len].to_vec(),
        close,
    };
    Parsed::Request(r, head + len)
}

fn respond(out: &mut Vec<u8>, status: u16, body: &[u8], close: bool) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let conn = if close { "close" } else { "keep-alive" };
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

fn handle(req: &Request, store: &db::Store, sh: &Shared, out: &mut Vec<u8>, close: bool) {
    let key = req.path.strip_prefix("/kv/");
    match (req.method.as_str(), req.path.as_str(), key) {
        ("GET", "/hello", _) => respond(out, 200, b"Hello, World!", close),
        ("GET", "/stats", _) => {
            let body =
                format!("connections {}\nrequests {}\n", sh.conns.lock().len(), sh.requests.load(Ordering::Relaxed));
            respond(out, 200, body.as_bytes(), close)
        }
        (_, _, Some(k)) if k.is_empty() || k.len() > 256 || k.contains('/') => {
            respond(out, 400, b"keys are 1 to 256 bytes, without '/'", close)
        }
        ("GET", _, Some(k)) => match store.with(|c| c.get(k)) {
            Ok(Some(v)) => respond(out, 200, &v, close),
            Ok(None) => respond(out, 404, b"no such key", close),
            Err(e) => respond(out, 500, e.as_bytes(), close),
        },
        ("PUT", _, Some(k)) => match store.with(|c| c.put(k, &req.body)) {
            Ok(()) => respond(out, 204, b"", close),
            Err(e) => respond(out, 500, e.as_bytes(), close),
        },
        (_, _, Some(_)) => respond(out, 405, b"GET or PUT", close),
        _ => respond(out, 404, b"no such route", close),
    }
}

/// Serves one connection until the client closes it, asks to, errs, or
/// the server stops.
fn serve_conn(s: &TcpStream, store: &db::Store, sh: &Shared, idle: &AtomicBool) -> io::Result<()> {
    // Memory per connection matters (thousands sit idle): no big stack
    // buffer, the input buffer grows only for big requests, and the output
    // buffer is given back while the connection waits.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::new();
    loop {
        // Answer every whole request buffered (pipelining), then write.
        let mut close = false;
        loop {
            match parse(&buf) {
                Parsed::Partial => break,
                Parsed::Reject(status, why) => {
                    respond(&mut out, status, why.as_bytes(), true);
                    close = true;
                    break;
                }
                Parsed::Request(req, used) => {
                    idle.store(false, Ordering::SeqCst);
                    close = req.close || sh.stopping.load(Ordering::SeqCst);
                    handle(&req, store, sh, &mut out, close);
                    sh.requests.fetch_add(1, Ordering::Relaxed);
                    buf.drain(..used);
                    if close {
                        break;
                    }
                }
            }
        }
        if !out.is_empty() {
            (&mut &*s).write_all(&out)?;
            out.clear();
        }
        if close {
            let _ = s.shutdown(Shutdown::Write);
            return Ok(());
        }
        // Waiting for more: a new request if nothing is buffered.
        if buf.is_empty() {
            idle.store(true, Ordering::SeqCst);
            if sh.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            out = Vec::new();
            if buf.capacity() > 4 * READ_CHUNK {
                buf = Vec::with_capacity(READ_CHUNK);
            }
        }
        buf.reserve(READ_CHUNK);
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = (&mut &*s).read(&mut buf[start..]);
        buf.truncate(start + *n.as_ref().unwrap_or(&0));
        match n? {
            0 => return Ok(()), // the client went away (mid-request or not)
            _ => continue,
        }
    }
}
