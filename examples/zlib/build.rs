//! Generates `zlib.rs` from `zlib.h` with ffiber-build: names, types and
//! constant values all come from the system C compiler.

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
            "ZLIB_VERSION",
            "uLong",
        ])
        .pkg_config("zlib")
        .mode("compressBound", ffiber_build::Mode::NonBlocking)
        .generate("zlib");
    if let Err(e) = r {
        e.exit();
    }
}
