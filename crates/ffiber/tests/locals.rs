//! Green-thread-local storage (`ffiber::local!`), issue 15 item 2: what a
//! `thread_local!` gets wrong on green threads, `local!` gets right.

use ffiber::Runtime;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

ffiber::local! {
    static COUNT: Cell<u64> = Cell::new(0);
    /// With a destructor that reports (and uses the runtime).
    static TRACKED: Tracked = Tracked::default();
}

#[derive(Default)]
struct Tracked(Option<Arc<AtomicUsize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(n) = &self.0 {
            ffiber::yield_now(); // destructors run on the green thread
            n.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn each_green_thread_keeps_its_own_value_across_switches() {
    for procs in [1, 2, 8] {
        let counts = Runtime::builder().max_procs(procs).build().unwrap().block_on(|| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    ffiber::go(|| {
                        for _ in 0..20_000 {
                            COUNT.with(|c| {
                                let v = c.get();
                                ffiber::yield_now();
                                c.set(v + 1);
                            });
                        }
                        COUNT.with(Cell::get)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(counts, vec![20_000; 8], "{procs} Ps");
    }
}

#[test]
fn values_are_dropped_on_the_green_thread_before_join_returns() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    Runtime::builder().max_procs(2).build().unwrap().block_on(move || {
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let d = d.clone();
                ffiber::go(move || {
                    TRACKED.with(|_| ()); // create it
                    // Replace through a RefCell-free path: a fresh value per thread.
                    TRACKED.with(|t| assert!(t.0.is_none()));
                    let _ = d;
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        // Values with a counter: each join returns after its drop.
        for _ in 0..50 {
            let d = d.clone();
            let before = d.load(Ordering::SeqCst);
            ffiber::go(move || {
                ffiber::local! { static OWN: RefCell<Option<Tracked>> = const { RefCell::new(None) }; }
                OWN.with(|o| *o.borrow_mut() = Some(Tracked(Some(d))));
            })
            .join()
            .unwrap();
            assert_eq!(dropped.load(Ordering::SeqCst), before + 1, "join returned before the local was dropped");
        }
    });
}

#[test]
fn plain_os_threads_get_per_thread_values() {
    let got: Vec<u64> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                COUNT.with(|c| c.set(c.get() + i));
                COUNT.with(Cell::get)
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn a_recursive_initialiser_panics_with_a_message() {
    ffiber::local! { static SELF_REF: u32 = SELF_REF.with(|v| *v + 1); }
    let err = Runtime::builder()
        .max_procs(1)
        .build()
        .unwrap()
        .block_on(|| ffiber::go(|| SELF_REF.with(|v| *v)).join().unwrap_err());
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("recursive initialisation"), "{msg}");
}
