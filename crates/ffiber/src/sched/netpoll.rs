//! The network poller: Go's `netpoll.go` and `netpoll_epoll.go`.
//!
//! A green thread that gets `EAGAIN` from a socket parks; the poller wakes
//! it when the kernel says the descriptor is ready. One epoll instance per
//! runtime, created the first time a green thread waits on a descriptor
//! (a runtime that never waits for I/O has no epoll fd and pays nothing).
//!
//! # Descriptors and waiter words
//!
//! Each registered fd has a [`PollDesc`]: a *read* and a *write* waiter
//! word ([`WaitWord`]), each holding one of
//!
//! - `NIL`: nothing happened since the last waiter consumed readiness;
//! - `READY`: the kernel reported the direction ready (an edge) and nobody
//!   has consumed it yet;
//! - a green thread (an `Arc<G>` turned into a raw pointer, always > 1):
//!   it got `EAGAIN` and parks until the direction is ready.
//!
//! ```text
//!            waiter: arm (CAS)                     poller: fire (swap READY)
//!   NIL ---------------------------> G ------------------------------------> READY
//!    ^ \                             |  unpark G: it consumes READY (CAS -> NIL)  |
//!    |  \ poller: fire               | waiter: disarm on deadline (CAS G -> NIL)  |
//!    |   +------------------------> READY <--------------------------------------+
//!    +------------------------------- waiter: consume (CAS READY -> NIL)
//! ```
//!
//! The protocol never loses a wake-up, and no lock is taken on it:
//!
//! 1. The waiter publishes itself with one CAS `NIL -> G`. If the word is
//!    `READY` instead, an edge came after its failed attempt: it consumes
//!    it and retries the system call without parking.
//! 2. The poller *swaps* `READY` in and unparks whatever green thread it
//!    swapped out. The park token of a G remembers an unpark that comes
//!    before the park (`sched::g`), so "the poller fired between the CAS
//!    and the park" makes the park return at once.
//! 3. A waiter whose deadline passed takes itself out with CAS `G -> NIL`.
//!    If that fails, the poller fired: the waiter owns the readiness and
//!    reports success, not a timeout. Exactly one of the two sides takes
//!    the `Arc<G>` reference the word held.
//!
//! One green thread per direction waits at a time: the socket types take a
//! per-direction lock on the slow path (`net::Pollable`), as Go's `fdMutex`.
//! `loom_wait_word` below checks 1–3 under every interleaving.
//!
//! Descriptors are registered once, edge-triggered (`EPOLLET`) for input,
//! output and hang-up; the event's data is the descriptor's address with a
//! 16-bit sequence number in its top bits. A `PollDesc` is never freed, only
//! recycled with its sequence number bumped, so an event that was harvested
//! for a descriptor since closed (and perhaps reused) is either ignored or
//! at worst a spurious wake-up — which every waiter tolerates, because it
//! retries its system call.
//!
//! # Who polls (see `sched::find_runnable`, `stop_m`, `sysmon`)
//!
//! - An M that runs out of local and global work polls without blocking
//!   before it steals, if some green thread waits and no M is blocked in
//!   the poller.
//! - The timer watcher — the last M to go idle — blocks in `epoll_wait`
//!   (with the earliest timer as its timeout) instead of on its futex while
//!   some green thread waits for I/O, so one thread waits for both. An
//!   eventfd breaks that wait: [`M::unpark`](super::m::M::unpark) writes it
//!   when the watcher is in the poller (an earlier timer, a P handed over,
//!   shutdown).
//! - The monitor polls if nobody has for 10 ms (every P busy with CPU work).

use super::Sched;
use super::g::G;
use crate::loom::{AtomicUsize, Ordering};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::Duration;

/// Nothing happened since readiness was last consumed.
pub(crate) const NIL: usize = 0;
/// The direction became ready and nobody consumed it yet.
pub(crate) const READY: usize = 1;

/// The monitor polls when nobody has for this long.
pub(crate) const POLL_STALE: Duration = Duration::from_millis(10);

/// One direction's waiter word (see the module docs).
pub(crate) struct WaitWord(AtomicUsize);

/// What [`WaitWord::arm`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Armed {
    /// The word was `READY`: consumed; retry the operation.
    Ready,
    /// The caller is published and may park.
    Waiting,
    /// Another waiter is published (the caller broke the one-waiter rule).
    Busy,
}

