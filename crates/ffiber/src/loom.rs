//! Atomics used by the lock-free protocols, swapped for loom's under
//! `--cfg loom` so that the model in `sched/queue.rs`
//! (`loom_push_pop_steal`, run by `scripts/test.sh`) can check them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
