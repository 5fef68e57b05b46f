//! `kvserver [--addr HOST:PORT] [--db PATH] [--procs N]`: the key-value
//! server (see the library docs). Prints `kvserver listening on ADDR` once
//! it accepts connections; SIGINT or SIGTERM stops it gracefully.
//!
//! The signals are received through a signalfd that a green thread waits
//! on with [`ffiber::io::ForeignFd`]: the netpoller wakes it, no thread is
//! spent on waiting for a signal.

use std::io::Write;
use std::path::PathBuf;

fn usage(msg: &str) -> ! {
    eprintln!("kvserver: {msg}\nusage: kvserver [--addr HOST:PORT] [--db PATH] [--procs N]");
    std::process::exit(2)
}

fn main() {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut db = PathBuf::from("kv.db");
    let mut procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--addr" => addr = val(),
            "--db" => db = PathBuf::from(val()),
            "--procs" => procs = val().parse().unwrap_or_else(|_| usage("--procs takes a number")),
            "-h" | "--help" => usage("an HTTP key-value server"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    // Block SIGINT and SIGTERM before any thread starts (threads inherit
    // the mask), and receive them through a signalfd instead.
    // SAFETY: sigset operations on a local set; sigprocmask and signalfd
    // are plain system calls whose results are checked.
    let sfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            usage("could not block SIGINT/SIGTERM");
        }
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    };
    if sfd < 0 {
        usage(&format!("signalfd: {}", std::io::Error::last_os_error()));
    }
    let rt = ffiber::Runtime::builder().max_procs(procs).build().unwrap_or_else(|e| usage(&e.to_string()));
    let stats = rt.block_on(move || {
        let server = match ffiber_kvserver::Server::bind(&addr, &db) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kvserver: {e}");
                std::process::exit(1);
            }
        };
        let stopper = server.stopper();
        ffiber::go(move || {
            let fd = ffiber::io::ForeignFd::new(sfd);
            loop {
                if let Err(e) = fd.readable() {
                    eprintln!("kvserver: waiting for signals: {e}");
                    return;
                }
                let mut info = [0u8; 128]; // struct signalfd_siginfo
                // SAFETY: reads at most 128 bytes into a local buffer.
                let n = unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) };
                if n == 128 {
                    let signo = u32::from_ne_bytes(info[..4].try_into().unwrap());
                    eprintln!("kvserver: signal {signo}: stopping (in-flight requests finish)");
                    stopper.stop();
                    return;
                }
            }
        });
        println!("kvserver listening on {}", server.local_addr());
        let _ = std::io::stdout().flush();
        server.serve()
    });
    println!("kvserver: stopped after {} requests; database closed", stats.requests);
}
