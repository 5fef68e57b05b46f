//! Network I/O through the poller (issue 11): real sockets on loopback.
//!
//! The 10,000-connection echo test runs its server in a child process
//! (this binary again, with one test selected): each side then needs
//! 10,000 fds, within the usual limit of 20,000.

use ffiber::Runtime;
use ffiber::net::{Shutdown, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CHILD: &str = "FFIBER_NET_CHILD";

fn rt(procs: usize) -> Runtime {
    Runtime::builder().max_procs(procs).build().unwrap()
}

/// Raises the soft fd limit to the hard one.
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

/// An echo server on ffiber with `procs` Ps: prints its port, echoes until
/// stdin closes. Runs only as the child of `ten_thousand_connections_*`
/// (`FFIBER_NET_DUMP=1` prints its scheduler's state every 10 s, for
/// diagnosing a stall).
#[test]
fn echo_server_child() {
    let Ok(procs) = std::env::var(CHILD) else { return };
    raise_fd_limit();
    let procs: usize = procs.parse().unwrap();
    let rt = Runtime::builder().max_procs(procs).build().unwrap();
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        println!("\nPORT {}", l.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        if std::env::var_os("FFIBER_NET_DUMP").is_some() {
            std::thread::spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(10));
                    eprintln!("server scheduler: {}", ffiber::debug_dump());
                }
            });
        }
        // The parent closes our stdin when it is done: stop then.
        ffiber::go(|| {
            let mut s = String::new();
            let _ = ffiber::io::blocking(|| std::io::stdin().read_line(&mut s));
            std::process::exit(0);
        });
        loop {
            let (mut s, _) = match l.accept() {
                Ok(x) => x,
                Err(e) => panic!("accept: {e}"),
            };
            ffiber::go(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// 10,000 connections, 100 echo round trips each (a counter and a
/// varying payload), under 1 and 2 Ps and the default on both sides:
/// every byte comes back, in order, once.
fn ten_thousand(procs: usize) {
    let limit = raise_fd_limit();
    let default = if cfg!(debug_assertions) { 1_000 } else { 10_000 };
    let want = std::env::var("FFIBER_NET_CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let conns: usize = want.min((limit as usize).saturating_sub(200));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "echo_server_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, procs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the echo server child died");
        if let Some(p) = line.trim().strip_prefix("PORT ") {
            break p.parse().unwrap();
        }
    };
    let sent = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    rt(procs).block_on({
        let (sent, got, done) = (sent.clone(), got.clone(), done.clone());
        move || {
            // At most 1,000 connects in flight: a burst beyond the server's
            // backlog makes the kernel drop handshakes, and their
            // retransmissions take seconds (that tests TCP, not us).
            let (tok_tx, tok_rx) = ffiber::chan::bounded::<()>(1000);
            for _ in 0..1000 {
                tok_tx.send(()).unwrap();
            }
            let hs: Vec<_> = (0..conns)
                .map(|c| {
                    let (sent, got, done) = (sent.clone(), got.clone(), done.clone());
                    let (tok_tx, tok_rx) = (tok_tx.clone(), tok_rx.clone());
                    ffiber::go(move || {
                        tok_rx.recv().unwrap();
                        let mut s = loop {
                            match TcpStream::connect(("127.0.0.1", port)) {
                                Ok(s) => break s,
                                // The backlog overflowed: SYNs are retried.
                                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                                    ffiber::sleep(Duration::from_millis(5))
                                }
                                Err(e) => panic!("connect {c}: {e}"),
                            }
                        };
                        tok_tx.send(()).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(
                            if std::env::var_os("FFIBER_NET_DUMP").is_some() { 25 } else { 60 },
                        )))
                        .unwrap();
                        for round in 0..100u64 {
                            let len = 1 + ((c as u64 * 31 + round * 7) % 200) as usize;
                            let msg: Vec<u8> = (0..len).map(|i| (c as u64 ^ round ^ i as u64) as u8).collect();
                            s.write_all(&msg).unwrap();
                            let mut back = vec![0u8; len];
                            s.read_exact(&mut back).unwrap_or_else(|e| {
                                panic!("conn {c} round {round}: {e}; client scheduler: {}", ffiber::debug_dump())
                            });
                            assert_eq!(back, msg, "conn {c} round {round}: wrong bytes");
                            let sum: u64 = msg.iter().map(|&b| b as u64).sum();
                            sent.fetch_add(sum, Ordering::Relaxed);
                            got.fetch_add(back.iter().map(|&b| b as u64).sum(), Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
    });
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(done.load(Ordering::SeqCst), conns);
    assert_eq!(sent.load(Ordering::SeqCst), got.load(Ordering::SeqCst));
}

/// One test for the three configurations, run one after the other: each
/// holds 10,000 client fds (the limit is usually 20,000). Debug builds,
/// which `scripts/test.sh` also runs, use 1,000 connections.
#[test]
fn ten_thousand_connections_under_1_2_and_default_ps() {
    for procs in [1, 2, std::thread::available_parallelism().map_or(2, |n| n.get())] {
        ten_thousand(procs);
    }
}

#[test]
fn read_timeout_wakes_with_would_block() {
    rt(2).block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        assert!(c.set_read_timeout(Some(Duration::ZERO)).is_err(), "a zero timeout is refused as std does");
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let t = Instant::now();
        let e = (&c).read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        // Duration::MAX means no deadline: a peer's write still arrives.
        c.set_read_timeout(Some(Duration::MAX)).unwrap();
        let w = ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(20));
            (&_s).write_all(b"x").unwrap();
            _s
        });
        assert_eq!((&c).read(&mut [0; 8]).unwrap(), 1);
        drop(w.join().unwrap());
    });
}

#[test]
fn shutdown_wakes_a_blocked_reader_and_writer() {
    rt(2).block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Arc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let (peer, _) = l.accept().unwrap(); // never reads: the writer fills the buffers
        let reader = {
            let c = c.clone();
            ffiber::go(move || (&*c).read(&mut [0; 16]).map_err(|e| e.kind()))
        };
        let writer = {
            let c = c.clone();
            ffiber::go(move || {
                let chunk = vec![7u8; 1 << 16];
                let mut total = 0usize;
                loop {
                    match (&*c).write(&chunk) {
                        Ok(n) => total += n,
                        Err(e) => return (total, e.kind()),
                    }
                }
            })
        };
        ffiber::sleep(Duration::from_millis(100)); // both are parked by now
        c.shutdown(Shutdown::Both).unwrap();
        assert_eq!(reader.join().unwrap(), Ok(0), "the reader sees end of file");
        let (total, kind) = writer.join().unwrap();
        assert!(total > 0);
        assert_eq!(kind, ErrorKind::BrokenPipe, "the writer sees an error");
        drop(peer);
    });
}

