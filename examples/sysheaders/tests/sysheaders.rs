//! The system headers' functions from green threads, with the records
//! ffiber-build generated (their layouts are asserted at compile time);
//! each result is checked against libc's own declarations.

use ffiber_example_sysheaders::sys;
use std::ffi::CStr;

fn rt(procs: usize) -> ffiber::Runtime {
    ffiber::Runtime::builder().max_procs(procs).build().unwrap()
}

#[test]
fn stat_reads_the_same_record_as_libc() {
    rt(2).block_on(|| {
        let path = c"/proc/self/exe";
        let mut ours = sys::stat::default();
        // SAFETY: a C path and a record of the compiler's layout.
        assert_eq!(unsafe { sys::stat(path.as_ptr(), &mut ours) }, 0);
        // SAFETY: libc's own declaration, for comparison.
        let mut theirs: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::stat(path.as_ptr(), &mut theirs) }, 0);
        assert_eq!((ours.st_ino, ours.st_size, ours.st_mode), (theirs.st_ino, theirs.st_size, theirs.st_mode));
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let mut by_fd = sys::stat::default();
        // SAFETY: an open fd and a record.
        assert_eq!(unsafe { sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&f), &mut by_fd) }, 0);
        assert_eq!(by_fd.st_ino, ours.st_ino);
    });
}

#[test]
fn signal_sets_through_the_untagged_sigset_record() {
    rt(1).block_on(|| {
        let mut set = sys::sigset_t::default();
        // SAFETY: a sigset_t of the compiler's layout.
        unsafe {
            assert_eq!(sys::sigemptyset(&mut set), 0);
            assert_eq!(sys::sigaddset(&mut set, sys::SIGUSR1), 0);
            assert_eq!(sys::sigismember(&set, sys::SIGUSR1), 1);
            assert_eq!(sys::sigismember(&set, sys::SIGUSR2), 0);
        }
        assert_eq!(std::mem::size_of::<sys::sigset_t>(), std::mem::size_of::<libc::sigset_t>());
    });
}

/// The packed `struct epoll_event` (with its aligned union) round-trips
/// through the kernel: a green thread waits in `epoll_wait` (Blocking mode)
/// while another makes the eventfd readable.
#[test]
fn epoll_events_come_back_with_their_data() {
    rt(2).block_on(|| {
        // SAFETY: plain system calls on fds we own and close.
        unsafe {
            let ep = sys::epoll_create1(0);
            let efd = sys::eventfd(0, 0);
            assert!(ep >= 0 && efd >= 0);
            let mut ev = sys::epoll_event { events: sys::EPOLLIN as u32, data: sys::epoll_data { u64: 0xfeed_f00d } };
            assert_eq!(sys::epoll_ctl(ep, sys::EPOLL_CTL_ADD, efd, &mut ev), 0);
            let writer = ffiber::go(move || {
                ffiber::sleep(std::time::Duration::from_millis(20));
                let one = 1u64;
                // (Inside the block's `unsafe`: 8 bytes to an eventfd.)
                sys::write(efd, (&raw const one).cast(), 8)
            });
            let mut out = [sys::epoll_event::default(); 4];
            let n = sys::epoll_wait(ep, out.as_mut_ptr(), 4, 5000);
            assert_eq!(writer.join().unwrap(), 8);
            assert_eq!(n, 1);
            let (events, data) = (out[0].events, out[0].data.u64);
            assert_eq!((events & sys::EPOLLIN as u32, data), (sys::EPOLLIN as u32, 0xfeed_f00d));
            sys::close(efd);
            sys::close(ep);
        }
    });
}

