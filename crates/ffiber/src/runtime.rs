//! Starting and stopping a runtime.

use crate::sched::Sched;
use crate::thread::{Builder as GBuilder, JoinHandle};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Default cap on OS threads a runtime may create (Go's default too).
pub const DEFAULT_MAX_THREADS: usize = 10_000;

/// Most processor slots a runtime may have (`max_procs`, `FFIBER_MAXPROCS`).
/// Go had the same cap (`_MaxGomaxprocs`) until 1.10.
pub const MAX_PROCS: usize = 1024;

/// A runtime: `max_procs` processor slots, the OS threads that serve them,
/// and the green threads they run.
///
/// Most programs use [`run`] or `#[ffiber::main]`; a `Runtime`
/// is for choosing settings or running several runtimes.
///
/// ```
/// let rt = ffiber::Runtime::builder().max_procs(2).stack_size(64 * 1024).build().unwrap();
/// assert_eq!(rt.block_on(|| 6 * 7), 42);
/// ```
pub struct Runtime {
    sched: Arc<Sched>,
}

/// Settings for a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    max_procs: Option<usize>,
    stack_size: usize,
    max_threads: usize,
    preempt: Option<bool>,
    trace: Option<bool>,
}

impl Runtime {
    /// A builder with the defaults: `max_procs` from `FFIBER_MAXPROCS` or the
    /// machine's available parallelism, 256 KiB stacks.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            max_procs: None,
            stack_size: crate::stack::DEFAULT_STACK_SIZE,
            max_threads: DEFAULT_MAX_THREADS,
            preempt: None,
            trace: None,
        }
    }

    /// A runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Self::builder().build()
    }

    /// What the call trace has recorded so far, by total time in C (empty
    /// unless tracing: [`RuntimeBuilder::trace_calls`], `FFIBER_TRACE=calls`).
    pub fn call_stats(&self) -> Vec<crate::ffi::CallStats> {
        self.sched.trace.as_ref().map(|t| t.stats()).unwrap_or_default()
    }

    /// Number of processor slots (green threads running in parallel at
    /// most, spares aside: see [`RuntimeBuilder::preempt`]).
    pub fn max_procs(&self) -> usize {
        self.sched.nprocs()
    }

    /// Spare processor slots running now (preemption by hand-off; for tests
    /// and diagnostics).
    #[doc(hidden)]
    pub fn active_spares(&self) -> usize {
        self.sched.active_spares()
    }

    /// Green threads that a timer woke inside C (or locked to their OS
    /// thread) and that ran at once on a sleepers' spare processor slot
    /// because no slot was idle, so far (for tests and diagnostics).
    #[doc(hidden)]
    pub fn sleeper_spare_runs(&self) -> u64 {
        self.sched.sleeper_spare_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` as the main green thread (named "main") and returns its
    /// result once it finishes. A panic in `f` is resumed on the caller.
    /// Green threads still running when `f` returns keep running until the
    /// runtime is dropped.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let h = GBuilder::new()
            .name("main")
            .spawn_in(&self.sched, f)
            .unwrap_or_else(|e| panic!("ffiber: cannot start the main green thread: {e}"));
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Spawns a green thread from outside the runtime (any OS thread).
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        GBuilder::new().spawn_in(&self.sched, f).unwrap_or_else(|e| panic!("ffiber: spawn failed: {e}"))
    }
}

impl Drop for Runtime {
    /// Stops the runtime. Green threads that are parked or queued are
    /// abandoned, as goroutines are when `main` returns: they never run
    /// again, and values living on their stacks are not dropped. A green
    /// thread still running a loop that never yields keeps its OS thread
    /// until it reaches a scheduling point.
    fn drop(&mut self) {
        self.sched.shut_down(Duration::from_millis(500));
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("max_procs", &self.max_procs()).finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Number of processor slots (Go's `GOMAXPROCS`). Overrides
    /// `FFIBER_MAXPROCS`. More than [`MAX_PROCS`] makes `build` fail.
    pub fn max_procs(mut self, n: usize) -> Self {
        self.max_procs = Some(n.max(1));
        self
    }

    /// Default stack reservation for green threads (at least 16 KiB; more
    /// than [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) makes `build` fail).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes.max(crate::stack::MIN_STACK_SIZE);
        self
    }

    /// Fairness for CPU-bound green threads (default on; `FFIBER_PREEMPT=0`
    /// turns it off unless this is set): when a green thread keeps its
    /// processor slot for 10 ms without a scheduling point while others
    /// wait, those others move to a spare slot run by another OS thread.
    /// The long-running green thread is never interrupted. See the crate
    /// docs ("Scheduling"). (Green threads that wake inside C have spare
    /// slots of their own, on or off: see `ffi::usleep`.)
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let rt = ffiber::Runtime::builder().max_procs(1).preempt(true).build().unwrap();
    /// let done = rt.block_on(|| {
    ///     let stop = Arc::new(AtomicBool::new(false));
    ///     let s = stop.clone();
    ///     // Spins without a scheduling point, on the only processor slot.
    ///     let hog = ffiber::go(move || while !s.load(Ordering::Relaxed) { std::hint::spin_loop() });
    ///     // Still gets to run, on a spare slot.
    ///     let other = ffiber::go(|| 42).join().unwrap();
    ///     stop.store(true, Ordering::Relaxed);
    ///     hog.join().unwrap();
    ///     other
    /// });
    /// assert_eq!(done, 42);
    /// ```
    pub fn preempt(mut self, on: bool) -> Self {
        self.preempt = Some(on);
        self
    }

    /// Records, per C function, the runtime's foreign calls and prints the
    /// table at shutdown (as `FFIBER_TRACE=calls` does; `false` turns it
    /// off even when the variable is set). See [`ffi::CallStats`](crate::ffi::CallStats)
    /// and [`Runtime::call_stats`].
    pub fn trace_calls(mut self, on: bool) -> Self {
        self.trace = Some(on);
        self
    }

    /// Most OS threads the runtime may create (default 10,000).
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = n.max(1);
        self
    }

    /// Creates the runtime. No OS thread starts until there is work.
    pub fn build(self) -> io::Result<Runtime> {
        let procs = match self.max_procs {
            Some(n) => n,
            None => match std::env::var("FFIBER_MAXPROCS") {
                Ok(v) => v.trim().parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("FFIBER_MAXPROCS={v:?} is not a positive integer"),
                    )
                })?,
                Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
        };
        if procs > MAX_PROCS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ffiber: max_procs = {procs} is more than the {MAX_PROCS} processor slots a runtime may have \
                     (each costs memory and a share of every steal; this machine has {} CPUs). \
                     Use at most the number of CPUs: more slots than CPUs only add switching.",
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                ),
            ));
        }
        let stack_size = crate::stack::checked_size(self.stack_size)?;
        crate::fork::check("a runtime was built");
        crate::fork::install();
        crate::signal::install()?;
        install_panic_hook();
        let preempt = self.preempt.unwrap_or_else(crate::sched::preempt::enabled_by_env);
        let trace = crate::ffi::trace::Trace::from_env(self.trace);
        let sched = Sched::new(procs, stack_size, self.max_threads, preempt, trace);
        crate::sched::register_latest(&sched);
        Ok(Runtime { sched })
    }
}

/// Starts a runtime with default settings, runs `f` as its main green
/// thread, shuts the runtime down and returns `f`'s result (resuming its
/// panic, if it panicked).
///
/// ```
/// let n = ffiber::run(|| ffiber::go(|| 21).join().unwrap() * 2);
/// assert_eq!(n, 42);
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Runtime::new().unwrap_or_else(|e| panic!("ffiber: cannot start the runtime: {e}")).block_on(f)
}

/// Makes panic reports name the green thread, not just the OS thread it
/// happened to run on. Chains to the hook that was set before (once).
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(g) = crate::try_current() {
                eprintln!("ffiber: panic in green thread {} ({}):", g.id(), g.name().unwrap_or("unnamed"));
            }
            prev(info)
        }));
    });
}
