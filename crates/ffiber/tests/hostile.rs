//! Misuse and absurd inputs (issue 15): each either works or fails with a
//! message; never a hang, a panic deep in the runtime, or a wrong answer.
//! Cases that must die or change process-wide settings run in a child
//! process (this binary again, with one test selected).

use ffiber::Runtime;
use ffiber::chan::{self, RecvTimeoutError};
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = "FFIBER_HOSTILE_CHILD";

/// Runs `test` alone in a child process (this binary again) and collects
/// its output. A child still running after two minutes is killed and the
/// test fails: a hang is a failure, not a stuck suite.
fn run_child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(CHILD, "1").env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killed = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) {
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: our own child, not yet waited for (`done` is unset),
            // so the pid still names it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        })
    };
    // (Reads both pipes while it waits, so a chatty child cannot block.)
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(!killed.join().unwrap(), "the child running {test} hung: killed after 120 s");
    out
}

/// Whether this process may drop root to an unprivileged user, where
/// RLIMIT_NPROC applies (tests that need it skip otherwise, saying so).
fn can_limit_threads() -> bool {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if !root {
        eprintln!("skipped: needs root to drop to an unprivileged user, where RLIMIT_NPROC applies");
    }
    root
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn duration_max_means_no_deadline() {
    Runtime::builder().max_procs(2).build().unwrap().block_on(|| {
        // A value is waiting: every form returns it at once.
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.send_timeout(1, Duration::MAX).unwrap();
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(1));
        tx.send(2).unwrap();
        let got = ffiber::select! {
            recv(rx) -> v => v.unwrap(),
            default(Duration::MAX) => 0,
        };
        assert_eq!(got, 2);
        // Nothing waiting: Duration::MAX waits until a value comes.
        let (tx2, rx2) = chan::bounded::<u32>(0);
        let h = ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(20));
            tx2.send(3).unwrap();
            ffiber::sleep(Duration::from_millis(20));
            drop(tx2);
        });
        assert_eq!(rx2.recv_timeout(Duration::MAX), Ok(3));
        assert_eq!(rx2.recv_timeout(Duration::MAX), Err(RecvTimeoutError::Disconnected));
        h.join().unwrap();
        // A sleep of Duration::MAX never ends (and does not wake early):
        // a sleeper parked for ever, while the rest keeps running.
        let sleeper = ffiber::go(|| ffiber::sleep(Duration::MAX));
        let t = Instant::now();
        ffiber::sleep(Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(!sleeper.is_finished(), "sleep(Duration::MAX) returned");
        // Long but representable: far in the future, not wrapped around.
        let (_tx3, rx3) = chan::bounded::<u32>(0);
        let long = ffiber::go(move || rx3.recv_timeout(Duration::from_secs(600 * 365 * 24 * 3600)));
        ffiber::sleep(Duration::from_millis(30));
        assert!(!long.is_finished(), "a 600-year timeout fired early");
    });
}

#[test]
fn absurd_stack_sizes_are_refused_with_a_message() {
    Runtime::builder().max_procs(1).build().unwrap().block_on(|| {
        for size in [usize::MAX, usize::MAX - 4095, (1 << 30) + 1] {
            let err = ffiber::Builder::new().stack_size(size).spawn(|| ()).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("the most a green thread may reserve is 1024 MiB"), "{err}");
        }
        // The largest allowed one works (only touched pages cost memory).
        let h = ffiber::Builder::new().stack_size(ffiber::MAX_STACK_SIZE).spawn(|| 7).unwrap();
        assert_eq!(h.join().unwrap(), 7);
    });
    let err = Runtime::builder().stack_size(usize::MAX).build().unwrap_err();
    assert!(err.to_string().contains("the most a green thread may reserve"), "{err}");
}

#[test]
fn absurd_max_procs_is_refused_with_a_message() {
    let err = Runtime::builder().max_procs(10_000_000).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_procs = 10000000 is more than the 1024"), "{err}");
    assert_eq!(Runtime::builder().max_procs(ffiber::MAX_PROCS).build().unwrap().block_on(|| 1), 1);
}

