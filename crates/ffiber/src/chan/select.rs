//! `select!`: wait on several channel operations, complete exactly one.
//!
//! The algorithm, Go's `selectgo` without locking every channel at once:
//!
//! 1. Poll every operation once, from a random start (fairness); the first
//!    that can complete without waiting does.
//! 2. With a `default` arm, stop there.
//! 3. Otherwise create one [`Selector`] and register a waiter for each
//!    operation on its channel. Registration happens under that channel's
//!    lock and re-checks readiness (a value or room appeared, a peer that is
//!    still waiting, the channel closed). If the operation is ready now, the
//!    select aborts its selector, takes its waiters back and starts again
//!    at 1, where the operation completes under the channel's lock. It
//!    never completes an operation during registration: that would claim two
//!    selectors one after the other (ours, then the peer's), and a peer seen
//!    waiting may meanwhile be claimed by another operation of its own
//!    select, leaving ours claimed with nothing to deliver. (Until issue 15
//!    that case was reported as "closed": a wrong answer.)
//! 4. Park until a peer claims the selector for one operation (it moves the
//!    value through that operation's slot), or the deadline passes and we
//!    claim it as aborted.
//! 5. Unregister the waiters of the other operations (a send takes its
//!    value back); the chosen one's waiter was taken off by its peer.

use super::{Receiver, RecvError, Selector, SendError, Sender, Slot, SlotCell, Waiting, remove_waiter};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One operation of a `select`, type-erased. Implemented by [`RecvOp`] and
/// [`SendOp`]; used by the [`select!`](crate::select) macro.
pub trait SelectOp {
    /// Completes the operation if it can without waiting.
    fn try_complete(&mut self) -> bool;
    /// Registers a waiter for `sel`'s operation `op`, unless the operation
    /// looks ready now: then registers nothing and returns true (the select
    /// takes its waiters back and polls again).
    #[doc(hidden)]
    fn register(&mut self, sel: &Arc<Selector>, op: usize) -> bool;
    /// Removes the waiter registered for `sel`.
    #[doc(hidden)]
    fn unregister(&mut self, sel: &Arc<Selector>);
    /// A peer completed this operation: collect the outcome from the slot.
    #[doc(hidden)]
    fn finish(&mut self);
}

/// What a select does when nothing is ready.
#[derive(Clone, Copy, Debug)]
pub enum SelectMode {
    /// Wait as long as it takes.
    Block,
    /// Do not wait (a `default` arm).
    NonBlocking,
    /// Wait until the deadline (a `default(timeout)` arm).
    Deadline(Instant),
}

impl SelectMode {
    /// A mode that waits at most `timeout`; one too long to add to the
    /// clock (`Duration::MAX`) waits as long as it takes.
    pub fn timeout(timeout: Duration) -> SelectMode {
        crate::time::deadline_after(timeout).map_or(SelectMode::Block, SelectMode::Deadline)
    }
}

/// Runs a select over `ops`; returns the index of the operation that
/// completed, or `None` if none did (non-blocking mode or timeout).
pub fn select_dyn(ops: &mut [&mut dyn SelectOp], mode: SelectMode) -> Option<usize> {
    let deadline = match mode {
        SelectMode::NonBlocking => None,
        SelectMode::Block => None,
        SelectMode::Deadline(d) => Some(d),
    };
    let n = ops.len();
    for round in 0u32.. {
        if round >= 3 {
            // Two selects that keep finding each other's waiters mid-
            // registration back off (rare; each round is a fresh race).
            crate::thread::yield_now();
        }
        // 1. Poll from a random start.
        if n > 0 {
            let start = crate::sched::fastrand_pub(n);
            for k in 0..n {
                let i = (start + k) % n;
                if ops[i].try_complete() {
                    return Some(i);
                }
            }
        }
        // 2. `default`: stop here.
        if matches!(mode, SelectMode::NonBlocking) {
            return None;
        }
        // 3. Register a waiter per operation, until one finds its channel
        //    ready (something changed since the poll) or a peer claims us.
        let sel = Selector::new();
        let mut registered = 0;
        let mut ready = false;
        for (i, op) in ops.iter_mut().enumerate() {
            if !sel.is_waiting() {
                break; // a peer already completed one of ours
            }
            if op.register(&sel, i) {
                ready = true;
                break;
            }
            registered = i + 1;
        }
        if ready && sel.try_abort() {
            // Ready while registering: take our waiters back and poll again,
            // where the operation completes under its channel's lock. (We
            // cannot complete it in place: that would claim our selector
            // and the peer's one after the other, and a peer found waiting
            // may turn out to be claimed elsewhere, leaving us with nothing.)
            for op in ops.iter_mut().take(registered) {
                op.unregister(&sel);
            }
            continue;
        }
        // 4. Park until a peer completes one operation, or the deadline.
        let chosen = sel.wait(deadline);
        // 5. Take back the waiters of the others. The chosen one's waiter
        //    was taken off its queue by the peer that completed it.
        for (i, op) in ops.iter_mut().enumerate().take(registered) {
            if Some(i) != chosen {
                op.unregister(&sel);
            }
        }
        if let Some(k) = chosen {
            ops[k].finish();
        }
        return chosen;
    }
    unreachable!("the rounds of a select are unbounded")
}

