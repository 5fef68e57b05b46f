//! Channels, as Go's: bounded (with rendezvous when the capacity is 0) and
//! unbounded, multi-producer multi-consumer, with [`select!`](crate::select).
//!
//! A channel is a mutex-protected buffer plus two wait queues (blocked
//! senders, blocked receivers), like Go's `hchan`. A blocked operation is a
//! *waiter*: a [`Selector`] (shared by all the operations of one `select`)
//! and a slot for the value. Whoever completes a waiter's operation must
//! first win the selector's compare-and-swap from "waiting" to the
//! operation's index; that single CAS decides which of a `select`'s
//! operations happens, and makes timeouts race-free (the timing-out side
//! CASes to "aborted").
//!
//! The channel closes when every [`Sender`] is dropped (receivers drain the
//! buffer, then get [`RecvError`]) or every [`Receiver`] is dropped (sends
//! fail with [`SendError`], giving the value back).
//!
//! Everything works from plain OS threads too: they block instead of parking.
//!
//! ```
//! ffiber::run(|| {
//!     let (tx, rx) = ffiber::chan::bounded(0);
//!     let h = ffiber::go(move || {
//!         for i in 0..3 {
//!             tx.send(i).unwrap();
//!         }
//!     });
//!     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
//!     h.join().unwrap();
//! });
//! ```

mod select;

pub use select::{RecvOp, SelectMode, SelectOp, SendOp, select_dyn};

use crate::sync::park::Unparker;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared by the operations of one blocked `send`, `recv` or `select`
/// (an implementation detail of [`SelectOp`], public only for the macro).
///
/// ```text
///   WAITING --peer: try_select (under the channel lock)--> CLAIMED(op)
///      |                                                      |
///      |            peer moves the value, then wake(): DONE(op) + unpark
///      +--waiter: deadline passed, CAS--> ABORTED
/// ```
///
/// The waiter reads its slot only in `DONE` (acquire), so a peer has
/// finished with it; a waiter that times out while `CLAIMED` keeps waiting
/// for the `DONE` that must follow.
#[doc(hidden)]
pub struct Selector {
    /// `WAITING`; `CLAIMED | (op + 1)` while a peer completes operation
    /// `op`; `op + 1` once it has; `ABORTED` once the waiter gave up.
    state: AtomicUsize,
    who: Unparker,
}

const WAITING: usize = 0;
const ABORTED: usize = usize::MAX;
const CLAIMED: usize = 1 << (usize::BITS - 1);

impl Selector {
    pub(crate) fn new() -> Arc<Selector> {
        Arc::new(Selector { state: AtomicUsize::new(WAITING), who: Unparker::current() })
    }

    /// Claims the selector for operation `op`. Only the winner may complete
    /// it, and it must call [`wake`](Self::wake) when done.
    pub(crate) fn try_select(&self, op: usize) -> bool {
        self.state.compare_exchange(WAITING, CLAIMED | (op + 1), AcqRel, Acquire).is_ok()
    }

    /// True while no operation has been claimed and the waiter has not
    /// given up.
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Acquire) == WAITING
    }

    /// Gives up waiting unless a peer has claimed an operation. Returns
    /// whether it did (after a failure, a peer's `wake` follows).
    pub(crate) fn try_abort(&self) -> bool {
        self.state.compare_exchange(WAITING, ABORTED, AcqRel, Acquire).is_ok()
    }

    /// The completed operation, if any; `Err(())` if aborted.
    pub(crate) fn selected(&self) -> Option<Result<usize, ()>> {
        match self.state.load(Acquire) {
            WAITING => None,
            ABORTED => Some(Err(())),
            n if n & CLAIMED != 0 => None,
            n => Some(Ok(n - 1)),
        }
    }

    /// Completes the claimed operation and wakes the waiter. Called once,
    /// by the peer that won [`try_select`](Self::try_select), after moving
    /// the value.
    pub(crate) fn wake(&self) {
        let s = self.state.load(Relaxed);
        debug_assert!(s & CLAIMED != 0 && s != ABORTED, "wake without a claim");
        self.state.store(s & !CLAIMED, Release);
        self.who.unpark();
    }

    /// Waits until selected or `deadline`; on timeout tries to abort.
    /// Returns the selected operation, or `None` if aborted.
    pub(crate) fn wait(&self, mut deadline: Option<Instant>) -> Option<usize> {
        loop {
            if let Some(s) = self.selected() {
                return s.ok();
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                match self.state.compare_exchange(WAITING, ABORTED, AcqRel, Acquire) {
                    Ok(_) => return None,
                    // A peer is completing us: its wake follows shortly.
                    Err(_) => deadline = None,
                }
                continue;
            }
            crate::sync::park::park(deadline);
        }
    }
}