#[test]
fn directory_entries_and_a_pthread_mutex() {
    rt(2).block_on(|| {
        // SAFETY: opendir/readdir/closedir on a directory that exists; the
        // entry is read before the next readdir.
        let names = unsafe {
            let d = sys::opendir(c"/proc/self".as_ptr());
            assert!(!d.is_null());
            let mut names = Vec::new();
            loop {
                let e = sys::readdir(d);
                if e.is_null() {
                    break;
                }
                names.push(CStr::from_ptr((*e).d_name.as_ptr()).to_string_lossy().into_owned());
            }
            assert_eq!(sys::closedir(d), 0);
            names
        };
        assert!(names.iter().any(|n| n == "status") && names.iter().any(|n| n == "."), "{names:?}");

        // A pthread mutex shared by green threads. A lock that waits in C
        // may lose its P and come back on another OS thread; each green
        // thread is locked to its OS thread, so it unlocks on the thread
        // that locked, as POSIX requires.
        let m = Box::leak(Box::new(sys::pthread_mutex_t::default())) as *mut sys::pthread_mutex_t as usize;
        // SAFETY: a zeroed pthread_mutex_t initialised before use.
        assert_eq!(unsafe { sys::pthread_mutex_init(m as *mut _, std::ptr::null()) }, 0);
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let c = counter.clone();
                ffiber::go(move || {
                    ffiber::lock_os_thread();
                    for _ in 0..1000 {
                        // SAFETY: an initialised mutex, unlocked by the OS
                        // thread that locked it (see above).
                        unsafe {
                            assert_eq!(sys::pthread_mutex_lock(m as *mut _), 0);
                            let v = c.load(std::sync::atomic::Ordering::Relaxed);
                            c.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                            assert_eq!(sys::pthread_mutex_unlock(m as *mut _), 0);
                        }
                        ffiber::yield_now();
                    }
                    ffiber::unlock_os_thread();
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 8000);
        // SAFETY: no longer locked by anyone.
        assert_eq!(unsafe { sys::pthread_mutex_destroy(m as *mut _) }, 0);
    });
}

#[test]
fn time_records_and_a_terminal_that_is_not_one() {
    rt(2).block_on(|| {
        let mut a = sys::timespec::default();
        let mut b = sys::timespec::default();
        // SAFETY: records of the compiler's layout.
        unsafe {
            assert_eq!(sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut a), 0);
            let nap = sys::timespec { tv_sec: 0, tv_nsec: 2_000_000 };
            assert_eq!(sys::nanosleep(&nap, std::ptr::null_mut()), 0);
            assert_eq!(sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut b), 0);
        }
        let ns = |t: &sys::timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
        assert!(ns(&b) - ns(&a) >= 2_000_000, "{} ns", ns(&b) - ns(&a));
        // 2000-01-02 03:04:05 UTC.
        let t: i64 = 946_782_245;
        let mut tm = sys::tm::default();
        // SAFETY: a time and a record.
        assert!(!unsafe { sys::gmtime_r(&t, &mut tm) }.is_null());
        assert_eq!((tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec), (100, 0, 2, 3, 4, 5));
        // A pipe is not a terminal: tcgetattr fails with ENOTTY, and errno
        // comes back with the result.
        let mut fds = [0; 2];
        // SAFETY: pipe(2) with room for two fds.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut tio = sys::termios::default();
        // SAFETY: an fd and a record.
        let (r, errno) = unsafe { sys::tcgetattr_errno(fds[0], &mut tio) };
        assert_eq!((r, errno), (-1, libc::ENOTTY));
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(std::mem::size_of::<sys::termios>(), std::mem::size_of::<libc::termios>());
    });
}

static CAUGHT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_usr2(sig: i32) {
    CAUGHT.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// `struct sigaction` with its handler union of function pointers
/// (`Option<unsafe extern "C" fn(i32)>`): install a handler, raise the
/// signal from a green thread, and read the old action back.
#[test]
fn a_signal_handler_through_the_function_pointer_members() {
    rt(1).block_on(|| {
        let mut act = sys::sigaction::default();
        act.__sigaction_handler.sa_handler = Some(on_usr2);
        let mut old = sys::sigaction::default();
        // SAFETY: valid records; SIGUSR2 is not used by the runtime.
        unsafe {
            assert_eq!(sys::sigemptyset(&mut act.sa_mask), 0);
            assert_eq!(sys::sigaction(sys::SIGUSR2, &act, &mut old), 0);
            assert_eq!(sys::raise(sys::SIGUSR2), 0);
        }
        assert_eq!(CAUGHT.load(std::sync::atomic::Ordering::SeqCst), sys::SIGUSR2);
        // The installed action reads back with our handler in it.
        let mut now = sys::sigaction::default();
        // SAFETY: as above; restoring the old action afterwards.
        unsafe {
            assert_eq!(sys::sigaction(sys::SIGUSR2, &old, &mut now), 0);
            assert_eq!(
                now.__sigaction_handler.sa_handler.map(|f| f as usize),
                Some(on_usr2 as extern "C" fn(i32) as usize)
            );
        }
    });
}
