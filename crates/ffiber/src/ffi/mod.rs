//! Foreign calls: what Go's `cgocall`, `asmcgocall`, `entersyscall` and
//! `exitsyscall` do, at close to the cost of a plain C call.
//!
//! A green thread runs on a small stack that C knows nothing about, and the
//! scheduler cannot preempt C. So a foreign call, in the default [`Mode`]:
//!
//! 1. **announces itself** to the scheduler with one plain store into its
//!    M's state word (`IN_C`, its P and a call number) — no lock, no
//!    system call;
//! 2. **switches to the M's system stack** (the OS thread's own 8 MiB stack,
//!    below the scheduler's suspended frame) and calls the C code there;
//! 3. **comes back** with a plain store of the state word back to idle
//!    (keeping the call number for the next call) and a plain load of the
//!    monitor's request word — no read-modify-write
//!    (the protocol, in `docs/DESIGN.md`, moves the fence to the monitor's side with
//!    `membarrier`). If the monitor took the P away while the
//!    call blocked and gave it to another OS thread so that the green
//!    threads queued on it kept running; the caller then takes its old P back
//!    if it is idle, else any idle P, else queues its green thread and lets
//!    its OS thread sleep.
//!
//! ```text
//!   M.word:  n<<26|p<<2 --call: store--> (n+1)<<26|p<<2|IN_C --return: store v - IN_C, load retake--> (n+1)<<26|p<<2
//!                                      |
//!                   monitor: retake = v; membarrier; word still v? -> P handed off
//!                   (return: sees retake == v -> waits for the decision -> reacquire a P)
//! ```
//!
//! The other modes pay for less: [`Mode::NonBlocking`] only switches
//! stacks (for short calls that never block: the scheduler is not told, so
//! the P stays with its M), [`Mode::Blocking`] gives the P away before the
//! call (for calls known to block: no monitor delay; lazily when nothing
//! waits for the P), and [`call_on_green_stack`] calls C right where the
//! green thread is.
//!
//! The default mode learns, too: an M whose call blocked until the monitor
//! took its P is marked, and its next call hands the P off before it
//! starts when green threads wait for it — calls that block come in runs —
//! and stays marked only if that call blocked as well.
//!
//! Outside the runtime (on a plain OS thread) every form just calls `f`.
//!
//! ```
//! // A C function from the C library: strlen.
//! let n = ffiber::run(|| {
//!     let s = c"hello";
//!     ffiber::ffi::call(|| unsafe { libc::strlen(s.as_ptr()) })
//! });
//! assert_eq!(n, 5);
//! ```

mod callback;
mod foreign;
mod handle;
#[cfg(feature = "mutex-spin")]
mod mutex;
mod ret;
mod sleep;
pub(crate) mod trace;

pub use callback::callback;
pub use foreign::{RegArg, RegRet};
pub use handle::Handle;
#[cfg(feature = "mutex-spin")]
pub use mutex::{SPIN_TRIES, pthread_mutex_lock};
pub use sleep::GREEN_SLEEP_MIN;
#[cfg(feature = "usleep-hook")]
pub use sleep::usleep;
pub use trace::CallStats;

use crate::sched::m;
use crate::sched::syscall::{self as state, reclaim, retaken};

use crate::sched::NO_P;
use ret::{Ret, fits_words, ret_of};
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};

/// How a foreign call treats the scheduler; choose per C function.
///
/// | mode | stack | scheduler told | if C blocks | C may call back |
/// | --- | --- | --- | --- | --- |
/// | `Default` | system | yes (a store in, a store and a load out) | monitor hands the P off | yes |
/// | `NoCallback` | system | yes | monitor hands the P off | no (checked) |
/// | `NonBlocking` | system | no | the P's other green threads wait | yes |
/// | `Blocking` | system | P given away before the call (lazily if nothing is queued) | nothing waits | yes |
///
/// and, `unsafe`, [`call_on_green_stack`]: no switch at all.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Mode {
    /// May block, may call back: fully safe (cgo's default).
    #[default]
    Default,
    /// As `Default`, and the C code promises not to call back into Rust
    /// (cgo's `#cgo nocallback`).
    NoCallback,
    /// A short call that never blocks: switch stacks only, skip the
    /// scheduler announcement. If it does block, the green threads queued
    /// on this P wait for it (other Ps can still steal them).
    NonBlocking,
    /// Known to block: if green threads are queued, hand the P to another
    /// OS thread at once, like tokio's `block_in_place` but without a
    /// thread per call. If none are, keep the P — a call that returns at
    /// once then costs about what a default one does — and let the monitor
    /// take it at its first look once work appears (a green thread made
    /// runnable, a timer due).
    Blocking,
}

/// Calls `f` — a closure that calls C — in the default mode: on the
/// system stack, with the scheduler told so that other green threads keep
/// running if the call blocks.
///
/// A panic inside `f` (in Rust code around the C call) is carried back and
/// resumed on the green thread after the call is finished.
///
/// ```
/// let pid = ffiber::run(|| ffiber::ffi::call(|| unsafe { libc::getpid() }));
/// assert_eq!(pid, std::process::id() as i32);
/// ```
#[inline]
pub fn call<F: FnOnce() -> R, R>(f: F) -> R {
    call_impl::<F, R, false>(Mode::Default, std::any::type_name::<F>(), f).0
}

