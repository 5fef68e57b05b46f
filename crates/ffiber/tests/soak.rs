//! Soak (issue 15, item 11): a random mix of everything the runtime does —
//! spawning, channels with `select!`, timers, foreign calls in every mode,
//! callbacks from green threads and from threads C created, panics, locks
//! and `Handle`s — under 1, 2 and 8 Ps, then invariants: every message
//! accounted for, every lock increment seen, every panic returned by its
//! join, no OS thread and no stack left behind once the runtime is gone.
//!
//! 30 s in the test suite (10 s per P count); `scripts/soak.sh` runs it for
//! minutes. `FFIBER_SOAK_SECS` sets the total, `FFIBER_SOAK_SEED` replays
//! a run (the seed is printed).

use ffiber::Runtime;
use ffiber::chan;
use ffiber::ffi::{self, Mode};
use ffiber_testc as c;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic per green thread, from the run's seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[ffiber::export(name = "ffiber_soak_square")]
fn square(x: i32) -> i32 {
    if x % 5 == 0 {
        // Blocks inside the callback now and then (a sleep on a green
        // thread, a real sleep on a thread C created).
        ffiber::sleep(Duration::from_micros(50));
    }
    x * x
}

#[ffiber::export(name = "ffiber_soak_ctx")]
fn with_ctx(ctx: *mut libc::c_void, x: i32) -> i32 {
    ffiber::Handle::<AtomicU64>::from_raw(ctx as usize)
        .and_then(|h| h.with(|v| v.fetch_add(x as u64, SeqCst)))
        .map_or(-1, |_| x)
}

unsafe extern "C" {
    safe fn ffiber_soak_square(x: i32) -> i32;
    safe fn ffiber_soak_ctx(ctx: *mut libc::c_void, x: i32) -> i32;
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    sent_sum: AtomicU64,
    got: AtomicU64,
    got_sum: AtomicU64,
    locked: AtomicU64,
    panics_expected: AtomicU64,
    panics_seen: AtomicU64,
    calls: AtomicU64,
    callbacks: AtomicU64,
    handles: AtomicU64,
    spawned: AtomicU64,
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// One chaos step of a worker: a random operation whose result is checked.
fn step(rng: &mut Rng, t: &Tally, lock: &ffiber::sync::Mutex<u64>) {
    match rng.below(10) {
        0 => {
            let panics = rng.below(64) == 0;
            let h = ffiber::go(move || {
                if panics {
                    panic!("soak: a planned panic");
                }
                7
            });
            t.spawned.fetch_add(1, SeqCst);
            if panics {
                t.panics_expected.fetch_add(1, SeqCst);
            }
            match h.join() {
                Ok(v) => assert_eq!(v, 7),
                Err(p) => {
                    assert_eq!(p.downcast_ref::<&str>(), Some(&"soak: a planned panic"));
                    t.panics_seen.fetch_add(1, SeqCst);
                }
            }
        }
        1 => ffiber::sleep(Duration::from_micros(rng.below(200))),
        2 => {
            let x = rng.below(1000) as i32;
            let mode = [Mode::Default, Mode::NonBlocking, Mode::NoCallback][rng.below(3) as usize];
            assert_eq!(ffi::call_mode(mode, || c::plusone(x)), x + 1);
            t.calls.fetch_add(1, SeqCst);
        }
        3 => {
            let us = rng.below(300) as u32;
            let mode = if rng.below(2) == 0 { Mode::Blocking } else { Mode::Default };
            ffi::call_mode(mode, || c::sleep_us(us));
            t.calls.fetch_add(1, SeqCst);
        }
        4 => {
            let x = rng.below(100) as i32;
            let mode = if rng.below(2) == 0 { Mode::Blocking } else { Mode::Default };
            assert_eq!(ffi::call_mode(mode, || c::apply(ffiber_soak_square, x)), x * x + 1);
            t.callbacks.fetch_add(1, SeqCst);
        }
        5 => {
            let n = 1 + rng.below(12) as i32;
            let want: i32 = (0..n).map(|i| i * i).sum();
            assert_eq!(ffi::call(|| c::apply_in_c_thread(ffiber_soak_square, n)), want);
            t.callbacks.fetch_add(n as u64, SeqCst);
        }
        6 => {
            let h = ffiber::Handle::new(AtomicU64::new(0));
            let k = 1 + rng.below(5);
            for i in 0..k {
                assert_eq!(ffi::call(|| c::call_with_ctx(ffiber_soak_ctx, h.as_raw(), i as i32)), i as i32);
            }
            assert_eq!(h.delete().unwrap().load(SeqCst), k * (k - 1) / 2);
            assert_eq!(c::call_with_ctx(ffiber_soak_ctx, h.as_raw(), 1), -1, "a deleted handle still resolved");
            t.handles.fetch_add(1, SeqCst);
        }
        7 => {
            *lock.lock() += 1;
            t.locked.fetch_add(1, SeqCst);
        }
        8 => {
            let (tx, rx) = chan::bounded::<u8>(0);
            let d = Duration::from_micros(rng.below(300));
            if rng.below(2) == 0 {
                let h = ffiber::go(move || tx.send_timeout(1, d).is_ok());
                let got = rx.recv_timeout(d).is_ok();
                let sent = h.join().unwrap();
                // A rendezvous either happened on both sides or on neither.
                assert_eq!(got, sent);
            } else {
                assert!(rx.recv_timeout(d).is_err());
                drop(tx);
            }
        }
        _ => ffiber::yield_now(),
    }
}

/// The planned panics are reported by their joins; keep them out of the
/// log (wrapping the runtime's hook, which names the green thread).
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"soak: a planned panic") {
                prev(info)
            }
        }));
    });
}

