//! Callbacks: C calling Rust (Go's `cgocallback`, `needm`).
//!
//! `#[ffiber::export]` turns a Rust function into an `extern "C"` symbol
//! whose body is [`callback`]. What that does depends on who is calling:
//!
//! **C called during a foreign call** (the usual case: `qsort` calling a
//! comparator, `sqlite3_exec` calling a row callback). We are on the M's
//! system stack, below the C frames, and the M is announced as "in C".
//! Go switches back to the goroutine's stack and leaves the syscall state
//! (`exitsyscall`) before running any Go code, because Go code needs a
//! growable stack and a P for the garbage collector. Rust code needs
//! neither, so the callback runs **right where C called it**, on the 8 MiB
//! system stack, and takes its P back **only when it needs one**:
//!
//! ```text
//!   in C (word = v, P owned by the call)
//!     --callback: cb_lazy = true, M.p = NO_P-->  lazy callback (still "in C" for the monitor)
//!         --returns without needing a P: M.p = P of v-->  in C again (nothing was published)
//!         --parks, yields, sleeps, or makes a Blocking call: reclaim
//!               (the exit protocol of the outer call; may wait for a P)-->  callback holding a P
//!                   --returns: re-enter "in C" with a new word-->  in C again
//! ```
//!
//! A callback that only computes (a comparator, a row handler that stores
//! into a `Vec`) therefore costs a few plain loads and stores: no stack
//! switch, no store the monitor reads. While it runs, the monitor still
//! sees the outer call's word, so a long callback gets the P handed to
//! another M exactly as a long C call would — which is right: this OS
//! thread is busy either way. What a callback may do without a P works
//! without one: waking a green thread or spawning one queues it globally
//! (`sched::ready` sees `NO_P`), a foreign call runs in place under the
//! outer call's announcement. Everything that needs the P — `switch_to_g0`
//! (park, yield, exit), timers, a `Blocking` foreign call — calls
//! [`reclaim`](crate::sched::syscall::reclaim) first.
//!
//! Once the green thread blocks inside a callback it is tied to this M —
//! C frames on this OS thread's stack are waiting for it, so wherever it
//! parks it must resume here (`switch_to_g0` takes the lock, seeing
//! `cb_depth > 0`; the last callback to return undoes it). While it is
//! parked, g0 runs in the reserve above the C frames (`sched::m::G0_RESERVE`).
//!
//! Under a [`Mode::NonBlocking`] call the M kept its P and announced
//! nothing; the callback keeps the P and only hides the outer call's name
//! so that foreign calls it makes are announced themselves.
//!
//! A panic never unwinds through C frames: it is caught at the boundary,
//! C gets a zeroed return value, and the panic is re-raised in the green
//! thread when the foreign call C was running returns. A callback during a
//! call made with [`Mode::NoCallback`] aborts with a message naming both
//! functions: the promise the annotation made was broken.
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

use super::Mode;
use crate::sched::NO_P;
use crate::sched::m::{self, M, MLocal};
use crate::sched::syscall as state;
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
#[inline(always)]
pub fn callback<F: FnOnce() -> R, R>(name: &'static str, f: F) -> R {
    let mp = m::current_m_inline();
    if mp.is_null() {
        return on_foreign_thread(name, f);
    }
    // SAFETY: our own M, on its thread; it lives while its thread runs.
    let m = unsafe { &*mp };
    let local = m.local();
    // The common case, inlined alone: C called back during an announced
    // default-mode call (`IN_C`, not `NOCB`) of a green thread, outside any
    // other callback, on an M that is not traced (`cb_depth` is 0, trace
    // bit included). Everything else takes `callback_general`.
    // SAFETY: our own M's state, on its thread; no switch happens while
    // this reference lives.
    let (w, outer) = unsafe {
        let l = &*local;
        (m.call.current(), l.foreign)
    };
    // (A foreign call's name is set only while a green thread runs on the
    // M: the call's own thread, or a callback's, which counts in
    // `cb_depth` even while it is parked and g0 runs.)
    // SAFETY: as above.
    let common = unsafe {
        let l = &*local;
        debug_assert!(l.cb_depth != 0 || outer.is_none() || l.cur_g.is_some());
        l.cb_depth == 0 && outer.is_some() && w & (state::IN_C | state::NOCB) == state::IN_C
    };
    if !common {
        std::hint::cold_path();
        return callback_general(m, name, f);
    }
    // Lazy: the P stays with the outer call (see the module docs); what
    // needs it calls `reclaim`, which clears `cb_lazy`.
    // SAFETY: as above.
    let outer_p = unsafe {
        let l = &mut *local;
        l.cb_depth += 1;
        l.cb_lazy = true;
        std::mem::replace(&mut l.p, NO_P)
    };
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: still this M's thread: a callback's green thread never moves
    // (it is locked here if it blocked, see the module docs).
    unsafe {
        let l = &mut *local;
        if l.cb_lazy {
            // The P was never needed: give the outer call back its view of
            // it. Never blocked, so not locked to this M either.
            debug_assert!(!l.cb_locked);
            l.cb_lazy = false;
            l.p = outer_p;
            l.cb_depth -= 1;
        } else {
            std::hint::cold_path();
            // The outer call's mode flags (`BLK` for a lazy `Blocking`
            // call) and name, for its re-announcement.
            returned_after_reclaim(m, l, w & state::BLK, outer.unwrap_or_default());
        }
    }
    match out {
        Ok(r) => r,
        Err(payload) => stash_panic(local, payload),
    }
}

