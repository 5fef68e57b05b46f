//! `#[ffiber::main]` runs the function body as the main green thread.

#[ffiber::main]
fn body_runs_in_a_green_thread() -> Option<String> {
    let child = ffiber::go(|| ffiber::current().id());
    assert_ne!(child.join().unwrap(), ffiber::current().id());
    ffiber::current().name().map(String::from)
}

#[test]
fn main_attribute_starts_a_runtime() {
    assert!(ffiber::try_current().is_none());
    assert_eq!(body_runs_in_a_green_thread().as_deref(), Some("main"));
}
