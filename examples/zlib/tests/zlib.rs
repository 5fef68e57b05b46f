//! The generated zlib bindings against known values, from many green threads.

use ffiber_example_zlib::{adler32, crc32, zlib};

#[test]
fn checksums_match_known_values() {
    assert_eq!(crc32(b"hello world"), 0x0d4a_1185);
    assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
}

#[test]
fn constants_and_types_come_from_the_header() {
    assert_eq!(zlib::Z_OK, 0);
    assert_eq!(zlib::Z_BEST_COMPRESSION, 9);
    // The string constant equals what the library reports at run time.
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    let runtime = unsafe { std::ffi::CStr::from_ptr(zlib::zlibVersion()) };
    assert_eq!(zlib::ZLIB_VERSION, runtime);
    // uLong is C's unsigned long: 8 bytes here.
    assert_eq!(std::mem::size_of::<zlib::uLong>(), 8);
    // SAFETY: compressBound takes a length and returns one.
    assert!(unsafe { zlib::compressBound(1000) } > 1000);
}

#[test]
fn from_many_green_threads() {
    let sums = ffiber::run(|| {
        let hs: Vec<_> = (0..64u32).map(|i| ffiber::go(move || crc32(format!("payload {i}").as_bytes()))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, s) in sums.into_iter().enumerate() {
        assert_eq!(s, crc32(format!("payload {i}").as_bytes()));
    }
}

#[test]
fn deflate_inflate_round_trip_through_z_stream_from_many_green_threads() {
    use ffiber_example_zlib::{deflate, inflate};
    let ok = ffiber::run(|| {
        let hs: Vec<_> = (0..32usize)
            .map(|i| {
                ffiber::go(move || {
                    let data: Vec<u8> = (0..20_000 + i * 100).map(|k| ((k * 7 + i) % 251) as u8).collect();
                    let packed = deflate(&data, 6);
                    assert!(packed.len() < data.len(), "compressible data shrinks");
                    ffiber::yield_now();
                    inflate(&packed, data.len()) == data
                })
            })
            .collect();
        hs.into_iter().all(|h| h.join().unwrap())
    });
    assert!(ok);
}
