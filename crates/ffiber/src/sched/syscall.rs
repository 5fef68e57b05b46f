//! The call-state protocol between an M in a foreign call and the monitor.
//!
//! Each M has one state word, written by its own thread (and, in the
//! symmetric fallback below, claimed by the monitor):
//!
//! ```text
//!   n<<26 | p<<2 --enter: store v = (n+1)<<26 | p<<2 | IN_C [| NOCB]--> v
//!   v --exit: store v without IN_C/NOCB, then load `retake`--> (n+1)<<26 | p<<2
//! ```
//!
//! `n` numbers the M's calls (so the monitor can tell one long call from
//! many short ones), `p` is the P the M holds, and `NOCB` marks a
//! `NoCallback` call (a callback reads the call's mode from the word). The
//! number and the P stay in the word between calls (`set_p` rewrites the P
//! when the M takes another), so the next entry is the previous word plus
//! one — no counter to load and store back, no P to check.
//! The fast path is two plain stores and two plain loads of the M's own
//! word line — no read-modify-write at all. While the M is in C its word
//! also tells a callback from that call which call and P it belongs to.
//!
//! **Retaking a P** (the monitor, rare): to take P `p` from an M whose word
//! has shown the same `v` for too long (or at first sight, for a lazy
//! `Blocking` call or one right after a call that lost its P: see
//! `sysmon`) — for every such M of one scan at once, so that one barrier
//! serves them all —
//!
//! 1. store `retake = v`;
//! 2. `membarrier(PRIVATE_EXPEDITED)`: every running thread of the process
//!    executes a full memory barrier (a descheduled one had one at its
//!    context switch);
//! 3. load the word: if it still is `v`, the P is taken — hand it off;
//!    otherwise the call had ended, and the M keeps it;
//! 4. publish that outcome in `decision`.
//!
//! A call is retaken at most once: the word keeps showing `v` while the M
//! stays in C after losing its P, so the monitor skips a call whose `v` it
//! already requested.
//!
//! The M's exit stores `v` without its flags and then loads `retake`. Take
//! the point where the barrier of step 2 hits the M's thread. If the M's
//! store came before it, step 3 sees another word and the M keeps its P
//! (whether or not its load saw the request: if it did, it waits for the
//! "kept" decision). If the M's store
//! comes after it, its load comes after it too and sees `retake == v`, so
//! the M waits for the decision — "taken" if step 3 read `v`, "kept" if the
//! store had become visible by then. Either way both sides agree, and the
//! M waits only in the rare case the monitor is retaking this very call.
//! Unlike a per-P word, a late store by the M lands in its own word, never
//! in state a P's next owner uses.
//!
//! **Asking for a yield** (any thread, rare): a green thread back from a
//! call whose P was taken, finding no P idle, waits next in line on its old
//! P and asks that P's holder to yield at its next exit, by storing
//! `YIELD` (above every word) in the holder's `retake` — with a
//! compare-and-swap, and only over a monitor request for a call the M has
//! left behind (it has entered a later one): a value stored over a request
//! whose exit has not read `retake` yet would come later in `retake`'s
//! order and tell that exit "kept" where the monitor may have decided
//! "taken". The exit compares
//! `retake < v` instead of `retake != v`: the same one load and compare
//! catches both the monitor's request (`== v`) and a yield (`YIELD`); a
//! word left from before the call numbers wrapped around is forgotten on
//! the slow path. Only the exit's one load counts: if it read `YIELD`, any
//! request of the monitor for this call came later in `retake`'s order,
//! so by the argument above the
//! monitor sees the exit's store and decides "kept": the P stays, and the
//! green thread yields (`retaken`). A monitor request stored over `YIELD`
//! drops the yield: the monitor then takes the P for the waiting work.
//!
//! This is the asymmetric-fence pattern: the barrier a symmetric protocol
//! would need on every call is paid by the monitor, on the rare retake.
//! Where `membarrier` is not available (old kernels, seccomp), the word is
//! handled symmetrically instead: the exit is an atomic swap and the monitor
//! claims the word with a compare-and-swap from `v` to `v | TAKEN` (keeping
//! the number and P readable) — one RMW per call. Which protocol an M uses
//! is a bit of its word (`SYM`, set when the M is created), so the exit
//! decides on the copy of the word it holds in a register.

use super::NO_P;
use super::m::{self, Action, M};
use crossbeam_utils::CachePadded;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

