//! A slice of the system's own headers — sys/stat.h, signal.h,
//! sys/epoll.h, dirent.h, termios.h, pthread.h, time.h — bound by
//! ffiber-build (see build.rs) and called from green threads by the tests.
//! Every record in `sys` carries compile-time assertions of its size,
//! alignment and field offsets as the C compiler laid them out; parameters
//! keep the types the headers spell (`*mut pthread_mutex_t`, `*mut
//! sigset_t`, `*mut epoll_event`), not `*mut c_void`.

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, clippy::all)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/sys.rs"));
}