impl WaitWord {
    pub(crate) fn new() -> WaitWord {
        WaitWord(AtomicUsize::new(NIL))
    }

    /// Publishes waiter `me` (> `READY`), or consumes a pending `READY`.
    pub(crate) fn arm(&self, me: usize) -> Armed {
        debug_assert!(me > READY);
        let mut cur = NIL;
        loop {
            match self.0.compare_exchange(cur, if cur == READY { NIL } else { me }, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(READY) => return Armed::Ready,
                Ok(_) => return Armed::Waiting,
                Err(x) if x == NIL || x == READY => cur = x,
                Err(_) => return Armed::Busy,
            }
        }
    }

    /// Marks the direction ready; returns the waiter it displaced, whose
    /// reference the caller now owns and must wake.
    pub(crate) fn fire(&self) -> Option<usize> {
        let old = self.0.swap(READY, Ordering::AcqRel);
        (old > READY).then_some(old)
    }

    /// Takes waiter `me` back out (its deadline passed). False if the
    /// poller fired first: then the word is `READY` and the poller owns
    /// (and wakes) `me`.
    pub(crate) fn disarm(&self, me: usize) -> bool {
        self.0.compare_exchange(me, NIL, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Whether the word still holds waiter `me`.
    pub(crate) fn holds(&self, me: usize) -> bool {
        self.0.load(Ordering::Acquire) == me
    }

    /// Whether some green thread waits in the word.
    fn holds_waiter(&self) -> bool {
        self.0.load(Ordering::Acquire) > READY
    }

    /// Consumes a `READY` left by a fire (after the waiter was woken).
    pub(crate) fn consume(&self) {
        let _ = self.0.compare_exchange(READY, NIL, Ordering::AcqRel, Ordering::Acquire);
    }

    fn reset(&self) {
        self.0.store(NIL, Ordering::Release);
    }
}

/// Which way a green thread waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// A registered descriptor's state (see the module docs). Never freed:
/// kept in [`DESCS`] between registrations.
pub(crate) struct PollDesc {
    seq: AtomicU64,
    pub(crate) rg: WaitWord,
    pub(crate) wg: WaitWord,
}

impl PollDesc {
    pub(crate) fn word(&self, dir: Dir) -> &WaitWord {
        match dir {
            Dir::Read => &self.rg,
            Dir::Write => &self.wg,
        }
    }

    /// Fires `dir` and wakes the green thread that waited, if any (the
    /// poller on an event; `shutdown` on its own socket).
    pub(crate) fn fire(&self, dir: Dir) {
        if let Some(w) = self.word(dir).fire() {
            // SAFETY: a word holds a waiter only as `Arc::into_raw(Arc<G>)`
            // (`Registration::wait`), and `fire` swapped it out, so this
            // side owns that reference now (the waiter's `disarm` fails).
            let g = unsafe { Arc::from_raw(w as *const G) };
            g.unpark();
        }
    }
}

/// Recycled descriptors (all runtimes share them).
static DESCS: std::sync::Mutex<Vec<&'static PollDesc>> = std::sync::Mutex::new(Vec::new());

fn alloc_desc() -> &'static PollDesc {
    let d = DESCS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let d = d.unwrap_or_else(|| {
        Box::leak(Box::new(PollDesc { seq: AtomicU64::new(0), rg: WaitWord::new(), wg: WaitWord::new() }))
    });
    d.rg.reset();
    d.wg.reset();
    d
}

fn free_desc(d: &'static PollDesc) {
    d.seq.fetch_add(1, SeqCst);
    DESCS.lock().unwrap_or_else(|e| e.into_inner()).push(d);
}

const SEQ_SHIFT: u32 = 48;
/// Event data of the wake-up eventfd (no descriptor lives at address 0).
const WAKE_DATA: u64 = 0;

/// How long [`Poller::poll`] may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    Now,
    For(Duration),
    Forever,
}