#[test]
fn a_peer_that_disconnects_ends_reads_and_fails_writes() {
    rt(2).block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let r = ffiber::go(move || {
            let mut v = Vec::new();
            (&s).read_to_end(&mut v).map(|_| v)
        });
        (&c).write_all(b"partial req").unwrap();
        drop(c);
        assert_eq!(r.join().unwrap().unwrap(), b"partial req");
    });
}

#[test]
fn connect_errors_are_std_errors() {
    rt(1).block_on(|| {
        // A port nobody listens on (bound, then closed).
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        assert!(!e.to_string().is_empty());
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect_timeout(&l.local_addr().unwrap(), Duration::from_secs(5)).unwrap();
        assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
    });
}

/// The same types on a plain OS thread (no runtime) block like std's.
#[test]
fn outside_the_runtime_the_types_block_like_std() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"from an OS thread").unwrap();
    });
    let (mut s, _) = l.accept().unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from an OS thread");
    t.join().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert_eq!((&a).read(&mut [0; 1]).unwrap_err().kind(), ErrorKind::WouldBlock);
}

/// A socket made on an OS thread and then used from green threads, and
/// std sockets converted with `From`.
#[test]
fn sockets_move_between_os_threads_and_green_threads() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let l = TcpListener::from(l);
    rt(2).block_on(move || {
        let c = ffiber::go(move || {
            let mut c = TcpStream::from(std::net::TcpStream::connect(addr).unwrap());
            c.write_all(b"hi").unwrap();
        });
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0; 2];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
        c.join().unwrap();
    });
}

#[test]
fn udp_round_trip_and_timeout() {
    rt(2).block_on(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let baddr = b.local_addr().unwrap();
        let echo = ffiber::go(move || {
            for _ in 0..100 {
                let mut buf = [0; 64];
                let n = b.recv(&mut buf).unwrap();
                b.send(&buf[..n]).unwrap();
            }
            b
        });
        for i in 0..100u32 {
            a.send(&i.to_le_bytes()).unwrap();
            let mut buf = [0; 64];
            assert_eq!(a.recv(&mut buf).unwrap(), 4);
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i);
        }
        let b = echo.join().unwrap();
        assert_eq!(b.local_addr().unwrap(), baddr);
        b.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(b.recv_from(&mut [0; 8]).unwrap_err().kind(), ErrorKind::WouldBlock);
    });
}

