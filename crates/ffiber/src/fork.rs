//! `fork()` and the runtime: a child may only exec or exit.
//!
//! `fork` copies one thread, the caller. In the child every other OS
//! thread of the runtime is gone — the Ms running green threads, the idle
//! Ms, the monitor — together with any lock one of them held at that
//! instant (the idle list, a run queue's, the allocator's, stderr's). No
//! scheduler can be rebuilt on that: a green thread that blocks in the
//! child waits for an M that does not exist, and one that takes a lock a
//! vanished thread held waits for ever. Go has the same rule (the runtime
//! forks only inside `syscall.ForkExec`, and the child only execs).
//!
//! So the policy is Go's: **in a child of a process that built a runtime,
//! only async-signal-safe calls, then `exec` or `_exit`** —
//! `std::process::Command` does exactly that. Anything that would need the
//! scheduler — a green thread blocking, yielding or exiting, spawning,
//! joining, a channel or lock wait on an OS thread, building a runtime —
//! stops the child with a message instead of hanging: a `pthread_atfork`
//! child handler sets a flag, and those entry points test it (one relaxed
//! load of a static, next to work that costs far more) *before* they take
//! any lock — a lock held at fork time by another thread is held for ever
//! in the child (the first version checked only when switching, and a
//! child sleeping from a green thread hung on its P's timer lock first).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_child() {
    FORKED.store(true, Relaxed);
}

/// Registers the child handler (once per process, when a runtime is built).
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to a static; it runs
        // in the child right after fork, where that is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
}

/// Whether this process is a forked child of one that built a runtime.
#[inline]
pub(crate) fn in_forked_child() -> bool {
    FORKED.load(Relaxed)
}

/// Stops a forked child that tries to use the runtime (see the module
/// docs). Called where the scheduler would be needed.
#[inline]
pub(crate) fn check(what: &str) {
    if FORKED.load(Relaxed) {
        forked_child_used_runtime(what);
    }
}

#[cold]
#[inline(never)]
fn forked_child_used_runtime(what: &str) -> ! {
    // No eprintln!: stderr's lock may have been held by a thread that does
    // not exist in the child. write(2) takes no lock.
    let parts: [&[u8]; 3] = [
        b"ffiber: this process is a child of fork() and tried to use the ffiber runtime (",
        what.as_bytes(),
        b"). Only the thread that called fork exists in the child: the runtime's other threads, and any \
          lock they held, are gone, so the runtime cannot run there. In a forked child call only \
          async-signal-safe functions and then exec or _exit (std::process::Command does this for you).\n",
    ];
    for p in parts {
        // SAFETY: write(2) on stderr from our own buffers.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    // SAFETY: _exit ends the process without running atexit handlers or
    // destructors, which could need locks that are gone.
    unsafe { libc::_exit(70) }
}
