//! Fault handling: explain stack overflows and crashes in C, chain the rest.
//!
//! One `SIGSEGV`/`SIGBUS`/`SIGILL` handler per process, installed when the
//! first runtime is built, running on a per-M alternate signal stack (the
//! faulting stack is unusable by definition). It explains, then:
//!
//! - a fault in the guard page of the green thread running on this thread:
//!
//!   ```text
//!   ffiber: green thread 7 (worker) overflowed its 64 KiB stack; raise it with Builder::stack_size or Runtime::builder().stack_size
//!   ```
//!
//!   and aborts;
//! - a fault just below an M's system stack during a foreign call: the C
//!   code overflowed the OS thread's stack; the message names the foreign
//!   function and the green thread, and the process aborts;
//! - any other fault during a foreign call: the message names the foreign
//!   function, the green thread and the address, and the signal is then
//!   chained as below (it is C's crash, not ours to handle).
//!
//! Any other fault goes to the handler that was installed before
//! ours (Rust's own stack-overflow reporter, a sanitizer, a crash reporter);
//! if that was the default action, the default is restored and the faulting
//! instruction re-runs, so the process dies of the original signal with a
//! core dump as usual. A crash is never swallowed.

use std::io;
use std::sync::OnceLock;

static PREV_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_BUS: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_ILL: OnceLock<libc::sigaction> = OnceLock::new();
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Installs the handler (once per process).
pub(crate) fn install() -> io::Result<()> {
    let r = INSTALLED.get_or_init(|| {
        for (sig, slot) in [(libc::SIGSEGV, &PREV_SEGV), (libc::SIGBUS, &PREV_BUS), (libc::SIGILL, &PREV_ILL)] {
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
    let mp = crate::sched::m::current_m();
    let g = crate::sched::m::current_g();
    let mut w = Writer::new();
    if sig != libc::SIGILL
        && let Some((id, name, n)) = crate::check::lookup(addr)
    {
        w.str("ffiber: access to the stack of green thread ");
        w.num(id);
        w.str(" (");
        w.str(std::str::from_utf8(&name[..n]).unwrap_or("?"));
        w.str("), which has exited (FFIBER_CHECK quarantine)");
        // SAFETY: our own M's state, read on its own thread (the signal
        // interrupted it).
        let foreign = if mp.is_null() { None } else { unsafe { (*(*mp).local()).foreign } };
        if let Some(f) = foreign {
            w.str(", during the foreign call to ");
            w.str(f);
        }
        w.str(
            ": something kept a pointer into that green thread's stack past its life (often a C library storing a \
               pointer it was given). Give C heap memory or an ffiber::Handle for what it keeps\n",
        );
        w.flush();
        // SAFETY: abort is async-signal-safe and ends the process.
        unsafe { libc::abort() };
    }
    if g.is_null() {
        if mp.is_null() {
            foreign_thread_fault(&mut w, sig, addr);
        } else {
            w.str("ffiber: ");
            w.fault(sig, addr);
            w.str(
                " on one of the runtime's OS threads, outside any green thread (in the scheduler itself): \
                   this is probably a bug in ffiber; please report it with a backtrace\n",
            );
            w.flush();
        }
        return chain(sig, info, ctx);
    }
    // SAFETY: `g` is the green thread running on this thread when the fault
    // hit, alive while it runs; `guard`, `id`, `name` and `stack_size` do
    // not change while it runs. `mp` is this thread's M; the signal
    // interrupted its own thread, so reading its local state is reading
    // our own memory.
    let (g, foreign, in_cb, sys_lo) = unsafe {
        let l = &*(*mp).local();
        (&*g, l.foreign, l.depth() > 0, (*mp).stack_lo.load(std::sync::atomic::Ordering::Relaxed))
    };
    let mut w = Writer::new();
    if sig != libc::SIGILL && (g.guard.0..g.guard.1).contains(&addr) {
        w.str("ffiber: green thread ");
        green(&mut w, g);
        w.str(" overflowed its ");
        w.num((g.stack_size / 1024) as u64);
        w.str(" KiB stack; raise it with Builder::stack_size or Runtime::builder().stack_size\n");
        w.flush();
        // SAFETY: abort is async-signal-safe and ends the process.
        unsafe { libc::abort() };
    }
    let Some(f) = foreign else {
        w.str("ffiber: ");
        w.fault(sig, addr);
        w.str(if addr < 4096 { " (a null pointer)" } else { "" });
        w.str(" in green thread ");
        green(&mut w, g);
        w.str(", in Rust code outside any foreign call: unsafe code (or a library it uses) followed a bad pointer\n");
        w.flush();
        return chain(sig, info, ctx);
    };
    if sig != libc::SIGILL && sys_lo != 0 && addr < sys_lo && addr >= sys_lo.saturating_sub(SYSTEM_GUARD_SPAN) {
        w.str("ffiber: the foreign call to ");
        w.str(f);
        w.str(" overflowed its OS thread's ");
        w.num((crate::sched::m::SYSTEM_STACK_SIZE >> 20) as u64);
        w.str(" MiB system stack (called from green thread ");
        green(&mut w, g);
        w.str(if in_cb {
            "); the C code, or a Rust callback it called (which runs on the same stack), recurses too deep or \
             puts too much on its stack\n"
        } else {
            "); the C code recurses too deep or puts too much on its stack\n"
        });
        w.flush();
        // SAFETY: as above.
        unsafe { libc::abort() };
    }
    w.str("ffiber: ");
    w.fault(sig, addr);
    w.str(" inside the foreign call to ");
    w.str(f);
    w.str(" from green thread ");
    green(&mut w, g);
    w.str(if in_cb {
        "; the crash is in C or in a Rust callback C made during the call\n"
    } else {
        "; the crash is in C (or Rust code inside the call's closure)\n"
    });
    w.flush();
    chain(sig, info, ctx);
}

fn signame(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        _ => "SIGSEGV",
    }
}

/// A fault on a thread that is not one of the runtime's: if it is running
/// an exported function that C called on a thread C created, say so — and
/// whether it overflowed that thread's stack.
fn foreign_thread_fault(w: &mut Writer, sig: libc::c_int, addr: usize) {
    let (name, lo) = FOREIGN_CB.with(|c| c.get());
    let Some(name) = name else { return };
    let overflow =
        sig != libc::SIGILL && lo != 0 && addr < lo + crate::stack::page_size() && addr + SYSTEM_GUARD_SPAN >= lo;
    w.str("ffiber: ");
    if overflow {
        w.str("the exported function ");
        w.str(name);
        w.str(", called from a thread C created (tid ");
        // SAFETY: gettid is async-signal-safe.
        w.num(unsafe { libc::gettid() } as u64);
        w.str(
            "), overflowed that thread's stack: it, or what it calls, recurses too deep. The stack's size is \
               set by whoever created the thread (pthread_attr_setstacksize)\n",
        );
        w.flush();
        // SAFETY: abort is async-signal-safe and ends the process.
        unsafe { libc::abort() };
    }
    w.fault(sig, addr);
    w.str(" in the exported function ");
    w.str(name);
    w.str(", called from a thread C created (or in C it called)\n");
    w.flush();
}

thread_local! {
    /// On a thread C created: the exported function running (innermost)
    /// and the low end of the thread's stack (0: unknown). Read by the
    /// fault handler, so const-initialised and without a destructor.
    static FOREIGN_CB: std::cell::Cell<(Option<&'static str>, usize)> = const { std::cell::Cell::new((None, 0)) };
}

/// Marks the calling thread (one C created) as running the exported
/// function `name` until the guard drops, and gives it an alternate signal
/// stack on first use, so that its faults — even a stack overflow — are
/// explained.
pub(crate) fn enter_foreign_callback(name: &'static str) -> ForeignCallback {
    let (prev, mut lo) = FOREIGN_CB.with(|c| c.get());
    if lo == 0 {
        on_thread_start();
        lo = crate::sched::m::thread_stack_lo();
    }
    FOREIGN_CB.with(|c| c.set((Some(name), lo)));
    ForeignCallback { prev }
}

/// Restores the enclosing callback's name (see [`enter_foreign_callback`]).
pub(crate) struct ForeignCallback {
    prev: Option<&'static str>,
}

impl Drop for ForeignCallback {
    fn drop(&mut self) {
        FOREIGN_CB.with(|c| c.set((self.prev, c.get().1)));
    }
}

/// Checks that our fault handler is still the one installed for `SIGSEGV`
/// and `SIGBUS`, and says so once if C code replaced it (called now and then
/// by the monitor and when an M starts). Without ours, stack overflows in
/// green threads are no longer explained; without `SA_ONSTACK` on the new
/// handler, an overflow kills the process without a word.
pub(crate) fn check_handlers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    if SAID.load(Ordering::Relaxed) || !matches!(INSTALLED.get(), Some(Ok(()))) {
        return;
    }
    for (sig, sname) in [(libc::SIGSEGV, "SIGSEGV"), (libc::SIGBUS, "SIGBUS")] {
        // SAFETY: querying a disposition writes only `cur`.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut cur) } != 0 {
            continue;
        }
        if cur.sa_sigaction == handler as *const () as usize || SAID.swap(true, Ordering::Relaxed) {
            continue;
        }
        eprintln!(
            "ffiber: the {sname} handler was replaced after the runtime installed its own (now {}{}), most likely \
             by a C library. Stack overflows in green threads will no longer be reported{}. If the library can \
             be told not to install signal handlers, or to chain to the previous one, do that; else install it \
             before building the ffiber runtime, which then chains to it.",
            match cur.sa_sigaction {
                libc::SIG_DFL => "the default action".to_string(),
                libc::SIG_IGN => "ignored".to_string(),
                a => format!("a handler at {a:#x}"),
            },
            if cur.sa_flags & libc::SA_ONSTACK == 0 { ", without SA_ONSTACK" } else { "" },
            if cur.sa_flags & libc::SA_ONSTACK == 0 && cur.sa_sigaction > libc::SIG_IGN {
                ", and since it does not run on the alternate signal stack, an overflow kills the process \
                 with no message at all"
            } else {
                ""
            },
        );
    }
}

/// [`check_handlers`] at most every 100 ms (for paths that run often: an M
/// going idle).
pub(crate) fn check_handlers_now_and_then() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    static NEXT_MS: AtomicU64 = AtomicU64::new(0);
    let now = EPOCH.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64;
    let next = NEXT_MS.load(Ordering::Relaxed);
    if now >= next && NEXT_MS.compare_exchange(next, now + 100, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        check_handlers();
    }
}

