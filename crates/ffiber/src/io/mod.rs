//! Waiting for I/O without holding an OS thread.
//!
//! Sockets are in [`crate::net`]. This module has the two other ways a
//! green thread does I/O:
//!
//! - [`ForeignFd`]: wait until a file descriptor that somebody else owns —
//!   a C library's socket (libpq's `PQsocket`, libcurl's active socket,
//!   c-ares, an eventfd) — is readable or writable. The green thread parks
//!   and the runtime's poller wakes it; the C library's own non-blocking
//!   calls then make progress. No thread per wait: a thousand green
//!   threads driving a thousand C connections need as many OS threads as
//!   there are Ps.
//! - [`blocking`]: run a system call that may block and that epoll cannot
//!   wait for — files (`std::fs`), `std::process`, name resolution
//!   (`ToSocketAddrs`, which calls `getaddrinfo`) — as a foreign call, so
//!   that the monitor hands the P to another OS thread if it lasts (Go
//!   does the same for file I/O: a system call under `entersyscall`).
//!
//! When to use which: if the fd can be made non-blocking and polled
//! (sockets, pipes, terminals, eventfd, timerfd, inotify), wait with
//! [`ForeignFd`] or the [`crate::net`] types; everything else goes through
//! [`blocking`]. A blocking call made without either stalls the P for as
//! long as it blocks (the monitor cannot tell a slow `read(2)` from
//! computation).

pub(crate) mod pollable;

use pollable::{Direction, Pollable};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Runs `f`, which may block in a system call (file I/O, DNS, waiting on
/// a child process), so that other green threads keep running meanwhile:
/// it is [`ffi::call`](crate::ffi::call) under a name that says what it is
/// for. Outside the runtime it just calls `f`.
///
/// `f` runs on the OS thread's own stack, like C does; it must not use
/// the runtime itself (spawn, sleep, channels) — do that around it.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("ffiber-doc-blocking-{}", std::process::id()));
/// ffiber::run(move || {
///     ffiber::io::blocking(|| std::fs::write(&dir, b"hello")).unwrap();
///     let back = ffiber::io::blocking(|| std::fs::read(&dir)).unwrap();
///     assert_eq!(back, b"hello");
///     ffiber::io::blocking(|| std::fs::remove_file(&dir)).unwrap();
/// });
/// ```
pub fn blocking<F: FnOnce() -> R, R>(f: F) -> R {
    crate::ffi::call_named(crate::ffi::Mode::Default, "ffiber::io::blocking", f)
}

/// A file descriptor owned by somebody else (typically a C library) that
/// green threads wait on: [`readable`](Self::readable) and
/// [`writable`](Self::writable) park the calling green thread until the fd
/// is ready, and the runtime's poller wakes it.
///
/// The fd must be in non-blocking mode for the library's own calls not to
/// block (most libraries that expose their socket set that themselves).
/// `ForeignFd` never closes the fd. **Drop it before the fd is closed**:
/// it takes the fd out of the poller when dropped, and if the number had
/// been reused by then it would take out the new fd instead.
///
/// On a plain OS thread it waits in `poll(2)`; an fd that epoll refuses
/// (a regular file, which is always ready) is waited for the same way.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// ffiber::run(|| {
///     // Stand-in for a C library's socket: one end of a socketpair.
///     let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
///     b.set_nonblocking(true).unwrap();
///     let fd = ffiber::io::ForeignFd::new(b.as_raw_fd());
///     let writer = ffiber::go(move || {
///         ffiber::sleep(std::time::Duration::from_millis(5));
///         a.write_all(b"ping").unwrap();
///     });
///     fd.readable().unwrap(); // parks; other green threads run
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"ping");
///     writer.join().unwrap();
/// });
/// ```
pub struct ForeignFd {
    p: Pollable,
}

impl ForeignFd {
    /// Wraps `fd` without taking ownership.
    pub fn new(fd: RawFd) -> ForeignFd {
        ForeignFd { p: Pollable::new(fd) }
    }

    /// Waits until the fd is readable (or hung up, or in error: the next
    /// read says which).
    pub fn readable(&self) -> io::Result<()> {
        self.p.ready(Direction::Read, None).map(drop)
    }

    /// Waits until the fd is writable (or in error).
    pub fn writable(&self) -> io::Result<()> {
        self.p.ready(Direction::Write, None).map(drop)
    }

    /// [`readable`](Self::readable) for at most `timeout`; an error of
    /// kind `TimedOut` when it passes.
    pub fn readable_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.ready_within(Direction::Read, timeout)
    }

    /// [`writable`](Self::writable) for at most `timeout`; an error of
    /// kind `TimedOut` when it passes.
    pub fn writable_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.ready_within(Direction::Write, timeout)
    }

    fn ready_within(&self, dir: Direction, timeout: Duration) -> io::Result<()> {
        let deadline = crate::time::deadline_after(timeout);
        match self.p.ready(dir, deadline)? {
            true => Ok(()),
            false => {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("fd {} not ready within {timeout:?}", self.p.fd())))
            }
        }
    }
}

impl AsRawFd for ForeignFd {
    fn as_raw_fd(&self) -> RawFd {
        self.p.fd()
    }
}

impl std::fmt::Debug for ForeignFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignFd").field("fd", &self.p.fd()).finish()
    }
}