/// A receive operation for `select!`.
pub struct RecvOp<'a, T> {
    rx: &'a Receiver<T>,
    slot: Option<Slot<T>>,
    result: Option<Result<T, RecvError>>,
}

impl<'a, T> RecvOp<'a, T> {
    /// An operation receiving from `rx`.
    pub fn new<R: AsRef<Receiver<T>> + ?Sized>(rx: &'a R) -> Self {
        RecvOp { rx: rx.as_ref(), slot: None, result: None }
    }

    /// The outcome, once the select chose this operation.
    pub fn take_result(&mut self) -> Result<T, RecvError> {
        self.result.take().expect("select chose an operation that has no result")
    }
}

impl<T> SelectOp for RecvOp<'_, T> {
    fn try_complete(&mut self) -> bool {
        let chan = &*self.rx.chan;
        let mut st = chan.lock();
        if let Some((v, wake)) = chan.try_recv_locked(&mut st) {
            drop(st);
            if let Some(s) = wake {
                s.wake();
            }
            self.result = Some(Ok(v));
            return true;
        }
        if st.closed {
            self.result = Some(Err(RecvError));
            return true;
        }
        false
    }

    fn register(&mut self, sel: &Arc<Selector>, op: usize) -> bool {
        let chan = &*self.rx.chan;
        let mut st = chan.lock();
        if st.closed || !st.buf.is_empty() || super::has_waiting_peer(&st.senders_q, sel) {
            return true;
        }
        let slot = SlotCell::new(None);
        self.slot = Some(slot.clone());
        st.receivers_q.push_back(Waiting { sel: sel.clone(), op, slot });
        false
    }

    fn unregister(&mut self, sel: &Arc<Selector>) {
        if self.slot.take().is_some() {
            remove_waiter(&mut self.rx.chan.lock().receivers_q, sel);
        }
    }

    fn finish(&mut self) {
        let slot = self.slot.take().expect("finish without registration");
        // SAFETY: `finish` runs for the chosen operation after DONE.
        self.result = Some(unsafe { slot.take() }.ok_or(RecvError));
    }
}

/// A send operation for `select!`.
pub struct SendOp<'a, T> {
    tx: &'a Sender<T>,
    value: Option<T>,
    slot: Option<Slot<T>>,
    result: Option<Result<(), SendError<T>>>,
}

impl<'a, T> SendOp<'a, T> {
    /// An operation sending `value` on `tx`.
    pub fn new<S: AsRef<Sender<T>> + ?Sized>(tx: &'a S, value: T) -> Self {
        SendOp { tx: tx.as_ref(), value: Some(value), slot: None, result: None }
    }

    /// The outcome, once the select chose this operation.
    pub fn take_result(&mut self) -> Result<(), SendError<T>> {
        self.result.take().expect("select chose an operation that has no result")
    }
}

impl<T> SelectOp for SendOp<'_, T> {
    fn try_complete(&mut self) -> bool {
        let chan = &*self.tx.chan;
        let mut st = chan.lock();
        let v = self.value.take().expect("send value");
        if st.rx_gone {
            self.result = Some(Err(SendError(v)));
            return true;
        }
        match chan.try_send_locked(&mut st, v) {
            Ok(wake) => {
                drop(st);
                if let Some(s) = wake {
                    s.wake();
                }
                self.result = Some(Ok(()));
                true
            }
            Err(v) => {
                self.value = Some(v);
                false
            }
        }
    }

    fn register(&mut self, sel: &Arc<Selector>, op: usize) -> bool {
        let chan = &*self.tx.chan;
        let mut st = chan.lock();
        let has_room = chan.cap.is_none_or(|c| st.buf.len() < c);
        if st.rx_gone || has_room || super::has_waiting_peer(&st.receivers_q, sel) {
            return true;
        }
        let v = self.value.take().expect("send value");
        let slot = SlotCell::new(Some(v));
        self.slot = Some(slot.clone());
        st.senders_q.push_back(Waiting { sel: sel.clone(), op, slot });
        false
    }

    fn unregister(&mut self, sel: &Arc<Selector>) {
        if let Some(slot) = self.slot.take() {
            remove_waiter(&mut self.tx.chan.lock().senders_q, sel);
            // Not chosen: take the value back (it was never delivered), for
            // the next round of the select or to drop it with the operation.
            // SAFETY: off the queue, and the selector chose another
            // operation (or aborted): no peer can reach the slot.
            self.value = unsafe { slot.take() };
        }
    }

    fn finish(&mut self) {
        let slot = self.slot.take().expect("finish without registration");
        // SAFETY: `finish` runs for the chosen operation after DONE.
        self.result = Some(match unsafe { slot.take() } {
            // Chosen but the value is still there: receivers are gone.
            Some(v) => Err(SendError(v)),
            None => Ok(()),
        });
    }
}

