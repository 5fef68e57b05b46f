//! What the kernel says an M's thread is doing: the monitor's way to tell
//! a foreign call that *blocks* from one that *waits for a CPU*.
//!
//! The monitor retakes the P of an M that has been in the same default-mode
//! call for [`RETAKE_AFTER`](super::sysmon::RETAKE_AFTER), on the guess
//! that the call blocked. A long call has three possible reasons, and only
//! one of them is helped by handing the P to another M:
//!
//! | the thread is… | kernel state | its CPU time | retake? |
//! | --- | --- | --- | --- |
//! | blocked (sleeps, waits for a lock, for I/O) | not `R` | still | yes: the P would idle |
//! | computing in C | `R` | grows | yes: the P's queue time-shares with it (Go's rule) |
//! | **waiting for a CPU** (preempted by the kernel, or just woken) | `R` | still | **no** |
//!
//! A thread that waits for a CPU is not stuck in C: it will run as soon as
//! the kernel gives it one, and go on with its P. Handing that P to
//! another M adds one more runnable thread for the same busy CPUs — and
//! when the first returns from C, it finds its P gone, waits for one
//! and asks its holder to yield: two hand-offs, each waiting for the
//! kernel to run a thread, for no CPU gained. On SQLite's write mix (64
//! green threads on 2 Ps) about half of the monitor's retakes were of such
//! threads (state `R`, under a quarter of the interval on a CPU), mostly
//! queued behind another M or behind the monitor itself, which the kernel
//! had just run on their CPU to make the scan (`docs/DESIGN.md`, "Calls
//! that wait for a CPU").
//!
//! So for a call proven long, the monitor asks the kernel first
//! ([`Probe::runnable`]: the state letter of `/proc/self/task/<tid>/stat`,
//! one `pread` of a file kept open, ~3 µs) and, for a runnable thread,
//! compares the thread's CPU time ([`cpu_ns`], its CPU-time clock, one
//! `clock_gettime`) across two scans. The probes of up to [`KEPT_MAX`] Ms
//! keep their file open; the rest open it at each look, so that hundreds
//! of Ms blocked in C do not hold hundreds of descriptors. Anything the
//! probe cannot read (no `/proc`, a thread that has exited) counts as
//! blocked: the retake goes ahead, as it did without the probe.
//!
//! Only the monitor's thread uses a probe, and only on calls that have
//! already lasted 20 µs: nothing here is on the call path.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::Relaxed};

/// `Probe::fd` before the first look, and for a probe that found the
/// process's quota of kept files spent: it opens its file at each look.
const UNOPENED: i32 = -1;
/// `Probe::fd` once opening failed: the probe answers `None` from then on.
const UNAVAILABLE: i32 = -2;

/// Files the probes of the process keep open, at most [`KEPT_MAX`].
static KEPT: AtomicUsize = AtomicUsize::new(0);
/// The probes of at most this many Ms keep their file open (a `pread`,
/// ~3 µs); the others open and close it at each look (~8.5 µs). A program
/// whose green threads block in C may have hundreds of Ms, and a
/// descriptor per M would eat into the process's limit (1,024 by default)
/// that its own files and sockets need.
const KEPT_MAX: usize = 16;

/// A way to read one thread's scheduling state.
pub(crate) struct Probe {
    /// `/proc/self/task/<tid>/stat` kept open, [`UNOPENED`] or
    /// [`UNAVAILABLE`].
    fd: AtomicI32,
}

impl Probe {
    /// A probe that opens its file at the first [`runnable`](Self::runnable).
    pub(crate) const fn new() -> Probe {
        Probe { fd: AtomicI32::new(UNOPENED) }
    }