/// [`call`] with an explicit [`Mode`].
///
/// ```
/// use ffiber::ffi::{Mode, call_mode};
/// let v = ffiber::run(|| call_mode(Mode::NonBlocking, || unsafe { libc::abs(-3) }));
/// assert_eq!(v, 3);
/// ```
#[inline]
pub fn call_mode<F: FnOnce() -> R, R>(mode: Mode, f: F) -> R {
    call_impl::<F, R, false>(mode, std::any::type_name::<F>(), f).0
}

/// [`call_mode`] that also returns `errno` as the C code left it: it is
/// set to 0 just before `f` and read right after `f` returns, on the system
/// stack, before the scheduler or anything else can change it (cgo's
/// `r, err := C.f()`).
///
/// ```
/// use ffiber::ffi::{Mode, call_errno};
/// let (r, errno) = ffiber::run(|| call_errno(Mode::Default, || unsafe { libc::close(-1) }));
/// assert_eq!((r, errno), (-1, libc::EBADF));
/// ```
#[inline]
pub fn call_errno<F: FnOnce() -> R, R>(mode: Mode, f: F) -> (R, i32) {
    call_impl::<F, R, true>(mode, std::any::type_name::<F>(), f)
}

/// [`call_mode`] naming the C function for fault messages (generated
/// bindings use this; the closure forms name the calling closure).
#[doc(hidden)]
#[inline]
pub fn call_named<F: FnOnce() -> R, R>(mode: Mode, name: &'static str, f: F) -> R {
    call_impl::<F, R, false>(mode, name, f).0
}

/// [`call_errno`] naming the C function for fault messages.
#[doc(hidden)]
#[inline]
pub fn call_named_errno<F: FnOnce() -> R, R>(mode: Mode, name: &'static str, f: F) -> (R, i32) {
    call_impl::<F, R, true>(mode, name, f)
}

/// Calls `f` on the green thread's own stack, as a plain function call:
/// no stack switch, no announcement. The cheapest form, and the least safe.
///
/// # Safety
///
/// The C code must be a leaf that needs less stack than the green thread
/// has left (a green thread's stack is 256 KiB by default, and a guard page
/// turns overflow into an abort with a message, not corruption), must not
/// block for long (its P's green threads wait), and must not call back
/// into Rust. Functions such as `strlen`, `memcmp` or a hash kernel with a
/// known, small stack bound qualify.
///
/// ```
/// let n = ffiber::run(|| unsafe { ffiber::ffi::call_on_green_stack(|| libc::strlen(c"abc".as_ptr())) });
/// assert_eq!(n, 3);
/// ```
#[inline(always)]
pub unsafe fn call_on_green_stack<F: FnOnce() -> R, R>(f: F) -> R {
    f()
}

/// A closure's result as it comes back from the system stack: in `rax:rdx`
/// when `R` fits there (no store and reload on the way back, which would
/// put a store-to-load forwarding delay on the caller's dependency chain),
/// else through memory. A panic in the closure leaves it uninitialised and
/// is re-raised by the protocol (`finish`) before anyone reads it.
#[repr(C)]
struct Words(MaybeUninit<u64>, MaybeUninit<u64>);

/// Runs on the system stack: calls the closure at `f` and returns its
/// result in [`Words`] (or writes it to `big`, see [`fits_words`]), and
/// `errno` as C left it to `errno` if `ERRNO`. Never unwinds: a panic is
/// caught here and stashed, as a callback's is, for the protocol to
/// re-raise on the green stack after the call.
///
/// # Safety
///
/// `f` points to an initialised `F` that this call consumes; `errno` (if
/// `ERRNO`) and `big` (if `R` is not [`fits_words`]) are valid for writes;
/// called on an M's thread by the call protocol.
unsafe extern "C" fn on_system_stack<F: FnOnce() -> R, R, const ERRNO: bool>(
    f: *mut F,
    errno: *mut i32,
    big: *mut R,
) -> Words {
    // SAFETY: our caller's `f` is initialised and read exactly once, here.
    let f = unsafe { f.read() };
    if ERRNO {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
    }
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    if ERRNO {
        // SAFETY: as above, read before anything else can run on this
        // thread; `errno` is valid for writes (our caller).
        unsafe { *errno = *libc::__errno_location() };
    }
    let mut words = [MaybeUninit::<u64>::uninit(); 2];
    match out {
        Ok(r) if fits_words::<R>() => {
            // SAFETY: `R` fits the two words and needs no more than their
            // alignment (`fits_words`).
            unsafe { words.as_mut_ptr().cast::<R>().write(r) };
        }
        // SAFETY: `big` is valid for writes when `R` is not `fits_words`.
        Ok(r) => unsafe { big.write(r) },
        Err(payload) => callback::stash_panic_payload(payload),
    }
    Words(words[0], words[1])
}