/// One runtime's epoll instance.
pub(crate) struct Poller {
    epfd: OwnedFd,
    wakefd: OwnedFd,
    /// A wake-up was written to `wakefd` and not yet drained.
    wake_pending: AtomicBool,
    /// Green threads parked in a [`WaitWord`] of this poller.
    waiters: AtomicUsize,
    /// An M is blocked in `epoll_wait` (the watcher).
    blocked: AtomicBool,
    /// When the poller was last polled (runtime clock, ns).
    last_poll: AtomicU64,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: plain system calls; each result is checked before it is
        // wrapped in an `OwnedFd`, which then owns and closes it.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if ep < 0 {
                return Err(io::Error::last_os_error());
            }
            let epfd = OwnedFd::from_raw_fd(ep);
            let ev = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if ev < 0 {
                return Err(io::Error::last_os_error());
            }
            let wakefd = OwnedFd::from_raw_fd(ev);
            let mut e = libc::epoll_event { events: libc::EPOLLIN as u32, u64: WAKE_DATA };
            if libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ev, &mut e) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Poller {
                epfd,
                wakefd,
                wake_pending: AtomicBool::new(false),
                waiters: AtomicUsize::new(0),
                blocked: AtomicBool::new(false),
                last_poll: AtomicU64::new(0),
            })
        }
    }

    /// Registers `fd` (edge-triggered, both directions). `EPERM` means the
    /// fd cannot be polled (a regular file): the caller treats it as
    /// always ready.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<&'static PollDesc> {
        let d = alloc_desc();
        let data = (d as *const PollDesc as u64) | ((d.seq.load(SeqCst) & 0xffff) << SEQ_SHIFT);
        let mut e = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: data,
        };
        // SAFETY: `e` is a valid event for the call's duration; a bad fd is
        // reported as an error, not undefined behaviour.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut e) } < 0 {
            let err = io::Error::last_os_error();
            free_desc(d);
            return Err(err);
        }
        Ok(d)
    }

    /// Takes `fd` out of the poller (before it is closed) and recycles its
    /// descriptor. No green thread may be waiting on it.
    pub(crate) fn deregister(&self, fd: RawFd, d: &'static PollDesc) {
        let mut e = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `register`; failure (the fd is already closed) is
        // harmless: closing removed it.
        unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut e) };
        free_desc(d);
    }

    /// Some green thread waits on this poller.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(SeqCst) > 0
    }

    pub(crate) fn waiter_added(&self) {
        self.waiters.fetch_add(1, SeqCst);
    }

    pub(crate) fn waiter_gone(&self) {
        self.waiters.fetch_sub(1, SeqCst);
    }

    /// An M is blocked in the poller right now.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.load(SeqCst)
    }

    /// Nanoseconds (runtime clock) of the last poll.
    pub(crate) fn last_poll(&self) -> u64 {
        self.last_poll.load(Relaxed)
    }

    /// Breaks a blocking [`poll`](Self::poll) (at most one write until the
    /// poller drains it).
    pub(crate) fn wake(&self) {
        if self.wake_pending.swap(true, SeqCst) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.wakefd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Harvests ready descriptors, waiting as `wait` says, and wakes their
    /// green threads (onto the caller's P if it holds one, else the global
    /// queue). Returns how many green threads it woke.
    pub(crate) fn poll(&self, sched: &Sched, wait: Wait) -> usize {
        let timeout_ns: i64 = match wait {
            Wait::Now => 0,
            Wait::For(d) => d.as_nanos().min(i64::MAX as u128 / 2) as i64,
            Wait::Forever => -1,
        };
        let blocking = timeout_ns != 0;
        if blocking {
            self.blocked.store(true, SeqCst);
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 128];
        let n = epoll_wait(self.epfd.as_raw_fd(), &mut events, timeout_ns);
        if blocking {
            self.blocked.store(false, SeqCst);
        }
        self.last_poll.store(sched.now(), Relaxed);
        let mut woken = 0;
        for e in &events[..n] {
            let (bits, data) = (e.events, e.u64);
            if data == WAKE_DATA {
                // Clear the flag before draining: a wake-up in between then
                // writes again (one spare event) rather than being lost.
                self.wake_pending.store(false, SeqCst);
                let mut buf = 0u64;
                // SAFETY: reads 8 bytes into a local from our eventfd.
                unsafe { libc::read(self.wakefd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
                continue;
            }
            let addr = (data & ((1 << SEQ_SHIFT) - 1)) as usize;
            // SAFETY: `data` was built from a `&'static PollDesc` in
            // `register`; descriptors are never freed, so the address is
            // valid even if the descriptor was recycled (the sequence
            // check below then skips the event).
            let d = unsafe { &*(addr as *const PollDesc) };
            if d.seq.load(SeqCst) & 0xffff != data >> SEQ_SHIFT {
                continue;
            }
            let hup = libc::EPOLLHUP | libc::EPOLLERR;
            if bits & (libc::EPOLLIN | libc::EPOLLRDHUP | hup) as u32 != 0 {
                woken += usize::from(d.rg.holds_waiter());
                d.fire(Dir::Read);
            }
            if bits & (libc::EPOLLOUT | hup) as u32 != 0 {
                woken += usize::from(d.wg.holds_waiter());
                d.fire(Dir::Write);
            }
        }
        woken
    }
}

/// `epoll_wait` with a nanosecond timeout (`epoll_pwait2`, Linux 5.11;
/// older kernels: `epoll_wait` rounded up to the millisecond). Returns the
/// number of events; errors (EINTR) count as none.
fn epoll_wait(epfd: RawFd, events: &mut [libc::epoll_event], timeout_ns: i64) -> usize {
    static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
    let max = events.len() as libc::c_int;
    let n = if timeout_ns > 0 && !NO_PWAIT2.load(Relaxed) {
        let ts = libc::timespec { tv_sec: timeout_ns / 1_000_000_000, tv_nsec: timeout_ns % 1_000_000_000 };
        // SAFETY: `events` and `ts` are valid for the call; a null sigmask
        // leaves the signal mask alone.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                events.as_mut_ptr(),
                max,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_PWAIT2.store(true, Relaxed);
            return epoll_wait(epfd, events, timeout_ns);
        }
        n as libc::c_int
    } else {
        let ms = if timeout_ns <= 0 {
            timeout_ns as libc::c_int
        } else {
            ((timeout_ns + 999_999) / 1_000_000).min(i32::MAX as i64) as libc::c_int
        };
        // SAFETY: `events` is valid for `max` entries.
        unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max, ms) }
    };
    usize::try_from(n).unwrap_or(0)
}