/// A value slot handed between a waiter and its peer.
pub(crate) type Slot<T> = Arc<SlotCell<T>>;

/// The value of one blocked operation. No lock: the [`Selector`] protocol
/// gives it one user at a time — the waiter until it is queued; the peer
/// that claimed the selector, under the channel lock, until its `wake`;
/// the waiter again once it sees `DONE` (acquire), or once it has aborted
/// and taken its entry off the queue under the channel lock (after which
/// no peer can find it).
pub(crate) struct SlotCell<T>(UnsafeCell<Option<T>>);

// SAFETY: one user at a time (above), with release/acquire edges (the
// selector state, the channel lock) between them; the value is `Send`.
unsafe impl<T: Send> Sync for SlotCell<T> {}

impl<T> SlotCell<T> {
    pub(crate) fn new(v: Option<T>) -> Slot<T> {
        Arc::new(SlotCell(UnsafeCell::new(v)))
    }

    /// Takes the value out.
    ///
    /// # Safety
    ///
    /// The caller is the slot's current user (see the type's docs).
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: forwarded to the caller.
        unsafe { (*self.0.get()).take() }
    }

    /// Puts a value in.
    ///
    /// # Safety
    ///
    /// As for [`take`](Self::take).
    pub(crate) unsafe fn put(&self, v: T) {
        // SAFETY: forwarded to the caller.
        unsafe { *self.0.get() = Some(v) }
    }
}

pub(crate) struct Waiting<T> {
    pub(crate) sel: Arc<Selector>,
    pub(crate) op: usize,
    pub(crate) slot: Slot<T>,
}

pub(crate) struct State<T> {
    buf: VecDeque<T>,
    pub(crate) senders_q: VecDeque<Waiting<T>>,
    pub(crate) receivers_q: VecDeque<Waiting<T>>,
    /// All senders dropped.
    closed: bool,
    /// All receivers dropped.
    rx_gone: bool,
}

