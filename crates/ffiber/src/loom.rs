//! Atomics used by the lock-free protocols, swapped for loom's under
//! `--cfg loom` so that the models in `sched/queue.rs`
//! (`loom_push_pop_steal`) and `sched/netpoll.rs` (`loom_wait_word`), run
//! by `scripts/test.sh`, can check them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
