//! Binds a slice of the C library's own headers: every record a function
//! below reaches (struct stat, sigset_t, struct epoll_event, struct
//! dirent, struct termios, pthread_mutex_t, struct timespec, struct tm…)
//! with its layout asserted against the C compiler's, and the functions.

fn main() {
    let b = ffiber_build::Build::new()
        .header("sys/stat.h")
        .header("signal.h")
        .header("sys/epoll.h")
        .header("sys/eventfd.h")
        .header("unistd.h")
        .header("dirent.h")
        .header("termios.h")
        .header("pthread.h")
        .header("time.h")
        .allow([
            "stat",
            "fstat",
            "sigemptyset",
            "sigaddset",
            "sigismember",
            "sigaction",
            "raise",
            "epoll_create1",
            "epoll_ctl",
            "epoll_wait",
            "eventfd",
            "write",
            "close",
            "opendir",
            "readdir",
            "closedir",
            "tcgetattr",
            "pthread_mutex_init",
            "pthread_mutex_lock",
            "pthread_mutex_unlock",
            "pthread_mutex_destroy",
            "clock_gettime",
            "nanosleep",
            "localtime_r",
            "gmtime_r",
            "EPOLLIN",
            "EPOLL_CTL_ADD",
            "CLOCK_MONOTONIC",
            "SIGUSR1",
            "SIGUSR2",
        ])
        .errno("tcgetattr")
        .mode("nanosleep", ffiber_build::Mode::Blocking)
        .mode("epoll_wait", ffiber_build::Mode::Blocking);
    if let Err(e) = b.generate("sys") {
        e.exit();
    }
}