/// Low bits of a state word.
pub(crate) const IN_C: u64 = 1;
/// Symmetric protocol: the monitor's claim on a word.
const TAKEN: u64 = 2;
/// The M's previous call lost its P to the monitor (set on the way back
/// from such a call, cleared by the exit of the next one): the monitor
/// takes this call's P at first sight when work waits for it (see
/// `sysmon`). Calls that block come in runs — a green thread that sleeps
/// in C usually does it again — so this is how many blocking calls get
/// handed off at one scan each instead of two.
pub(crate) const HOT: u64 = 1 << 22;
/// A `Blocking` call made lazily: the P stays with the M, and the monitor
/// takes it as soon as work appears anywhere (see `ffi::Mode::Blocking`).
pub(crate) const BLK: u64 = 1 << 23;
/// The call was made in `NoCallback` mode (read by a callback from it).
pub(crate) const NOCB: u64 = 1 << 24;
/// The M uses the symmetric protocol (set once, in every word of the M:
/// the exit tests its register copy of the word instead of loading a flag).
const SYM: u64 = 1 << 25;
/// Where the call number starts in a state word.
pub(crate) const CALL_SHIFT: u32 = 26;
/// One step of the call number (bits 26 and up).
const NEXT: u64 = 1 << CALL_SHIFT;
/// `decision` for "the call had ended; the M keeps its P".
const KEPT: u64 = 0;
/// `retake` for "a green thread waits for a P: yield at the way out of
/// your current or next call" (see [`CallState::request_yield`]). Above
/// every word, so the exit's one compare (`retake < v`) catches it.
const YIELD: u64 = u64::MAX;

/// One M's call state, on its own cache line (the M writes it on every
/// call; the monitor reads it now and then).
pub(crate) struct CallState {
    inner: CachePadded<Words>,
}

struct Words {
    word: AtomicU64,
    retake: AtomicU64,
    decision: AtomicU64,
    /// The last call the monitor took after seeing it last at least
    /// `RETAKE_AFTER` (written before the decision or the claim that
    /// publishes the retake, read by the M after it).
    proven: AtomicU64,
    /// The M's thread found a yield request at an exit (see
    /// [`CallState::request_yield`]); read and cleared by `retaken` on the
    /// same thread.
    yield_asked: AtomicBool,
}

impl Default for CallState {
    /// A call state for a new M (of a runtime already built: [`init`] has
    /// decided the protocol).
    fn default() -> Self {
        let w = Words {
            word: AtomicU64::new(if asymmetric() { 0 } else { SYM }),
            retake: AtomicU64::new(0),
            decision: AtomicU64::new(0),
            proven: AtomicU64::new(0),
            yield_asked: AtomicBool::new(false),
        };
        CallState { inner: CachePadded::new(w) }
    }
}

static ASYM: AtomicBool = AtomicBool::new(false);

/// Decides, once per process, whether the asymmetric protocol can be used
/// (registers for membarriers). Called when a runtime is built, before any
/// of its threads exist, so every caller and the monitor see the same
/// answer; it never changes afterwards.
///
/// `FFIBER_NO_MEMBARRIER=1` forces the symmetric protocol (for tests and
/// for comparing the two).
pub(crate) fn init() {
    static ONCE: OnceLock<bool> = OnceLock::new();
    let asym = *ONCE
        .get_or_init(|| std::env::var_os("FFIBER_NO_MEMBARRIER").is_none_or(|v| v != "1") && membarrier_register());
    if asym {
        ASYM.store(true, Relaxed);
    }
}

/// Whether the asymmetric protocol is in use (see [`init`]).
#[inline(always)]
pub(crate) fn asymmetric() -> bool {
    ASYM.load(Relaxed)
}

/// The P field of a state word (bits 2-21; `runtime::MAX_PROCS` is 1024).
const P_MASK: u64 = ((1 << 20) - 1) << 2;
/// Everything an exit clears: the call's flags and `HOT`.
const CALL_FLAGS: u64 = IN_C | HOT | BLK | NOCB;

/// The P of a state word.
pub(crate) fn p_of(v: u64) -> usize {
    ((v & P_MASK) >> 2) as usize
}

impl CallState {
    /// The M's thread, announcing a call while it holds P `p`: stores and
    /// returns the call's word, the previous call's number plus one with
    /// `p`, `IN_C` and `flags` (0, [`NOCB`] or [`BLK`]: the call's mode).
    ///
    /// The number and the P live in the word itself between calls (an exit
    /// clears only `IN_C`; [`set_p`](Self::set_p) rewrites the P when the M
    /// takes another), so the entry is one load and one add. Building the
    /// word on every call — a counter loaded, incremented and stored back,
    /// the P loaded and shifted in, a check that the word still names the
    /// M's P — cost ~1.5 ns a call on a first-generation Zen, where the
    /// call path is bound by the number of instructions it executes.
    #[inline(always)]
    pub(crate) fn enter(&self, p: usize, flags: u64) -> u64 {
        self.enter_from(self.between(), p, flags)
    }

