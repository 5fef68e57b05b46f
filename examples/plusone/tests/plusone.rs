//! The talk's loop, from a plain thread and from many green threads.

use ffiber_example_plusone::{count_to, plusone};

#[test]
fn the_talks_loop() {
    assert_eq!(plusone(41), 42);
    assert_eq!(count_to(100_000), 100_000);
    let all = ffiber::run(|| {
        let hs: Vec<_> = (1..=16).map(|i| ffiber::go(move || count_to(i * 1000))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(all, (1..=16).map(|i| i * 1000).collect::<Vec<_>>());
}