/// How far below an M's system stack a fault still counts as its overflow
/// (glibc's guard, and a C frame that jumped a little past it).
const SYSTEM_GUARD_SPAN: usize = 64 * 1024;

fn green(w: &mut Writer, g: &crate::sched::g::G) {
    w.num(g.id);
    w.str(" (");
    w.str(g.name.as_deref().unwrap_or("unnamed"));
    w.str(")");
}

/// Hands the signal to the handler installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let prev = match sig {
        libc::SIGBUS => PREV_BUS.get(),
        libc::SIGILL => PREV_ILL.get(),
        _ => PREV_SEGV.get(),
    };
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

    /// `SIGSEGV at address 0x…`: how every fault message names the fault.
    fn fault(&mut self, sig: libc::c_int, addr: usize) {
        self.str(signame(sig));
        self.str(" at address 0x");
        self.hex(addr as u64);
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

    fn hex(&mut self, n: u64) {
        for i in (0..16).rev() {
            let d = ((n >> (i * 4)) & 0xf) as u8;
            self.str(std::str::from_utf8(&[if d < 10 { b'0' + d } else { b'a' + d - 10 }]).unwrap_or("?"));
        }
    }

    fn flush(&self) {
        // SAFETY: write(2) is async-signal-safe; the buffer is ours.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.len) };
    }
}