/// [`on_system_stack`] for a result the trampoline finds in one register
/// (see `ret`): returns it as the closure's C call left it, so that the
/// compiler makes that call a jump (the closure's frame is gone by then).
///
/// # Safety
///
/// As for [`on_system_stack`].
unsafe extern "C" fn on_system_stack_direct<F: FnOnce() -> R, R>(f: *mut F) -> MaybeUninit<R> {
    // SAFETY: our caller's `f` is initialised and read exactly once, here.
    caught(unsafe { f.read() })
}

/// Runs `f`, stashing a panic for the protocol to re-raise (the result is
/// then uninitialised). A closure that cannot unwind — one that calls C
/// and nothing that panics — makes the `catch_unwind` vanish, and the
/// closure's C call a jump.
#[inline(always)]
fn caught<F: FnOnce() -> R, R>(f: F) -> MaybeUninit<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => MaybeUninit::new(r),
        Err(payload) => {
            callback::stash_panic_payload(payload);
            MaybeUninit::uninit()
        }
    }
}

/// [`on_system_stack_direct`] for a closure small enough to travel by value
/// in two registers (`by_words`): rebuilt here from `rdi` and `rsi`, so
/// that neither side stores it or loads it back (a closure that captures
/// `x` by reference then costs one load of `x`; one that captures it by
/// `move`, none).
///
/// # Safety
///
/// `a` and `b` hold the bytes of an `F` (its size at most 16, alignment at
/// most 8) that this call consumes; called on an M's thread by the call
/// protocol.
unsafe extern "C" fn on_system_stack_words<F: FnOnce() -> R, R>(
    a: MaybeUninit<u64>,
    b: MaybeUninit<u64>,
) -> MaybeUninit<R> {
    let words = [a, b];
    // SAFETY: the words hold an `F`'s bytes, suitably aligned (`by_words`),
    // moved to us by our caller, who no longer owns it.
    caught(unsafe { words.as_ptr().cast::<F>().read() })
}

/// A closure that travels to the system stack in two registers: at most
/// 16 bytes, aligned to at most 8 (a closure capturing up to two
/// references, or a few small values by `move`).
const fn by_words<F>() -> bool {
    std::mem::size_of::<F>() <= 16 && std::mem::align_of::<F>() <= 8
}

/// `on_system_stack` as the untyped function pointer the trampoline calls.
#[inline(always)]
fn unsafe_fn_cast<F, R>(f: unsafe extern "C" fn(*mut F, *mut i32, *mut R) -> Words) -> unsafe extern "C" fn() {
    // SAFETY: only the pointer's type changes; the trampoline calls it with
    // the arguments it takes (see `run_on_system_stack`).
    unsafe { std::mem::transmute::<unsafe extern "C" fn(*mut F, *mut i32, *mut R) -> Words, unsafe extern "C" fn()>(f) }
}

/// Runs `f` on the system stack at `top`; the result is uninitialised only
/// if `f` panicked (the panic is then stashed for `finish`).
#[inline(always)]
fn run_on_system_stack<F: FnOnce() -> R, R, const ERRNO: bool>(top: Top, f: F) -> (MaybeUninit<R>, i32) {
    let top = top.resolve();
    let mut f = MaybeUninit::new(f);
    let mut errno = 0;
    let mut big = MaybeUninit::<R>::uninit();
    let class = ret_of::<R>();
    if !ERRNO && matches!(class, Ret::Void | Ret::Int | Ret::Sse) {
        let out = if by_words::<F>() {
            let mut words = [MaybeUninit::<u64>::uninit(); 2];
            // SAFETY: `F` fits the two words with their alignment (`by_words`).
            unsafe { words.as_mut_ptr().cast::<F>().write(f.assume_init()) };
            let callee: unsafe extern "C" fn(MaybeUninit<u64>, MaybeUninit<u64>) -> MaybeUninit<R> =
                on_system_stack_words::<F, R>;
            // SAFETY: only the pointer's type changes; called below with the
            // two words it takes.
            let callee = unsafe {
                std::mem::transmute::<
                    unsafe extern "C" fn(MaybeUninit<u64>, MaybeUninit<u64>) -> MaybeUninit<R>,
                    unsafe extern "C" fn(),
                >(callee)
            };
            // SAFETY: `top` is a 16-byte aligned free top of the M's 8 MiB
            // system stack (see `announced`); `callee` takes the closure's
            // bytes in rdi and rsi, follows the C ABI and never unwinds.
            unsafe { crate::arch::call_words(callee, top, words[0], words[1]) }
        } else {
            let callee: unsafe extern "C" fn(*mut F) -> MaybeUninit<R> = on_system_stack_direct::<F, R>;
            // SAFETY: only the pointer's type changes; called below with the
            // one argument it takes.
            let callee = unsafe {
                std::mem::transmute::<unsafe extern "C" fn(*mut F) -> MaybeUninit<R>, unsafe extern "C" fn()>(callee)
            };
            // SAFETY: `top` is a 16-byte aligned free top of the M's 8 MiB
            // system stack (see `announced`); `callee` takes the closure's
            // address in rdi, follows the C ABI and never unwinds.
            unsafe { crate::arch::call_regs(callee, top, &crate::arch::Regs::new([f.as_mut_ptr() as u64], [])) }
        };
        // The register the ABI returns `R` in (`ret_of`); its low bytes are
        // `R`'s (the rest is undefined, and not read).
        let word = [MaybeUninit::new(if class == Ret::Sse { out.xmm0 } else { out.rax })];
        // SAFETY: `R` is at most 8 bytes with alignment at most 8 (an
        // integer, a thin pointer, a float, or zero-sized); the bytes are
        // those `on_system_stack_direct` returned as an `R`, or garbage if
        // the closure panicked, which is why this stays `MaybeUninit`.
        return (unsafe { word.as_ptr().cast::<MaybeUninit<R>>().read() }, 0);
    }
    let callee = unsafe_fn_cast(on_system_stack::<F, R, ERRNO>);
    // The inline register trampoline, with the closure's address (and
    // errno's, and the result's if it is big) as the arguments.
    // SAFETY: `top` is a 16-byte aligned free top of the M's 8 MiB system
    // stack (see `announced`); `callee` takes three pointer arguments in
    // rdi, rsi, rdx (valid as it requires; only rdi is read when `R` comes
    // back in registers and errno is not asked for), returns `Words` in
    // rax:rdx, follows the C ABI and never unwinds.
    let out = unsafe {
        if class == Ret::Words && !ERRNO {
            crate::arch::call_regs(callee, top, &crate::arch::Regs::new([f.as_mut_ptr() as u64], []))
        } else {
            let args = [f.as_mut_ptr() as u64, (&raw mut errno) as u64, big.as_mut_ptr() as u64];
            crate::arch::call_regs(callee, top, &crate::arch::Regs::new(args, []))
        }
    };
    if fits_words::<R>() {
        // Back from the registers into `R`'s bytes (its padding bytes, if
        // any, are whatever the registers held: padding has no value).
        let mut words = [MaybeUninit::<u64>::new(out.rax), MaybeUninit::new(out.rdx)];
        // SAFETY: `R` fits the two words with their alignment (`fits_words`);
        // the bytes are those `on_system_stack` wrote from an `R`, or
        // garbage if it panicked, which is why this stays `MaybeUninit`.
        (unsafe { words.as_mut_ptr().cast::<MaybeUninit<R>>().read() }, errno)
    } else {
        (big, errno)
    }
}