pub(crate) struct Chan<T> {
    state: Mutex<State<T>>,
    /// `None`: unbounded.
    cap: Option<usize>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A forked child stops here rather than wait for a lock that a thread
    // which does not exist in it may hold (see `fork`).
    crate::fork::check("a channel was used");
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Chan<T> {
    /// Receives without blocking, with the lock held. Returns the value and
    /// a selector to wake once the lock is released.
    pub(crate) fn try_recv_locked(&self, st: &mut State<T>) -> Option<(T, Option<Arc<Selector>>)> {
        if let Some(v) = st.buf.pop_front() {
            // Room freed: move one blocked sender's value into the buffer.
            let wake = pop_peer(&mut st.senders_q).map(|w| {
                // SAFETY: we claimed the sender's selector under the lock.
                if let Some(sv) = unsafe { w.slot.take() } {
                    st.buf.push_back(sv);
                }
                w.sel
            });
            return Some((v, wake));
        }
        // Rendezvous (or empty buffer): take straight from a blocked sender.
        let w = pop_peer(&mut st.senders_q)?;
        // SAFETY: we claimed the sender's selector under the lock.
        let v = unsafe { w.slot.take() }.expect("a blocked sender's slot holds its value");
        Some((v, Some(w.sel)))
    }

    /// Sends without blocking, with the lock held. Gives the value back if it
    /// cannot be sent now.
    pub(crate) fn try_send_locked(&self, st: &mut State<T>, v: T) -> Result<Option<Arc<Selector>>, T> {
        if let Some(w) = pop_peer(&mut st.receivers_q) {
            // SAFETY: we claimed the receiver's selector under the lock.
            unsafe { w.slot.put(v) };
            return Ok(Some(w.sel));
        }
        if self.cap.is_none_or(|c| st.buf.len() < c) {
            st.buf.push_back(v);
            return Ok(None);
        }
        Err(v)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }
}

/// Pops the first waiter whose selector we can claim, dropping the ones
/// claimed elsewhere or given up on the way (their owners' `remove_waiter`
/// then finds nothing, which is fine).
fn pop_peer<T>(q: &mut VecDeque<Waiting<T>>) -> Option<Waiting<T>> {
    while let Some(w) = q.pop_front() {
        if w.sel.try_select(w.op) {
            return Some(w);
        }
    }
    None
}

/// True if the queue holds a waiter, other than one of `me`'s, that is still
/// waiting (a hint: it may be claimed elsewhere the next moment).
pub(crate) fn has_waiting_peer<T>(q: &VecDeque<Waiting<T>>, me: &Arc<Selector>) -> bool {
    q.iter().any(|w| !Arc::ptr_eq(&w.sel, me) && w.sel.is_waiting())
}

fn remove_waiter<T>(q: &mut VecDeque<Waiting<T>>, sel: &Arc<Selector>) {
    q.retain(|w| !Arc::ptr_eq(&w.sel, sel));
}

/// Creates a channel holding up to `cap` values; with `cap == 0` every send
/// waits for a receiver (rendezvous), as an unbuffered Go channel.
///
/// ```
/// let (tx, rx) = ffiber::chan::bounded(1);
/// tx.send(1).unwrap();
/// assert!(tx.try_send(2).is_err()); // full
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// Creates a channel without a capacity limit: `send` never blocks.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            buf: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
            senders_q: VecDeque::new(),
            receivers_q: VecDeque::new(),
            closed: false,
            rx_gone: false,
        }),
        cap,
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half. Clone it for more senders.
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving half. Clone it for more receivers.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends, waiting while the channel is full (or, for a rendezvous
    /// channel, until a receiver takes the value). Fails only when every
    /// receiver is gone, giving the value back.
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.send_deadline(v, None).map_err(|e| match e {
            SendTimeoutError::Disconnected(v) | SendTimeoutError::Timeout(v) => SendError(v),
        })
    }

    /// Sends if that can be done without waiting.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.chan.lock();
        if st.rx_gone {
            return Err(TrySendError::Disconnected(v));
        }
        match self.chan.try_send_locked(&mut st, v) {
            Ok(wake) => {
                drop(st);
                if let Some(s) = wake {
                    s.wake();
                }
                Ok(())
            }
            Err(v) => Err(TrySendError::Full(v)),
        }
    }

    /// Sends, waiting at most `timeout` (a timeout too long to add to the
    /// clock, such as `Duration::MAX`, waits as long as it takes).
    pub fn send_timeout(&self, v: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(v, crate::time::deadline_after(timeout))
    }

    fn send_deadline(&self, v: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut st = self.chan.lock();
        if st.rx_gone {
            return Err(SendTimeoutError::Disconnected(v));
        }
        let v = match self.chan.try_send_locked(&mut st, v) {
            Ok(wake) => {
                drop(st);
                if let Some(s) = wake {
                    s.wake();
                }
                return Ok(());
            }
            Err(v) => v,
        };
        let sel = Selector::new();
        let slot = SlotCell::new(Some(v));
        st.senders_q.push_back(Waiting { sel: sel.clone(), op: 0, slot: slot.clone() });
        drop(st);
        match sel.wait(deadline) {
            // SAFETY: DONE: the peer is finished with the slot.
            Some(_) => match unsafe { slot.take() } {
                // Selected but the value is still here: receivers are gone.
                Some(v) => Err(SendTimeoutError::Disconnected(v)),
                None => Ok(()),
            },
            None => {
                remove_waiter(&mut self.chan.lock().senders_q, &sel);
                // SAFETY: aborted and off the queue: nobody else can reach the slot.
                Err(SendTimeoutError::Timeout(unsafe { slot.take() }.expect("an aborted send keeps its value")))
            }
        }
    }

    /// True when every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.chan.lock().rx_gone
    }

    /// Values buffered in the channel.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// True when no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Receiver<T> {
    /// Receives, waiting until a value arrives. Fails when the channel is
    /// empty and every sender is gone.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_deadline(None).map_err(|_| RecvError)
    }

    /// Receives if a value is ready now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.chan.lock();
        match self.chan.try_recv_locked(&mut st) {
            Some((v, wake)) => {
                drop(st);
                if let Some(s) = wake {
                    s.wake();
                }
                Ok(v)
            }
            None if st.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Receives, waiting at most `timeout` (a timeout too long to add to
    /// the clock, such as `Duration::MAX`, waits as long as it takes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ffiber::chan::RecvTimeoutError;
    /// ffiber::run(|| {
    ///     let (_tx, rx) = ffiber::chan::bounded::<u8>(1);
    ///     assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// });
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline(crate::time::deadline_after(timeout))
    }

    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut st = self.chan.lock();
        if let Some((v, wake)) = self.chan.try_recv_locked(&mut st) {
            drop(st);
            if let Some(s) = wake {
                s.wake();
            }
            return Ok(v);
        }
        if st.closed {
            return Err(RecvTimeoutError::Disconnected);
        }
        let sel = Selector::new();
        let slot = SlotCell::new(None);
        st.receivers_q.push_back(Waiting { sel: sel.clone(), op: 0, slot: slot.clone() });
        drop(st);
        match sel.wait(deadline) {
            // Selected with an empty slot: the channel closed.
            // SAFETY: DONE: the peer is finished with the slot.
            Some(_) => unsafe { slot.take() }.ok_or(RecvTimeoutError::Disconnected),
            None => {
                remove_waiter(&mut self.chan.lock().receivers_q, &sel);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }

    /// A blocking iterator that ends when the channel is closed and empty.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// Values buffered in the channel.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// True when no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> AsRef<Receiver<T>> for Receiver<T> {
    fn as_ref(&self) -> &Receiver<T> {
        self
    }
}

impl<T> AsRef<Sender<T>> for Sender<T> {
    fn as_ref(&self) -> &Sender<T> {
        self
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Relaxed);
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Relaxed);
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, AcqRel) == 1 {
            let wake: Vec<_> = {
                let mut st = self.chan.lock();
                st.closed = true;
                // Wake every blocked receiver with an empty slot: closed.
                st.receivers_q.drain(..).filter(|w| w.sel.try_select(w.op)).map(|w| w.sel).collect()
            };
            wake.iter().for_each(|s| s.wake());
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, AcqRel) == 1 {
            let wake: Vec<_> = {
                let mut st = self.chan.lock();
                st.rx_gone = true;
                // Wake every blocked sender with its value still in the slot.
                st.senders_q.drain(..).filter(|w| w.sel.try_select(w.op)).map(|w| w.sel).collect()
            };
            wake.iter().for_each(|s| s.wake());
        }
    }
}

