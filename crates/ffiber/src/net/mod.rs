//! Networking for green threads, with `std::net`'s names and behaviour.
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`] and [`UnixDatagram`] have the methods of their `std`
//! namesakes, so code ports by changing an import. The difference is what
//! a blocking call does: on a green thread, a read that finds no data
//! parks the green thread, its P runs others, and the runtime's network
//! poller (epoll, see `sched/netpoll.rs` and docs/DESIGN.md) wakes it when
//! the socket is ready. Ten thousand connections need ten thousand small
//! green-thread stacks, not ten thousand OS threads.
//!
//! On a plain OS thread outside any runtime the same types block like
//! std's (they wait in `poll(2)`), so a socket may be created anywhere and
//! used anywhere.
//!
//! Timeouts (`set_read_timeout`, `set_write_timeout`) are the runtime's,
//! not the kernel's `SO_RCVTIMEO`: a wait that reaches its timeout fails
//! with [`std::io::ErrorKind::WouldBlock`], as std's sockets do on Linux;
//! `connect_timeout` fails with `TimedOut`. The sockets are always in
//! non-blocking mode underneath; `set_nonblocking(true)` makes the types
//! return `WouldBlock` instead of waiting.
//!
//! Name resolution (`ToSocketAddrs` with a host name) calls
//! `getaddrinfo`, which blocks: it runs inside
//! [`io::blocking`](crate::io::blocking), so other green threads keep
//! running.
//!
//! ```
//! use std::io::{Read, Write};
//! use ffiber::net::{TcpListener, TcpStream};
//!
//! ffiber::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = ffiber::go(move || {
//!         let (mut s, _) = listener.accept().unwrap();
//!         let mut buf = [0; 5];
//!         s.read_exact(&mut buf).unwrap();
//!         s.write_all(&buf).unwrap(); // echo
//!     });
//!     let mut c = TcpStream::connect(addr).unwrap();
//!     c.write_all(b"hello").unwrap();
//!     let mut back = [0; 5];
//!     c.read_exact(&mut back).unwrap();
//!     assert_eq!(&back, b"hello");
//!     server.join().unwrap();
//! });
//! ```

mod addr;
mod tcp;
mod udp;
mod unix;

pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

use std::io;

/// Resolves `addr` (a host name may need DNS: done as a blocking call).
fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = crate::io::blocking(|| addr.to_socket_addrs())?.collect();
    if v.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"));
    }
    Ok(v)
}

/// Tries `f` on each address of `addr` in turn; the last error if all fail.
fn each_addr<A: ToSocketAddrs, T>(addr: A, mut f: impl FnMut(&SocketAddr) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")))
}

/// The fd traits and std conversions every socket type has: `$ty` wraps
/// `inner: $std` (a std socket in non-blocking mode) and `poll: Pollable`,
/// declared in that order so that the fd leaves the poller before it is
/// closed.
macro_rules! socket_common {
    ($ty:ident, $std:ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.inner)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.inner)
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            /// The fd stays in non-blocking mode.
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                let $ty { poll, inner } = self;
                drop(poll); // out of the poller first
                std::os::fd::IntoRawFd::into_raw_fd(inner)
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: forwarded: the caller hands over an open socket fd.
                <$ty>::from(unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) })
            }
        }

        impl From<$std> for $ty {
            /// Wraps a std socket, switching it to non-blocking mode.
            fn from(s: $std) -> $ty {
                let _ = s.set_nonblocking(true);
                $ty { poll: crate::io::pollable::Pollable::new(std::os::fd::AsRawFd::as_raw_fd(&s)), inner: s }
            }
        }

        impl From<std::os::fd::OwnedFd> for $ty {
            fn from(fd: std::os::fd::OwnedFd) -> $ty {
                <$ty>::from(<$std>::from(fd))
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.inner.fmt(f)
            }
        }

        impl $ty {
            /// Whether calls return `WouldBlock` instead of waiting
            /// (std's `set_nonblocking`; the fd itself is always
            /// non-blocking).
            pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
                self.poll.set_nonblocking(nonblocking);
                Ok(())
            }

            /// Takes the socket's pending error (`SO_ERROR`).
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.inner.take_error()
            }

            /// The underlying std socket (non-blocking), for options this
            /// type does not wrap.
            pub fn as_std(&self) -> &$std {
                &self.inner
            }
        }
    };
}

/// `set_read_timeout` and friends, kept by the runtime.
macro_rules! socket_timeouts {
    ($ty:ident) => {
        impl $ty {
            /// Bounds how long a read waits; `None` waits for ever. When it
            /// passes, the read fails with `WouldBlock`. A zero duration is
            /// refused (`InvalidInput`), as std does.
            pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
                self.poll.set_timeout(crate::io::pollable::Direction::Read, dur)
            }

            /// Bounds how long a write waits (see
            /// [`set_read_timeout`](Self::set_read_timeout)).
            pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
                self.poll.set_timeout(crate::io::pollable::Direction::Write, dur)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.poll.timeout(crate::io::pollable::Direction::Read))
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.poll.timeout(crate::io::pollable::Direction::Write))
            }
        }
    };
}

/// `Read` and `Write` for a stream type and for a shared reference to it.
macro_rules! stream_io {
    ($ty:ident) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.poll.io(crate::io::pollable::Direction::Read, || std::io::Read::read(&mut &self.inner, buf))
            }

            fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
                self.poll
                    .io(crate::io::pollable::Direction::Read, || std::io::Read::read_vectored(&mut &self.inner, bufs))
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.poll.io(crate::io::pollable::Direction::Write, || std::io::Write::write(&mut &self.inner, buf))
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.poll.io(crate::io::pollable::Direction::Write, || {
                    std::io::Write::write_vectored(&mut &self.inner, bufs)
                })
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

use {socket_common, socket_timeouts, stream_io};
