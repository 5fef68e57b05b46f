//! Fault handling: explain a green thread's stack overflow, chain the rest.
//!
//! One `SIGSEGV`/`SIGBUS` handler per process, installed when the first
//! runtime is built, running on a per-M alternate signal stack (the faulting
//! stack is unusable by definition). If the faulting address lies in the
//! guard page of the green thread running on this thread, it prints
//!
//! ```text
//! ffiber: green thread 7 (worker) overflowed its 64 KiB stack; raise it with Builder::stack_size or Runtime::builder().stack_size
//! ```
//!
//! and aborts. Any other fault goes to the handler that was installed before
//! ours (Rust's own stack-overflow reporter, a sanitizer, a crash reporter);
//! if that was the default action, the default is restored and the faulting
//! instruction re-runs, so the process dies of the original signal with a
//! core dump as usual. A crash is never swallowed.

use std::io;
use std::sync::OnceLock;

static PREV_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_BUS: OnceLock<libc::sigaction> = OnceLock::new();
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Installs the handler (once per process).
pub(crate) fn install() -> io::Result<()> {
    let r = INSTALLED.get_or_init(|| {
        for (sig, slot) in [(libc::SIGSEGV, &PREV_SEGV), (libc::SIGBUS, &PREV_BUS)] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
            // value; we fill in the handler and flags before using it, and
            // `handler` has the SA_SIGINFO signature.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut old) != 0 {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                let _ = slot.set(old);
            }
        }
        Ok(())
    });
    r.map_err(io::Error::from_raw_os_error)
}

const ALT_STACK: usize = 64 * 1024;

struct AltStack {
    base: *mut libc::c_void,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: disable the alternate stack before unmapping it; both calls
        // act on this thread's own state and our own mapping.
        unsafe {
            let ss = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            libc::sigaltstack(&ss, std::ptr::null_mut());
            libc::munmap(self.base, self.len);
        }
    }
}

thread_local! {
    static ALT: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// Gives the calling M thread an alternate signal stack if it has none.
pub(crate) fn on_thread_start() {
    // SAFETY: querying the current alternate stack writes only `cur`.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return; // Rust's runtime (or someone) already gave us one.
    }
    let page = crate::stack::page_size();
    let len = ALT_STACK + page;
    // SAFETY: a fresh anonymous mapping; the low page becomes a guard.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return;
    }
    // SAFETY: the guard page and the stack lie inside our mapping; the
    // stack_t describes exactly the part above the guard.
    unsafe {
        libc::mprotect(base, page, libc::PROT_NONE);
        let ss = libc::stack_t { ss_sp: base.cast::<u8>().add(page).cast(), ss_flags: 0, ss_size: ALT_STACK };
        libc::sigaltstack(&ss, std::ptr::null_mut());
    }
    ALT.with(|a| *a.borrow_mut() = Some(AltStack { base, len }));
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let g = crate::sched::m::current_g();
    if !g.is_null() {
        // SAFETY: `g` is the green thread running on this thread when the
        // fault hit, alive while it runs; `guard`, `id`, `name` and
        // `stack_size` are immutable after creation.
        let g = unsafe { &*g };
        if (g.guard.0..g.guard.1).contains(&addr) {
            let mut w = Writer::new();
            w.str("ffiber: green thread ");
            w.num(g.id);
            w.str(" (");
            w.str(g.name.as_deref().unwrap_or("unnamed"));
            w.str(") overflowed its ");
            w.num((g.stack_size / 1024) as u64);
            w.str(" KiB stack; raise it with Builder::stack_size or Runtime::builder().stack_size\n");
            w.flush();
            // SAFETY: abort is async-signal-safe and ends the process.
            unsafe { libc::abort() };
        }
    }
    chain(sig, info, ctx);
}

/// Hands the signal to the handler installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let prev = if sig == libc::SIGBUS { PREV_BUS.get() } else { PREV_SEGV.get() };
    let action = prev.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        // Restore the default and return: the faulting instruction runs
        // again and the kernel applies the default action (core dump).
        // SAFETY: resetting a disposition to SIG_DFL is async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        return;
    }
    let flags = prev.map_or(0, |p| p.sa_flags);
    // SAFETY: `action` is the previous handler's address as the kernel
    // would call it; its flags tell which signature it has.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(action);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(action);
            f(sig);
        }
    }
}

/// Formats a message without allocating (we are in a signal handler).
struct Writer {
    buf: [u8; 512],
    len: usize,
}

impl Writer {
    fn new() -> Writer {
        Writer { buf: [0; 512], len: 0 }
    }

    fn str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            if self.len < self.buf.len() {
                self.buf[self.len] = d;
                self.len += 1;
            }
        }
    }

    fn flush(&self) {
        // SAFETY: write(2) is async-signal-safe; the buffer is ours.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.len) };
    }
}
