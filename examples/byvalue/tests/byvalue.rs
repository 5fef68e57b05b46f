//! Every record class by value, from green threads in every mode, and back
//! from C into Rust callbacks.

use ffiber::ffi::Mode;
use ffiber_example_byvalue::c;

/// Called by C with a `struct dd` by value (the C side's function pointer).
#[ffiber::export(name = "byvalue_rust_dd")]
fn rust_dd(x: c::dd) -> c::dd {
    // A callback may block: it needs its P back for that.
    ffiber::yield_now();
    c::dd { a: x.a * 10.0, b: x.b * 10.0 }
}

/// Called by C with a 24-byte `struct lll` (passed in memory).
#[ffiber::export(name = "byvalue_rust_lll")]
fn rust_lll(x: c::lll) -> c::lll {
    c::lll { a: x.c, b: x.b, c: x.a }
}

fn every_class() {
    // SAFETY: the preamble's functions take and return plain records.
    unsafe {
        assert_eq!(c::c1_next(c::c1 { c: 41 }).c, 42);
        let r = c::ifl_scale(c::ifl { i: 3, f: 1.5 }, 4);
        assert_eq!((r.i, r.f), (12, 6.0));
        let r = c::dd_swap(c::dd { a: 1.25, b: -2.5 });
        assert_eq!((r.a, r.b), (-2.5, 1.25));
        let r = c::lll_sum(c::lll { a: 1, b: 2, c: 3 }, c::lll { a: 10, b: 20, c: 30 });
        assert_eq!((r.a, r.b, r.c), (11, 22, 33));
        let r = c::pk_bump(c::pk { c: 7, i: 1 << 20 });
        let (pc, pi) = (r.c, r.i);
        assert_eq!((pc, pi), (8, (1 << 20) + 1));
        assert_eq!(c::arr_rev(c::arr { v: [1, 2, 3] }).v, [3, 2, 1]);
        assert_eq!(c::num_twice(c::num { l: 21 }).l, 42);
        let r = c::nested_mix(c::nested { x: c::ifl { i: 1, f: 2.0 }, y: 3.0 }, 0.5);
        assert_eq!((r.x.i, r.x.f, r.y), (2, 1.0, 1.5));
        // C calls Rust with records by value, and gets records back.
        let r = c::call_dd(Some(__ffiber_export_rust_dd), 1.5, 2.5);
        assert_eq!((r.a, r.b), (15.0, 25.0));
        let r = c::call_lll(Some(__ffiber_export_rust_lll), 7);
        assert_eq!((r.a, r.b, r.c), (9, 8, 7));
        // And by name, through the prototypes of ffiber_export.h.
        let r = c::by_name_ifl(3, 0.5, 4);
        assert_eq!((r.i, r.f), (12, 2.0));
        assert_eq!(c::by_name_lll(5), 30);
        assert_eq!(c::by_name_num(2.5), -2.5);
        let r = c::by_name_pt(1, 2);
        assert_eq!((r.x, r.y), (2, 1));
        // The classification's corners (records with padding members are
        // built from their defaults).
        let r = c::f3_rot(c::f3 { x: 1.0, y: 2.0, z: 3.0 });
        assert_eq!((r.x, r.y, r.z), (2.0, 3.0, 1.0));
        let cd = |ch: i8, d: f64| {
            let mut v = c::cd::default();
            (v.c, v.d) = (ch, d);
            v
        };
        let dc = |d: f64, ch: i8| {
            let mut v = c::dc::default();
            (v.d, v.c) = (d, ch);
            v
        };
        let r = c::cd_mix(cd(1, 0.5), dc(2.0, 3));
        assert_eq!((r.c, r.d), (4, 2.5));
        let r = c::dc_mix(dc(5.0, 1), cd(2, 1.5));
        assert_eq!((r.d, r.c), (3.5, 3));
        let al16 = |v: i32| {
            let mut a = c::al16::default();
            a.v = v;
            a
        };
        assert_eq!(c::al16_add(al16(40), al16(2)).v, 42);
        assert_eq!(c::al32_next(c::al32 { c: 9 }).c, 10);
        assert_eq!(c::s3_sum(c::s3 { s: [1, 2, 3] }, c::s3 { s: [10, 20, 30] }).s, [11, 22, 33]);
        let mut bi = c::bi::default();
        (bi.b, bi.i) = (true, 7);
        let r = c::bi_flip(bi);
        assert_eq!((r.b, r.i), (false, -7));
    }
}

#[test]
fn records_by_value_round_trip_from_green_threads() {
    for procs in [1, 2] {
        ffiber::Runtime::builder().max_procs(procs).build().unwrap().block_on(|| {
            let hs: Vec<_> = (0..8).map(|_| ffiber::go(every_class)).collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        });
    }
    // And on a plain OS thread.
    every_class();
}

#[test]
fn records_by_value_in_every_mode() {
    ffiber::run(|| {
        for mode in [Mode::Default, Mode::NoCallback, Mode::NonBlocking, Mode::Blocking] {
            // SAFETY: as above.
            let r = ffiber::ffi::call_mode(mode, || unsafe {
                c::lll_sum(c::lll { a: 1, b: 1, c: 1 }, c::lll { a: 1, b: 2, c: 3 })
            });
            assert_eq!((r.a, r.b, r.c), (2, 3, 4), "{mode:?}");
        }
    });
}

/// `long double`, `__float128` and `_Complex` members sit where C puts them
/// (the bindings hold them as `u128` and `[f64; 2]`…), and C reads them
/// back through pointers; `__int128` by value, in registers and, once they
/// run out, in memory. (By value, `long double` is refused with a message:
/// `ffiber-build`'s tests.)
fn wide_scalars() {
    let mut w = c::wide::default();
    // SAFETY: the preamble's functions, given a live record and pointers into it.
    unsafe {
        c::wide_fill(&mut w, 6);
        assert_eq!((w.tag, w.k, w.z, w.zf), (b'w' as i8, 6, [6.0, 2.0], [6.0, -1.0]));
        assert_eq!(c::ld_get(&w.ld), 3.0);
        assert_eq!(c::q_get(&w.q), 1.5);
        let mut v = c::vg::default();
        c::vg_fill(&mut v);
        assert_eq!((v.c, v.w, v.g), (b'v' as i8, [1.0, 2.0, 3.0, 4.0], [[0, 1, 2], [10, 11, 12]]));
        let big = 1i128 << 70;
        assert_eq!(c::i128_mul(big, -3), big * -3);
        assert_eq!(c::u128_shl(u128::MAX >> 64, 64), u128::MAX << 64);
        assert_eq!(c::i128_last(1, 2, 3, 4, 5, big), big + 15);
    }
}

#[test]
fn scalars_rust_has_no_type_for_are_laid_out_and_int128_is_passed() {
    ffiber::Runtime::builder().max_procs(2).build().unwrap().block_on(|| {
        let hs: Vec<_> = (0..4).map(|_| ffiber::go(wide_scalars)).collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        for mode in [Mode::Default, Mode::NoCallback, Mode::NonBlocking, Mode::Blocking] {
            ffiber::ffi::call_mode(mode, wide_scalars);
        }
    });
    wide_scalars();
}