    /// The M's thread, between calls: its word (the last call's number,
    /// the P, maybe [`HOT`]), for [`enter_from`](Self::enter_from).
    #[inline(always)]
    pub(crate) fn between(&self) -> u64 {
        // Our own last store: the monitor writes this word only between a
        // claim and our exit (symmetric protocol), never while we are out
        // of C.
        self.inner.word.load(Relaxed)
    }

    /// [`enter`](Self::enter) with the word [`between`](Self::between)
    /// returned (the caller looked at it first: one load).
    #[inline(always)]
    pub(crate) fn enter_from(&self, prev: u64, p: usize, flags: u64) -> u64 {
        debug_assert_eq!(prev, self.inner.word.load(Relaxed));
        debug_assert_eq!(prev & (3 | BLK | NOCB), 0, "a call announced inside another announced call");
        debug_assert_eq!(flags & !(BLK | NOCB), 0);
        debug_assert_eq!(p_of(prev), p, "the state word names another P than the M holds");
        let _ = p;
        // `prev` has none of the call's flags set (only, maybe, `HOT`):
        // adding them sets them.
        let v = prev.wrapping_add(NEXT | IN_C | flags);
        // Release: a monitor that reads `v` and takes the P sees everything
        // this M did with it before.
        self.inner.word.store(v, Release);
        v
    }

    /// The M's thread, back from a call made with [`handed_off_word`]:
    /// restores the word's protocol bit (`SYM` only where the symmetric
    /// protocol is in use).
    pub(crate) fn after_hand_off(&self) {
        self.update_between(|w| if asymmetric() { w & !SYM } else { w | SYM });
    }

    /// The M's thread, out of any announced call: rewrites its word with
    /// `f`. Relaxed: without `IN_C` the monitor ignores the word.
    #[inline]
    fn update_between(&self, f: impl FnOnce(u64) -> u64) {
        let w = self.inner.word.load(Relaxed);
        debug_assert_eq!(w & IN_C, 0, "the M's word changed during an announced call");
        self.inner.word.store(f(w), Relaxed);
    }

    /// The M's thread, between calls: forgets [`HOT`] (the call it was
    /// about handed its P off by itself).
    pub(crate) fn clear_hot(&self) {
        self.update_between(|w| w & !HOT);
    }

    /// The M's thread, back from a call whose P the monitor took: its next
    /// call is likely to block too (see [`HOT`]).
    pub(crate) fn mark_hot(&self) {
        self.update_between(|w| w | HOT);
    }

    /// The M's thread, out of any announced call, now holding P `p`: the
    /// P its next call's word names. Every place an M takes a P calls it.
    pub(crate) fn set_p(&self, p: usize) {
        self.update_between(|w| (w & !P_MASK) | ((p as u64) << 2));
    }

    /// The word of the call this M is in (a callback's outer call): its
    /// number and P, with the monitor's mark cleared.
    #[inline(always)]
    pub(crate) fn current(&self) -> u64 {
        self.inner.word.load(Relaxed) & !TAKEN
    }

    /// The M's thread, leaving call `v` (the one it announced last). Returns
    /// whether the M still holds its P with nothing to do about it (false:
    /// the monitor took it, or a yield was asked for: see [`retaken`]).
    #[inline(always)]
    pub(crate) fn exit(&self, v: u64) -> bool {
        // `v` is from `enter` or `current`: the call's word, unclaimed.
        debug_assert_eq!(v & 3, IN_C);
        let out = v & !CALL_FLAGS;
        if v & SYM == 0 {
            self.inner.word.store(out, Release);
            // The CPU-side fence is the monitor's membarrier (module docs).
            std::sync::atomic::compiler_fence(SeqCst);
            // `retake` holds an earlier call's word (a smaller number) unless
            // the monitor is taking this call (`v`) or a yield is asked
            // (`YIELD`, above every word): one compare for both.
            let r = self.inner.retake.load(Relaxed);
            if r < v {
                return true;
            }
            std::hint::cold_path();
            self.exit_slow(v, r)
        } else {
            std::hint::cold_path();
            // The monitor may have claimed `v` (as `v | TAKEN`) meanwhile.
            self.inner.word.swap(out, AcqRel) == v && !self.yield_taken()
        }
    }