/// Waits on several channel operations and runs the arm of the one that
/// completes, as Go's `select`.
///
/// Arms: `recv(rx) -> pattern => body`, `send(tx, value) -> pattern => body`,
/// and at most one of `default => body` (do not wait) or
/// `default(duration) => body` (wait at most that long). A `recv` arm's
/// pattern binds `Result<T, RecvError>` (an error means the channel closed);
/// a `send` arm's binds `Result<(), SendError<T>>`. When several operations
/// are ready, one is chosen at random.
///
/// ```
/// use std::time::Duration;
/// ffiber::run(|| {
///     let (tx1, rx1) = ffiber::chan::bounded::<i32>(1);
///     let (_tx2, rx2) = ffiber::chan::bounded::<&str>(1);
///     tx1.send(7).unwrap();
///     let got = ffiber::select! {
///         recv(rx1) -> v => v.unwrap(),
///         recv(rx2) -> _v => -1,
///         default(Duration::from_millis(100)) => -2,
///     };
///     assert_eq!(got, 7);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_parse!(
            @arms []
            @idx [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]
            @default []
            $($tokens)*
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // recv arm, block body
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     recv($rx:expr) -> $p:pat => $b:block, $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::RecvOp::new(&$rx)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($rest)*)
    };
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     recv($rx:expr) -> $p:pat => $b:block $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::RecvOp::new(&$rx)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($rest)*)
    };
    // recv arm, expression body
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     recv($rx:expr) -> $p:pat => $b:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::RecvOp::new(&$rx)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($($rest)*)?)
    };
    // send arm, block body
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     send($tx:expr, $v:expr) -> $p:pat => $b:block, $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::SendOp::new(&$tx, $v)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($rest)*)
    };
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     send($tx:expr, $v:expr) -> $p:pat => $b:block $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::SendOp::new(&$tx, $v)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($rest)*)
    };
    // send arm, expression body
    (@arms [$($a:tt)*] @idx [$i:tt $($is:tt)*] @default [$($d:tt)*]
     send($tx:expr, $v:expr) -> $p:pat => $b:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($a)* ($i [$crate::chan::SendOp::new(&$tx, $v)] $p => $b)]
            @idx [$($is)*] @default [$($d)*] $($($rest)*)?)
    };
    // default with a timeout
    (@arms [$($a:tt)*] @idx [$($is:tt)*] @default []
     default($t:expr) => $b:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($a)*] @idx [$($is)*]
            @default [($crate::chan::SelectMode::timeout($t)) $b] $($($rest)*)?)
    };
    // default without waiting
    (@arms [$($a:tt)*] @idx [$($is:tt)*] @default []
     default => $b:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($a)*] @idx [$($is)*]
            @default [($crate::chan::SelectMode::NonBlocking) $b] $($($rest)*)?)
    };
    // done, no default arm
    (@arms [$( ($i:tt [$op:expr] $p:pat => $b:tt) )+] @idx [$($is:tt)*] @default []) => {{
        let mut __ops = ($($op,)+);
        match $crate::chan::select_dyn(
            &mut [$(&mut __ops.$i as &mut dyn $crate::chan::SelectOp),+],
            $crate::chan::SelectMode::Block,
        ) {
            $(::core::option::Option::Some($i) => { let $p = __ops.$i.take_result(); $b })+
            _ => ::core::unreachable!("a blocking select returned without an operation"),
        }
    }};
    // done, with a default arm
    (@arms [$( ($i:tt [$op:expr] $p:pat => $b:tt) )*] @idx [$($is:tt)*] @default [($mode:expr) $db:expr]) => {{
        let mut __ops = ($($op,)*);
        #[allow(unused_mut)]
        let mut __list: [&mut dyn $crate::chan::SelectOp; _] = [$(&mut __ops.$i as &mut dyn $crate::chan::SelectOp),*];
        match $crate::chan::select_dyn(&mut __list, $mode) {
            $(::core::option::Option::Some($i) => { let $p = __ops.$i.take_result(); $b })*
            _ => $db,
        }
    }};
}