/// Bytes left untouched below a stack pointer before using the stack below.
const SYSTEM_STACK_MARGIN: usize = 256;

/// Where a foreign call's C frames go.
#[derive(Clone, Copy)]
enum Top {
    /// The free top of the M's system stack, 16-byte aligned.
    At(*mut u8),
    /// Right below the frame that switches stacks: for a call from a
    /// callback, which already runs on the system stack. Resolved in that
    /// frame, where the stack pointer is final — computed any earlier (in
    /// a caller), the frames between would lie below it, and C would write
    /// over them (as it did in unoptimised builds, where those frames are
    /// not inlined away).
    BelowHere,
}

impl Top {
    /// The stack top to switch to; call it in the frame that switches.
    #[inline(always)]
    fn resolve(self) -> *mut u8 {
        match self {
            Top::At(top) => top,
            Top::BelowHere => below_here(),
        }
    }
}

/// A free, aligned stack top below the calling frame and its red zone
/// (inlined: "the calling frame" is the caller's).
#[inline(always)]
fn below_here() -> *mut u8 {
    ((crate::arch::stack_pointer() - SYSTEM_STACK_MARGIN) & !15) as *mut u8
}

#[inline(always)]
fn call_impl<F: FnOnce() -> R, R, const ERRNO: bool>(mode: Mode, name: &'static str, f: F) -> (R, i32) {
    let (out, errno) = announced(
        mode,
        name,
        f,
        |top, f| run_on_system_stack::<F, R, ERRNO>(top, f),
        |f| {
            let (r, errno) = plain::<F, R, ERRNO>(f);
            (MaybeUninit::new(r), errno)
        },
    );
    // SAFETY: every way through the protocol re-raises a panic stashed by
    // `on_system_stack` (`finish`, `in_place_reraise`) before it returns, and
    // `plain` returns only with a result: `out` holds an `R`.
    (unsafe { out.assume_init() }, errno)
}

/// The call protocol around `on_sys(top, arg)`, which runs C on the system
/// stack whose free top is `top`; `here(arg)` instead when there is no
/// runtime (a plain OS thread) or we are already on the system stack.
///
/// The common case — a green thread making a call that is not nested in
/// another call or a callback — is inlined and has nothing to save for an
/// outer call; everything else takes [`announced_general`], out of line.
/// (Keeping the nested case's saved state out of the inlined path keeps it
/// out of the registers that the C call forces the caller to spill.)
#[inline(always)]
fn announced<A, T>(
    mode: Mode,
    name: &'static str,
    arg: A,
    on_sys: impl FnOnce(Top, A) -> T + Copy,
    here: impl FnOnce(A) -> T,
) -> T {
    match announced_fresh(mode, name, arg, on_sys) {
        Ok(r) => r,
        Err(arg) => announced_general(mode, name, arg, on_sys, here),
    }
}

