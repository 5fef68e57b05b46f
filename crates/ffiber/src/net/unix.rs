//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`].

use super::{socket_common, socket_timeouts, stream_io};
use crate::io::pollable::{Direction, Pollable};
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

/// A Unix-domain stream server socket:
/// `std::os::unix::net::UnixListener` whose `accept` parks the green
/// thread.
pub struct UnixListener {
    poll: Pollable,
    inner: std::os::unix::net::UnixListener,
}

socket_common!(UnixListener, std::os::unix::net::UnixListener);

impl UnixListener {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        Ok(UnixListener::from(std::os::unix::net::UnixListener::bind(path)?))
    }

    /// Accepts a connection, parking until one comes.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.poll.io(Direction::Read, || self.inner.accept())?;
        Ok((UnixStream::from(s), a))
    }

    /// An iterator over incoming connections (never ends).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A second handle to the same socket (a new fd).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener::from(self.inner.try_clone()?))
    }
}

/// Iterator returned by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix-domain stream: `std::os::unix::net::UnixStream` whose reads and
/// writes park the green thread. `Read`/`Write` for it and for `&UnixStream`.
///
/// ```
/// use std::io::{Read, Write};
/// ffiber::run(|| {
///     let (mut a, mut b) = ffiber::net::UnixStream::pair().unwrap();
///     let t = ffiber::go(move || {
///         let mut s = String::new();
///         b.read_to_string(&mut s).unwrap(); // until `a` is dropped
///         s
///     });
///     a.write_all(b"over a socketpair").unwrap();
///     drop(a);
///     assert_eq!(t.join().unwrap(), "over a socketpair");
/// });
/// ```
pub struct UnixStream {
    poll: Pollable,
    inner: std::os::unix::net::UnixStream,
}

socket_common!(UnixStream, std::os::unix::net::UnixStream);
socket_timeouts!(UnixStream);
stream_io!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`. (A Unix connect completes at
    /// once unless the listener's backlog is full; it runs as a blocking
    /// call, so a full backlog does not stall the P.)
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let s = crate::io::blocking(|| std::os::unix::net::UnixStream::connect(path))?;
        Ok(UnixStream::from(s))
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
    }

    /// Shuts down one or both halves; blocked readers and writers wake.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.shutdown(how);
        self.poll.wake_all();
        r
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// A second handle (a new fd).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream::from(self.inner.try_clone()?))
    }
}

/// A Unix-domain datagram socket whose sends and receives park the green
/// thread.
pub struct UnixDatagram {
    poll: Pollable,
    inner: std::os::unix::net::UnixDatagram,
}

socket_common!(UnixDatagram, std::os::unix::net::UnixDatagram);
socket_timeouts!(UnixDatagram);

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(std::os::unix::net::UnixDatagram::bind(path)?))
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(std::os::unix::net::UnixDatagram::unbound()?))
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    /// Sets the default peer.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sends one datagram to `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.poll.io(Direction::Write, || self.inner.send_to(buf, path))
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.poll.io(Direction::Read, || self.inner.recv_from(buf))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.poll.io(Direction::Write, || self.inner.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll.io(Direction::Read, || self.inner.recv(buf))
    }

    /// Shuts down one or both halves; blocked receivers and senders wake.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.inner.shutdown(how);
        self.poll.wake_all();
        r
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// A second handle (a new fd).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(self.inner.try_clone()?))
    }
}