    /// [`exit`](Self::exit) after `retake` read `r`, not an earlier call's
    /// word. Only that one load counts for the protocol (module docs): if
    /// it saw the monitor's request for `v`, wait for the decision. If it
    /// saw `YIELD`, or a word from before the call numbers wrapped around,
    /// any request of the monitor for `v` comes later in `retake`'s order,
    /// so the monitor sees this exit's store and decides "kept": the P
    /// stays ours. Take the value away (unless such a request replaced it
    /// meanwhile: it is answered "kept" and needs nothing from us).
    #[cold]
    fn exit_slow(&self, v: u64, r: u64) -> bool {
        if r == v {
            return self.wait_decision(v);
        }
        let _ = self.inner.retake.compare_exchange(r, 0, Relaxed, Relaxed);
        if r == YIELD {
            self.inner.yield_asked.store(true, Relaxed);
            return false;
        }
        true
    }

    /// The symmetric exit kept its P: also take a pending yield request
    /// (the monitor does not use `retake` in this protocol). True if taken.
    fn yield_taken(&self) -> bool {
        if self.inner.retake.load(Relaxed) == YIELD
            && self.inner.retake.compare_exchange(YIELD, 0, Relaxed, Relaxed).is_ok()
        {
            self.inner.yield_asked.store(true, Relaxed);
            return true;
        }
        false
    }

    /// Any thread: asks this M to give its P's time to the global queue at
    /// the way out of its current (or next) announced foreign call — the
    /// next exit finds `YIELD` in `retake` and yields its green thread
    /// (`retaken`). For a green thread back from a blocked call that found
    /// no idle P: without it, it waits on the global queue until a running
    /// green thread yields, which ones that only make short foreign calls
    /// never do (issue 14: the SQLite lock holder waited behind them).
    /// Never dropped while the waiter waits: a request of the monitor
    /// stored over it puts it back if the call is kept, and one that takes
    /// the P hands it to the waiting work. Returns whether a yield (or the
    /// monitor's hand-off) is pending.
    pub(crate) fn request_yield(&self) -> bool {
        let mut spins = 0u32;
        loop {
            let r = self.inner.retake.load(Acquire);
            if r == YIELD {
                return true;
            }
            // A request of the monitor (`r` has a call number) may be
            // replaced once the M is past the exit of that call — it has
            // entered a later one — or once the monitor has decided "kept"
            // for it. Before that, the exit may still be about to read
            // `retake`, and must read the request: a value stored over it
            // comes later in `retake`'s order, which (module docs) would
            // tell the exit "kept" where the monitor may decide "taken".
            if r != 0 && self.inner.word.load(Acquire) >> CALL_SHIFT <= r >> CALL_SHIFT {
                let d = self.inner.decision.load(Acquire);
                if d == r {
                    // Taken: the monitor hands the P to the waiting work.
                    return true;
                }
                if d != (r & !3) | KEPT {
                    // The monitor is between its steps 1 and 4 (as in
                    // `wait_decision`). Giving up here would lose the
                    // request if it decides "kept": the green thread would
                    // wait for a yield nobody makes.
                    await_monitor(&mut spins);
                    continue;
                }
                // Kept, and published: the exit of `r` keeps its P whether
                // it reads `r` (and the decision) or `YIELD` (and yields).
            }
            // A request of the monitor stored after this replaces `YIELD`;
            // the monitor then puts it back if it decides "kept"
            // (`try_retake_all`).
            if self.inner.retake.compare_exchange(r, YIELD, AcqRel, Relaxed).is_ok() {
                return true;
            }
        }
    }

    /// The M's thread: whether an exit took a yield request (and forgets it).
    pub(crate) fn yield_asked(&self) -> bool {
        self.inner.yield_asked.load(Relaxed) && self.inner.yield_asked.swap(false, Relaxed)
    }

    #[cold]
    fn wait_decision(&self, v: u64) -> bool {
        let mut spins = 0u32;
        loop {
            let d = self.inner.decision.load(Acquire);
            if d == v {
                // Taken. Clear the request: left in place it would make a
                // later yield request see a "taken" decision for a call
                // this M is past, and drop itself (`request_yield`). The
                // monitor requests only calls in C, and this M is out.
                let _ = self.inner.retake.compare_exchange(v, 0, Relaxed, Relaxed);
                return false;
            }
            if d == (v & !3) | KEPT {
                return true;
            }
            // The monitor is between steps 1 and 4.
            await_monitor(&mut spins);
        }
    }