/// [`announced`]'s common case, inlined: a green thread making a call that
/// is not nested in another call or a callback. Gives `arg` back in every
/// other case, for the caller to take the general path out of line (built
/// from the value returned, so that the common path never stores the
/// arguments for a call it does not make).
#[inline(always)]
fn announced_fresh<A, T>(mode: Mode, name: &'static str, arg: A, on_sys: impl FnOnce(Top, A) -> T) -> Result<T, A> {
    let mp = m::current_m_inline();
    if mp.is_null() {
        std::hint::cold_path();
        return Err(arg);
    }
    // SAFETY: `mp` is this thread's M, alive while its thread runs.
    let m = unsafe { &*mp };
    let local = m.local();
    // SAFETY: reading our own M's state on its thread.
    let fresh = unsafe {
        let l = &*local;
        l.cur_g.is_some() && l.foreign.is_none() && l.cb_depth == 0
    };
    if !fresh {
        std::hint::cold_path();
        return Err(arg);
    }
    // SAFETY: on `m`'s thread, with a green thread (us) running on it and
    // no call or callback in progress: the M's system stack below g0's
    // reserve is free (see `G0_RESERVE`).
    let top = unsafe { (*local).sys_top };
    Ok(protocol(m, mode, name, Top::At(top as *mut u8), false, arg, on_sys))
}

/// [`announced`] for everything but the common case: no green thread (g0),
/// a call made inside another call's closure, a call from a callback.
#[inline(never)]
#[cold]
fn announced_general<A, T>(
    mode: Mode,
    name: &'static str,
    arg: A,
    on_sys: impl FnOnce(Top, A) -> T,
    here: impl FnOnce(A) -> T,
) -> T {
    // Read once; after `reacquire_p` (which may switch OS threads) nothing
    // derived from it is used.
    let mp = m::current_m_inline();
    // SAFETY: reading our own M's state on its thread. Outside the runtime
    // just call.
    if mp.is_null() || unsafe { (*(*mp).local()).cur_g.is_none() } {
        return here(arg);
    }
    // SAFETY: `mp` is this thread's M and a green thread (us) runs on it.
    let m = unsafe { &*mp };
    let local = m.local();
    // SAFETY: our own M's state, on its thread.
    if unsafe { (*local).foreign.is_some() } {
        // Already on the system stack: inside another call's closure, or in
        // a callback that still runs under the outer call's announcement.
        // SAFETY: as above.
        if mode != Mode::Blocking || !unsafe { (*local).cb_lazy } {
            let r = here(arg);
            // SAFETY: as above (a callback's green thread never leaves its M).
            if unsafe { (*local).cb_flags } & m::CB_PANIC != 0 {
                in_place_reraise(local);
            }
            return r;
        }
        // A `Blocking` call from a callback: announce it properly (hand the
        // P off now) rather than wait for the monitor.
        reclaim(m);
    }
    // SAFETY: our own M's state, on its thread.
    let hot = unsafe {
        let l = &mut *local;
        // The call a `HOT` M makes next (its depth is 0 but for the flag
        // bits): take the flag, and decide below whether to hand off first.
        let hot = l.cb_depth & m::HOT_CALL != 0 && l.depth() == 0;
        if hot {
            l.cb_depth &= !m::HOT_CALL;
        }
        hot
    };
    // SAFETY: our own M's state, on its thread.
    if unsafe { (*local).cb_depth } == m::TRACING {
        // A plain call of a traced runtime (depth 0, trace bit set): the
        // fast path sent it here to be recorded.
        return traced(m, mode, name, hot, arg, on_sys);
    }
    // SAFETY: on `m`'s thread. The C code runs below g0's reserve on the
    // M's own stack or, in a callback, right below the callback's frames
    // (see `G0_RESERVE`).
    let top = unsafe {
        let l = &mut *local;
        if l.depth() != 0 {
            // A call from a callback that has left the outer call (`reclaim`):
            // a re-announcement flagged for the outer call by an earlier
            // callback is moot (that word was exited; this callback's own
            // return re-announces and flags it again), and must not make
            // this call's exit read the M's word instead of its own.
            l.cb_flags &= !m::CB_REANNOUNCED;
            Top::BelowHere
        } else {
            Top::At(l.sys_top as *mut u8)
        }
    };
    protocol(m, mode, name, top, hot, arg, on_sys)
}

