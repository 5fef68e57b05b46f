//! UDP: [`UdpSocket`].

use super::{each_addr, resolve, socket_common, socket_timeouts};
use crate::io::pollable::{Direction, Pollable};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// A UDP socket: `std::net::UdpSocket` whose sends and receives park the
/// green thread instead of its OS thread.
///
/// ```
/// use ffiber::net::UdpSocket;
/// ffiber::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let to = b.local_addr().unwrap();
///     let rx = ffiber::go(move || {
///         let mut buf = [0; 16];
///         let (n, from) = b.recv_from(&mut buf).unwrap(); // parks until it comes
///         (buf[..n].to_vec(), from)
///     });
///     a.send_to(b"datagram", to).unwrap();
///     let (got, from) = rx.join().unwrap();
///     assert_eq!((got.as_slice(), from), (&b"datagram"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    poll: Pollable,
    inner: std::net::UdpSocket,
}

socket_common!(UdpSocket, std::net::UdpSocket);
socket_timeouts!(UdpSocket);

impl UdpSocket {
    /// Binds to `addr` (each resolved address in turn).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        Ok(UdpSocket::from(each_addr(addr, |a| std::net::UdpSocket::bind(a))?))
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.poll.io(Direction::Read, || self.inner.recv_from(buf))
    }

    /// [`recv_from`](Self::recv_from) without taking the datagram off the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.poll.io(Direction::Read, || self.inner.peek_from(buf))
    }

    /// Sends one datagram to `addr` (the first address it resolves to).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?[0];
        self.poll.io(Direction::Write, || self.inner.send_to(buf, to))
    }

    /// Sets the default peer (and filters what `recv` receives).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.inner.connect(a))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.poll.io(Direction::Write, || self.inner.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll.io(Direction::Read, || self.inner.recv(buf))
    }

    /// [`recv`](Self::recv) without taking the datagram off the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll.io(Direction::Read, || self.inner.peek(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// A second handle to the same socket (a new fd).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket::from(self.inner.try_clone()?))
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Joins an IPv4 multicast group.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(group, interface)
    }
}