    /// The monitor: the current state word.
    pub(crate) fn load(&self) -> u64 {
        self.inner.word.load(Acquire)
    }

    /// The M's thread, after its exit reported call `v`'s P taken: whether
    /// the monitor had seen `v` last long enough to prove that it blocks.
    pub(crate) fn proven(&self, v: u64) -> bool {
        // Relaxed: ordered by the decision (Acquire) or the swap (AcqRel)
        // the exit read, which the monitor wrote after this.
        self.inner.proven.load(Relaxed) == v
    }

    /// The monitor: tries to take the Ps of calls `v` from their Ms (see
    /// the module docs), with one barrier for the whole batch; `proven`
    /// says the call was seen lasting ≥ `RETAKE_AFTER` (see [`proven`]).
    /// Returns the Ps taken, each with its `proven`: each is the caller's
    /// to hand off.
    ///
    /// [`proven`]: Self::proven
    pub(crate) fn try_retake_all<'a>(
        calls: impl Iterator<Item = (&'a CallState, u64, bool)>,
        asym: bool,
    ) -> Vec<(usize, bool)> {
        // The claim or the decision below publishes `proven` to the M.
        let calls = calls.inspect(|(c, v, proven)| {
            if *proven {
                c.inner.proven.store(*v, Relaxed);
            }
        });
        if !asym {
            return calls
                .filter(|(c, v, _)| c.inner.word.compare_exchange(*v, v | TAKEN, AcqRel, Relaxed).is_ok())
                .map(|(_, v, proven)| (p_of(v), proven))
                .collect();
        }
        // Step 1 for every call not yet requested. A call already
        // requested (the word stays `v` while the M is still in C after
        // losing its P) is not ours to give again. Only the monitor writes
        // `retake`.
        let requested: Vec<_> = calls.filter(|(c, v, _)| c.inner.retake.load(Relaxed) != *v).collect();
        if requested.is_empty() {
            return Vec::new();
        }
        // A swap, not a store: a yield request (`YIELD`) this replaces
        // must be put back if the call is kept, or the green thread that
        // asked would wait for a yield nobody makes.
        let yields: Vec<bool> = requested.iter().map(|(c, v, _)| c.inner.retake.swap(*v, SeqCst) == YIELD).collect();
        // Step 2, once for the whole batch.
        membarrier();
        // Steps 3 and 4.
        let mut taken = Vec::new();
        for ((c, v, proven), asked) in requested.into_iter().zip(yields) {
            let t = c.inner.word.load(SeqCst) == v;
            c.inner.decision.store(if t { v } else { (v & !3) | KEPT }, Release);
            if t {
                taken.push((p_of(v), proven));
            } else if asked {
                // Kept, and published: as in `request_yield` — the exit of
                // `v` keeps its P whether it reads `v` or `YIELD`. Fails if
                // a requester already put it back.
                let _ = c.inner.retake.compare_exchange(v, YIELD, Relaxed, Relaxed);
            }
        }
        taken
    }
}