/// A call of a traced runtime (see `trace`): [`protocol`] with the time in
/// C and the callbacks made measured around the C code itself, on the M
/// that makes the call, and recorded under `name`.
#[inline(never)]
fn traced<A, T>(m: &m::M, mode: Mode, name: &'static str, hot: bool, arg: A, on_sys: impl FnOnce(Top, A) -> T) -> T {
    let local = m.local();
    let sched = m.sched.clone();
    // SAFETY: on `m`'s thread, a green thread with no call in progress.
    let top = unsafe {
        (*local).trace_name = Some(name);
        (*local).trace_cbs = 0;
        Top::At((*local).sys_top as *mut u8)
    };
    let mut took = std::time::Duration::ZERO;
    let mut callbacks = 0;
    let r = protocol(m, mode, name, top, hot, arg, |top, a| {
        let t0 = std::time::Instant::now();
        let r = on_sys(top, a);
        took = t0.elapsed();
        // SAFETY: still on the M that made the call (C returned here).
        callbacks = unsafe { (*local).trace_cbs };
        r
    });
    if let Some(t) = &sched.trace {
        t.call(name, took, callbacks);
    }
    // Forget the name on this M if the call ended on it (a call that lost
    // its P may have come back on another M; the old one overwrites the
    // name at its next traced call).
    let now = m::current_m_inline();
    if std::ptr::eq(now, m) {
        // SAFETY: our own M's state, on its thread.
        unsafe { (*local).trace_name = None };
    }
    r
}

/// The announcement itself, by mode: runs `on_sys` on the stack below
/// `top` as the calling M's foreign call `name`. The mode is not recorded:
/// a callback from the call reads it off the M's state (`callback::mode_of`).
#[inline(always)]
fn protocol<A, T>(
    m: &m::M,
    mode: Mode,
    name: &'static str,
    top: Top,
    hot: bool,
    arg: A,
    on_sys: impl FnOnce(Top, A) -> T,
) -> T {
    let local = m.local();
    // SAFETY: on `m`'s thread, no switch until `on_sys` returns.
    unsafe {
        let l = &mut *local;
        l.foreign = Some(name);
    }
    // What callbacks left for this call (a stashed panic, a new state
    // word) is flagged on this M (where they ran); read it before the way
    // back may move us to another M.
    let taken = |local: *mut m::MLocal| {
        // SAFETY: on `m`'s thread; a callback returns on the M it was
        // called on (its green thread is locked there).
        let l = unsafe { &mut *local };
        l.foreign = None;
        let flags = l.cb_flags;
        if flags != 0 {
            std::hint::cold_path();
            l.cb_flags = 0;
        }
        flags
    };
    match mode {
        Mode::NonBlocking => {
            let r = on_sys(top, arg);
            let flags = taken(local);
            if flags != 0 {
                std::hint::cold_path();
                return finish(r, flags);
            }
            r
        }
        Mode::Default | Mode::NoCallback | Mode::Blocking => {
            let flags = match mode {
                Mode::NoCallback => state::NOCB,
                Mode::Blocking => state::BLK,
                _ => 0,
            };
            let prev = m.call.between();
            // Hand the P off before the call when green threads wait for it
            // and the call is expected to block: a `Blocking` call, or a
            // default call on an M whose last call blocked until the
            // monitor took its P (`state::HOT`: such calls come in runs).
            // Otherwise announce the call; a lazy `Blocking` call (`BLK`)
            // loses its P at the monitor's first look once work appears.
            let eager = match mode {
                Mode::Blocking => p_wanted(m),
                // (`hot` is false on the inlined common path, which a `HOT`
                // M's next call never takes: `m::HOT_CALL`.)
                Mode::Default if hot && prev & state::HOT != 0 => {
                    std::hint::cold_path();
                    // SAFETY: our own M's state, on its thread.
                    let hot_name = unsafe { (*local).hot_name };
                    hot_name == m::name_key(Some(name)) && p_wanted(m)
                }
                _ => false,
            };
            let v = if eager {
                std::hint::cold_path();
                hand_off_before(m, mode == Mode::Default);
                // A word that makes the exit below take its slow path to
                // `retaken`, which sees the hand-off: the common path pays
                // nothing for this one (see `state::handed_off_word`).
                state::handed_off_word(prev)
            } else {
                // Enter: a plain store (see `state`).
                // SAFETY: as above; a running green thread's M holds a P.
                m.call.enter_from(prev, unsafe { (*local).p }, flags)
            };
            let r = on_sys(top, arg);
            announced_exit(m, v, r, taken(local), name)
        }
    }
}

/// Green threads wait for the P that `m` holds, or for any P: what makes a
/// call that expects to block hand its P off first.
#[inline(always)]
fn p_wanted(m: &m::M) -> bool {
    // SAFETY: on `m`'s thread, which holds a P (a running green thread).
    m.sched.has_queued(unsafe { (*m.local()).p })
}

/// A call about to be made without its P: gives the P away, and leaves
/// what the way back needs in the M (`handed_off`; for a default-mode
/// call on a `HOT` M, `hot`, the time, so that the M stays `HOT` only if
/// the call did block: see `state::retaken`).
#[cold]
#[inline(never)]
fn hand_off_before(m: &m::M, hot: bool) {
    let local = m.local();
    // From here on this M holds no P and must not touch P-owned state.
    // SAFETY: on `m`'s thread, no switch until the call returns; the P it
    // held is remembered for the way back.
    let p = unsafe {
        let l = &mut *local;
        l.handed_off = std::mem::replace(&mut l.p, NO_P);
        l.handoff_at = if hot { m.sched.now().max(1) } else { 0 };
        l.handed_off
    };
    if hot {
        m.call.clear_hot();
        // That this call blocks is a guess: the M that takes the P starts
        // `HOT` too only while the P's budget of guesses lasts
        // (`sched::HOT_CHAIN`, refilled by each block proven on it).
        m.sched.handoff_hot_p(p);
    } else {
        m.sched.handoff_p(p);
    }
}

