//! 300 transfers through libcurl in flight at once from green threads on
//! 2 Ps, against a server on ffiber::net that holds every response until
//! all 300 requests have arrived: every response arrives whole, and at the
//! moment all 300 clients wait on curl's sockets far fewer OS threads than
//! transfers exist (a thread per wait would need 300).
//!
//! The connects are a different matter, and the test keeps them out of the
//! count: curl's connect (`curl_easy_perform`) is a blocking C call in the
//! default mode, and while many run the monitor hands Ps to new OS threads,
//! as Go does for cgo calls — how many depends on how slow the host is
//! (CI once saw 167 with 300 connects at once). So at most 16 connect at a
//! time; the waits on curl's sockets, all 300 at once, add no threads.

use ffiber::net::TcpListener;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

const TRANSFERS: usize = 300;
const CONNECTS_AT_ONCE: usize = 16;

#[test]
fn curl_transfers_park_green_threads_not_os_threads() {
    let rt = ffiber::Runtime::builder().max_procs(2).build().unwrap();
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        // Requests the server holds, and the OS threads counted when the
        // last of them arrived (every client then waits on its socket).
        let (arrived, at_full) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (arrived2, at_full2) = (arrived.clone(), at_full.clone());
        ffiber::go(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let (arrived, at_full) = (arrived2.clone(), at_full2.clone());
                ffiber::go(move || {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let path = String::from_utf8_lossy(&req).split(' ').nth(1).unwrap_or("").to_string();
                    if arrived.fetch_add(1, Ordering::SeqCst) + 1 == TRANSFERS {
                        at_full.store(os_threads(), Ordering::SeqCst);
                    }
                    // Hold the answer until every client waits (a deadline
                    // turns a lost request into a failed assertion, not a hang).
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while arrived.load(Ordering::SeqCst) < TRANSFERS && Instant::now() < deadline {
                        ffiber::sleep(Duration::from_millis(5));
                    }
                    let body = format!("you asked for {path}");
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        let (token_tx, token_rx) = ffiber::chan::bounded(CONNECTS_AT_ONCE);
        for _ in 0..CONNECTS_AT_ONCE {
            token_tx.send(()).unwrap();
        }
        let hs: Vec<_> = (0..TRANSFERS)
            .map(|i| {
                let (addr, token_tx, token_rx) = (addr.clone(), token_tx.clone(), token_rx.clone());
                ffiber::go(move || -> Result<String, String> {
                    token_rx.recv().unwrap();
                    let conn = ffiber_example_curlfd::Connection::open(&format!("http://{addr}"));
                    token_tx.send(()).unwrap();
                    conn?.get(&addr, &format!("/item/{i}"))
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let r = h.join().unwrap().unwrap();
            assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
            assert!(r.ends_with(&format!("you asked for /item/{i}")), "{r}");
        }
        assert_eq!(arrived.load(Ordering::SeqCst), TRANSFERS);
        let at_full = at_full.load(Ordering::SeqCst);
        assert!(
            at_full < 100,
            "{at_full} OS threads while {TRANSFERS} transfers waited on curl's sockets ({CONNECTS_AT_ONCE} connects at a time)"
        );
    });
}

#[test]
fn a_refused_connection_is_curls_error_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = ffiber::run(move || ffiber_example_curlfd::http_get(&format!("127.0.0.1:{port}"), "/").unwrap_err());
    assert!(e.contains("connecting to http://127.0.0.1:") && e.contains("curl error"), "{e}");
}