/// One step of waiting for the monitor to publish a decision: it is
/// between its steps 1 and 4 (module docs), which take microseconds — spin
/// a little, then give the CPU up in case the monitor is descheduled.
fn await_monitor(spins: &mut u32) {
    *spins += 1;
    if *spins < 100 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for private expedited membarriers; false if the
/// kernel (or a seccomp filter) does not allow them.
fn membarrier_register() -> bool {
    // SAFETY: membarrier takes plain integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
}

/// A full memory barrier on every running thread of this process.
pub(crate) fn membarrier() {
    // SAFETY: as above; only called once registration succeeded.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
    // Registration succeeded, so this cannot fail; if it somehow did, the
    // protocol's guarantee would be gone: stop rather than corrupt state.
    assert_eq!(r, 0, "ffiber: membarrier failed after registration");
}

/// Leaves the lazy state of the innermost callback on this M: the outer
/// call's exit protocol (for `Blocking` calls: take any P), after which the
/// green thread holds a P and may block. Called by everything that needs
/// the P (see the module docs); a no-op outside a lazy callback.
#[cold]
pub(crate) fn reclaim(m: &M) {
    // SAFETY: on `m`'s thread; no switch while `l` lives (`reacquire_p`
    // may switch, and we do not touch `l` after it).
    unsafe {
        let l = &mut *m.local();
        if !l.cb_lazy {
            return;
        }
        l.cb_lazy = false;
        // Foreign calls the callback makes from now on are announced
        // themselves (the callback restores the name on its way out).
        l.foreign = None;
    }
    // A lazy callback's call is announced (its word says `IN_C`) or
    // `Blocking` (a `NonBlocking` call's callbacks keep the P: never lazy).
    let v = m.call.current();
    if v & IN_C == 0 {
        reacquire_p(m, NO_P);
    } else if m.call.exit(v) {
        // SAFETY: as above; the exit protocol says the P is still ours.
        unsafe { (*m.local()).p = p_of(v) };
    } else {
        retaken(m, v, None);
    }
}

/// The way back from call `v`, whose exit found its P gone: either the
/// monitor took the P from the announced call — the M is marked [`HOT`]
/// (its next call will likely block too) if the monitor had seen the call
/// last ≥ `RETAKE_AFTER` (a call taken at first sight proves nothing) — or
/// the call handed its P off before it started (`MLocal::handed_off`, see
/// [`handed_off_word`]); then [`reacquire_p`].
///
/// `name` is the C function of the call (`None` from a callback's
/// reclaim): a `HOT` M hands its P off before a call only of the same
/// function (`MLocal::hot_name`).
#[cold]
pub(crate) fn retaken(m: &M, v: u64, name: Option<&'static str>) {
    // SAFETY: on `m`'s thread, out of the call.
    let l = unsafe { &mut *m.local() };
    if m.call.yield_asked() {
        // A green thread waits for a P (`CallState::request_yield`): the P
        // is still ours; let the global queue go first, behind it.
        l.p = p_of(v);
        return yield_to_waiters(m, l.depth(), l.cur_g.is_some());
    }
    if l.handed_off == NO_P {
        if let (Some(t), Some(name)) = (&m.sched.trace, l.trace_name) {
            t.handoff(name);
        }
        if m.call.proven(v) {
            m::mark_hot(m, l);
            l.hot_name = m::name_key(name);
            let hot_fn = &m.sched.ps[p_of(v)].hot_fn;
            hot_fn.0.store(l.hot_name.0, Relaxed);
            hot_fn.1.store(l.hot_name.1, Relaxed);
        }
        return reacquire_p(m, p_of(v));
    }
    let p = std::mem::replace(&mut l.handed_off, NO_P);
    let at = std::mem::replace(&mut l.handoff_at, 0);
    m.call.after_hand_off();
    // A default call on a `HOT` M (`at` set) keeps the M `HOT` if it
    // lasted as long as the monitor waits before it takes a P: it blocked.
    if at != 0 && m.sched.now().saturating_sub(at) >= crate::sched::sysmon::RETAKE_AFTER.as_nanos() as u64 {
        m::mark_hot(m, l);
        l.hot_name = m::name_key(name);
        // The guess was right: the P it gave away may pass `HOT` on again.
        m.sched.ps[p].hot_chain.store(crate::sched::HOT_CHAIN, Relaxed);
    }
    reacquire_p(m, p);
}

/// The M's green thread, on its way back from a call and holding a P,
/// yields to green threads waiting for that P: the waiters go first, then
/// it, ahead of the queue (`sched::yield_behind_waiters`). Inside a
/// callback, where it does not switch, at a later exit (the outer call's
/// at the latest) — not never: a waiter counts on it. Takes the M's
/// callback `depth` and whether it runs a green thread, not its
/// `MLocal`: no reference to that may live across the switch.
fn yield_to_waiters(m: &M, depth: u32, has_g: bool) {
    if depth == 0 && has_g {
        m::switch_to_g0(Action::YieldAtExit);
    } else if depth > 0 {
        m.call.request_yield();
    }
}

/// The word a call that handed its P off before it started (so announced
/// nothing) exits with, given the M's word `prev` from before the call.
///
/// With `SYM` set, the exit takes the symmetric protocol's slow path — a
/// swap, which returns the M's word (no `IN_C`: nothing was announced),
/// never this word (which has `IN_C`) — and so answers "P taken" and goes
/// to [`retaken`], which finds the hand-off recorded in the M. That way the
/// common path needs no test of its own for this rare one. The swap leaves
/// `prev` with `SYM` in the word; [`CallState::after_hand_off`] puts the
/// M's own protocol back.
#[inline(always)]
pub(crate) fn handed_off_word(prev: u64) -> u64 {
    prev | IN_C | SYM
}

/// The slow way back from a foreign call whose P was taken (or given away):
/// take `old` back if it is idle, else any idle P; else queue this green
/// thread on the global queue and let the M sleep. Returns running on some
/// M that holds a P (Go's `exitsyscall`).
#[cold]
pub(crate) fn reacquire_p(m: &M, old: usize) {
    // SAFETY: on `m`'s thread; no switch while `l` lives (its last use is
    // before `switch_to_g0`, and `yield_to_waiters` takes copies).
    let l = unsafe { &mut *m.local() };
    // The P was taken, so we hold none.
    l.p = NO_P;
    let sched = &m.sched;
    if let Some(p) = crate::sched::take_idle_p_prefer(sched, old) {
        // The P came off the idle list, so it is ours.
        m::hold_p(m, l, p);
        // A green thread back from its own call may have put itself in
        // this P's `run_next` while the P was idle, and found it taken
        // (by us) when it looked under the idle lock: it then asked the
        // P's holder to yield — maybe the one before us, whose pointer
        // the P still showed. We run this green thread without passing
        // through the scheduler, so let such a waiter go first, or it
        // waits for a yield nobody makes.
        if sched.ps[p].has_queued() {
            yield_to_waiters(m, l.depth(), l.cur_g.is_some());
        }
        return;
    }
    // No P idle, and C frames below this green thread (its call blocked
    // inside a callback: it is locked to this M): C goes on at once on a
    // sleepers' spare if one is free (`preempt::take_sleeper_spare`).
    if l.depth() > 0
        && l.cur_g.is_some()
        && let Some(p) = crate::sched::preempt::take_sleeper_spare(sched, old)
    {
        m::hold_p(m, l, p);
        return;
    }
    // No P idle: wait next in line on our old P, whose holder is asked to
    // yield at its next foreign-call exit (the scheduler's wake-up
    // preemption; see `CallState::request_yield`), or on the global queue.
    l.requeue_to = old;
    m::switch_to_g0(Action::Requeue);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sym: bool) -> CallState {
        let w = Words {
            word: AtomicU64::new(if sym { SYM } else { 0 }),
            retake: AtomicU64::new(0),
            decision: AtomicU64::new(0),
            proven: AtomicU64::new(0),
            yield_asked: AtomicBool::new(false),
        };
        CallState { inner: CachePadded::new(w) }
    }

    #[test]
    fn a_word_carries_number_p_and_mode_and_the_exit_clears_the_flags() {
        let c = state(false);
        c.set_p(5);
        let v = c.enter(5, BLK);
        assert_eq!((p_of(v), v & IN_C, v & BLK, v >> 26), (5, IN_C, BLK, 1));
        assert!(c.exit(v));
        let w = c.between();
        assert_eq!((p_of(w), w & (IN_C | BLK | NOCB | HOT), w >> 26), (5, 0, 1));
        // The highest P the word can name.
        c.set_p(crate::runtime::MAX_PROCS - 1);
        assert_eq!(p_of(c.enter(crate::runtime::MAX_PROCS - 1, NOCB)), crate::runtime::MAX_PROCS - 1);
    }

    #[test]
    fn hot_lasts_exactly_one_call() {
        let c = state(false);
        c.mark_hot();
        assert_ne!(c.between() & HOT, 0);
        c.set_p(1);
        assert_ne!(c.between() & HOT, 0, "taking a P keeps HOT");
        let v = c.enter(1, 0);
        assert_ne!(v & HOT, 0, "the monitor sees HOT in the call's word");
        assert!(c.exit(v));
        assert_eq!(c.between() & HOT, 0, "the exit clears it");
        c.mark_hot();
        c.clear_hot();
        assert_eq!(c.between() & HOT, 0);
    }

    #[test]
    fn the_hand_off_word_makes_the_exit_report_the_p_gone_in_both_protocols() {
        for sym in [false, true] {
            let c = state(sym);
            let prev = c.between();
            let v = handed_off_word(prev);
            assert!(!c.exit(v), "sym={sym}: the exit must take the slow path");
            // The swap left SYM in the word; the way back restores the
            // M's own protocol (asymmetric() is false in unit tests unless
            // a runtime registered membarriers: compare with it).
            c.after_hand_off();
            assert_eq!(c.between() & SYM != 0, !asymmetric());
            assert_eq!(c.between() & IN_C, 0);
        }
    }

    #[test]
    fn a_retake_in_the_symmetric_protocol_takes_the_p_once_and_says_if_it_was_proven() {
        let c = state(true);
        c.set_p(3);
        let v = c.enter(3, 0);
        let taken = CallState::try_retake_all([(&c, v, true)].into_iter(), false);
        assert_eq!(taken, vec![(3, true)]);
        assert!(CallState::try_retake_all([(&c, v, false)].into_iter(), false).is_empty(), "taken twice");
        assert!(!c.exit(v), "the M must see its P gone");
        assert!(c.proven(v));
        // A call that ended before the monitor looked keeps its P.
        let v2 = c.enter(3, 0);
        assert!(c.exit(v2));
        assert!(CallState::try_retake_all([(&c, v2, false)].into_iter(), false).is_empty());
        assert!(!c.proven(v2));
    }

    #[test]
    fn a_yield_request_is_served_at_one_exit_in_both_protocols() {
        for sym in [false, true] {
            let c = state(sym);
            c.set_p(2);
            // Asked between calls: the next call's exit reports it, once.
            assert!(c.request_yield());
            assert!(c.request_yield(), "a pending request stays pending");
            let v = c.enter(2, 0);
            assert!(!c.exit(v), "sym={sym}: the exit must report the request");
            assert!(c.yield_asked());
            assert!(!c.yield_asked(), "taken once");
            let v = c.enter(2, 0);
            assert!(c.exit(v), "sym={sym}: served: the next exit is plain");
            // Asked during a call.
            let v = c.enter(2, 0);
            assert!(c.request_yield());
            assert!(!c.exit(v));
            assert!(c.yield_asked());
        }
    }

    #[test]
    fn a_yield_request_waits_for_the_monitors_decision_on_the_call_in_progress_and_is_kept() {
        let c = std::sync::Arc::new(state(false));
        c.set_p(4);
        let v = c.enter(4, 0);
        // The monitor's step 1 for this call. Until it decides, the exit
        // must read the request: a yield request may not replace it.
        c.inner.retake.store(v, SeqCst);
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let asker = {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                let pending = c.request_yield();
                done.store(true, SeqCst);
                pending
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!done.load(SeqCst), "replaced the monitor's request before its decision");
        assert_eq!(c.inner.retake.load(SeqCst), v);
        // Decided "kept": the request goes in, and the exit (which may
        // read either value) keeps its P and yields.
        c.inner.decision.store((v & !3) | KEPT, SeqCst);
        assert!(asker.join().unwrap());
        assert!(!c.exit(v), "the exit must report the yield");
        assert!(c.yield_asked());
        let v = c.enter(4, 0);
        assert!(c.exit(v), "served once");
    }

    #[test]
    fn a_yield_request_on_a_taken_call_leaves_it_to_the_hand_off_and_is_not_lost_later() {
        let c = state(false);
        c.set_p(4);
        let v = c.enter(4, 0);
        c.inner.retake.store(v, SeqCst);
        c.inner.decision.store(v, SeqCst);
        // Taken: the monitor hands the P (and the waiting work) off.
        assert!(c.request_yield());
        assert!(!c.exit(v), "taken");
        assert!(!c.yield_asked(), "a hand-off, not a yield");
        // Back on some P with the same call number: a new request for
        // this M (it may hold the waiter's P now) must not read the old
        // "taken" as its own.
        c.set_p(2);
        assert!(c.request_yield());
        let v = c.enter(2, 0);
        assert!(!c.exit(v), "the later request is served");
        assert!(c.yield_asked());
    }

    #[test]
    fn a_retake_request_the_monitor_stores_over_a_yield_gives_it_back_when_the_call_is_kept() {
        init();
        if !asymmetric() {
            // No membarrier here: the monitor never writes `retake`.
            return;
        }
        let c = state(false);
        c.set_p(3);
        assert!(c.request_yield());
        let v = c.enter(3, 0);
        // The call ends before the monitor's barrier: "kept".
        let out = v & !CALL_FLAGS;
        c.inner.word.store(out, SeqCst);
        assert!(CallState::try_retake_all([(&c, v, false)].into_iter(), true).is_empty());
        assert_eq!(c.inner.retake.load(SeqCst), YIELD, "the yield request was lost");
        // The exit's load, after its store above.
        assert!(!c.exit_slow(v, c.inner.retake.load(SeqCst)));
        assert!(c.yield_asked());
    }

    #[test]
    fn a_stale_request_from_before_the_numbers_wrapped_is_forgotten() {
        let c = state(false);
        c.set_p(1);
        let v = c.enter(1, 0);
        // A word with a larger number than any to come for a while.
        let stale = v + 1000 * NEXT;
        c.inner.retake.store(stale, SeqCst);
        assert!(c.exit(v), "kept");
        assert_eq!(c.inner.retake.load(SeqCst), 0, "forgotten, so the fast path is back");
        assert!(!c.yield_asked());
    }
}
