//! The per-function view of foreign calls (`FFIBER_TRACE=calls`, or
//! [`RuntimeBuilder::trace_calls`](crate::RuntimeBuilder::trace_calls)):
//! for every C function called from a green thread, how many calls, the
//! total and the longest time in C, how often the monitor handed its P off
//! because the call blocked, and how many callbacks it made — printed when
//! the runtime shuts down (to standard error, or to the file named after
//! `calls:`), sorted by total time, with the mode each function's record
//! suggests. cgo, JNI and may have nothing like it.
//!
//! **Zero cost when off.** A traced M carries a bit in its callback depth,
//! which the call path already compares with zero to pick its common case:
//! with the bit set every call takes the general path, which does the
//! recording. Without it nothing on the call path changes.
//!
//! **Cost when on.** Two clock reads and a lock per call: traced calls run
//! slower, so the absolute times are upper bounds; the counts and the
//! hand-offs are exact. Calls made from inside callbacks are not traced.
//!
//! ```
//! use ffiber::ffi;
//! let rt = ffiber::Runtime::builder().trace_calls(true).build().unwrap();
//! rt.block_on(|| {
//!     for _ in 0..10 {
//!         ffi::call(|| unsafe { libc::getpid() });
//!     }
//! });
//! let stats = rt.call_stats();
//! assert!(stats.iter().any(|s| s.calls == 10));
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// What the trace recorded for one C function (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// The function: the C name for generated bindings and
    /// `#[ffiber::foreign]`, the closure's type for the closure forms.
    pub name: &'static str,
    /// Calls made.
    pub calls: u64,
    /// Time in C, all calls together.
    pub total: Duration,
    /// The longest single call.
    pub max: Duration,
    /// Calls whose P the monitor handed to another thread (they blocked).
    pub handoffs: u64,
    /// Callbacks into Rust made during the calls.
    pub callbacks: u64,
}

impl CallStats {
    /// The mode this record suggests, with the reason.
    ///
    /// ```
    /// use ffiber::ffi::CallStats;
    /// use std::time::Duration;
    /// let quick = CallStats { name: "f", calls: 1000, total: Duration::from_micros(40), max: Duration::from_nanos(90), ..Default::default() };
    /// assert!(quick.suggestion().starts_with("NonBlocking"));
    /// let slow = CallStats { name: "g", calls: 10, total: Duration::from_millis(50), max: Duration::from_millis(9), handoffs: 9, ..Default::default() };
    /// assert!(slow.suggestion().starts_with("Blocking"));
    /// // One call in four blocks (a lock's wait inside C, say): Blocking too.
    /// let some = CallStats { name: "h", calls: 400, total: Duration::from_millis(500), max: Duration::from_millis(20), handoffs: 100, ..Default::default() };
    /// assert_eq!(some.suggestion(), "Blocking: handed off in 100 of 400 calls (25%), mean 1250 µs");
    /// // Rarely (a page fault now and then): stays Default.
    /// let rare = CallStats { name: "i", calls: 1000, total: Duration::from_millis(5), max: Duration::from_millis(1), handoffs: 3, ..Default::default() };
    /// assert!(rare.suggestion().starts_with("Default"));
    /// ```
    pub fn suggestion(&self) -> String {
        let mean = self.total.checked_div(self.calls.max(1) as u32).unwrap_or_default();
        if self.handoffs * 10 >= self.calls && self.handoffs > 0 {
            // One call in ten or more blocked long enough for the monitor
            // to take its P: each of those held the P ~20 µs and more
            // before that; `Blocking` gives it up before the call when
            // green threads wait (and keeps it when none do).
            format!(
                "Blocking: handed off in {} of {} calls ({}%), mean {} µs",
                self.handoffs,
                self.calls,
                self.handoffs * 100 / self.calls.max(1),
                mean.as_micros()
            )
        } else if self.handoffs == 0 && mean < Duration::from_micros(2) {
            // The mean, not the longest call: one call the kernel
            // descheduled says nothing about the function.
            format!(
                "NonBlocking: never handed off in {} calls, mean {} ns, longest {} ns",
                self.calls,
                mean.as_nanos(),
                self.max.as_nanos()
            )
        } else if self.callbacks == 0 {
            format!("Default (or NoCallback: no callback in {} calls)", self.calls)
        } else {
            "Default".to_string()
        }
    }
}

/// Where the table goes at shutdown.
#[derive(Clone, Debug)]
pub(crate) enum Sink {
    Stderr,
    File(std::path::PathBuf),
}

/// A runtime's trace: the records, under one lock.
pub(crate) struct Trace {
    sink: Sink,
    stats: Mutex<HashMap<&'static str, CallStats>>,
}

impl Trace {
    /// The trace `FFIBER_TRACE` asks for (`calls`, or `calls:FILE`), or
    /// the builder's.
    pub(crate) fn from_env(builder: Option<bool>) -> Option<Trace> {
        let env = std::env::var("FFIBER_TRACE").ok();
        let sink = match (builder, env.as_deref()) {
            (Some(false), _) => return None,
            (_, Some(v)) if v.starts_with("calls:") => Sink::File(v["calls:".len()..].into()),
            (_, Some("calls")) | (Some(true), _) => Sink::Stderr,
            (_, Some(other)) => {
                eprintln!(
                    "ffiber: FFIBER_TRACE={other:?} is not understood (use `calls` or `calls:FILE`); not tracing"
                );
                return None;
            }
            (None, None) => return None,
        };
        Some(Trace { sink, stats: Mutex::new(HashMap::new()) })
    }

    fn with(&self, name: &'static str, f: impl FnOnce(&mut CallStats)) {
        let mut map = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name).or_insert_with(|| CallStats { name, ..Default::default() }));
    }

    /// One call of `name`: `took` in C, `callbacks` made.
    pub(crate) fn call(&self, name: &'static str, took: Duration, callbacks: u64) {
        self.with(name, |s| {
            s.calls += 1;
            s.total += took;
            s.max = s.max.max(took);
            s.callbacks += callbacks;
        });
    }

    /// The monitor handed off the P of a call of `name`.
    pub(crate) fn handoff(&self, name: &'static str) {
        self.with(name, |s| s.handoffs += 1);
    }

    /// Every record, by total time, longest first.
    pub(crate) fn stats(&self) -> Vec<CallStats> {
        let mut v: Vec<CallStats> = self.stats.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.name.cmp(b.name)));
        v
    }

    /// The table, to its sink (at shutdown).
    pub(crate) fn report(&self) {
        let stats = self.stats();
        let mut t = String::from("ffiber: foreign calls by C function (FFIBER_TRACE=calls), by total time in C\n");
        let _ = writeln!(
            t,
            "{:>10} {:>12} {:>12} {:>9} {:>9}  function — suggested mode",
            "calls", "total µs", "max µs", "handoffs", "callbacks"
        );
        for s in &stats {
            let _ = writeln!(
                t,
                "{:>10} {:>12.1} {:>12.1} {:>9} {:>9}  {} — {}",
                s.calls,
                s.total.as_secs_f64() * 1e6,
                s.max.as_secs_f64() * 1e6,
                s.handoffs,
                s.callbacks,
                s.name,
                s.suggestion()
            );
        }
        match &self.sink {
            Sink::Stderr => eprint!("{t}"),
            Sink::File(p) => {
                if let Err(e) = std::fs::write(p, &t) {
                    eprintln!(
                        "ffiber: could not write the call trace to {} ({e}); set FFIBER_TRACE=calls to print it \
                         to standard error instead, or name a writable file after `calls:`",
                        p.display()
                    );
                    eprint!("{t}");
                }
            }
        }
    }
}
