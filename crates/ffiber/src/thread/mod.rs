//! Green threads: spawning, joining, identity, yielding, OS-thread locking.

mod task;

use crate::sched::{self, Sched, g::G, m};
use std::fmt;
use std::io;
use std::sync::Arc;

/// A green thread's unique id (never reused within a process).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct GreenId(pub(crate) u64);

impl GreenId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GreenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A handle naming a green thread: its id and optional name.
#[derive(Clone, Debug)]
pub struct GreenThread {
    id: GreenId,
    name: Option<Arc<str>>,
}

impl GreenThread {
    fn of(g: &G) -> GreenThread {
        GreenThread { id: GreenId(g.id), name: g.name.clone() }
    }

    /// The green thread's id.
    pub fn id(&self) -> GreenId {
        self.id
    }

    /// The name given with [`Builder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The green thread that calls this.
///
/// # Panics
///
/// Outside a green thread (on a plain OS thread); use [`try_current`] there.
///
/// ```
/// let (id, name) = ffiber::run(|| {
///     let me = ffiber::current();
///     (me.id(), me.name().map(str::to_owned))
/// });
/// assert!(id.as_u64() > 0);
/// assert_eq!(name.as_deref(), Some("main"));
/// ```
pub fn current() -> GreenThread {
    try_current().expect("ffiber::current() called outside a green thread; use ffiber::try_current()")
}

/// The green thread that calls this, or `None` on a plain OS thread.
pub fn try_current() -> Option<GreenThread> {
    sched::current_g_arc().map(|g| GreenThread::of(&g))
}

/// Lets other green threads run; the caller goes to the back of its P's run
/// queue. On a plain OS thread, yields the OS thread.
///
/// Green threads are scheduled cooperatively: a loop that never yields,
/// sleeps, locks, joins or uses a channel keeps its P (and its OS thread).
/// After 10 ms the green threads waiting behind it move to a spare P (see
/// [`RuntimeBuilder::preempt`](crate::RuntimeBuilder::preempt)); calling
/// `yield_now` in long CPU-bound loops still shares the P sooner and keeps
/// the number of OS threads down.
pub fn yield_now() {
    if m::current_g().is_null() {
        std::thread::yield_now();
    } else {
        m::switch_to_g0(m::Action::Yield);
    }
}

/// Pins the calling green thread to the OS thread it runs on, until the same
/// number of [`unlock_os_thread`] calls. While it is pinned, no other green
/// thread runs on that OS thread; when it blocks, its P is handed to another
/// OS thread so the rest of the program keeps running. For C libraries that
/// keep per-thread state (OpenGL, some GUI toolkits, `errno`-style APIs).
/// Does nothing on a plain OS thread.
///
/// ```
/// ffiber::run(|| {
///     ffiber::lock_os_thread();
///     let tid = std::thread::current().id();
///     ffiber::yield_now();
///     ffiber::sleep(std::time::Duration::from_millis(1));
///     assert_eq!(std::thread::current().id(), tid);
///     ffiber::unlock_os_thread();
/// });
/// ```
pub fn lock_os_thread() {
    let mp = m::current_m();
    if mp.is_null() || m::current_g().is_null() {
        return;
    }
    // SAFETY: a green thread runs on `mp`'s thread: it owns its own inner
    // state and may touch the M's thread-local part.
    unsafe {
        let local = (*mp).local();
        let g = (*local).cur_g.as_ref().map(Arc::as_ptr).expect("running green thread");
        let inner = (*g).inner();
        inner.lock_depth += 1;
        inner.locked_m = mp;
        (*local).locked_g = g;
    }
}

/// Undoes one [`lock_os_thread`].
pub fn unlock_os_thread() {
    let mp = m::current_m();
    if mp.is_null() || m::current_g().is_null() {
        return;
    }
    // SAFETY: as in `lock_os_thread`.
    unsafe {
        let local = (*mp).local();
        let g = (*local).cur_g.as_ref().map(Arc::as_ptr).expect("running green thread");
        let inner = (*g).inner();
        if inner.lock_depth == 0 {
            return;
        }
        inner.lock_depth -= 1;
        if inner.lock_depth == 0 {
            inner.locked_m = std::ptr::null();
            (*local).locked_g = std::ptr::null();
        }
    }
}

/// Configures a green thread before spawning it.
///
/// ```
/// ffiber::run(|| {
///     let h = ffiber::Builder::new()
///         .name("worker")
///         .stack_size(64 * 1024)
///         .spawn(|| ffiber::current().name().map(str::to_owned))
///         .unwrap();
///     assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the runtime's defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the green thread (shown by [`current`] and in fault messages).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Reserves `bytes` of stack (rounded up to pages, at least 16 KiB)
    /// instead of the runtime's default. Only touched pages use memory.
    /// Above [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) (1 GiB), `spawn`
    /// fails with an error.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the green thread on the caller's runtime.
    ///
    /// Fails if called outside a green thread (use [`Runtime::spawn`](crate::Runtime::spawn)
    /// from an OS thread) or if its stack cannot be mapped.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let sched = sched::current_sched().ok_or_else(|| {
            io::Error::other(
                "ffiber: spawn outside the runtime; start one with ffiber::run, \
                 Runtime::block_on or #[ffiber::main], or use Runtime::spawn",
            )
        })?;
        self.spawn_in(&sched, f)
    }

    pub(crate) fn spawn_in<F, T>(self, sched: &Arc<Sched>, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::fork::check("a green thread was spawned");
        let task = task::Task::new(f);
        let name: Option<Arc<str>> = self.name.map(Into::into);
        let g = sched::new_g(sched, name, self.stack_size, task.clone())?;
        let thread = GreenThread::of(&g);
        sched::ready(g);
        Ok(JoinHandle { task, thread, rt: sched::RuntimeWatch::of(sched) })
    }
}

