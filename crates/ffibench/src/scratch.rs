//! Scratch directories (databases, server files) and peer processes that
//! must not outlive the run, even when it is interrupted: [`ScratchDir`]
//! registers its path and [`Child`] a running peer, and a thread waiting
//! for SIGINT/SIGTERM/SIGHUP kills every registered peer and removes every
//! registered directory before the process exits (status 128 + the signal:
//! 130 for Ctrl-C, as a shell reports it).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A running peer process, killed if the run is interrupted while it
/// lives (registered from `new` until drop).
pub(crate) struct Child(u32);

impl Child {
    pub(crate) fn new(pid: u32) -> Child {
        CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        Child(pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != self.0);
    }
}

/// A directory under the system temp dir, removed on drop or on a
/// terminating signal.
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/<name>-<pid>` (fresh: an old one is removed first).
    pub(crate) fn new(name: &str) -> std::io::Result<ScratchDir> {
        install();
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(path.clone());
        Ok(ScratchDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        DIRS.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != &self.path);
    }
}

/// Blocks the terminating signals in the calling thread — `main` calls
/// this first, so every thread started later inherits the mask and the
/// signal is taken only by the waiting thread (peers are not affected:
/// std resets the signal mask of a spawned child) — and starts the thread
/// that waits for them. Idempotent.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigset is valid to pass to sigemptyset, which
        // initialises it; the calls take pointers to this local only.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let spawned = std::thread::Builder::new().name("ffibench-signals".into()).spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is an initialised signal set and `sig` a valid
            // out pointer; the signals are blocked in every thread.
            while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
            for &pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                // SAFETY: kill takes plain integers. A registered pid is a
                // child not yet waited for (it is unregistered before the
                // wait), so it cannot have been reused.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            let dirs = std::mem::take(&mut *DIRS.lock().unwrap_or_else(|e| e.into_inner()));
            for d in &dirs {
                let _ = std::fs::remove_dir_all(d);
            }
            eprintln!(
                "\nffibench: interrupted (signal {sig}); removed {} scratch director{}",
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            );
            std::process::exit(128 + sig);
        });
        if let Err(e) = spawned {
            eprintln!("ffibench: could not start the signal thread ({e}); an interrupted run may leave files in /tmp");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_dir_is_removed_on_drop() {
        let d = ScratchDir::new("ffibench-scratch-test").unwrap();
        let p = d.path().to_path_buf();
        std::fs::write(p.join("f"), b"x").unwrap();
        assert!(p.exists());
        drop(d);
        assert!(!p.exists());
    }
}