#[test]
fn unix_stream_listener_and_datagram() {
    let dir = std::env::temp_dir().join(format!("ffiber-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let dpath = dir.join("d.sock");
    rt(2).block_on({
        let (path, dpath) = (path.clone(), dpath.clone());
        move || {
            let l = UnixListener::bind(&path).unwrap();
            let server = ffiber::go(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut v = String::new();
                s.read_to_string(&mut v).unwrap();
                v
            });
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"unix stream").unwrap();
            drop(c);
            assert_eq!(server.join().unwrap(), "unix stream");

            let d = UnixDatagram::bind(&dpath).unwrap();
            let r = ffiber::go(move || {
                let mut buf = [0; 32];
                let (n, _) = d.recv_from(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            ffiber::sleep(Duration::from_millis(10));
            UnixDatagram::unbound().unwrap().send_to(b"dgram", &dpath).unwrap();
            assert_eq!(r.join().unwrap(), b"dgram");
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// While green threads wait for I/O, the timer watcher waits in the poller
/// (not on its futex): sleeps must still end on time, and I/O must still
/// wake its waiters while everybody else sleeps.
#[test]
fn timers_and_io_are_waited_for_by_one_thread() {
    for procs in [1, 2, 8] {
        rt(procs).block_on(|| {
            let (a, b) = UnixStream::pair().unwrap();
            let blocked = ffiber::go(move || {
                let mut buf = [0; 4];
                (&b).read_exact(&mut buf).map(|_| buf)
            });
            ffiber::sleep(Duration::from_millis(5));
            for _ in 0..20 {
                let t = Instant::now();
                ffiber::sleep(Duration::from_millis(2));
                assert!(t.elapsed() >= Duration::from_millis(2));
                assert!(t.elapsed() < Duration::from_secs(5), "a sleep overslept while the watcher polled");
            }
            // Every M idle but the one that writes from a plain OS thread.
            let w = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                (&a).write_all(b"wake").unwrap();
                a
            });
            assert_eq!(&blocked.join().unwrap().unwrap(), b"wake");
            drop(w.join().unwrap());
        });
    }
}

/// Green threads that compute without end do not starve I/O waiters: the
/// monitor (or a spare P) still delivers readiness.
#[test]
fn io_is_delivered_while_every_p_computes() {
    // Preemption on whatever the environment says (`FFIBER_PREEMPT=0`
    // would leave the one P to the hog for good, by design).
    Runtime::builder().max_procs(1).preempt(true).build().unwrap().block_on(|| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            ffiber::go(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let (a, b) = UnixStream::pair().unwrap();
        let r = ffiber::go(move || {
            let mut buf = [0; 1];
            (&b).read_exact(&mut buf).map(|_| buf[0])
        });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            (&a).write_all(&[42]).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        assert_eq!(r.join().unwrap().unwrap(), 42);
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
    });
}

#[test]
fn foreign_fd_waits_for_someone_elses_fd() {
    use std::os::fd::AsRawFd;
    rt(2).block_on(|| {
        // An eventfd, as a C library would hand out.
        // SAFETY: plain system call.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(efd >= 0);
        let f = ffiber::io::ForeignFd::new(efd);
        assert_eq!(f.as_raw_fd(), efd);
        let e = f.readable_timeout(Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        f.writable().unwrap(); // an eventfd is writable at once
        let w = ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(10));
            let one = 1u64;
            // SAFETY: writes 8 bytes from a local.
            assert_eq!(unsafe { libc::write(efd, (&one as *const u64).cast(), 8) }, 8);
        });
        f.readable().unwrap();
        w.join().unwrap();
        drop(f);
        // SAFETY: we created it and the ForeignFd is gone.
        unsafe { libc::close(efd) };
    });
    // A regular file is always ready (epoll refuses it; poll(2) says so).
    let file = std::fs::File::open("/proc/self/status").unwrap();
    rt(1).block_on(move || {
        let f = ffiber::io::ForeignFd::new(file.as_raw_fd());
        f.readable().unwrap();
        f.writable_timeout(Duration::from_millis(10)).unwrap();
    });
}

#[test]
fn io_blocking_runs_the_call_and_returns_its_result() {
    rt(1).block_on(|| {
        let other = ffiber::go(|| 7);
        // Blocks its OS thread for a while: the monitor hands the P off,
        // so `other` runs meanwhile.
        let v = ffiber::io::blocking(|| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_to_string("/proc/self/status").map(|s| s.len())
        });
        assert!(v.unwrap() > 0);
        assert_eq!(other.join().unwrap(), 7);
    });
}
