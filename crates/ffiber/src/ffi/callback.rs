//! Callbacks: C calling Rust (Go's `cgocallback`, `needm`).
//!
//! `#[ffiber::export]` turns a Rust function into an `extern "C"` symbol
//! whose body is [`callback`]. What that does depends on who is calling:
//!
//! **C called during a foreign call** (the usual case: `qsort` calling a
//! comparator, `sqlite3_exec` calling a row callback). We are on the M's
//! system stack, below the C frames. The callback:
//!
//! 1. switches back onto the green thread's own stack, just below the frame
//!    that made the foreign call (the C frames stay where they are);
//! 2. ties the green thread to this M — C frames on this OS thread's stack
//!    are waiting for it, so wherever it parks it must resume here (the
//!    lock itself is taken only if it does block: `switch_to_g0` sees the
//!    M's callback depth and locks it then);
//! 3. leaves the "in C" state (for an announced call: the exit protocol,
//!    which may find the P taken and wait for one; for a `Blocking` call: takes a
//!    P), so the callback can use channels, spawn, sleep and make further
//!    foreign calls — those run on the system stack below the C frames;
//! 4. runs the Rust function, catching a panic;
//! 5. re-enters the "in C" state, unlocks, switches back to the system
//!    stack and returns to C.
//!
//! A panic never unwinds through C frames: it is caught in step 4, C gets
//! a zeroed return value, and the panic is re-raised in the green thread
//! when the outer foreign call returns. A callback during a call made with
//! [`Mode::NoCallback`] aborts with a message naming both functions: the
//! promise the annotation made was broken.
//!
//! **C called on a thread it created itself** (no M). The Rust function
//! runs right there, as a plain OS thread: channels, locks, `sleep` and
//! `JoinHandle::join` block that thread, and spawning goes to the runtime
//! the thread adopts on its first callback (the most recently built live
//! runtime) — a thread-local, so later calls make no system call. A panic
//! has no foreign call to go back to: the process aborts with a message
//! naming the function.
//!
//! **Called from Rust directly** (not from C): the function just runs.

use super::{Mode, SYSTEM_STACK_MARGIN, reacquire_p, state};
use crate::sched::NO_P;
use crate::sched::m::{self, M};
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};

/// Runs `f`, the body of an exported function called by C `name`. See the
/// module docs; used by `#[ffiber::export]`.
///
/// # Return values after a panic
///
/// If `f` panics, C receives `R` with all bits zero, which is why exported
/// functions return C types (integers, floats, raw pointers, `#[repr(C)]`
/// structs of those), for which zero is a valid value.
#[doc(hidden)]
pub fn callback<F: FnOnce() -> R, R>(name: &'static str, f: F) -> R {
    let mp = m::current_m_inline();
    if mp.is_null() {
        return on_foreign_thread(name, f);
    }
    // SAFETY: our own M's state, on its thread.
    let (outer, mode, call_sp) = unsafe {
        let l = &*(*mp).local();
        if l.cur_g.is_none() { (None, Mode::Default, 0) } else { (l.foreign, l.call_mode, l.call_sp) }
    };
    let Some(outer) = outer else {
        // Not inside a foreign call: Rust called it directly.
        return f();
    };
    if mode == Mode::NoCallback {
        eprintln!(
            "ffiber: C called back into Rust ({name}) during a foreign call to {outer}, which was made with \
             Mode::NoCallback (a promise that it never calls back). Call {outer} with Mode::Default, or remove \
             nocallback from its annotation. Aborting: unwinding through C is not possible."
        );
        std::process::abort();
    }
    let mut frame =
        Frame::<F, R> { f: MaybeUninit::new(f), out: MaybeUninit::uninit(), sys_sp: crate::arch::stack_pointer(), mp };
    let green_top = ((call_sp - SYSTEM_STACK_MARGIN) & !15) as *mut u8;
    // SAFETY: `green_top` is below everything the green thread had on its
    // stack when it made the foreign call (`call_sp`, minus a margin for
    // the frame that switched stacks), and nothing else uses that stack
    // while it is in C; `on_green_stack::<F, R>` matches the frame and
    // never unwinds.
    unsafe { crate::arch::call_on_stack((&raw mut frame).cast(), on_green_stack::<F, R>, green_top) };
    // SAFETY: `on_green_stack` always writes `out`.
    match unsafe { frame.out.assume_init() } {
        Ok(r) => r,
        Err(payload) => {
            let g = m::current_g();
            // SAFETY: `g` is the green thread whose foreign call this is
            // (it is locked to this M and back in C); we own its state.
            let slot = unsafe { &mut (*g).inner().cb_panic };
            if slot.is_none() {
                *slot = Some(payload);
            }
            // SAFETY: our own M's state, on its thread (the green thread is
            // locked here until the outer call returns).
            unsafe { (*(*mp).local()).cb_pending = true };
            // SAFETY: documented above: exported functions return C types,
            // for which all-zero is a valid value.
            unsafe { std::mem::zeroed() }
        }
    }
}

