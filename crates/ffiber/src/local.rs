//! Green-thread-local storage: [`local!`](crate::local) and [`LocalKey`].
//!
//! A `thread_local!` belongs to an OS thread, and a green thread moves
//! between OS threads whenever it blocks or yields: a reference to a
//! thread-local held across such a point is then a reference to *another*
//! thread's value, used concurrently with its owner (see "Green threads move
//! between OS threads" in the crate docs). A green-thread local belongs to
//! the green thread instead: each green thread gets its own value, created
//! by the initialiser on first use, that moves with it and is dropped when
//! it finishes — before its result is handed to `join`, as a thread's
//! locals are destroyed before `std::thread::JoinHandle::join` returns.
//! Outside any green thread (a plain OS thread, a thread C created) the
//! value is per OS thread, which there is the same thing.
//!
//! Values live in a small list owned by the green thread (its `G`), keyed
//! by the static's address; a lookup is a short linear scan (programs use a
//! handful of keys). Only the green thread itself touches the list, so no
//! lock or atomic is needed, and a value's address is stable (each is
//! boxed) for as long as the green thread runs.

use crate::sched::m;
use std::any::Any;
use std::cell::UnsafeCell;

/// The values of one green thread (or OS thread): `(key address, value)`.
pub(crate) type Locals = Vec<(usize, Box<dyn Any>)>;

/// A key for green-thread-local values, declared with [`local!`](crate::local).
///
/// ```
/// use std::cell::Cell;
/// ffiber::local! {
///     /// Requests this green thread has handled.
///     static HANDLED: Cell<u32> = Cell::new(0);
/// }
///
/// ffiber::run(|| {
///     let hs: Vec<_> = (0..4)
///         .map(|_| {
///             ffiber::go(|| {
///                 for _ in 0..100 {
///                     let v = HANDLED.with(|c| c.get());
///                     ffiber::yield_now(); // may move to another OS thread: the value moves too
///                     HANDLED.with(|c| c.set(v + 1));
///                 }
///                 HANDLED.with(|c| c.get())
///             })
///         })
///         .collect();
///     for h in hs {
///         assert_eq!(h.join().unwrap(), 100); // every green thread counted its own
///     }
/// });
/// ```
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    /// Calls `f` with this green thread's value, creating it with the
    /// initialiser on first use. The reference stays valid across blocking
    /// and yielding inside `f`: the value belongs to the green thread, not
    /// to the OS thread it happens to run on.
    ///
    /// # Panics
    ///
    /// If the initialiser itself uses this key (a recursive initialisation).
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let ptr = match with_locals(|l| find::<T>(l, key)) {
            Found::Value(p) => p,
            Found::Initialising => recursive_init::<T>(),
            Found::Absent => {
                // A marker first, so that an initialiser using this key is
                // caught instead of recursing for ever; no borrow of the
                // list is held while the initialiser runs (it may use other
                // keys, or block). If it panics, the guard takes the marker
                // back.
                with_locals(|l| l.push((key, Box::new(Initialising))));
                struct Unmark(usize);
                impl Drop for Unmark {
                    fn drop(&mut self) {
                        with_locals(|l| l.retain(|(k, v)| !(*k == self.0 && v.is::<Initialising>())));
                    }
                }
                let unmark = Unmark(key);
                let v: Box<dyn Any> = Box::new((self.init)());
                std::mem::forget(unmark);
                with_locals(|l| {
                    let slot = l.iter_mut().find(|(k, _)| *k == key).expect("the marker stays until replaced");
                    slot.1 = v;
                    match find::<T>(l, key) {
                        Found::Value(p) => p,
                        _ => unreachable!("just stored"),
                    }
                })
            }
        };
        // SAFETY: the value is boxed in the list of the caller's green
        // thread (or OS thread), which removes entries only when that
        // thread finishes: it outlives this call, wherever the green
        // thread runs meanwhile. Only shared references are ever handed
        // out.
        f(unsafe { &*ptr })
    }
}

impl<T: 'static> std::fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKey { .. }")
    }
}

/// The value a key's initialiser is still computing.
struct Initialising;

enum Found<T> {
    Value(*const T),
    Initialising,
    Absent,
}

fn find<T: 'static>(l: &Locals, key: usize) -> Found<T> {
    match l.iter().find(|(k, _)| *k == key) {
        None => Found::Absent,
        Some((_, v)) if v.is::<Initialising>() => Found::Initialising,
        Some((_, v)) => Found::Value(v.downcast_ref::<T>().expect("a local key maps to its own type")),
    }
}

#[cold]
fn recursive_init<T>() -> ! {
    panic!(
        "ffiber::local!: the initialiser of a green-thread local of type {} used the same local (a recursive \
         initialisation)",
        std::any::type_name::<T>()
    )
}

thread_local! {
    /// The values of a thread that is not a green thread.
    static OS_LOCALS: UnsafeCell<Locals> = const { UnsafeCell::new(Vec::new()) };
}

/// Runs `f` on the current green thread's list (or the OS thread's).
/// `f` must not call back into user code.
fn with_locals<R>(f: impl FnOnce(&mut Locals) -> R) -> R {
    let g = m::current_g();
    if g.is_null() {
        // SAFETY: this thread's own list; `f` runs no user code, so nothing
        // else can reach the list while the reference lives.
        return OS_LOCALS.with(|l| f(unsafe { &mut *l.get() }));
    }
    // SAFETY: `g` is the green thread running this code: it owns its inner
    // state, and `f` neither switches nor runs user code, so no other
    // reference to it exists meanwhile.
    f(unsafe { &mut (*g).inner().locals })
}

/// Drops the current green thread's values (called as it finishes, on the
/// green thread, so destructors may use the runtime). Destructors that use
/// locals again create new values, dropped in a next round (at most a few).
pub(crate) fn drop_current() {
    if m::current_g().is_null() {
        return;
    }
    for _ in 0..8 {
        let taken = with_locals(std::mem::take);
        if taken.is_empty() {
            return;
        }
        // In reverse order of creation, as Rust drops a scope's values.
        for v in taken.into_iter().rev() {
            drop(v);
        }
    }
}

/// Declares green-thread-local values: `static NAME: T = init;`, with any
/// attributes and visibility, one or more. Each green thread sees its own
/// value through [`LocalKey::with`]; see [`LocalKey`] for an example and
/// the crate docs for why a `thread_local!` is not the same.
///
/// ```
/// use std::cell::RefCell;
/// ffiber::local! {
///     pub static NAME: RefCell<String> = RefCell::new(String::new());
///     static DEPTH: std::cell::Cell<u8> = std::cell::Cell::new(0);
/// }
/// ffiber::run(|| {
///     NAME.with(|n| n.borrow_mut().push_str("main"));
///     let child = ffiber::go(|| NAME.with(|n| n.borrow().clone())).join().unwrap();
///     assert_eq!(child, ""); // a new green thread starts from the initialiser
///     assert_eq!(NAME.with(|n| n.borrow().clone()), "main");
///     DEPTH.with(|d| d.set(1));
/// });
/// ```
#[macro_export]
macro_rules! local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __ffiber_local_init() -> $t {
                $init
            }
            __ffiber_local_init
        });
        $crate::local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
