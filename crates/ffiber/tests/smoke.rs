#[test]
fn smoke() {
    let v = ffiber::run(|| {
        let h = ffiber::go(|| 40 + 2);
        h.join().unwrap()
    });
    assert_eq!(v, 42);
}