/// The way out of an announced call `v` whose callbacks left `flags`: the
/// exit protocol (a plain store and a plain load, asymmetric protocol),
/// then, if the monitor took the P, the slow way back to one.
#[inline(always)]
fn announced_exit<T>(m: &m::M, mut v: u64, r: T, flags: u8, name: &'static str) -> T {
    if flags != 0 {
        // Callbacks ran and left something: the same exit, off the common
        // path (which then tests the flags only once).
        std::hint::cold_path();
        if flags & m::CB_REANNOUNCED != 0 {
            // A callback took the P back and re-announced the call: another
            // number, and the P it got.
            v = m.call.current();
        }
        if !m.call.exit(v) {
            retaken(m, v, Some(name));
        }
        return finish(r, flags);
    }
    // (`v` is kept in a register across the call: reloading the word just
    // stored made the next call's entry wait for it.)
    if !m.call.exit(v) {
        std::hint::cold_path();
        retaken(m, v, Some(name));
    }
    r
}

/// A foreign call made in place (on the system stack, under an enclosing
/// call's announcement) returned after a callback from it panicked:
/// re-raise the panic here, in the Rust code that made the call.
#[cold]
fn in_place_reraise(local: *mut m::MLocal) {
    // SAFETY: our own M's state, on its thread.
    unsafe { (*local).cb_flags &= !m::CB_PANIC };
    reraise();
}

/// After a foreign call: re-raises a panic that a callback from it caught.
#[inline(always)]
fn finish<T>(r: T, cb_flags: u8) -> T {
    if cb_flags & m::CB_PANIC != 0 {
        std::hint::cold_path();
        reraise();
    }
    r
}

#[cold]
fn reraise() {
    let g = m::current_g();
    // SAFETY: `g` is the running green thread (us): we own its state.
    let payload = unsafe { (*g).inner().cb_panic.take() };
    if let Some(p) = payload {
        panic::resume_unwind(p);
    }
}

/// The register pass-through form, for generated bindings: calls the C
/// function `f` in `mode` with its arguments already laid out in argument
/// registers, and returns its return registers. No closure, no argument
/// struct: `f` is called straight from the green thread's code with only
/// the stack pointer moved. See [`Regs`] for what fits.
///
/// ```
/// use ffiber::ffi::{Mode, Regs, call_regs};
/// unsafe extern "C" {
///     fn labs(x: libc::c_long) -> libc::c_long;
/// }
/// let v = ffiber::run(|| {
///     let f: unsafe extern "C" fn(libc::c_long) -> libc::c_long = labs;
///     let regs = Regs::new([(-5i64) as u64], []);
///     // SAFETY: labs takes one long in rdi and returns one in rax.
///     unsafe { call_regs(Mode::Default, "labs", std::mem::transmute(f), &regs) }.rax as i64
/// });
/// assert_eq!(v, 5);
/// ```
///
/// # Safety
///
/// `f` must be a C function (SysV x86-64) whose parameters all travel in
/// registers — at most 6 integer/pointer and 8 floating-point ones, no
/// struct passed by value in memory — and whose return value, if any, fits
/// in `rax:rdx` / `xmm0:xmm1`; `regs` must hold exactly its arguments.
/// Everything [`call`] requires of the C code holds too.
#[inline(always)]
pub unsafe fn call_regs<const NI: usize, const NS: usize>(
    mode: Mode,
    name: &'static str,
    f: unsafe extern "C" fn(),
    regs: &Regs<NI, NS>,
) -> RegsOut {
    // SAFETY: forwarded to our caller; `top` is the system stack's free top.
    let on_sys = |top: Top, f| unsafe { crate::arch::call_regs(f, top.resolve(), regs) };
    match announced_fresh(mode, name, f, on_sys) {
        Ok(out) => out,
        // The general path gets the registers by value, so the common path
        // never stores them for a call it does not make.
        // SAFETY: forwarded to our caller.
        Err(f) => unsafe { call_regs_general(mode, name, f, *regs) },
    }
}

/// [`call_regs`] when the call is not a green thread's plain call (see
/// [`announced`]).
///
/// # Safety
///
/// As for [`call_regs`].
#[inline(never)]
#[cold]
unsafe fn call_regs_general<const NI: usize, const NS: usize>(
    mode: Mode,
    name: &'static str,
    f: unsafe extern "C" fn(),
    regs: Regs<NI, NS>,
) -> RegsOut {
    announced_general(
        mode,
        name,
        f,
        // SAFETY: our caller vouches for `f` and `regs`; `top` is free stack.
        |top: Top, f| unsafe { crate::arch::call_regs(f, top.resolve(), &regs) },
        |f| {
            // Not in a green thread, or already on the system stack: call
            // right here, below our frame and its red zone.
            // SAFETY: as above; `below_here` is free stack below this frame.
            unsafe { crate::arch::call_regs(f, below_here(), &regs) }
        },
    )
}

pub use crate::arch::{Regs, RegsOut};

