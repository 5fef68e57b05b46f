//! Channels, select, Mutex and WaitGroup, from green threads and OS threads.

use ffiber::Runtime;
use ffiber::chan::{self, RecvTimeoutError, TryRecvError, TrySendError};
use ffiber::sync::{Mutex, WaitGroup};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt() -> Runtime {
    Runtime::builder().max_procs(2).build().unwrap()
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[test]
fn ping_pong_between_ps() {
    // Two green threads bounce a counter; with busy neighbours on the other
    // P both ends get scheduled on both OS threads over the run.
    let (n, tids) = rt().block_on(|| {
        let (a_tx, a_rx) = chan::bounded::<u64>(0);
        let (b_tx, b_rx) = chan::bounded::<u64>(0);
        let ponger = ffiber::go(move || {
            let mut tids = HashSet::new();
            while let Ok(v) = a_rx.recv() {
                tids.insert(tid());
                if b_tx.send(v + 1).is_err() {
                    break;
                }
            }
            tids
        });
        let mut v = 0;
        let mut tids = HashSet::new();
        for i in 0..20_000 {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
            tids.insert(tid());
            if i % 1000 == 0 {
                ffiber::sleep(Duration::from_micros(50));
            }
        }
        drop(a_tx);
        tids.extend(ponger.join().unwrap());
        (v, tids)
    });
    assert_eq!(n, 20_000);
    assert!(!tids.is_empty());
}

#[test]
fn buffered_channel_keeps_order_and_capacity() {
    let (tx, rx) = chan::bounded(3);
    for i in 0..3 {
        tx.try_send(i).unwrap();
    }
    assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
    assert_eq!(rx.len(), 3);
    assert_eq!((0..3).map(|_| rx.try_recv().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert!(rx.recv().is_err());
}

#[test]
fn rendezvous_send_waits_for_a_receiver() {
    let (tx, rx) = chan::bounded::<i32>(0);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
    let got = rt().block_on(move || {
        // Timed from before the receiver's sleep starts (the sender may
        // start later than that): the send cannot complete before the
        // receive, which comes at least 20 ms after `t`.
        let t = Instant::now();
        let h = ffiber::go(move || {
            tx.send(5).unwrap();
            t.elapsed()
        });
        ffiber::sleep(Duration::from_millis(20));
        let v = rx.recv().unwrap();
        (v, h.join().unwrap())
    });
    assert_eq!(got.0, 5);
    assert!(got.1 >= Duration::from_millis(20), "send returned before a receiver came: {:?}", got.1);
}

#[test]
fn closing_wakes_blocked_receivers_and_senders() {
    rt().block_on(|| {
        let (tx, rx) = chan::bounded::<u8>(0);
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let rx = rx.clone();
                ffiber::go(move || rx.recv())
            })
            .collect();
        ffiber::sleep(Duration::from_millis(5));
        drop(tx);
        for h in waiting {
            assert!(h.join().unwrap().is_err());
        }
        let (tx, rx) = chan::bounded::<String>(0);
        let h = ffiber::go(move || tx.send("kept".to_string()));
        ffiber::sleep(Duration::from_millis(5));
        drop(rx);
        // The value comes back to the sender.
        assert_eq!(h.join().unwrap().unwrap_err().0, "kept");
    });
}

#[test]
fn recv_timeout_times_out_and_succeeds() {
    rt().block_on(|| {
        let (tx, rx) = chan::bounded::<u8>(1);
        let t = Instant::now();
        assert_eq!(rx.recv_timeout(Duration::from_millis(30)), Err(RecvTimeoutError::Timeout));
        assert!(t.elapsed() >= Duration::from_millis(30));
        ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(5));
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Err(RecvTimeoutError::Disconnected));
    });
}

#[test]
fn many_recv_timeouts_leave_no_waiters_behind() {
    rt().block_on(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        for _ in 0..200 {
            assert!(rx.recv_timeout(Duration::from_micros(10)).is_err());
        }
        // A later send must reach the live receiver, not a stale waiter.
        let h = ffiber::go(move || rx.recv().unwrap());
        tx.send(77).unwrap();
        assert_eq!(h.join().unwrap(), 77);
    });
}