    /// Whether thread `tid` of this process is running or waiting for a
    /// CPU (kernel state `R`): `Some(false)` if it is blocked or stopped,
    /// `None` if the kernel could not be asked. Only one thread (the
    /// monitor) may call it for a given probe, always with the same `tid`.
    pub(crate) fn runnable(&self, tid: usize) -> Option<bool> {
        let fd = self.fd.load(Relaxed);
        if fd >= 0 {
            return read_state(fd);
        }
        if fd == UNAVAILABLE {
            return None;
        }
        let path = format!("/proc/self/task/{tid}/stat\0");
        // SAFETY: a NUL-terminated path; the flags ask for nothing the
        // kernel could act on beyond opening the file.
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            self.fd.store(UNAVAILABLE, Relaxed);
            return None;
        }
        let state = read_state(fd);
        if KEPT.fetch_add(1, Relaxed) < KEPT_MAX {
            self.fd.store(fd, Relaxed);
        } else {
            KEPT.fetch_sub(1, Relaxed);
            // SAFETY: opened above, used above, owned by nobody else.
            unsafe { libc::close(fd) };
        }
        state
    }
}

/// The state of the thread whose open `stat` file is `fd`.
fn read_state(fd: i32) -> Option<bool> {
    // "pid (comm) S ...": the state letter follows the last ')' (the
    // thread's name may hold one) — within the first 64 bytes, since a
    // pid has at most 7 digits and a name at most 15 bytes.
    let mut buf = [0u8; 64];
    // SAFETY: `fd` is an open file of the caller's (a probe's, closed only
    // by its `Drop`, which has `&mut self`, or one the caller opened); the
    // kernel writes at most `buf.len()` bytes into the buffer.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return None;
    }
    state_letter(&buf[..n as usize]).map(|c| c == b'R')
}

impl Drop for Probe {
    fn drop(&mut self) {
        let fd = *self.fd.get_mut();
        if fd >= 0 {
            // SAFETY: the probe owns this descriptor and nobody reads it
            // any more (`&mut self`).
            unsafe { libc::close(fd) };
            KEPT.fetch_sub(1, Relaxed);
        }
    }
}

/// The state letter of a `/proc/<pid>/stat` line.
fn state_letter(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied().filter(u8::is_ascii_alphabetic)
}

/// CPU time thread `tid` of this process has used, in nanoseconds, or
/// `None` if the kernel could not say (the thread has exited).
pub(crate) fn cpu_ns(tid: usize) -> Option<u64> {
    // The kernel's id for "thread `tid`'s scheduler CPU clock" (what
    // `pthread_getcpuclockid` builds): `!tid << 3 | CPUCLOCK_PERTHREAD |
    // CPUCLOCK_SCHED`.
    let clock = (!(tid as libc::clockid_t) << 3) | 4 | 2;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: an out pointer to a timespec on our stack; a clock id of a
    // gone thread only makes the call fail.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// What the monitor makes of a call it has found long, from the probe's
/// answers (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Blocked, computing, or unknown: retake the P.
    Take,
    /// Runnable, and no CPU time to compare with yet: look again at the
    /// next scan, from this reading.
    Measure(u64),
    /// Waiting for a CPU (under a quarter of the interval on one): leave
    /// the P, and compare with this reading next time.
    Wait(u64),
}