/// The common-case callback's way back after it took its P back: re-enter
/// the outer default call, and undo the lock to this M if it blocked.
#[cold]
#[inline(never)]
fn returned_after_reclaim(m: &M, l: &mut MLocal, outer_flags: u64, outer: &'static str) {
    reenter(m, l, Mode::Default, outer_flags, outer, false);
    l.cb_depth -= 1;
    if l.cb_locked {
        // SAFETY: `l` is this thread's M's state (our caller's), and the
        // running green thread is the one the callback locked here.
        unsafe { m::unlock_after_callback(l) };
    }
}

/// [`callback`] for everything but the common case: a callback during a
/// `NoCallback` (an error), `NonBlocking` or `Blocking` call, a nested
/// callback, a traced M, or Rust calling the function directly.
#[cold]
#[inline(never)]
fn callback_general<F: FnOnce() -> R, R>(m: &M, name: &'static str, f: F) -> R {
    let local = m.local();
    // SAFETY: our own M's state, on its thread; no switch happens while
    // these references live.
    let outer = unsafe {
        let l = &*local;
        if l.cur_g.is_none() { None } else { l.foreign }
    };
    let Some(outer) = outer else {
        // Not inside a foreign call: Rust called it directly.
        return f();
    };
    let (mode, outer_flags) = mode_of(m);
    if mode == Mode::NoCallback {
        nocallback_violation(name, outer);
    }
    // SAFETY: as above.
    let (was_lazy, outer_p) = unsafe {
        let l = &mut *local;
        l.cb_depth += 1;
        if l.cb_depth & m::TRACING != 0 {
            l.trace_cbs += 1;
        }
        let was_lazy = l.cb_lazy;
        // The outer call's view of the P: the P its word names for an
        // announced call, none for a `Blocking` call that handed it off
        // (and none inside a lazy callback), the one it keeps for a
        // `NonBlocking` call. Unchanged while this callback stays lazy.
        let outer_p = l.p;
        if mode == Mode::NonBlocking {
            l.foreign = None;
        } else {
            // The P belongs to the outer call (or, for `Blocking`, to
            // nobody here): nothing may use it until `reclaim`.
            l.cb_lazy = true;
            l.p = NO_P;
        }
        (was_lazy, outer_p)
    };
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: still this M's thread: a callback's green thread never moves
    // (it is locked here if it blocked, see the module docs).
    unsafe {
        let l = &mut *local;
        if l.cb_lazy && !was_lazy {
            // The common case: the P was never needed. Give the outer call
            // back its view of it.
            debug_assert_eq!(outer_p, if mode == Mode::Blocking { NO_P } else { state::p_of(m.call.current()) });
            l.cb_lazy = false;
            l.p = outer_p;
        } else if !l.cb_lazy {
            reenter(m, l, mode, outer_flags, outer, was_lazy);
        }
        l.cb_depth -= 1;
        if l.depth() == 0 && l.cb_locked {
            m::unlock_after_callback(l);
        }
    }
    match out {
        Ok(r) => r,
        Err(payload) => stash_panic(local, payload),
    }
}