#[test]
fn select_with_timeout_and_default() {
    rt().block_on(|| {
        let (tx1, rx1) = chan::bounded::<u32>(0);
        let (_tx2, rx2) = chan::bounded::<u32>(0);
        // Nothing ready: the timeout arm runs, not early.
        let t = Instant::now();
        let r = ffiber::select! {
            recv(rx1) -> v => v.map(Some).unwrap_or(None),
            recv(rx2) -> _v => Some(999),
            default(Duration::from_millis(25)) => None,
        };
        assert_eq!(r, None);
        assert!(t.elapsed() >= Duration::from_millis(25));
        // default without waiting.
        let r = ffiber::select! { recv(rx1) -> _v => 1, default => 2 };
        assert_eq!(r, 2);
        // A sender that shows up while the select waits.
        ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(5));
            tx1.send(42).unwrap();
        });
        let r = ffiber::select! {
            recv(rx2) -> _v => 0,
            recv(rx1) -> v => v.unwrap(),
        };
        assert_eq!(r, 42);
    });
}

#[test]
fn select_send_and_recv_arms_complete_exactly_one() {
    rt().block_on(|| {
        let (in_tx, in_rx) = chan::bounded::<u32>(0);
        let (out_tx, out_rx) = chan::bounded::<u32>(0);
        let consumer = ffiber::go(move || out_rx.iter().collect::<Vec<_>>());
        let producer = ffiber::go(move || {
            for i in 0..1000 {
                in_tx.send(i).unwrap();
            }
        });
        // Relay: each iteration either receives a new value or sends the
        // pending one; values must arrive once each and in order.
        let mut pending: Vec<u32> = Vec::new();
        let mut received = 0;
        while received < 1000 || !pending.is_empty() {
            if let Some(&next) = pending.first() {
                ffiber::select! {
                    send(out_tx, next) -> r => { r.unwrap(); pending.remove(0); },
                    recv(in_rx) -> v => { if let Ok(v) = v { pending.push(v); received += 1; } },
                }
            } else {
                pending.push(in_rx.recv().unwrap());
                received += 1;
            }
        }
        drop(out_tx);
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), (0..1000).collect::<Vec<_>>());
    });
}

#[test]
fn select_fairness_picks_every_ready_arm() {
    let (tx1, rx1) = chan::unbounded::<u8>();
    let (tx2, rx2) = chan::unbounded::<u8>();
    let mut counts = [0; 2];
    for _ in 0..400 {
        tx1.send(1).unwrap();
        tx2.send(2).unwrap();
        let k = ffiber::select! { recv(rx1) -> _v => 0, recv(rx2) -> _v => 1 };
        counts[k] += 1;
        // Drain the other so both are ready again next round.
        let _ = rx1.try_recv();
        let _ = rx2.try_recv();
    }
    assert!(counts[0] > 100 && counts[1] > 100, "unfair select: {counts:?}");
}

