//! The descriptor side of the network poller: what every socket type in
//! [`crate::net`] and [`ForeignFd`](super::ForeignFd) wait through.
//!
//! A [`Pollable`] names an fd (it does not own it), registers it with the
//! poller of the first runtime whose green thread waits on it, and turns
//! "the system call said `EAGAIN`" into "park until the poller says the fd
//! is ready, then try again" (`io`). Where there is no poller to use — a
//! plain OS thread, a green thread of another runtime than the one the fd
//! was registered with, an fd epoll refuses (a regular file) — it waits in
//! `poll(2)` instead, on a green thread inside a foreign call so that the
//! monitor hands the P off while it waits.

use crate::sched::g::G;
use crate::sched::netpoll::{Armed, Dir, PollDesc, Poller};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub(crate) use crate::sched::netpoll::Dir as Direction;

/// Where an fd is registered.
struct Registration {
    poller: Arc<Poller>,
    desc: &'static PollDesc,
}

/// An fd that green threads wait on (see the module docs).
pub(crate) struct Pollable {
    fd: RawFd,
    /// Set on the first wait from a green thread; `None` if it could not be
    /// registered (then `poll(2)` is used).
    reg: OnceLock<Option<Registration>>,
    /// One waiter per direction at a time (the waiter words hold one).
    locks: [crate::sync::Mutex<()>; 2],
    /// Read and write timeouts in nanoseconds; 0: none.
    timeouts: [AtomicU64; 2],
    /// `set_nonblocking(true)`: report `WouldBlock` instead of waiting.
    nonblocking: AtomicBool,
}

fn idx(dir: Dir) -> usize {
    match dir {
        Dir::Read => 0,
        Dir::Write => 1,
    }
}

impl Pollable {
    pub(crate) fn new(fd: RawFd) -> Pollable {
        Pollable {
            fd,
            reg: OnceLock::new(),
            locks: [crate::sync::Mutex::new(()), crate::sync::Mutex::new(())],
            timeouts: [AtomicU64::new(0), AtomicU64::new(0)],
            nonblocking: AtomicBool::new(false),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Runs `op` (a non-blocking system call) until it does not say
    /// `WouldBlock`, waiting for `dir` in between, within the direction's
    /// timeout. A timeout is reported as `WouldBlock`, as std's sockets do.
    pub(crate) fn io<T>(&self, dir: Dir, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.load(Relaxed) => {}
            r => return r,
        }
        let deadline = self.timeout(dir).and_then(crate::time::deadline_after);
        let _one = self.locks[idx(dir)].lock();
        loop {
            if !self.wait(dir, deadline)? {
                return Err(timed_out(dir, io::ErrorKind::WouldBlock));
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Waits until `dir` is ready *now* (checked with `poll(2)`, so never
    /// spuriously), or `deadline`. Returns whether it is ready.
    pub(crate) fn ready(&self, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
        let _one = self.locks[idx(dir)].lock();
        loop {
            if poll_fd(self.fd, dir, Some(Instant::now()))? {
                return Ok(true);
            }
            if !self.wait(dir, deadline)? {
                return Ok(false);
            }
        }
    }

    /// Parks until the poller reports `dir` (possibly spuriously) or
    /// `deadline` passes. Returns false on the deadline. The caller holds
    /// the direction's lock.
    fn wait(&self, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
        let Some(g) = crate::sched::current_g_arc() else {
            return poll_fd(self.fd, dir, deadline);
        };
        let reg = self.reg.get_or_init(|| {
            let poller = g.sched.poller().ok()?.clone();
            let desc = poller.register(self.fd).ok()?;
            Some(Registration { poller, desc })
        });
        match reg {
            Some(r) if g.sched.netpoll.get().is_some_and(|p| Arc::ptr_eq(p, &r.poller)) => r.wait(&g, dir, deadline),
            _ => crate::ffi::call_named(crate::ffi::Mode::Default, "poll", || poll_fd(self.fd, dir, deadline)),
        }
    }

    /// Wakes whoever waits on this fd, in both directions (after a
    /// `shutdown`, which the kernel may not report as an edge to every
    /// waiter): they retry their system call, which now fails or ends.
    pub(crate) fn wake_all(&self) {
        if let Some(Some(r)) = self.reg.get() {
            r.desc.fire(Dir::Read);
            r.desc.fire(Dir::Write);
        }
    }

    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        let ns = match t {
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
            None => 0,
        };
        self.timeouts[idx(dir)].store(ns, Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        match self.timeouts[idx(dir)].load(Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Relaxed);
    }
}

impl Drop for Pollable {
    fn drop(&mut self) {
        if let Some(Some(r)) = self.reg.take() {
            r.poller.deregister(self.fd, r.desc);
        }
    }
}

impl Registration {
    /// The waiter's side of the protocol in `sched::netpoll`.
    fn wait(&self, g: &Arc<G>, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
        let word = self.desc.word(dir);
        let me = Arc::into_raw(g.clone()) as usize;
        match word.arm(me) {
            Armed::Waiting => {}
            armed => {
                // SAFETY: `me` was made by `into_raw` just above and was not
                // published (the CAS failed), so we still own it.
                drop(unsafe { Arc::from_raw(me as *const G) });
                return match armed {
                    Armed::Ready => Ok(true),
                    _ => Err(io::Error::other("ffiber: two green threads waited on one direction of an fd at once")),
                };
            }
        }
        self.poller.waiter_added();
        let ready = loop {
            crate::sync::park::park(deadline);
            if !word.holds(me) {
                // The poller (or `wake_all`) fired and took our reference.
                word.consume();
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if word.disarm(me) {
                    // SAFETY: the CAS took `me` out of the word: the
                    // reference it held is ours again.
                    drop(unsafe { Arc::from_raw(me as *const G) });
                    break false;
                }
                // Fired just now: the readiness is ours.
                word.consume();
                break true;
            }
        };
        self.poller.waiter_gone();
        Ok(ready)
    }
}

/// `poll(2)` on one fd until `dir` is ready or `deadline` (`None`: no
/// deadline; `Some(now)`: just look). Hang-up and errors count as ready
/// (the next system call reports them). Returns whether it is ready.
pub(crate) fn poll_fd(fd: RawFd, dir: Dir, deadline: Option<Instant>) -> io::Result<bool> {
    let events = match dir {
        Dir::Read => libc::POLLIN | libc::POLLRDHUP,
        Dir::Write => libc::POLLOUT,
    };
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut p = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one valid pollfd for the call's duration.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            if p.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(true);
        }
        if r == 0 {
            if ms == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The error for a wait that reached its deadline.
pub(crate) fn timed_out(dir: Dir, kind: io::ErrorKind) -> io::Error {
    let what = match dir {
        Dir::Read => "reading (set_read_timeout)",
        Dir::Write => "writing (set_write_timeout)",
    };
    io::Error::new(kind, format!("timed out {what}"))
}
