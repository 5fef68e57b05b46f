//! Atomics used by the lock-free protocols, swapped for loom's under
//! `--cfg loom` so `tests/loom_queue.rs` can model-check them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