#[test]
fn os_threads_and_green_threads_share_channels() {
    let rt = rt();
    let (to_green, from_os) = chan::bounded::<u32>(0);
    let (to_os, from_green) = chan::bounded::<u32>(0);
    // A plain OS thread sends and receives (blocking the OS thread).
    let os = std::thread::spawn(move || {
        let mut sum = 0;
        for i in 0..500 {
            to_green.send(i).unwrap();
            sum += from_green.recv().unwrap();
        }
        sum
    });
    let green = rt.block_on(move || {
        let mut n = 0;
        while let Ok(v) = from_os.recv() {
            to_os.send(v * 2).unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(green, 500);
    assert_eq!(os.join().unwrap(), (0..500).map(|i| i * 2).sum::<u32>());
}

#[test]
fn os_thread_recv_timeout_and_select() {
    let (tx, rx) = chan::bounded::<u8>(0);
    assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        tx.send(3).unwrap();
    });
    let v = ffiber::select! { recv(rx) -> v => v.unwrap(), default(Duration::from_secs(10)) => 0 };
    assert_eq!(v, 3);
    t.join().unwrap();
}

#[test]
fn mutex_parks_green_threads_and_serves_os_threads() {
    let rt = rt();
    let m = Arc::new(Mutex::new(0u64));
    let m2 = m.clone();
    let os = std::thread::spawn(move || {
        for _ in 0..2000 {
            *m2.lock() += 1;
        }
    });
    let m3 = m.clone();
    rt.block_on(move || {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let m = m3.clone();
                ffiber::go(move || {
                    for i in 0..500 {
                        let mut g = m.lock();
                        *g += 1;
                        if i % 50 == 0 {
                            // Hold the lock across a park: others must wait.
                            ffiber::sleep(Duration::from_micros(20));
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    os.join().unwrap();
    assert_eq!(*m.lock(), 16 * 500 + 2000);
    assert!(m.try_lock().is_some());
}

#[test]
fn waitgroup_waits_for_all() {
    let done = rt().block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 0..100 {
            wg.add(1);
            let (wg, hits) = (wg.clone(), hits.clone());
            ffiber::go(move || {
                ffiber::sleep(Duration::from_micros(i * 10));
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(wg.count(), 0);
        hits.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert_eq!(done, 100);
}

#[test]
#[should_panic(expected = "done() called more often than add()")]
fn waitgroup_negative_count_panics() {
    WaitGroup::new().done();
}

#[test]
fn channel_stress_many_producers_consumers() {
    let total = rt().block_on(|| {
        let (tx, rx) = chan::bounded::<u64>(8);
        let producers: Vec<_> = (0..8u64)
            .map(|p| {
                let tx = tx.clone();
                ffiber::go(move || {
                    for i in 0..2_000 {
                        tx.send(p * 1_000_000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                ffiber::go(move || rx.iter().collect::<Vec<_>>())
            })
            .collect();
        drop(rx);
        producers.into_iter().for_each(|h| h.join().unwrap());
        let mut all: Vec<u64> = consumers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        all.dedup();
        all.len()
    });
    assert_eq!(total, 16_000);
}

/// Receivers that time out constantly (and so carry stale wake-ups into
/// their next wait) while senders deliver: a receiver must never see a
/// completed-but-not-yet-filled slot as "disconnected", and every value
/// arrives exactly once.
#[test]
fn timeouts_racing_deliveries_lose_nothing() {
    rt().block_on(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let senders: Vec<_> = (0..4u32)
            .map(|s| {
                let tx = tx.clone();
                ffiber::go(move || {
                    for i in 0..2_000 {
                        tx.send(s * 1_000_000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                ffiber::go(move || {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv_timeout(Duration::from_micros(20)) {
                            Ok(v) => got.push(v),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => return got,
                        }
                    }
                })
            })
            .collect();
        senders.into_iter().for_each(|h| h.join().unwrap());
        let all: Vec<u32> = receivers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert_eq!(all.len(), 8_000, "every value received once");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 8_000, "no value twice");
    });
}

/// Issue 15, item 1: `select!` over rendezvous channels that stay open must
/// never report them closed. A waiter left on a channel's queue by another
/// select that already completed elsewhere used to count as "ready"; the
/// registering select then claimed itself, found nobody, and read "closed".
#[test]
fn select_never_reports_open_channels_closed() {
    for procs in [1, 2, 8] {
        let (sent, got, errors) = Runtime::builder().max_procs(procs).build().unwrap().block_on(|| {
            let (t0, r0) = chan::bounded::<u64>(0);
            let (t1, r1) = chan::bounded::<u64>(0);
            let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let producers: Vec<_> = (0..4u64)
                .map(|p| {
                    let (t0, t1, errors) = (t0.clone(), t1.clone(), errors.clone());
                    ffiber::go(move || {
                        for i in 0..5_000u64 {
                            let v = p * 1_000_000 + i;
                            ffiber::select! {
                                send(t0, v) -> r => if r.is_err() { errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst); },
                                send(t1, v) -> r => if r.is_err() { errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst); },
                            }
                        }
                    })
                })
                .collect();
            drop((t0, t1));
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let (r0, r1) = (r0.clone(), r1.clone());
                    ffiber::go(move || {
                        let mut got = 0u64;
                        let mut closed = [false; 2];
                        while !(closed[0] && closed[1]) {
                            ffiber::select! {
                                recv(r0) -> v => match v { Ok(_) => got += 1, Err(_) => closed[0] = true },
                                recv(r1) -> v => match v { Ok(_) => got += 1, Err(_) => closed[1] = true },
                                default(Duration::from_millis(1)) => {},
                            }
                        }
                        got
                    })
                })
                .collect();
            drop((r0, r1));
            producers.into_iter().for_each(|h| h.join().unwrap());
            let got: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
            (20_000u64, got, errors.load(std::sync::atomic::Ordering::SeqCst))
        });
        assert_eq!(errors, 0, "{procs} Ps: a send on an open channel failed");
        assert_eq!(got, sent, "{procs} Ps: values lost or a channel read as closed early");
    }
}

/// Issue 15, item 1: a 16-arm select over 16 rendezvous channels, 64
/// producers and 64 consumers: every value arrives exactly once.
#[test]
fn wide_select_delivers_every_value_once() {
    const N: usize = 16;
    let (errors, sum, count) = Runtime::builder().max_procs(2).build().unwrap().block_on(|| {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..N).map(|_| chan::bounded::<u64>(0)).unzip();
        let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        macro_rules! sel16_send {
            ($t:ident, $v:expr, $e:ident) => {
                ffiber::select! {
                    send($t[0], $v) -> r => r.is_err(), send($t[1], $v) -> r => r.is_err(),
                    send($t[2], $v) -> r => r.is_err(), send($t[3], $v) -> r => r.is_err(),
                    send($t[4], $v) -> r => r.is_err(), send($t[5], $v) -> r => r.is_err(),
                    send($t[6], $v) -> r => r.is_err(), send($t[7], $v) -> r => r.is_err(),
                    send($t[8], $v) -> r => r.is_err(), send($t[9], $v) -> r => r.is_err(),
                    send($t[10], $v) -> r => r.is_err(), send($t[11], $v) -> r => r.is_err(),
                    send($t[12], $v) -> r => r.is_err(), send($t[13], $v) -> r => r.is_err(),
                    send($t[14], $v) -> r => r.is_err(), send($t[15], $v) -> r => r.is_err(),
                }
            };
        }
        macro_rules! sel16_recv {
            ($r:ident) => {
                ffiber::select! {
                    recv($r[0]) -> v => v.ok(), recv($r[1]) -> v => v.ok(),
                    recv($r[2]) -> v => v.ok(), recv($r[3]) -> v => v.ok(),
                    recv($r[4]) -> v => v.ok(), recv($r[5]) -> v => v.ok(),
                    recv($r[6]) -> v => v.ok(), recv($r[7]) -> v => v.ok(),
                    recv($r[8]) -> v => v.ok(), recv($r[9]) -> v => v.ok(),
                    recv($r[10]) -> v => v.ok(), recv($r[11]) -> v => v.ok(),
                    recv($r[12]) -> v => v.ok(), recv($r[13]) -> v => v.ok(),
                    recv($r[14]) -> v => v.ok(), recv($r[15]) -> v => v.ok(),
                }
            };
        }
        let producers: Vec<_> = (0..64u64)
            .map(|p| {
                let (t, errors) = (txs.clone(), errors.clone());
                ffiber::go(move || {
                    for i in 0..200u64 {
                        if sel16_send!(t, p * 1000 + i, errors) {
                            errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        // Each consumer takes exactly its share, so every channel stays open.
        let consumers: Vec<_> = (0..64)
            .map(|_| {
                let (r, errors) = (rxs.clone(), errors.clone());
                ffiber::go(move || {
                    let (mut sum, mut count) = (0u64, 0u64);
                    for _ in 0..200 {
                        match sel16_recv!(r) {
                            Some(v) => {
                                sum += v;
                                count += 1;
                            }
                            None => {
                                errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                        }
                    }
                    (sum, count)
                })
            })
            .collect();
        producers.into_iter().for_each(|h| h.join().unwrap());
        let (sum, count) = consumers.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        drop((txs, rxs));
        (errors.load(std::sync::atomic::Ordering::SeqCst), sum, count)
    });
    let want: u64 = (0..64u64).map(|p| (0..200u64).map(|i| p * 1000 + i).sum::<u64>()).sum();
    assert_eq!(errors, 0, "a select on open channels reported one closed");
    assert_eq!((sum, count), (want, 64 * 200));
}
