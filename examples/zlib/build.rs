//! Generates `zlib.rs` from `zlib.h` with ffiber-build: names, types,
//! struct layouts and constant values all come from the system C compiler.

fn main() {
    let r = ffiber_build::Build::new()
        .header("zlib.h")
        .allow([
            "crc32",
            "adler32",
            "zlibVersion",
            "compressBound",
            "Z_OK",
            "Z_BEST_COMPRESSION",
            "Z_DEFAULT_COMPRESSION",
            "Z_FINISH",
            "Z_STREAM_END",
            "ZLIB_VERSION",
            "uLong",
            "z_stream",
            "deflateInit_",
            "deflate",
            "deflateEnd",
            "inflateInit_",
            "inflate",
            "inflateEnd",
        ])
        .pkg_config("zlib")
        .mode("compressBound", ffiber_build::Mode::NonBlocking)
        .generate("zlib");
    if let Err(e) = r {
        e.exit();
    }
}