struct Frame<F, R> {
    f: MaybeUninit<F>,
    out: MaybeUninit<std::thread::Result<R>>,
    /// The system stack pointer at the callback (C frames above it).
    sys_sp: usize,
    /// This thread's M.
    mp: *const M,
}

/// Runs on the green thread's stack: steps 2-5 of the module docs.
unsafe extern "C" fn on_green_stack<F: FnOnce() -> R, R>(frame: *mut u8) {
    // SAFETY: `frame` is the `Frame<F, R>` that `callback` made, with `f`
    // initialised; nobody else touches it until we return.
    let frame = unsafe { &mut *frame.cast::<Frame<F, R>>() };
    let mp = frame.mp;
    // SAFETY: we are still on `mp`'s thread (only the stack changed), and
    // the green thread is ours: it is running.
    let m: &M = unsafe { &*mp };
    let local = m.local();
    // Save the outer call's state. The green thread is locked to this M
    // only if it blocks inside the callback (`switch_to_g0` does it then,
    // seeing `cb_depth > 0`): C frames on this thread wait for it.
    // SAFETY: as above; nothing else touches `local`.
    let saved = unsafe {
        let l = &mut *local;
        l.cb_depth += 1;
        // (Foreign calls made by the callback save and restore the outer
        // call's mode, stack pointer and word themselves: see `announced`.)
        let saved = (l.foreign.take(), l.call_mode, l.call_v, l.sys_top);
        l.sys_top = (frame.sys_sp - SYSTEM_STACK_MARGIN) & !15;
        saved
    };
    let (outer, mode, v, _) = saved;
    // Leave the "in C" state and get a P.
    match mode {
        Mode::Default | Mode::NoCallback => {
            if !m.call.exit(v, state::asymmetric()) {
                reacquire_p(m, state::p_of(v));
            }
        }
        Mode::Blocking => reacquire_p(m, NO_P),
        Mode::NonBlocking => {}
    }
    // SAFETY: `f` was initialised and is read once, here.
    let f = unsafe { frame.f.assume_init_read() };
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    // Back into C: re-enter the state the outer call was in. The green
    // thread is locked, so we are on the same M.
    // SAFETY: as above.
    unsafe {
        let l = &mut *local;
        match mode {
            Mode::Default | Mode::NoCallback => {
                l.ccount = l.ccount.wrapping_add(1);
                l.call_v = state::word(l.ccount, l.p);
                m.call.enter(l.call_v);
                m.sched.monitor.entered(&m.sched);
            }
            Mode::Blocking => {
                let p = std::mem::replace(&mut l.p, NO_P);
                m.sched.handoff_p(p);
            }
            Mode::NonBlocking => {}
        }
        l.foreign = outer;
        l.sys_top = saved.3;
        l.cb_depth -= 1;
        if l.cb_depth == 0 && l.cb_locked {
            m::unlock_after_callback(l);
        }
    }
    frame.out.write(out);
}

/// A callback on a thread C created: run it here, as a plain OS thread.
#[cold]
fn on_foreign_thread<F: FnOnce() -> R, R>(name: &'static str, f: F) -> R {
    crate::sched::adopt_runtime();
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            eprintln!(
                "ffiber: exported function {name} panicked ({msg}) when called from a thread C created; there is \
                 no Rust caller to hand the panic to and it cannot unwind through C. Aborting."
            );
            std::process::abort();
        }
    }
}