/// The verdict for a thread whose state is `runnable` and whose CPU time
/// is `cpu` now, given the reading `base` of `wall_ns` ago, if any.
pub(crate) fn judge(runnable: Option<bool>, cpu: Option<u64>, base: Option<u64>, wall_ns: u64) -> Verdict {
    let (Some(true), Some(cpu)) = (runnable, cpu) else { return Verdict::Take };
    match base {
        None => Verdict::Measure(cpu),
        Some(b) if cpu.saturating_sub(b).saturating_mul(4) >= wall_ns => Verdict::Take,
        Some(_) => Verdict::Wait(cpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    fn gettid() -> usize {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() as usize }
    }

    #[test]
    fn parses_the_state_after_the_last_paren() {
        assert_eq!(state_letter(b"123 (sqlite) R 1 2 3"), Some(b'R'));
        assert_eq!(state_letter(b"123 (a) b) S 1 2 3"), Some(b'S'));
        assert_eq!(state_letter(b"123 (x)"), None);
        assert_eq!(state_letter(b"garbage"), None);
    }

    #[test]
    fn the_calling_thread_is_runnable_and_a_sleeping_one_is_not() {
        let p = Probe::new();
        assert_eq!(p.runnable(gettid()), Some(true), "a thread reading its own state is running");
        let tid = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let h = std::thread::spawn({
            let (tid, stop) = (tid.clone(), stop.clone());
            move || {
                tid.store(gettid(), SeqCst);
                while !stop.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        while tid.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        let q = Probe::new();
        // It sleeps 50 ms at a time: some look within two seconds finds it
        // asleep, and its CPU time stands still across that sleep.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut saw_blocked = false;
        while Instant::now() < deadline && !saw_blocked {
            saw_blocked = q.runnable(tid.load(SeqCst)) == Some(false);
        }
        assert!(saw_blocked, "a thread that sleeps 50 ms at a time was never seen blocked");
        assert!(cpu_ns(tid.load(SeqCst)).is_some());
        stop.store(true, SeqCst);
        h.join().unwrap();
    }

    #[test]
    fn a_gone_thread_reads_as_unknown() {
        let tid = std::thread::spawn(gettid).join().unwrap();
        // The thread has exited: its file is gone (or, if the id was
        // reused already, it is another thread of ours — either way no
        // panic, and an unknown answer means "take").
        let p = Probe::new();
        let _ = p.runnable(tid);
        assert_eq!(judge(None, Some(1), Some(0), 1), Verdict::Take);
        assert_eq!(Probe::new().runnable(usize::MAX >> 1), None, "no such thread");
        assert_eq!(cpu_ns(0x3fff_fff0), None, "no such thread");
    }

    #[test]
    fn only_a_few_probes_keep_their_file_open() {
        let probes: Vec<Probe> = (0..3 * KEPT_MAX).map(|_| Probe::new()).collect();
        for p in &probes {
            assert_eq!(p.runnable(gettid()), Some(true), "every probe answers, kept file or not");
            assert_eq!(p.runnable(gettid()), Some(true), "and answers again");
        }
        assert!(KEPT.load(SeqCst) <= KEPT_MAX, "{} files kept", KEPT.load(SeqCst));
        let kept = probes.iter().filter(|p| p.fd.load(SeqCst) >= 0).count();
        assert!(kept <= KEPT_MAX);
    }

    #[test]
    fn cpu_time_grows_while_a_thread_computes() {
        let t0 = cpu_ns(gettid()).expect("own CPU clock");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let t1 = cpu_ns(gettid()).expect("own CPU clock");
        assert!(t1 > t0, "5 ms of spinning used no CPU time: {t0} -> {t1}");
    }

    #[test]
    fn judging() {
        // Blocked or unknown: take.
        assert_eq!(judge(Some(false), Some(10), Some(0), 100), Verdict::Take);
        assert_eq!(judge(None, None, None, 100), Verdict::Take);
        assert_eq!(judge(Some(true), None, Some(0), 100), Verdict::Take);
        // Runnable, first reading: measure.
        assert_eq!(judge(Some(true), Some(500), None, 0), Verdict::Measure(500));
        // Ran a quarter of the interval or more: computing in C, take.
        assert_eq!(judge(Some(true), Some(525), Some(500), 100), Verdict::Take);
        assert_eq!(judge(Some(true), Some(600), Some(500), 100), Verdict::Take);
        // Ran less: waiting for a CPU.
        assert_eq!(judge(Some(true), Some(524), Some(500), 100), Verdict::Wait(524));
        assert_eq!(judge(Some(true), Some(500), Some(500), 100), Verdict::Wait(500));
        // A clock that went backwards (it cannot, but) is no progress.
        assert_eq!(judge(Some(true), Some(400), Some(500), 100), Verdict::Wait(400));
    }
}
