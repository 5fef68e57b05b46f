//! # ffiber: goroutine-style green threads with a cgo-style foreign-call layer
//!
//! ffiber rebuilds, in Rust, the system Go uses to run goroutines and call
//! C — and aims to make the C calls nearly as cheap as plain ones. This
//! crate is the runtime; `ffiber-build` is the code generator and
//! `ffibench` the benchmark.
//!
//! ## The runtime (Go's G/M/P model)
//!
//! - A **green thread** (G) runs on its own small stack: an `mmap`
//!   reservation (256 KiB by default) that the kernel commits page by page,
//!   with a guard page below it. A parked green thread costs a few KiB.
//!   Overflowing the stack is caught and explained, never silent corruption.
//! - **OS threads** (M) run green threads while they hold one of `max_procs`
//!   **processor slots** (P). Each P has a lock-free run queue; idle OS
//!   threads steal half of a busy P's queue.
//! - Scheduling is **cooperative**: a green thread gives up its P when it
//!   blocks (channel operations, [`sleep`], [`sync::Mutex`],
//!   [`JoinHandle::join`]) or calls [`yield_now`]. A CPU-bound loop that does
//!   none of these keeps its P to itself; add `yield_now()` to long loops.
//! - Channels ([`chan`]) with [`select!`], a parking [`sync::Mutex`] and
//!   [`sync::WaitGroup`] all work from plain OS threads too, so ordinary
//!   threads can talk to green threads.
//!
//! ## Foreign calls (Go's cgo call path)
//!
//! [`ffi::call`] runs a closure that calls C on the OS thread's large
//! system stack, having told the scheduler with a plain store; if the C
//! code blocks, a monitor thread hands the processor slot to another OS
//! thread so that other green threads keep running. Coming back costs a
//! store and a load. [`ffi::Mode`] picks less work for calls that need
//! less (never block, never call back, known to block), and
//! [`ffi::call_regs`] is the register pass-through form for generated
//! bindings. C calls Rust back through functions marked
//! [`#[ffiber::export]`](macro@export); values C keeps go through
//! [`Handle`]. `FFIBER_CHECK=1` quarantines exited stacks to catch C
//! writing through pointers it kept.
//!
//! ```
//! let len = ffiber::run(|| {
//!     let s = c"green";
//!     ffiber::ffi::call(|| unsafe { libc::strlen(s.as_ptr()) })
//! });
//! assert_eq!(len, 5);
//! ```
//!
//! The design, its state machines and invariants are written down in
//! `docs/DESIGN.md` in the repository.
//!
//! ## Example
//!
//! ```
//! use ffiber::chan;
//!
//! let total: u64 = ffiber::run(|| {
//!     let (tx, rx) = chan::bounded(16);
//!     for i in 0..100u64 {
//!         let tx = tx.clone();
//!         ffiber::go(move || tx.send(i).unwrap());
//!     }
//!     drop(tx);
//!     rx.iter().sum()
//! });
//! assert_eq!(total, 4950);
//! ```
//!
//! ## Green threads move between OS threads
//!
//! After any blocking call or `yield_now`, a green thread may continue on a
//! different OS thread. Values of `thread_local!` variables, and C libraries
//! that keep per-thread state, can change under it. Use
//! [`lock_os_thread`] to pin a green thread to its OS thread when that
//! matters. (Beware also that the compiler may keep a thread-local's
//! address in a register for the whole of a function, across such a call:
//! read thread-locals from a function marked `#[inline(never)]`.)

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod arch;
pub mod chan;
mod check;
pub mod ffi;
mod fork;
mod loom;
mod runtime;
mod sched;
mod signal;
mod stack;
pub mod sync;
#[doc(hidden)]
pub use sched::debug_dump;
mod thread;
mod time;

pub use ffi::Handle;
pub use ffiber_macros::{cgo, export, main};
pub use runtime::{DEFAULT_MAX_THREADS, MAX_PROCS, Runtime, RuntimeBuilder, run};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use thread::{
    Builder, GreenId, GreenThread, JoinHandle, current, go, lock_os_thread, try_current, unlock_os_thread, yield_now,
};
pub use time::{sleep, sleep_until};