/// A copy of `s` in C memory (`malloc`), NUL-terminated, for C code that
/// keeps or frees the string itself (cgo's `C.CString`). The caller owns it:
/// free it with [`free`] (or C's `free`). Fails if `s` contains a NUL byte.
///
/// ```
/// let p = ffiber::ffi::c_string("green").unwrap();
/// // SAFETY: `p` is the NUL-terminated copy just made.
/// assert_eq!(unsafe { ffiber::ffi::rust_string(p) }, "green");
/// // SAFETY: `p` came from c_string and is freed once.
/// unsafe { ffiber::ffi::free(p.cast()) };
/// ```
pub fn c_string(s: &str) -> Result<*mut std::ffi::c_char, std::ffi::NulError> {
    let owned = std::ffi::CString::new(s)?;
    let bytes = owned.as_bytes_with_nul();
    Ok(c_bytes(bytes).cast())
}

/// A copy of `bytes` in C memory (`malloc`; cgo's `C.CBytes`); the caller
/// owns it and frees it with [`free`]. Aborts with a message if `malloc`
/// fails.
pub fn c_bytes(bytes: &[u8]) -> *mut std::ffi::c_void {
    // SAFETY: malloc has no preconditions; a size of 0 is allowed (we ask
    // for at least 1 so that the result is never a valid-looking null).
    let p = unsafe { libc::malloc(bytes.len().max(1)) };
    if p.is_null() {
        eprintln!("ffiber: malloc({}) failed in ffi::c_bytes", bytes.len());
        std::process::abort();
    }
    // SAFETY: `p` has room for `bytes.len()` bytes and does not overlap it.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
    p
}

/// Frees memory from [`c_string`], [`c_bytes`] or C's `malloc`.
///
/// # Safety
///
/// `p` is null or came from `malloc` (those functions, or C) and is not
/// used or freed again.
pub unsafe fn free(p: *mut std::ffi::c_void) {
    // SAFETY: forwarded to the caller.
    unsafe { libc::free(p) }
}

/// A Rust copy of a NUL-terminated C string (cgo's `C.GoString`); invalid
/// UTF-8 is replaced. C keeps ownership of `p`.
///
/// # Safety
///
/// `p` is a valid NUL-terminated string for the duration of the call.
pub unsafe fn rust_string(p: *const std::ffi::c_char) -> String {
    // SAFETY: forwarded to the caller.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A Rust copy of `len` bytes of C memory (cgo's `C.GoBytes`). C keeps
/// ownership of `p`.
///
/// # Safety
///
/// `p` is valid for reading `len` bytes (or `len` is 0).
pub unsafe fn rust_bytes(p: *const std::ffi::c_void, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: forwarded to the caller.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec()
}

/// One variadic argument of a C function (`printf`'s `...`), in the
/// promoted form C passes it: integers as `long`, pointers, `double`.
/// Generated bindings of variadic functions take a slice of these.
///
/// ```
/// use ffiber::ffi::{Regs, VarArg};
/// let mut regs = Regs::default();
/// let fixed = 1; // the format string already sits in rdi
/// VarArg::pack(&mut regs, fixed, 0, &[VarArg::Int(42), VarArg::Double(0.5)]).unwrap();
/// assert_eq!((regs.int[1], f64::from_bits(regs.sse[0]), regs.nsse), (42, 0.5, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VarArg {
    /// Any integer (promoted to `long`).
    Int(i64),
    /// Any pointer (a C string, a buffer).
    Ptr(*const std::ffi::c_void),
    /// A `double` (a C `float` is promoted to it).
    Double(f64),
}

impl VarArg {
    /// Places `args` after `ints` integer and `sses` floating-point fixed
    /// arguments, and sets the count of vector registers used (`al`).
    /// Fails if they do not all fit in registers (6 integer, 8 vector):
    /// passing variadic arguments on the stack is not supported.
    pub fn pack(regs: &mut Regs, mut ints: usize, mut sses: usize, args: &[VarArg]) -> Result<(), String> {
        for a in args {
            match *a {
                VarArg::Int(v) if ints < 6 => {
                    regs.int[ints] = v as u64;
                    ints += 1;
                }
                VarArg::Ptr(p) if ints < 6 => {
                    regs.int[ints] = p as usize as u64;
                    ints += 1;
                }
                VarArg::Double(d) if sses < 8 => {
                    regs.sse[sses] = d.to_bits();
                    sses += 1;
                }
                _ => {
                    return Err(format!(
                        "ffiber: too many variadic arguments for registers ({} in all; at most 6 integer/pointer and \
                         8 floating-point arguments can be passed)",
                        args.len()
                    ));
                }
            }
        }
        regs.nsse = sses as u8;
        Ok(())
    }
}

/// Outside the runtime: just call.
#[inline(always)]
fn plain<F: FnOnce() -> R, R, const ERRNO: bool>(f: F) -> (R, i32) {
    if ERRNO {
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
    }
    let r = f();
    // SAFETY: as above.
    let errno = if ERRNO { unsafe { *libc::__errno_location() } } else { 0 };
    (r, errno)
}
