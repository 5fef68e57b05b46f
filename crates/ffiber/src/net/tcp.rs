//! TCP: [`TcpListener`] and [`TcpStream`].

use super::{addr, each_addr, socket_common, socket_timeouts, stream_io};
use crate::io::pollable::{Direction, Pollable};
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A TCP server socket: `std::net::TcpListener` whose `accept` parks the
/// green thread instead of its OS thread.
///
/// ```
/// ffiber::run(|| {
///     let l = ffiber::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     let c = ffiber::go(move || ffiber::net::TcpStream::connect(addr).unwrap());
///     let (s, peer) = l.accept().unwrap();
///     assert_eq!(peer, c.join().unwrap().local_addr().unwrap());
///     assert_eq!(s.local_addr().unwrap(), addr);
/// });
/// ```
pub struct TcpListener {
    poll: Pollable,
    inner: std::net::TcpListener,
}

socket_common!(TcpListener, std::net::TcpListener);

impl TcpListener {
    /// Binds to `addr` (each resolved address in turn), with
    /// `SO_REUSEADDR` as std sets it.
    ///
    /// The backlog is the system's maximum (`net.core.somaxconn`), as Go
    /// uses, rather than std's 128: a burst of thousands of connects then
    /// waits in the kernel's queue instead of retransmitting SYNs for
    /// seconds.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let l = each_addr(addr, |a| std::net::TcpListener::bind(a))?;
        // SAFETY: listen(2) on a socket we own; calling it again on a
        // listening socket only changes the backlog.
        unsafe { libc::listen(l.as_raw_fd(), somaxconn()) };
        Ok(TcpListener::from(l))
    }

    /// Accepts a connection, parking the green thread until one comes.
    /// The new stream is non-blocking and close-on-exec.
    ///
    /// At the process's fd limit (`EMFILE`, `ENFILE`) the error is
    /// returned, as std does; a server loop should pause before accepting
    /// again (the pending connection stays queued in the kernel).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.poll.io(Direction::Read, || {
            // SAFETY: sockaddr_storage is plain data (zeroes are valid);
            // the kernel writes at most `len` bytes into it.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: as above; accept4 returns a new fd we then own.
            let fd = unsafe {
                libc::accept4(
                    self.inner.as_raw_fd(),
                    (&mut ss as *mut libc::sockaddr_storage).cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: accept4 just returned this open fd, owned by nobody else.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let peer = addr::from_raw(&ss)?;
            Ok((TcpStream::from_nonblocking(std::net::TcpStream::from(owned)), peer))
        })
    }

    /// An iterator over incoming connections (never ends; errors are
    /// yielded).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// A second handle to the same socket (a new fd).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener::from(self.inner.try_clone()?))
    }
}

/// `net.core.somaxconn`, read once (4096 if unreadable).
fn somaxconn() -> libc::c_int {
    static V: std::sync::OnceLock<libc::c_int> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&n: &libc::c_int| n > 0)
            .unwrap_or(4096)
    })
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection: `std::net::TcpStream` whose reads, writes and
/// connects park the green thread instead of its OS thread.
///
/// `Read` and `Write` are implemented for `TcpStream` and `&TcpStream`, so
/// one green thread can read while another writes the same connection.
pub struct TcpStream {
    poll: Pollable,
    inner: std::net::TcpStream,
}

socket_common!(TcpStream, std::net::TcpStream);
socket_timeouts!(TcpStream);
stream_io!(TcpStream);

impl TcpStream {
    fn from_nonblocking(s: std::net::TcpStream) -> TcpStream {
        TcpStream { poll: Pollable::new(s.as_raw_fd()), inner: s }
    }

    /// Connects to `addr`, trying each resolved address in turn; the green
    /// thread parks while the handshake is in flight.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| connect(a, None))
    }

    /// Connects to one address, failing with `TimedOut` after `timeout`. A
    /// zero timeout is refused (`InvalidInput`), as std does.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
        }
        connect(addr, Some(timeout))
    }

    /// Reads without taking the data out of the receive queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll.io(Direction::Read, || self.inner.peek(buf))
    }

    /// Shuts down the read, write or both halves. Green threads blocked on
    /// this connection wake: a reader sees end of file, a writer an error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.shutdown(how);
        self.poll.wake_all();
        r
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A second handle to the same connection (a new fd; timeouts are
    /// not shared, as they are the runtime's).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream::from_nonblocking(self.inner.try_clone()?))
    }
}

/// A non-blocking connect: start it, park until the socket is writable,
/// read the outcome from `SO_ERROR`.
fn connect(a: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let family = if a.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain system call; the result is checked, then owned.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nobody else owns.
    let s = TcpStream::from_nonblocking(std::net::TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    let (ss, len) = addr::to_raw(a);
    // SAFETY: `ss` holds a valid address of `len` bytes.
    let r = unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if r == 0 {
        return Ok(s);
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINPROGRESS) | Some(libc::EINTR)) {
        return Err(e);
    }
    let deadline = timeout.and_then(crate::time::deadline_after);
    loop {
        if !s.poll.ready(Direction::Write, deadline)? {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {a} timed out")));
        }
        match s.inner.take_error()? {
            Some(e) => return Err(e),
            None if s.inner.peer_addr().is_ok() => return Ok(s),
            // Writable with no error but not connected: spurious; wait on.
            None if deadline.is_none_or(|d| Instant::now() < d) => continue,
            None => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {a} timed out"))),
        }
    }
}
