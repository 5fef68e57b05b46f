//! The process's `pthread_mutex_lock` (feature `mutex-spin`): on an M
//! holding a P inside a foreign call it tries a contended mutex before it
//! sleeps. Whatever path it takes, the lock must exclude, and every mutex
//! type must answer as the C library's own lock does.

#![cfg(feature = "mutex-spin")]

use ffiber::Runtime;
use ffiber::ffi;
use std::cell::UnsafeCell;

/// A C mutex and the counter it guards, shared by green threads.
struct Guarded {
    m: UnsafeCell<libc::pthread_mutex_t>,
    n: UnsafeCell<u64>,
}

// SAFETY: `n` is only touched with `m` held; `m` is a pthread mutex, made
// for sharing between threads.
unsafe impl Sync for Guarded {}

static G: Guarded = Guarded { m: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER), n: UnsafeCell::new(0) };

#[test]
fn a_contended_c_mutex_still_excludes() {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 10_000;
    let rt = Runtime::builder().max_procs(2).build().unwrap();
    rt.block_on(|| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                ffiber::go(|| {
                    for _ in 0..ROUNDS {
                        // Inside a default-mode call, holding a P: the
                        // spinning path. A read, a pause and a write under
                        // the lock: an update lost if the lock ever let two
                        // in at once.
                        ffi::call(|| {
                            // SAFETY: the static mutex is initialised; `n`
                            // is touched only while it is held.
                            unsafe {
                                assert_eq!(libc::pthread_mutex_lock(G.m.get()), 0);
                                let v = std::ptr::read_volatile(G.n.get());
                                for _ in 0..20 {
                                    std::hint::spin_loop();
                                }
                                std::ptr::write_volatile(G.n.get(), v + 1);
                                assert_eq!(libc::pthread_mutex_unlock(G.m.get()), 0);
                            }
                        });
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    // SAFETY: every green thread has been joined; nobody holds the lock.
    assert_eq!(unsafe { *G.n.get() }, THREADS * ROUNDS);
}

/// A mutex of `kind` (`PTHREAD_MUTEX_*`, robust if asked), boxed so that
/// it does not move once initialised.
fn mutex(kind: libc::c_int, robust: bool) -> Box<UnsafeCell<libc::pthread_mutex_t>> {
    let m = Box::new(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
    // SAFETY: attribute and mutex initialised once each, before any use.
    unsafe {
        let mut a: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut a), 0);
        assert_eq!(libc::pthread_mutexattr_settype(&mut a, kind), 0);
        if robust {
            assert_eq!(libc::pthread_mutexattr_setrobust(&mut a, libc::PTHREAD_MUTEX_ROBUST), 0);
        }
        assert_eq!(libc::pthread_mutex_init(m.get(), &a), 0);
        libc::pthread_mutexattr_destroy(&mut a);
    }
    m
}

/// A raw pointer that may cross to another thread.
struct Ptr(*mut libc::pthread_mutex_t);
// SAFETY: it points to a pthread mutex, made for sharing between threads.
unsafe impl Send for Ptr {}

#[test]
fn every_mutex_type_answers_as_the_c_librarys_lock() {
    let rt = Runtime::builder().max_procs(2).build().unwrap();
    let recursive = mutex(libc::PTHREAD_MUTEX_RECURSIVE, false);
    let checking = mutex(libc::PTHREAD_MUTEX_ERRORCHECK, false);
    let robust = mutex(libc::PTHREAD_MUTEX_NORMAL, true);
    let (r, c, b) = (Ptr(recursive.get()), Ptr(checking.get()), Ptr(robust.get()));
    // The robust mutex's owner ends without unlocking it.
    let b2 = Ptr(b.0);
    std::thread::spawn(move || {
        let b2 = b2;
        // SAFETY: an initialised robust mutex.
        assert_eq!(unsafe { libc::pthread_mutex_lock(b2.0) }, 0);
    })
    .join()
    .unwrap();
    rt.block_on(move || {
        let (r, c, b) = (r, c, b);
        ffi::call(|| {
            // SAFETY: initialised mutexes, used as their types allow.
            unsafe {
                // Recursive: the owner locks again, one level deeper.
                assert_eq!(libc::pthread_mutex_lock(r.0), 0);
                assert_eq!(libc::pthread_mutex_lock(r.0), 0);
                assert_eq!(libc::pthread_mutex_unlock(r.0), 0);
                assert_eq!(libc::pthread_mutex_unlock(r.0), 0);
                // Error-checking: the owner locking again is refused (the
                // tries see it taken; the C library's lock says why).
                assert_eq!(libc::pthread_mutex_lock(c.0), 0);
                assert_eq!(libc::pthread_mutex_lock(c.0), libc::EDEADLK);
                assert_eq!(libc::pthread_mutex_unlock(c.0), 0);
                // Robust, its owner gone: the lock is ours, and says so.
                assert_eq!(libc::pthread_mutex_lock(b.0), libc::EOWNERDEAD);
                assert_eq!(libc::pthread_mutex_consistent(b.0), 0);
                assert_eq!(libc::pthread_mutex_unlock(b.0), 0);
                assert_eq!(libc::pthread_mutex_lock(b.0), 0);
                assert_eq!(libc::pthread_mutex_unlock(b.0), 0);
            }
        });
    });
    drop((recursive, checking, robust));
}

/// Locks the normal mutex `p` once inside a default-mode call of a green
/// thread on a one-P runtime (the spinning path), runs `held` with it
/// held, and unlocks it.
fn lock_once_in_a_call(p: Ptr, held: impl FnOnce() + Send + 'static) {
    let rt = Runtime::builder().max_procs(1).build().unwrap();
    rt.block_on(move || {
        let p = p;
        // SAFETY: an initialised mutex that outlives the call, locked and
        // unlocked once.
        ffi::call(|| unsafe {
            assert_eq!(libc::pthread_mutex_lock(p.0), 0);
            held();
            assert_eq!(libc::pthread_mutex_unlock(p.0), 0);
        });
    });
}

#[test]
fn a_mutex_held_across_the_tries_is_waited_for() {
    // Held by a plain thread for longer than the tries last: the green
    // thread's lock sleeps in the C library's lock and gets it only after
    // the holder has marked its release.
    static RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let m = mutex(libc::PTHREAD_MUTEX_NORMAL, false);
    let (p, p2) = (Ptr(m.get()), Ptr(m.get()));
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let p2 = p2;
        // SAFETY: an initialised mutex, locked and unlocked once.
        unsafe {
            assert_eq!(libc::pthread_mutex_lock(p2.0), 0);
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            RELEASED.store(true, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(libc::pthread_mutex_unlock(p2.0), 0);
        }
    });
    rx.recv().unwrap();
    lock_once_in_a_call(p, || {
        assert!(RELEASED.load(std::sync::atomic::Ordering::SeqCst), "locked while the holder held it")
    });
    holder.join().unwrap();
    drop(m);
}

/// The child's part of the test below: one contended lock inside a call,
/// so that the tries are read from the environment. Does nothing unless
/// run as that child.
#[test]
fn child_locks_in_a_call() {
    if std::env::var_os("FFIBER_TEST_MUTEX_CHILD").is_none() {
        return;
    }
    let m = mutex(libc::PTHREAD_MUTEX_NORMAL, false);
    lock_once_in_a_call(Ptr(m.get()), || ());
    drop(m);
}

#[test]
fn a_spin_setting_that_is_not_a_number_is_reported() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_locks_in_a_call", "--nocapture", "--test-threads=1"])
        .env("FFIBER_TEST_MUTEX_CHILD", "1")
        .env("FFIBER_MUTEX_SPIN", "lots")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("FFIBER_MUTEX_SPIN=\"lots\" is not a number of tries (0 turns spinning off); using 400"),
        "{err}"
    );
}