/// An owning blocking iterator over a [`Receiver`]; ends when the channel
/// is closed and empty.
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// `send` failed: every receiver is gone. Holds the value that was not sent.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// `try_send` failed.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel is full (or a rendezvous channel has no waiting receiver).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// `send_timeout` failed.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No room before the deadline.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// `recv` failed: the channel is empty and every sender is gone.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// `try_recv` failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Empty and every sender is gone.
    Disconnected,
}

/// `recv_timeout` failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// Empty and every sender is gone.
    Disconnected,
}

macro_rules! error_impls {
    ($($ty:ident < $t:ident > => |$s:ident| $msg:expr;)*) => {$(
        impl<$t> fmt::Debug for $ty<$t> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $s = self;
                f.write_str($msg)
            }
        }
        impl<$t> fmt::Display for $ty<$t> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $s = self;
                f.write_str($msg)
            }
        }
        impl<$t> std::error::Error for $ty<$t> {}
    )*};
}

error_impls! {
    SendError<T> => |_s| "sending on a channel whose receivers are all gone";
    TrySendError<T> => |s| match s {
        TrySendError::Full(_) => "sending on a full channel",
        TrySendError::Disconnected(_) => "sending on a channel whose receivers are all gone",
    };
    SendTimeoutError<T> => |s| match s {
        SendTimeoutError::Timeout(_) => "timed out sending on a channel",
        SendTimeoutError::Disconnected(_) => "sending on a channel whose receivers are all gone",
    };
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty channel whose senders are all gone")
    }
}
impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty channel",
            TryRecvError::Disconnected => "receiving on an empty channel whose senders are all gone",
        })
    }
}
impl std::error::Error for TryRecvError {}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvTimeoutError::Timeout => "timed out receiving on a channel",
            RecvTimeoutError::Disconnected => "receiving on an empty channel whose senders are all gone",
        })
    }
}
impl std::error::Error for RecvTimeoutError {}
