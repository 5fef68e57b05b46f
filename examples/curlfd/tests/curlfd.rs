//! 300 transfers through libcurl in flight at once from green threads on
//! 2 Ps, against a server on ffiber::net that answers each after 30 ms:
//! every response arrives whole, and far fewer OS threads than transfers
//! exist (a thread per wait would need 300). Some threads do get made:
//! curl's connect (`curl_easy_perform`, with its threaded resolver) is a
//! blocking C call, and while 300 of them run the monitor hands Ps to new
//! OS threads, as Go does for cgo calls; the waits on curl's sockets add
//! none.

use ffiber::net::TcpListener;
use std::io::{Read, Write};
use std::time::Duration;

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn curl_transfers_park_green_threads_not_os_threads() {
    let rt = ffiber::Runtime::builder().max_procs(2).build().unwrap();
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        ffiber::go(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
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
                    ffiber::sleep(Duration::from_millis(30)); // the clients wait on curl's sockets meanwhile
                    let body = format!("you asked for {path}");
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hs: Vec<_> = (0..300)
            .map(|i| {
                let (addr, peak) = (addr.clone(), peak.clone());
                ffiber::go(move || {
                    let r = ffiber_example_curlfd::http_get(&addr, &format!("/item/{i}")).unwrap();
                    peak.fetch_max(os_threads(), std::sync::atomic::Ordering::Relaxed);
                    r
                })
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let r = h.join().unwrap();
            assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
            assert!(r.ends_with(&format!("you asked for /item/{i}")), "{r}");
        }
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        assert!(peak < 150, "{peak} OS threads for 300 transfers in flight");
    });
}

#[test]
fn a_refused_connection_is_curls_error_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = ffiber::run(move || ffiber_example_curlfd::http_get(&format!("127.0.0.1:{port}"), "/").unwrap_err());
    assert!(e.contains("connecting to http://127.0.0.1:") && e.contains("curl error"), "{e}");
}