fn round(procs: usize, dur: Duration, seed: u64) {
    let threads_before = os_threads();
    let stacks_before = ffiber::live_stacks();
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let rt = Runtime::builder().max_procs(procs).max_threads(200).build().unwrap();
    quiet_planned_panics();
    let locked = rt.block_on(move || {
        let deadline = Instant::now() + dur;
        let (txs, rxs): (Vec<_>, Vec<_>) = [0, 0, 0, 4].iter().map(|&cap| chan::bounded::<u64>(cap)).unzip();
        let lock = Arc::new(ffiber::sync::Mutex::new(0u64));
        let producers: Vec<_> = (0..6u64)
            .map(|p| {
                let (txs, t) = (txs.clone(), t.clone());
                let mut rng = Rng::new(seed ^ (p << 8) ^ 1);
                ffiber::go(move || {
                    let mut seq = 0u64;
                    while Instant::now() < deadline {
                        let v = (p << 40) | seq;
                        let (a, b) = (rng.below(4) as usize, rng.below(4) as usize);
                        let r = ffiber::select! {
                            send(txs[a], v) -> r => r,
                            send(txs[b], v) -> r => r,
                            default(Duration::from_millis(2)) => Err(chan::SendError(u64::MAX)),
                        };
                        match r {
                            Ok(()) => {
                                t.sent.fetch_add(1, SeqCst);
                                t.sent_sum.fetch_add(v, SeqCst);
                                seq += 1;
                            }
                            Err(chan::SendError(u64::MAX)) => {} // timed out: try again
                            Err(e) => panic!("a send on an open channel failed: {e}"),
                        }
                        if rng.below(64) == 0 {
                            ffiber::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(txs);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let (rxs, t) = (rxs.clone(), t.clone());
                ffiber::go(move || {
                    let mut closed = [false; 4];
                    let take = |closed: &mut [bool; 4], i: usize, v: Result<u64, chan::RecvError>| match v {
                        Ok(v) => {
                            t.got.fetch_add(1, SeqCst);
                            t.got_sum.fetch_add(v, SeqCst);
                        }
                        Err(_) => closed[i] = true,
                    };
                    loop {
                        ffiber::select! {
                            recv(rxs[0]) -> v => take(&mut closed, 0, v),
                            recv(rxs[1]) -> v => take(&mut closed, 1, v),
                            recv(rxs[2]) -> v => take(&mut closed, 2, v),
                            recv(rxs[3]) -> v => take(&mut closed, 3, v),
                            default(Duration::from_millis(1)) => {},
                        }
                        if closed.iter().all(|&c| c) {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(rxs);
        let workers: Vec<_> = (0..12u64)
            .map(|w| {
                let (t, lock) = (t.clone(), lock.clone());
                let mut rng = Rng::new(seed ^ (w << 16) ^ 2);
                ffiber::go(move || {
                    while Instant::now() < deadline {
                        step(&mut rng, &t, &lock);
                    }
                })
            })
            .collect();
        for h in producers.into_iter().chain(consumers).chain(workers) {
            h.join().expect("a soak green thread panicked");
        }
        *lock.lock()
    });
    drop(rt);
    let t = &tally;
    println!(
        "soak P={procs}: {} messages, {} spawns ({} planned panics), {} calls, {} callbacks, {} handles, {} locks",
        t.got.load(SeqCst),
        t.spawned.load(SeqCst),
        t.panics_expected.load(SeqCst),
        t.calls.load(SeqCst),
        t.callbacks.load(SeqCst),
        t.handles.load(SeqCst),
        t.locked.load(SeqCst)
    );
    assert_eq!(t.got.load(SeqCst), t.sent.load(SeqCst), "P={procs} seed={seed}: messages lost or duplicated");
    assert_eq!(t.got_sum.load(SeqCst), t.sent_sum.load(SeqCst), "P={procs} seed={seed}: message contents differ");
    assert!(t.got.load(SeqCst) > 0, "no message went through");
    assert_eq!(locked, t.locked.load(SeqCst), "P={procs} seed={seed}: lock increments lost");
    assert_eq!(t.panics_seen.load(SeqCst), t.panics_expected.load(SeqCst), "P={procs} seed={seed}");
    // Nothing left behind: every OS thread of the runtime exits, every
    // stack is unmapped (the runtime's pools are emptied at shutdown).
    let t0 = Instant::now();
    while (os_threads() > threads_before || ffiber::live_stacks() > stacks_before)
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(os_threads(), threads_before, "P={procs} seed={seed}: OS threads leaked");
    assert_eq!(ffiber::live_stacks(), stacks_before, "P={procs} seed={seed}: stacks leaked");
}

#[test]
fn soak() {
    let secs: u64 = std::env::var("FFIBER_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("FFIBER_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("soak: {secs} s, FFIBER_SOAK_SEED={seed}");
    for procs in [1, 2, 8] {
        round(procs, Duration::from_secs(secs) / 3, seed ^ procs as u64);
    }
}
