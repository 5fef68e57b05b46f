//! The README's example: green threads, a channel, a sleep.
//! `cargo run -p ffiber --example hello`

use std::time::Duration;

#[ffiber::main]
fn main() {
    let (tx, rx) = ffiber::chan::bounded(0);
    for id in 0..3 {
        let tx = tx.clone();
        ffiber::go(move || {
            ffiber::sleep(Duration::from_millis(10 * (3 - id)));
            tx.send(format!("green thread {} says hi", ffiber::current().id())).unwrap();
        });
    }
    drop(tx);
    for msg in rx {
        println!("{msg}");
    }
}