/// Without guard regions (forced here; the default before Linux 6.13) a
/// stack costs two mappings: spawning past `vm.max_map_count` fails with an
/// error naming it, well before OS-thread creation would abort the process.
#[test]
fn running_out_of_mappings_names_vm_max_map_count() {
    if is_child() {
        let out = Runtime::builder().max_procs(2).build().unwrap().block_on(|| {
            let (tx, rx) = chan::bounded::<()>(0);
            let mut handles = Vec::new();
            let err = loop {
                let rx = rx.clone();
                match ffiber::Builder::new().spawn(move || rx.recv().ok()) {
                    Ok(h) => handles.push(h),
                    Err(e) => break e,
                }
                assert!(handles.len() < 2_000_000, "no limit reached");
            };
            // The runtime still works: OS threads can be made, the parked
            // green threads all wake.
            let os = std::thread::spawn(|| 5).join().unwrap();
            drop(tx);
            let n = handles.len();
            handles.into_iter().for_each(|h| assert_eq!(h.join().unwrap(), None));
            format!("{n} {os} {err}")
        });
        println!("RESULT {out}");
        return;
    }
    let out = run_child("running_out_of_mappings_names_vm_max_map_count", &[("FFIBER_NO_GUARD_REGIONS", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|x| x.1))
        .unwrap_or_else(|| panic!("no result: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(line.contains(" 5 ffiber: cannot map a stack for green thread number"), "{line}");
    assert!(line.contains("vm.max_map_count = ") && line.contains("two mappings"), "{line}");
}

/// In a child run as root: a runtime that has started its threads drops
/// to an unprivileged user whose thread limit allows two more, then 40
/// green threads each make three `mode` calls of C that sleeps 5 ms with
/// `usleep`. Returns how many finished.
fn at_the_thread_limit(mode: ffiber::ffi::Mode) -> u32 {
    let rt = Runtime::builder().max_procs(2).build().unwrap();
    rt.block_on(|| ffiber::go(|| ()).join().unwrap());
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count() as u64;
    let lim = libc::rlimit { rlim_cur: threads + 2, rlim_max: threads + 2 };
    // SAFETY: plain system calls on our own process's credentials and
    // limits; glibc applies setuid to every thread.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &lim), 0);
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
    rt.block_on(move || {
        let hs: Vec<_> = (0..40)
            .map(|_| {
                ffiber::go(move || {
                    for _ in 0..3 {
                        // SAFETY: usleep has no preconditions.
                        ffiber::ffi::call_mode(mode, || unsafe { libc::usleep(5_000) });
                    }
                    1
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    })
}

/// When OS threads cannot be created (here: a limit on threads, which
/// applies once the child drops root), the runtime says so once and the
/// program still finishes on the threads it has.
#[test]
fn failing_thread_creation_is_reported_once_and_the_program_finishes() {
    if !can_limit_threads() {
        return;
    }
    if is_child() {
        println!("RESULT {}", at_the_thread_limit(ffiber::ffi::Mode::Blocking));
        return;
    }
    let out = run_child("failing_thread_creation_is_reported_once_and_the_program_finishes", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("RESULT 40"), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("could not start an OS thread").count(), 1, "{stderr}");
}

/// The same limit with default-mode calls whose C sleeps with `usleep`,
/// which the runtime turns into green sleeps (`ffi::usleep`): each keeps
/// its OS thread while it waits. Once a thread is refused the runtime stops
/// doing that; if every thread it has is already held that way, nothing
/// could ever wake them, and it stops with a message. Never a hang.
#[test]
fn green_sleeps_in_c_at_the_thread_limit_finish_or_stop_with_a_message() {
    if !can_limit_threads() {
        return;
    }
    if is_child() {
        println!("RESULT {}", at_the_thread_limit(ffiber::ffi::Mode::Default));
        return;
    }
    let out = run_child("green_sleeps_in_c_at_the_thread_limit_finish_or_stop_with_a_message", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(stdout.contains("RESULT 40"), "{stdout}\n{stderr}");
    } else {
        assert!(stderr.contains("ffiber: fatal: the OS refused a new thread"), "{stdout}\n{stderr}");
        assert!(stderr.contains("FFIBER_USLEEP_HOOK=0"), "{stderr}");
    }
}

/// Issue 15, item 3: joining a green thread whose runtime was dropped
/// returns an error instead of waiting for ever — whether the join starts
/// after the drop, is already waiting when it happens, or comes from a
/// green thread of another runtime.
#[test]
fn join_after_the_runtime_is_dropped_returns_an_error() {
    let rt = Runtime::builder().max_procs(2).build().unwrap();
    let (tx, rx) = chan::bounded::<()>(0);
    let rx2 = rx.clone();
    let late = rt.spawn(move || rx.recv().is_ok());
    let waiting = rt.spawn(move || rx2.recv().is_ok());
    let named = ffiber::Builder::new().name("stuck");
    let (tx3, rx3) = chan::bounded::<()>(0);
    let other_rt_joined = {
        let h = rt.block_on(move || named.spawn(move || rx3.recv().is_ok()).unwrap());
        let other = Runtime::builder().max_procs(1).build().unwrap();
        std::thread::spawn(move || other.block_on(move || h.join()))
    };
    let joiner = std::thread::spawn(move || waiting.join());
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    let msg = |r: std::thread::Result<bool>| *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg(late.join()).contains("was dropped before the green thread finished"));
    assert!(msg(joiner.join().unwrap()).contains("was dropped before"));
    assert!(msg(other_rt_joined.join().unwrap()).contains("(stuck) was dropped before"));
    drop((tx, tx3));
}

/// Issue 15, item 4: `run` returns when its closure does, whatever other
/// green threads are doing (they are abandoned, as goroutines are when
/// Go's `main` returns).
#[test]
fn run_returns_while_other_green_threads_loop() {
    for procs in [1, 2, 8] {
        let t = Instant::now();
        let v = Runtime::builder().max_procs(procs).build().unwrap().block_on(|| {
            for _ in 0..4 {
                ffiber::go(|| {
                    loop {
                        ffiber::yield_now()
                    }
                });
                ffiber::go(|| {
                    loop {
                        ffiber::sleep(Duration::from_micros(50))
                    }
                });
            }
            ffiber::sleep(Duration::from_millis(5));
            42
        });
        assert_eq!(v, 42);
        assert!(t.elapsed() < Duration::from_secs(30), "{procs} Ps: took {:?}", t.elapsed());
    }
    // A loop that never yields keeps its OS thread; with a second P the
    // main green thread still finishes, and the runtime does not wait for
    // the loop beyond a short grace.
    let v = Runtime::builder().max_procs(2).build().unwrap().block_on(|| {
        ffiber::go(|| {
            loop {
                std::hint::spin_loop()
            }
        });
        ffiber::sleep(Duration::from_millis(5));
        7
    });
    assert_eq!(v, 7);
}

/// Waits for `pid` up to 20 s; its exit code, or None if it hung (killed).
fn wait_child(pid: libc::pid_t) -> Option<i32> {
    let t = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing our local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if t.elapsed() > Duration::from_secs(20) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Issue 15, item 6: `fork()` from a busy runtime. A child that uses the
/// runtime stops with a message (it used to hang in `stop_m`); a child
/// that execs or exits, as `std::process::Command` does, works.
#[test]
fn fork_children_may_exec_and_otherwise_stop_with_a_message() {
    if is_child() {
        let codes = Runtime::builder().max_procs(4).build().unwrap().block_on(|| {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (tx, rx) = chan::bounded::<u64>(0);
            let busy: Vec<_> = (0..8)
                .map(|i| {
                    let (stop, tx, rx) = (stop.clone(), tx.clone(), rx.clone());
                    ffiber::go(move || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            if i % 2 == 0 {
                                let _ = tx.send_timeout(i, Duration::from_micros(100));
                            } else {
                                let _ = rx.recv_timeout(Duration::from_micros(100));
                            }
                            ffiber::yield_now();
                        }
                    })
                })
                .collect();
            let mut codes = Vec::new();
            for round in 0..20 {
                ffiber::sleep(Duration::from_millis(2));
                // SAFETY: fork; the child below calls only what this test
                // is about (the runtime, or exec/_exit) and never returns.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    if round % 2 == 0 {
                        ffiber::sleep(Duration::from_millis(1)); // must stop with the message
                        // SAFETY: ending the child.
                        unsafe { libc::_exit(0) };
                    }
                    // SAFETY: exec of a static path with a null-terminated argv.
                    unsafe {
                        let argv = [c"true".as_ptr(), std::ptr::null()];
                        libc::execv(c"/bin/true".as_ptr(), argv.as_ptr());
                        libc::_exit(127);
                    }
                }
                codes.push((round, wait_child(pid)));
            }
            // std::process::Command from a green thread of a busy runtime.
            let st = std::process::Command::new("true").status().unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            busy.into_iter().for_each(|h| h.join().unwrap());
            codes.push((99, st.code()));
            codes
        });
        for (round, code) in codes {
            println!("RESULT {round} {code:?}");
        }
        return;
    }
    let out = run_child("fork_children_may_exec_and_otherwise_stop_with_a_message", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let results: Vec<_> = stdout.lines().filter_map(|l| l.split_once("RESULT ").map(|x| x.1.to_string())).collect();
    assert_eq!(results.len(), 21, "{stdout}\n{stderr}");
    for r in &results {
        let (round, code) = r.split_once(' ').unwrap();
        let round: u32 = round.parse().unwrap();
        let want = if round == 99 || round % 2 == 1 { "Some(0)" } else { "Some(70)" };
        assert_eq!(code, want, "round {round}: {stdout}\n{stderr}");
    }
    assert_eq!(stderr.matches("this process is a child of fork() and tried to use the ffiber runtime").count(), 10);
}

/// Issue 15, item 10: a burst of 300,000 green threads parked on one
/// channel, woken by its close and joined, all there; exits keep their
/// stacks for reuse (no unmapping storm), and once the runtime is idle the
/// monitor gives back the stacks beyond the pool.
#[test]
fn a_burst_of_parked_green_threads_wakes_joins_and_gives_memory_back() {
    if is_child() {
        let rt = Runtime::builder().max_procs(2).build().unwrap();
        let before = ffiber::live_stacks();
        let woke = rt.block_on(|| {
            let (tx, rx) = chan::bounded::<()>(0);
            let wg = std::sync::Arc::new(ffiber::sync::WaitGroup::new());
            let n = 300_000;
            wg.add(n);
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, wg) = (rx.clone(), wg.clone());
                    ffiber::go(move || {
                        wg.done();
                        rx.recv().is_err()
                    })
                })
                .collect();
            wg.wait();
            drop(tx);
            hs.into_iter().map(|h| h.join().unwrap() as usize).sum::<usize>()
        });
        let peak = ffiber::live_stacks() - before;
        // Idle now: the monitor releases the excess before it parks.
        let t = Instant::now();
        while ffiber::live_stacks() - before > 20_000 && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("RESULT {woke} {peak} {}", ffiber::live_stacks() - before);
        return;
    }
    let out = run_child("a_burst_of_parked_green_threads_wakes_joins_and_gives_memory_back", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find_map(|l| l.split_once("RESULT ").map(|x| x.1)).expect("a result");
    let v: Vec<usize> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 300_000, "every green thread saw the close");
    assert!(v[1] >= 290_000, "the stacks of the exited green threads were kept for reuse: {line}");
    assert!(v[2] <= 20_000, "the excess beyond the pool was not given back: {line}");
}