/// Spawns a green thread running `f` and returns a handle to join it — the
/// `go` statement.
///
/// # Panics
///
/// Outside a runtime, or if no stack can be mapped; see [`Builder::spawn`]
/// for the fallible form.
///
/// ```
/// let sum: u64 = ffiber::run(|| {
///     let hs: Vec<_> = (0..10u64).map(|i| ffiber::go(move || i * i)).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum()
/// });
/// assert_eq!(sum, 285);
/// ```
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).unwrap_or_else(|e| panic!("{e}"))
}

/// Owned permission to join a green thread (wait for it and take its
/// result). Dropping it detaches the green thread.
pub struct JoinHandle<T> {
    task: Arc<dyn task::Joinable<T>>,
    thread: GreenThread,
    rt: sched::RuntimeWatch,
}

impl<T> JoinHandle<T> {
    /// Waits for the green thread to finish and returns what it returned, or
    /// `Err(payload)` if it panicked — the panic never takes the process
    /// down. From a green thread this parks only the caller; from a plain OS
    /// thread it blocks that thread.
    ///
    /// If the green thread's [`Runtime`](crate::Runtime) is dropped before
    /// it finishes, the green thread never will: `join` then returns
    /// `Err` with a `String` payload that says so, instead of waiting for
    /// ever.
    ///
    /// ```
    /// let rt = ffiber::Runtime::builder().max_procs(1).build().unwrap();
    /// let (tx, rx) = ffiber::chan::bounded::<()>(0);
    /// let h = rt.spawn(move || rx.recv().is_ok()); // waits for a value that never comes
    /// drop(rt);
    /// let err = h.join().unwrap_err();
    /// assert!(err.downcast_ref::<String>().unwrap().contains("was dropped before"));
    /// drop(tx);
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.task.join(&self.rt).unwrap_or_else(|()| {
            Err(Box::new(format!(
                "ffiber: the runtime of green thread {} ({}) was dropped before the green thread finished; \
                 it will never finish. Join green threads before dropping their Runtime (ffiber::run and \
                 Runtime::block_on return when the main closure does).",
                self.thread.id,
                self.thread.name().unwrap_or("unnamed")
            )))
        })
    }

    /// True once the green thread has finished.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The green thread this handle joins.
    pub fn thread(&self) -> &GreenThread {
        &self.thread
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("thread", &self.thread).finish_non_exhaustive()
    }
}
