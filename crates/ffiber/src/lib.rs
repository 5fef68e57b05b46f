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
//! - Scheduling is **cooperative, with preemption by hand-off**: a green
//!   thread gives up its P when it blocks (channel operations, [`sleep`],
//!   [`sync::Mutex`], [`JoinHandle::join`]) or calls [`yield_now`]. A
//!   CPU-bound loop (or a long `NonBlocking` C call) that does none of these
//!   keeps its P and its OS thread and is never interrupted; after 10 ms,
//!   if other green threads wait behind it, they move to a *spare* P run by
//!   another OS thread, which retires when the loop reaches the scheduler
//!   (see [`RuntimeBuilder::preempt`]). Nothing else ever runs on a thread
//!   whose green thread is suspended mid-code, and no signal interrupts C.
//!   A green thread that sleeps inside C (a `usleep` in a C library's
//!   back-off loop) and wakes while every P is busy goes on at once on a
//!   spare P of its own, as an OS thread would (see `ffi::usleep`).
//! - Channels ([`chan`]) with [`select!`], a parking [`sync::Mutex`] and
//!   [`sync::WaitGroup`] all work from plain OS threads too, so ordinary
//!   threads can talk to green threads.
//!
//! ## Network I/O (Go's netpoller)
//!
//! [`net`] has `std::net`'s socket types under the same names; a green
//! thread that waits on one parks, and the runtime's epoll poller —
//! polled by idle OS threads, which wait for I/O and timers in one
//! `epoll_wait` — wakes it. [`io::ForeignFd`] waits on an fd a C library
//! owns; [`io::blocking`] runs a system call epoll cannot wait for (files,
//! DNS) so that the P is handed off while it blocks.
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
//! ## Safety: green threads move between OS threads
//!
//! After any blocking call or [`yield_now`], a green thread may continue on
//! a different OS thread. What the green thread owns moves with it — its
//! stack, and its green-thread locals ([`local!`]) — and only it uses them,
//! so Rust's `Send`/`Sync` reasoning holds for those. What belongs to the
//! OS thread does not move: `thread_local!` values, state keyed by the
//! thread (`std::thread::current()`, the reentrant lock behind
//! `std::io::stdout().lock()`), and C libraries' per-thread state (`errno`
//! across calls, OpenGL contexts, interpreter thread states).
//!
//! **What exactly is unsound.** Holding a reference to an OS thread's
//! value across a point where the green thread can switch — `yield_now`,
//! `sleep`, a channel operation, [`sync::Mutex::lock`], `join`, a callback
//! that blocks. After the switch the reference points into the first OS
//! thread's storage, which the green thread now running there may use at
//! the same moment: a data race on a value that is not `Sync`, from safe
//! code. `thread_local!(static C: Cell<u64>)` with
//! `C.with(|c| { let v = c.get(); ffiber::yield_now(); c.set(v + 1) })` in
//! eight green threads loses thousands of 160,000 updates. Even two
//! separate `with` calls in one function can hit it: the compiler may keep
//! a thread-local's address in a register across the switch.
//!
//! **Why `go` stays safe anyway.** Rust cannot express "this closure must
//! not hold a thread-local borrow across a switch", and the hole is the
//! same in every stackful runtime (`may` makes its spawn `unsafe` for it).
//! We keep [`go`] safe and document this one exception because an `unsafe`
//! spawn would put the same unenforced obligation on every spawn of every
//! program without making any of them safer, while the hole needs two
//! things visible in one place — a thread-local (or a thread-keyed lock)
//! and a blocking call inside its borrow — and both ways out are here:
//!
//! - [`local!`] declares **green-thread-local** values (like tokio's
//!   `task_local!`, without the scope): each green thread gets its own,
//!   which moves with it and is dropped when it finishes. Use it instead
//!   of `thread_local!` in code that runs on green threads.
//! - [`lock_os_thread`] pins a green thread to its OS thread (Go's
//!   `runtime.LockOSThread`): use it for C libraries with per-thread state
//!   and for Rust code you do not control that keeps thread-locals across
//!   calls. While pinned, no other green thread runs on that OS thread.
//!
//! ```
//! use std::cell::Cell;
//! ffiber::local! { static COUNT: Cell<u64> = Cell::new(0); }
//! let total: u64 = ffiber::run(|| {
//!     let hs: Vec<_> = (0..8)
//!         .map(|_| {
//!             ffiber::go(|| {
//!                 for _ in 0..1000 {
//!                     COUNT.with(|c| {
//!                         let v = c.get();
//!                         ffiber::yield_now(); // fine: the value is this green thread's
//!                         c.set(v + 1);
//!                     });
//!                 }
//!                 COUNT.with(Cell::get)
//!             })
//!         })
//!         .collect();
//!     hs.into_iter().map(|h| h.join().unwrap()).sum()
//! });
//! assert_eq!(total, 8000);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod arch;
pub mod chan;
mod check;
pub mod ffi;
mod fork;
pub mod io;
mod local;
mod loom;
pub mod net;
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
pub use ffiber_macros::{cgo, export, foreign, main};
pub use local::LocalKey;
pub use runtime::{DEFAULT_MAX_THREADS, MAX_PROCS, Runtime, RuntimeBuilder, run};
#[doc(hidden)]
pub use stack::live_stacks;
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use thread::{
    Builder, GreenId, GreenThread, JoinHandle, current, go, lock_os_thread, try_current, unlock_os_thread, yield_now,
};
pub use time::{sleep, sleep_until};