impl Sched {
    /// This runtime's poller, created on first use.
    pub(crate) fn poller(&self) -> io::Result<&Arc<Poller>> {
        if let Some(p) = self.netpoll.get() {
            return Ok(p);
        }
        let p = Poller::new()?;
        Ok(self.netpoll.get_or_init(|| Arc::new(p)))
    }

    /// The poller, if some green thread waits on it (the cheap check every
    /// poll site makes first).
    #[inline]
    pub(crate) fn poller_wanted(&self) -> Option<&Arc<Poller>> {
        self.netpoll.get().filter(|p| p.has_waiters())
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool as LBool;

    /// Loom model of the waiter-word protocol: a reader that got EAGAIN
    /// arms and parks (optionally with a deadline that may pass at any
    /// moment); the poller makes the data available, then fires. The
    /// reader always ends up with the data or a timeout that left the word
    /// clean, and never sleeps through the fire (loom reports a deadlock).
    /// Run with `RUSTFLAGS="--cfg loom" cargo test -p ffiber --lib --release loom`.
    #[test]
    fn loom_wait_word() {
        for timeout in [false, true] {
            loom::model(move || {
                let word = Arc::new(WaitWord::new());
                let data = Arc::new(LBool::new(false));
                let reader = loom::thread::current();
                let poller = {
                    let (word, data) = (word.clone(), data.clone());
                    loom::thread::spawn(move || {
                        data.store(true, Ordering::SeqCst);
                        if word.fire().is_some() {
                            reader.unpark();
                        }
                    })
                };
                const ME: usize = 8;
                let mut got = false;
                let mut timed_out = false;
                loop {
                    if data.load(Ordering::SeqCst) {
                        got = true;
                        break;
                    }
                    match word.arm(ME) {
                        Armed::Ready => continue,
                        Armed::Busy => unreachable!(),
                        Armed::Waiting => {}
                    }
                    if timeout {
                        // The deadline passes before any park.
                        if word.disarm(ME) {
                            timed_out = true;
                            break;
                        }
                        word.consume();
                        continue;
                    }
                    while word.holds(ME) {
                        loom::thread::park();
                    }
                    word.consume();
                }
                poller.join().unwrap();
                assert!(got || timed_out);
                if timed_out {
                    // The word holds no waiter: the poller never wakes a
                    // thread that left.
                    assert!(!word.holds(ME));
                }
            });
        }
    }
}
