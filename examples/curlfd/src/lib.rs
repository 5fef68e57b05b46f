//! libcurl, a C library with its own sockets, driven from green threads:
//! each transfer's socket is waited on with [`ffiber::io::ForeignFd`], so
//! a thousand transfers in flight park a thousand green threads — not a
//! thousand OS threads — and the runtime's poller wakes each when curl's
//! socket is ready.
//!
//! This is curl's documented pattern for driving a connection yourself
//! (`CURLOPT_CONNECT_ONLY`, `CURLINFO_ACTIVESOCKET`, `curl_easy_send` /
//! `curl_easy_recv`, which return `CURLE_AGAIN` instead of blocking; curl's
//! own example waits in `select`). `curl_easy_setopt` and
//! `curl_easy_getinfo` are variadic, so the preamble wraps the calls it
//! needs in fixed-type C functions, as a cgo program would.

use ffiber::io::ForeignFd;
use std::ffi::{CString, c_void};

ffiber::cgo! {
    mod c;
    r#"
    #include <curl/curl.h>
    #include <stddef.h>
    #cgo pkg-config: libcurl
    #cgo nonblocking fd_curl_socket fd_curl_send fd_curl_recv fd_curl_again fd_curl_strerror
    /* curl_global_init runs inside a std::sync::Once, which blocks the OS
       threads of other green threads that reach it meanwhile (with their
       Ps). In the default mode a slow init could lose its P to the monitor
       and then wait for one that those blocked threads hold: a deadlock.
       NonBlocking keeps the P for the call. */
    #cgo nonblocking fd_curl_global_init

    static int fd_curl_global_init(void) { return (int)curl_global_init(CURL_GLOBAL_DEFAULT); }

    /* A handle that only connects (the transfer is ours to drive). */
    static void *fd_curl_connect_only(const char *url) {
        CURL *c = curl_easy_init();
        if (!c) return NULL;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        return c;
    }
    static int fd_curl_perform(void *c) { return (int)curl_easy_perform((CURL *)c); }
    static int fd_curl_socket(void *c) {
        curl_socket_t s;
        if (curl_easy_getinfo((CURL *)c, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK) return -1;
        return (int)s;
    }
    static int fd_curl_send(void *c, const void *buf, size_t len, size_t *n) {
        return (int)curl_easy_send((CURL *)c, buf, len, n);
    }
    static int fd_curl_recv(void *c, void *buf, size_t len, size_t *n) {
        return (int)curl_easy_recv((CURL *)c, buf, len, n);
    }
    static void fd_curl_cleanup(void *c) { curl_easy_cleanup((CURL *)c); }
    static const char *fd_curl_strerror(int code) { return curl_easy_strerror((CURLcode)code); }
    static int fd_curl_again(void) { return (int)CURLE_AGAIN; }
    "#
}

/// A connection opened by libcurl whose I/O parks the calling green
/// thread instead of blocking its OS thread.
pub struct Connection {
    // Declared first: the fd leaves the poller before curl closes it.
    fd: ForeignFd,
    handle: *mut c_void,
}

// SAFETY: a curl easy handle may be used from any thread, one at a time
// (`&mut self` for every transfer call); curl_global_init ran first.
unsafe impl Send for Connection {}

fn curl_error(what: &str, code: i32) -> String {
    // SAFETY: curl_easy_strerror returns a static string for any code.
    let msg = unsafe { ffiber::ffi::rust_string(c::fd_curl_strerror(code)) };
    format!("{what}: {msg} (curl error {code})")
}

impl Connection {
    /// Connects to `url`'s host (curl resolves and connects; on loopback
    /// that is immediate, and the call runs in the default mode, so a slow
    /// connect hands the P off).
    pub fn open(url: &str) -> Result<Connection, String> {
        static INIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: curl_global_init once, before any handle.
        INIT.call_once(|| unsafe {
            c::fd_curl_global_init();
        });
        let curl = CString::new(url).map_err(|e| e.to_string())?;
        // SAFETY: a valid C string; a null result is checked.
        let handle = unsafe { c::fd_curl_connect_only(curl.as_ptr()) };
        if handle.is_null() {
            return Err("curl_easy_init failed".into());
        }
        // SAFETY: `handle` is a live easy handle.
        let rc = unsafe { c::fd_curl_perform(handle) };
        if rc != 0 {
            // SAFETY: as above; freed once.
            unsafe { c::fd_curl_cleanup(handle) };
            return Err(curl_error(&format!("connecting to {url}"), rc));
        }
        // SAFETY: as above.
        let sock = unsafe { c::fd_curl_socket(handle) };
        if sock < 0 {
            // SAFETY: as above; freed once.
            unsafe { c::fd_curl_cleanup(handle) };
            return Err("curl has no active socket".into());
        }
        Ok(Connection { fd: ForeignFd::new(sock), handle })
    }

    /// Sends all of `data`, waiting for curl's socket when it is full.
    pub fn send_all(&mut self, mut data: &[u8]) -> Result<(), String> {
        // SAFETY: plain constant.
        let again = unsafe { c::fd_curl_again() };
        while !data.is_empty() {
            let mut n = 0u64; // size_t
            // SAFETY: a live handle, `data` valid for its length, `n` a
            // valid out pointer.
            let rc = unsafe { c::fd_curl_send(self.handle, data.as_ptr().cast(), data.len() as u64, &mut n) };
            if rc == again {
                self.fd.writable().map_err(|e| e.to_string())?;
                continue;
            }
            if rc != 0 {
                return Err(curl_error("curl_easy_send", rc));
            }
            data = &data[n as usize..];
        }
        Ok(())
    }

    /// Receives into `buf` (0 at end of stream), parking until curl's
    /// socket is readable when nothing has arrived.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        // SAFETY: plain constant.
        let again = unsafe { c::fd_curl_again() };
        loop {
            let mut n = 0u64; // size_t
            // SAFETY: a live handle, `buf` writable for its length, `n` a
            // valid out pointer.
            let rc = unsafe { c::fd_curl_recv(self.handle, buf.as_mut_ptr().cast(), buf.len() as u64, &mut n) };
            if rc == again {
                self.fd.readable().map_err(|e| e.to_string())?;
                continue;
            }
            if rc != 0 {
                return Err(curl_error("curl_easy_recv", rc));
            }
            return Ok(n as usize);
        }
    }

    /// Sends `GET path` to `host` (asking the server to close after it)
    /// and returns the whole response.
    pub fn get(&mut self, host: &str, path: &str) -> Result<String, String> {
        self.send_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.recv(&mut buf)? {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The ForeignFd must leave the poller before curl closes the
        // socket: swap it out and drop it first.
        drop(std::mem::replace(&mut self.fd, ForeignFd::new(-1)));
        // SAFETY: a live handle, freed once.
        unsafe { c::fd_curl_cleanup(self.handle) };
    }
}

/// `GET path` over a curl-opened connection to `http://addr`; returns the
/// whole response (the request asks the server to close after it).
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    Connection::open(&format!("http://{addr}"))?.get(addr, path)
}