/// Whether this thread is an M inside a default-mode foreign call of a green
/// thread (in C, or in the call's closure), in a runtime that has not run
/// short of OS threads: where a sleep may become a callback that parks the
/// green thread (see `ffi::sleep`).
pub(super) fn in_default_call() -> bool {
    let Some(m) = live_m() else { return false };
    // SAFETY: our own M's state, on its thread.
    let in_call = unsafe {
        let l = &*m.local();
        l.cur_g.is_some() && l.foreign.is_some()
    };
    // A lazy `Blocking` call (`BLK`) counts as default in `mode_of`; here
    // its caller's word that it blocks stands: the OS thread sleeps.
    in_call
        && m.call.current() & (state::IN_C | state::NOCB | state::BLK) == state::IN_C
        && !m.sched.threads_scarce.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether this thread is an M that holds a P, inside a foreign call (in C,
/// or in the call's closure), in a live runtime: where sleeping in the
/// kernel would leave the P idle (see `ffi::mutex`).
#[cfg(feature = "mutex-spin")]
pub(super) fn holds_p_in_call() -> bool {
    let Some(m) = live_m() else { return false };
    // SAFETY: our own M's state, on its thread.
    let l = unsafe { &*m.local() };
    l.p != NO_P && l.foreign.is_some()
}

/// This thread's M, if it is one of a live runtime's (a forked child keeps
/// the forking thread's M, but no runtime).
fn live_m<'a>() -> Option<&'a M> {
    let mp = m::current_m_inline();
    if mp.is_null() || crate::fork::in_forked_child() {
        return None;
    }
    // SAFETY: our own M, on its thread; it lives while its thread runs,
    // longer than any caller here keeps the reference.
    Some(unsafe { &*mp })
}

/// The mode of the foreign call a callback on `m` comes from, read off the
/// M's state (calls do not record it, to keep the call path short): an
/// announced call's word says `IN_C` (and `NOCB` for `NoCallback`; a lazy
/// `Blocking` call, `BLK`, behaves as a default one here: it holds its P
/// under the same protocol); a `Blocking` call that handed its P off has
/// none; otherwise the call is `NonBlocking`.
/// A callback that arrives during a call made in place (inside a lazy
/// callback) belongs, like that call, to the announced call around it.
/// Also returns the announced call's mode flags, for a re-announcement.
#[inline(always)]
fn mode_of(m: &M) -> (Mode, u64) {
    let w = m.call.current();
    if w & state::IN_C != 0 {
        let mode = if w & state::NOCB != 0 { Mode::NoCallback } else { Mode::Default };
        return (mode, w & (state::NOCB | state::BLK));
    }
    // SAFETY: our own M's state, on its thread.
    let p = unsafe { (*m.local()).p };
    (if p == NO_P { Mode::Blocking } else { Mode::NonBlocking }, 0)
}

/// A callback that reclaimed its P returns to C: re-enter the state the
/// outer call was in (and the lazy state of an enclosing callback).
fn reenter(m: &M, l: &mut MLocal, mode: Mode, outer_flags: u64, outer: &'static str, was_lazy: bool) {
    match mode {
        Mode::Default | Mode::NoCallback => {
            // The outer call's mode flags (`NOCB`, or `BLK` for a lazy
            // `Blocking` call), kept in the re-announced word.
            m.call.enter(l.p, outer_flags);
            l.cb_flags |= m::CB_REANNOUNCED;
        }
        Mode::Blocking => {
            let p = std::mem::replace(&mut l.p, NO_P);
            m.sched.handoff_p(p);
        }
        Mode::NonBlocking => {}
    }
    l.foreign = Some(outer);
    if was_lazy {
        l.cb_lazy = true;
        l.p = NO_P;
    }
}

/// A panic caught at the C boundary: keep it for the foreign call to
/// re-raise, and give C a zeroed value.
#[cold]
fn stash_panic<R>(local: *mut MLocal, payload: Box<dyn std::any::Any + Send>) -> R {
    stash(local, payload);
    // SAFETY: documented on `callback`: exported functions return C types,
    // for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A panic caught on the system stack, in a callback or in a foreign
/// call's closure: kept for the foreign call to re-raise on the green
/// stack once it is back (`finish`). The first panic wins; a later one
/// (the closure's, after a callback's) is dropped.
#[cold]
pub(super) fn stash_panic_payload(payload: Box<dyn std::any::Any + Send>) {
    let mp = m::current_m_inline();
    // SAFETY: called on the system stack of a foreign call, so on an M's
    // thread (non-null, alive while its thread runs).
    stash(unsafe { (*mp).local() }, payload);
}

#[cold]
fn stash(local: *mut MLocal, payload: Box<dyn std::any::Any + Send>) {
    let g = m::current_g();
    // SAFETY: `g` is the green thread whose foreign call this is (it is
    // back in C, or in the call's closure, on this M); we own its state.
    let slot = unsafe { &mut (*g).inner().cb_panic };
    if slot.is_none() {
        *slot = Some(payload);
    }
    // SAFETY: our own M's state, on its thread.
    unsafe { (*local).cb_flags |= m::CB_PANIC };
}

#[cold]
fn nocallback_violation(name: &str, outer: &str) -> ! {
    eprintln!(
        "ffiber: C called back into Rust ({name}) during a foreign call to {outer}, which was made with \
         Mode::NoCallback (a promise that it never calls back). Call {outer} with Mode::Default, or remove \
         nocallback from its annotation. Aborting: unwinding through C is not possible."
    );
    std::process::abort();
}

/// A callback on a thread C created: run it here, as a plain OS thread.
#[cold]
fn on_foreign_thread<F: FnOnce() -> R, R>(name: &'static str, f: F) -> R {
    crate::sched::adopt_runtime();
    let _fault_context = crate::signal::enter_foreign_callback(name);
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
