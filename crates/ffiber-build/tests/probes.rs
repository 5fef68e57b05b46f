//! ffiber-build against the real C compiler: what the probes learn, and
//! the messages for bad input.

use ffiber_build::{Build, Error};

fn out() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ffiber-build-test-{}-{}", std::process::id(), rand()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

#[test]
fn kinds_types_and_values_come_from_the_compiler() {
    let path = Build::new()
        .header("stdint.h")
        .preamble(
            "#define BIG 0xffffffffffffffffULL\n#define NEG (-5L)\n#define CH 'x'\n#define ANSWER 42\n#define GREETING \"hi\\n\"\n#define HALF 0.5\nenum color { RED = 3, BLUE = -7 };\n\
             typedef uint16_t port_t;\nstruct opaque;\nint add(int a, long b);\ndouble scale(double x, float f);\n\
             const char *name_of(struct opaque *o, _Bool flag);",
        )
        .allow(["BIG", "NEG", "CH", "ANSWER", "GREETING", "HALF", "RED", "BLUE", "port_t", "add", "scale", "name_of"])
        .errno("add")
        .out_dir(out())
        .generate("t")
        .unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    for want in [
        "pub const ANSWER: i32 = 42;",
        "pub const BIG: u64 = 18446744073709551615;",
        "pub const NEG: i64 = -5;",
        "pub const CH: i32 = 120;", // a character constant is an int in C
        "pub const GREETING: &::core::ffi::CStr = c\"hi\\x0a\";",
        "pub const HALF: f64 = 0.5;",
        "pub const RED: i32 = 3;", // enumerators are `int` in C
        "pub const BLUE: i32 = -7;",
        "pub type port_t = u16;",
        "pub unsafe fn add(a0: i32, a1: i64) -> i32 {",
        "pub unsafe fn add_errno(a0: i32, a1: i64) -> (i32, i32) {",
        "pub unsafe fn scale(a0: f64, a1: f32) -> f64 {",
        "Regs::new([], [a0.to_bits(), a1.to_bits() as u64])",
        // A pointer to an incomplete struct keeps its name, declared opaque.
        "pub unsafe fn name_of(a0: *mut opaque, a1: bool) -> *const i8 {",
        "pub struct opaque {",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
}

/// A parameter typed as a typedef of an untagged struct or union (as
/// `sigset_t *` and `pthread_mutex_t *` are) points to the generated
/// record, not to `c_void`; through a second typedef it keeps that name,
/// generated as an alias of the record.
#[test]
fn pointers_to_typedefs_of_untagged_records_keep_their_type() {
    let path = Build::new()
        .preamble(
            "typedef struct { int a; long b; } anon_t;\ntypedef anon_t alias_t;\n\
             typedef union { long l; double d; } num_t;\n\
             int take(alias_t *p, const num_t *n);",
        )
        .allow(["take", "alias_t"])
        .out_dir(out())
        .generate("ut")
        .unwrap();
    let only_take = Build::new()
        .preamble("typedef struct { int a; long b; } anon_t;\ntypedef anon_t alias_t;\nint take(alias_t *p);")
        .allow(["take"])
        .out_dir(out())
        .generate("ut2")
        .unwrap();
    let code2 = std::fs::read_to_string(only_take).unwrap();
    for want in ["pub unsafe fn take(a0: *mut alias_t) -> i32 {", "pub type alias_t = anon_t;", "pub struct anon_t {"] {
        assert!(code2.contains(want), "missing {want:?} in\n{code2}");
    }
    let code = std::fs::read_to_string(path).unwrap();
    // Bound by name and reached through `take`: declared once (here as
    // the record itself, since it was bound under that name).
    assert_eq!(code.matches("pub type alias_t").count() + code.matches("pub struct alias_t").count(), 1, "{code}");
    for want in ["pub unsafe fn take(a0: *mut alias_t, a1: *const num_t) -> i32 {", "pub union num_t {"] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
}

/// Function pointers — parameters, results, members — are spelled
/// `Option<unsafe extern "C" fn(..)>` (null is `None`), and pass through
/// the register path as one integer register.
#[test]
fn function_pointers_are_typed_and_nullable() {
    let path = Build::new()
        .preamble(
            "struct holder { void (*cb)(int); int x; };\n\
             typedef struct holder holder_t;\n\
             int apply_to(int (*f)(int, double), holder_t *h);\n\
             void (*pick(int which))(int);",
        )
        .allow(["apply_to", "pick", "holder_t"])
        .out_dir(out())
        .generate("fp")
        .unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    for want in [
        "pub unsafe fn apply_to(a0: Option<unsafe extern \"C\" fn(i32, f64) -> i32>, a1: *mut holder) -> i32 {",
        "a0.map_or(0, |f| f as usize as u64)",
        "pub unsafe fn pick(a0: i32) -> Option<unsafe extern \"C\" fn(i32)> {",
        "pub cb: Option<unsafe extern \"C\" fn(i32)>,",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
}

#[test]
fn undeclared_names_are_named() {
    let e =
        Build::new().header("stdio.h").allow(["printf", "no_such_thing"]).out_dir(out()).generate("io").unwrap_err();
    assert!(matches!(e, Error::Undeclared { .. }));
    assert_eq!(e.to_string(), "ffiber-build: `io::no_such_thing` is not declared by the preamble or its headers");
}

#[test]
fn function_like_macros_are_out_of_scope_and_say_so() {
    let e =
        Build::new().preamble("#define TWICE(x) ((x) * 2)").allow(["TWICE"]).out_dir(out()).generate("m").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`m::TWICE` is a function-like macro") && msg.contains("static inline"), "{msg}");
}

#[test]
fn bad_c_shows_the_compilers_message() {
    let e = Build::new()
        .preamble("int broken(int x { return x; }")
        .allow(["broken"])
        .out_dir(out())
        .generate("b")
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("ffiber-build: the C headers/preamble do not compile"), "{msg}");
    assert!(msg.contains("error"), "the compiler's own message is shown: {msg}");
}

#[test]
fn a_missing_library_says_how_to_install_it() {
    let e = Build::new().pkg_config("no-such-lib-ffiber").allow(["x"]).out_dir(out()).generate("x").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("pkg-config could not find `no-such-lib-ffiber`") && msg.contains("install"), "{msg}");
}

#[test]
fn struct_layouts_come_from_the_compiler_and_are_asserted() {
    let path = Build::new()
        .preamble(
            "struct inner { char c; double d; };\n\
             typedef struct outer { int a; struct inner in; short s[3]; struct outer *next; } outer_t;\n\
             struct __attribute__((packed)) tight { char c; int i; };\n\
             typedef struct tight tight_t;\n\
             int walk(outer_t *o);",
        )
        .allow(["outer_t", "tight_t", "walk"])
        .out_dir(out())
        .generate("s")
        .unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    for want in [
        // The nested record comes first, by its C tag.
        "pub struct inner {",
        "assert!(::core::mem::offset_of!(inner, d) == 8);",
        "pub struct outer_t {",
        "pub r#in: inner,",
        "pub s: [i16; 3],",
        "assert!(::core::mem::offset_of!(outer_t, s) == 24);",
        "assert!(::core::mem::offset_of!(outer_t, next) == 32);",
        "assert!(::core::mem::size_of::<outer_t>() == 40);",
        "pub type outer = outer_t;",
        // A packed struct: the int right after the char.
        "assert!(::core::mem::offset_of!(tight_t, i) == 1);",
        "assert!(::core::mem::size_of::<tight_t>() == 5);",
        // Pointers to a bound struct use its name.
        "pub unsafe fn walk(a0: *mut outer) -> i32 {",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
}

/// The generated layouts compile, so their compile-time assertions of every
/// size, alignment and offset hold (rustc evaluates them).
#[test]
fn generated_layouts_pass_their_own_assertions() {
    let dir = out();
    let path = Build::new()
        .header("zlib.h")
        .preamble(
            "struct inner { char c; double d; };\n\
             typedef struct outer { int a; struct inner in; short s[3]; struct outer *next; } outer_t;\n\
             struct __attribute__((packed)) tight { char c; int i; };\n\
             typedef struct tight tight_t;\n\
             typedef union number { long l; double d; char bytes[12]; } number_t;",
        )
        .allow(["outer_t", "tight_t", "number_t", "z_stream", "Z_OK", "ZLIB_VERSION"])
        .out_dir(&dir)
        .generate("layouts")
        .unwrap();
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "--crate-type", "lib", "-A", "warnings", "-o"])
        .arg(dir.join("liblayouts.rlib"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&path).unwrap()
    );
}

/// A `ffiber::cgo!` block whose C does not compile: the compiler's message
/// points at the Rust file and the line where the bad C line sits.
#[test]
fn errors_in_an_inline_preamble_point_at_the_rust_file() {
    let dir = out();
    let src = dir.join("main.rs");
    std::fs::write(
        &src,
        "fn helper() {}\n\nffiber::cgo! {\n    mod c;\n    r#\"\n    #include <stdio.h>\n    int ok(void) { return 1; }\n    int broken(void) { return 1 }\n    \"#\n}\n\nfn main() { unsafe { c::ok() }; }\n",
    )
    .unwrap();
    let e = Build::new().file(&src).out_dir(&dir).compile().unwrap_err();
    let msg = e.to_string();
    // `int broken(void) { return 1 }` is line 8 of main.rs.
    assert!(msg.contains(&format!("{}:8:", src.display())), "{msg}");

    // An undeclared name used through the block's module is named.
    std::fs::write(&src, "ffiber::cgo! {\n    mod c;\n    \"int ok(void);\"\n}\nfn main() { unsafe { c::nope() }; }\n")
        .unwrap();
    let e = Build::new().file(&src).out_dir(&dir).compile().unwrap_err();
    assert_eq!(e.to_string(), "ffiber-build: `c::nope` is not declared by the preamble or its headers");

    // An unknown #cgo directive is named with its line.
    std::fs::write(&src, "ffiber::cgo! {\n    mod c;\n    \"#cgo fastest ok\"\n}\n").unwrap();
    let msg = Build::new().file(&src).out_dir(&dir).compile().unwrap_err().to_string();
    assert!(msg.contains("unknown directive `#cgo fastest`") && msg.contains("main.rs:3"), "{msg}");
}

/// `#[ffiber::export]` functions get C prototypes in `ffiber_export.h`;
/// a type C cannot express is named, with its line.
#[test]
fn exports_header_has_c_prototypes() {
    let dir = out();
    let src = dir.join("lib.rs");
    std::fs::write(
        &src,
        "#[ffiber::export]\nfn on_row(ctx: *mut std::ffi::c_void, n: i32, vals: *mut *mut i8) -> i32 { 0 }\n\
         #[ffiber::export(name = \"c_side_name\")]\nfn ratio(a: f64, b: u64, ok: bool) {}\n",
    )
    .unwrap();
    Build::new().file(&src).out_dir(&dir).compile().unwrap();
    let h = std::fs::read_to_string(dir.join("ffiber_export.h")).unwrap();
    assert!(h.contains("int32_t on_row(void *, int32_t, char * *);"), "{h}");
    assert!(h.contains("void c_side_name(double, uint64_t, bool);"), "{h}");

    std::fs::write(&src, "\n#[ffiber::export]\nfn bad(s: String) {}\n").unwrap();
    let msg = Build::new().file(&src).out_dir(&dir).compile().unwrap_err().to_string();
    assert!(msg.contains("lib.rs:3: exported function `bad`: no C type for `String`"), "{msg}");
}

/// An export taking or returning a record of the file's `cgo!` module is
/// declared with the preamble's spelling (`struct`/`union` tags declared
/// ahead, so the header compiles before the definitions; a typedef by its
/// name); the module binds a record the file names by its tag; a record
/// the preamble does not define is an error naming the function and line.
#[test]
fn exports_header_spells_records_of_the_preamble() {
    let dir = out();
    let src = dir.join("lib.rs");
    std::fs::write(
        &src,
        "ffiber::cgo! {\n    mod c;\n    r#\"\n    typedef struct { int x; } pt_t;\n    #include \"ffiber_export.h\"\n    \
         struct dd { double a, b; };\n    union num { long l; double d; };\n    \
         static double twice(struct dd v) { return rs_sum(v, 2).a; }\n    \"#\n}\n\
         #[ffiber::export(name = \"rs_sum\")]\nfn sum(v: c::dd, k: i32) -> c::dd { v }\n\
         #[ffiber::export(name = \"rs_num\")]\nfn num(n: self::c::num, p: c::pt_t) -> c::num { n }\n",
    )
    .unwrap();
    Build::new().file(&src).out_dir(&dir).compile().unwrap();
    let h = std::fs::read_to_string(dir.join("ffiber_export.h")).unwrap();
    assert!(h.contains("struct dd;\nunion num;\n"), "{h}");
    assert!(h.contains("struct dd rs_sum(struct dd, int32_t);"), "{h}");
    assert!(h.contains("union num rs_num(union num, pt_t);"), "{h}");
    let code = std::fs::read_to_string(dir.join("ffiber_cgo_c.rs")).unwrap();
    assert!(code.contains("pub struct dd {") && code.contains("pub union num {"), "{code}");

    std::fs::write(&src, "ffiber::cgo! {\n    mod c;\n    \"int x;\"\n}\n#[ffiber::export]\nfn f(v: c::nope) {}\n")
        .unwrap();
    let msg = Build::new().file(&src).out_dir(&dir).compile().unwrap_err().to_string();
    assert!(msg.contains("lib.rs:6: exported function `f`: no C type for `c :: nope`"), "{msg}");
}

#[test]
fn variables_are_bound_as_addresses() {
    let path = Build::new().header("stdio.h").allow(["stdin", "fileno"]).out_dir(out()).generate("v").unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    assert!(code.contains("pub fn stdin() -> *mut *mut _IO_FILE {"), "{code}");
    assert!(code.contains("pub struct _IO_FILE {"), "the FILE struct is declared: {code}");
    assert!(code.contains("pub unsafe fn fileno(a0: *mut _IO_FILE) -> i32 {"), "{code}");
}

/// A corpus of tricky structs: the sizes, alignments and offsets in the
/// generated code (which rustc then checks against the Rust layout) must
/// equal what a C program compiled by the same compiler prints with
/// `sizeof`, `_Alignof` and `offsetof`.
#[test]
fn tricky_struct_corpus_matches_a_c_program() {
    let dir = out();
    let types = "#include <stddef.h>\n#include <stdint.h>\n\
        typedef struct { char c; double d; short s; } padded_t;\n\
        typedef struct __attribute__((packed)) { char c; int i; short s; } packed_t;\n\
        typedef struct { unsigned a : 3; int b : 7; unsigned long long c : 40; char tail; } bits_t;\n\
        typedef union { int i; double d; char b[13]; } onion_t;\n\
        typedef struct { int kind; union { int i; float f; }; struct { short x, y; } pt; } anon_t;\n\
        typedef struct { size_t len; int data[]; } flex_t;\n\
        typedef struct { int (*cb)(int); void (*done)(void *); void *ctx; } fnptr_t;\n\
        typedef struct { padded_t inner[2]; anon_t a; char last; } nested_t;\n";
    let path = Build::new()
        .preamble(types)
        .allow(["padded_t", "packed_t", "bits_t", "onion_t", "anon_t", "flex_t", "fnptr_t", "nested_t"])
        .out_dir(&dir)
        .generate("corpus")
        .unwrap();
    let code = std::fs::read_to_string(&path).unwrap();
    // What C says.
    let fields: &[(&str, &[&str])] = &[
        ("padded_t", &["c", "d", "s"]),
        ("packed_t", &["c", "i", "s"]),
        ("bits_t", &["tail"]),
        ("onion_t", &[]),
        ("anon_t", &["kind", "pt"]),
        ("flex_t", &["len", "data"]),
        ("fnptr_t", &["cb", "done", "ctx"]),
        ("nested_t", &["inner", "a", "last"]),
    ];
    let mut prog = format!("{types}#include <stdio.h>\nint main(void) {{\n");
    for (t, fs) in fields {
        prog += &format!("    printf(\"size {t} %zu\\nalign {t} %zu\\n\", sizeof({t}), _Alignof({t}));\n");
        for f in *fs {
            prog += &format!("    printf(\"offset {t} {f} %zu\\n\", offsetof({t}, {f}));\n");
        }
    }
    // The anonymous union's members sit where the generated `_anon1` field does.
    prog += "    printf(\"offset anon_t _anon1 %zu\\n\", offsetof(anon_t, i));\n    return 0;\n}\n";
    let c_src = dir.join("corpus.c");
    std::fs::write(&c_src, prog).unwrap();
    let exe = dir.join("corpus");
    let cc = std::process::Command::new("cc").arg("-o").arg(&exe).arg(&c_src).output().unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let printed = String::from_utf8(std::process::Command::new(&exe).output().unwrap().stdout).unwrap();
    for line in printed.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let want = match w[0] {
            "size" => format!("assert!(::core::mem::size_of::<{}>() == {});", w[1], w[2]),
            "align" => format!("assert!(::core::mem::align_of::<{}>() == {});", w[1], w[2]),
            _ => format!("assert!(::core::mem::offset_of!({}, {}) == {});", w[1], w[2], w[3]),
        };
        assert!(code.contains(&want), "C says `{line}`, but the bindings lack {want:?}:\n{code}");
    }
    // And rustc agrees with every assertion.
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "--crate-type", "lib", "-A", "warnings", "-o"])
        .arg(dir.join("libcorpus.rlib"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{code}", String::from_utf8_lossy(&out.stderr));
    // Bitfields got accessors; the anonymous members got names.
    for want in [
        "pub fn b(&self) -> i64",
        "pub fn set_c(&mut self, v: u64)",
        "pub _anon1: anon_t__anon1,",
        "pub pt: anon_t__pt,",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
}

/// The generated code for a small preamble, against a golden file
/// (`tests/golden/small.rs`; regenerate with FFIBER_BLESS=1).
#[test]
fn golden_file_for_a_small_preamble() {
    let path = Build::new()
        .preamble("#define LIMIT 16u\ntypedef struct point { int x, y; } point_t;\ndouble norm(const point_t *p, double scale);")
        .allow(["LIMIT", "point_t", "norm"])
        .mode("norm", ffiber_build::Mode::NonBlocking)
        .out_dir(out())
        .generate("small")
        .unwrap();
    let got = std::fs::read_to_string(path).unwrap();
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small.rs");
    if std::env::var_os("FFIBER_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (run once with FFIBER_BLESS=1)");
    assert_eq!(got, want, "generated code differs from tests/golden/small.rs");
}

/// Each bad input, in a throwaway crate whose build script uses
/// ffiber-build: cargo shows the message, never a panic backtrace.
#[test]
fn errors_in_a_throwaway_crate() {
    let dir = out();
    let me = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"throwaway\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[workspace]\n\n\
             [build-dependencies]\nffiber-build = {{ path = \"{me}\" }}\n"
        ),
    )
    .unwrap();
    let build = |build_rs: &str, lib_rs: &str| {
        std::fs::write(dir.join("build.rs"), build_rs).unwrap();
        std::fs::write(dir.join("src/lib.rs"), lib_rs).unwrap();
        // A shared target directory: ffiber-build and its dependencies
        // compile once for all the cases (and across runs).
        let target = std::path::Path::new(me).join("../../target/throwaway");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--offline"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", target)
            .output()
            .unwrap();
        assert!(!out.status.success(), "the build was expected to fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked at"), "a panic instead of a message:\n{err}");
        err
    };
    let err = build(
        "fn main() { if let Err(e) = ffiber_build::Build::new().header(\"zlib.h\").allow([\"crc32\", \"crc99\"]).generate(\"zlib\") { e.exit() } }",
        "",
    );
    assert!(err.contains("`zlib::crc99` is not declared by the preamble or its headers"), "{err}");
    let err = build(
        "fn main() { if let Err(e) = ffiber_build::Build::new().file(\"src/lib.rs\").compile() { e.exit() } }",
        "// a comment\nffiber::cgo! {\n    mod c;\n    \"int f(void) { return 1 }\"\n}\n",
    );
    assert!(err.contains("src/lib.rs:4:") && err.contains("error"), "{err}");
    let err = build(
        "fn main() { if let Err(e) = ffiber_build::Build::new().pkg_config(\"no-such-library\").allow([\"x\"]).generate(\"x\") { e.exit() } }",
        "",
    );
    assert!(err.contains("pkg-config could not find `no-such-library`"), "{err}");
    let err = build(
        "fn main() { if let Err(e) = ffiber_build::Build::new().preamble(\"#define SQ(x) ((x)*(x))\").allow([\"SQ\"]).generate(\"m\") { e.exit() } }",
        "",
    );
    assert!(err.contains("`m::SQ` is a function-like macro"), "{err}");
}

#[test]
fn a_missing_header_is_named() {
    let msg = Build::new()
        .header("no_such_header_ffiber.h")
        .allow(["x"])
        .out_dir(out())
        .generate("h")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("header `no_such_header_ffiber.h` not found") && msg.contains("apt-file search"), "{msg}");
}

#[test]
fn unsupported_constructs_name_themselves_and_the_way_around() {
    let msg = Build::new()
        .preamble("struct pair { int a, b; };\nstruct pair vswap(struct pair p, ...);")
        .allow(["vswap"])
        .out_dir(out())
        .generate("u")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(
            "`u::vswap` is a variadic function taking or returning a struct, a union or an `__int128` by value"
        ) && msg.contains("wrap it in a C function in the preamble that passes the value by pointer"),
        "{msg}"
    );
    // Not variadic: bound, through the closure form.
    let path = Build::new()
        .preamble("struct pair { int a, b; };\nstruct pair swap(struct pair p);")
        .allow(["swap"])
        .out_dir(out())
        .generate("v")
        .unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    assert!(code.contains("pub unsafe fn swap(a0: pair) -> pair {") && code.contains("call_named("), "{code}");
}

/// Issue 15, item 9: `cgo!` in a crate without a build script (or whose
/// build script skips the file) names the build.rs line to add, not the
/// `OUT_DIR` variable.
#[test]
fn cgo_without_a_build_script_names_the_missing_line() {
    let dir = out();
    let macros = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ffiber-macros");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"throwaway-nobuild\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[workspace]\n\n\
             [dependencies]\nffiber-macros = {{ path = {:?} }}\n",
            macros.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "ffiber_macros::cgo! {\n    mod c;\n    \"int f(void) { return 1; }\"\n}\n")
        .unwrap();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/throwaway");
    let build = || {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--offline"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(!out.status.success(), "the build was expected to fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = build();
    assert!(err.contains("ffiber::cgo! needs a build script"), "{err}");
    assert!(err.contains("ffiber_build::Build::new().file(\"src/lib.rs\")"), "{err}");
    assert!(!err.contains("OUT_DIR"), "{err}");
    // A build script that does not process this file.
    std::fs::write(dir.join("build.rs"), "fn main() {}").unwrap();
    let err = build();
    assert!(err.contains("no bindings were generated for `mod c`"), "{err}");
    assert!(err.contains(".file(\"src/lib.rs\")"), "{err}");
}

/// Three layout bugs the generative test (`tests/layouts.rs`) found, pinned
/// down: a packed record whose members happen to sit aligned still has
/// alignment 1 (only the compiler knows: `_Alignof` is probed); a record
/// whose alignment comes from bitfields can sit inside a packed one (Rust
/// forbids `repr(align)` there, so the alignment is a zero-length marker);
/// records nested by value more than 8 deep are expanded, not made opaque
/// with a guessed alignment.
#[test]
fn layouts_of_packed_bitfield_and_deeply_nested_records() {
    let dir = out();
    let path = Build::new()
        .preamble(
            "typedef struct __attribute__((packed)) { long a[2]; } pk_t;\n\
             typedef struct { unsigned a : 3; } bits_t;\n\
             typedef struct __attribute__((packed)) { char c; bits_t b; } holds_t;\n\
             typedef struct { char c; struct { struct { struct { struct { struct { struct { struct { struct { struct \
             { double d; } l9; } l8; } l7; } l6; } l5; } l4; } l3; } l2; } l1; } deep_t;\n\
             typedef union { pk_t p; char c; } pku_t;",
        )
        .allow(["pk_t", "holds_t", "deep_t", "pku_t"])
        .out_dir(&dir)
        .generate("bugs")
        .unwrap();
    let code = std::fs::read_to_string(&path).unwrap();
    for want in [
        "assert!(::core::mem::align_of::<pk_t>() == 1);",
        "assert!(::core::mem::size_of::<holds_t>() == 5);",
        "assert!(::core::mem::align_of::<bits_t>() == 4);",
        "assert!(::core::mem::offset_of!(holds_t, b) == 1);",
        "assert!(::core::mem::align_of::<deep_t>() == 8);",
        "assert!(::core::mem::offset_of!(deep_t, l1) == 8);",
        "assert!(::core::mem::align_of::<pku_t>() == 1);",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "--crate-type", "lib", "-A", "warnings", "-o"])
        .arg(dir.join("libbugs.rlib"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{code}", String::from_utf8_lossy(&out.stderr));
}

/// Scalars Rust has no type for — `long double`, `__float128`, `_Complex`
/// — are laid out in records and reached by pointer (held as `u128`,
/// `[f64; 2]`…), but never passed by value, where their registers differ:
/// such a function is refused with a message naming the type, and a
/// pointer to one is opaque. (They used to be spelled `f64` and `u128`:
/// `long double half(long double)` read a `double` from `xmm0`, a silent
/// wrong answer.) `__int128` by value goes through the closure form, whose
/// `extern "C"` passes it as C does; a variadic function's fixed
/// `__int128` is refused. GNU vectors likewise: laid out, not passed (a
/// vector is one SSE register, an array of its elements two). And arrays
/// of arrays keep every dimension. `examples/byvalue` runs these against C.
#[test]
fn scalars_rust_has_no_type_for_are_laid_out_but_never_passed_by_value() {
    let decls = "struct wide { char t; long double v; __float128 q; _Complex double z; _Complex float zf; };\n\
                 long double half(long double x);\nstruct wide mk(int k);\n_Complex double cz(_Complex double z);\n\
                 __int128 m128(__int128 a, unsigned __int128 b);\nlong double *ptr(void);\n\
                 typedef long double (*ldf)(long double);\nvoid take(ldf f, struct wide *w);\n\
                 int pr(__int128 a, ...);\n\
                 typedef float v4 __attribute__((vector_size(16)));\n\
                 struct hv { v4 w; int grid[2][3]; };\nextern int grid[2][3];\n\
                 v4 add4(v4 a, v4 b);\nstruct hv mkv(int k);\nv4 *vp(void);";
    let path = Build::new()
        .preamble(decls)
        .allow(["wide", "m128", "ptr", "ldf", "take", "hv", "grid", "vp"])
        .out_dir(out())
        .generate("wide")
        .unwrap();
    let code = std::fs::read_to_string(path).unwrap();
    for want in [
        "pub v: u128,",
        "pub q: u128,",
        "pub z: [f64; 2],",
        "pub zf: [f32; 2],",
        "assert!(::core::mem::offset_of!(wide, v) == 16);",
        "pub unsafe fn ptr() -> *mut u128 {",
        "pub type ldf = *const ::core::ffi::c_void;",
        "pub unsafe fn m128(a0: i128, a1: u128) -> i128 {",
        "call_named(::ffiber::ffi::Mode::Default, \"m128\", || unsafe { c(a0, a1) })",
        // A vector is laid out as its elements; an array of arrays keeps
        // both dimensions (only the last one was kept before).
        "pub w: [f32; 4],",
        "pub grid: [[i32; 3]; 2],",
        "assert!(::core::mem::offset_of!(hv, grid) == 16);",
        "pub fn grid() -> *mut [[i32; 3]; 2] {",
        "pub unsafe fn vp() -> *mut [f32; 4] {",
    ] {
        assert!(code.contains(want), "missing {want:?} in\n{code}");
    }
    for (name, what) in [
        ("half", "`long double` by value"),
        ("mk", "`long double` by value"),
        ("cz", "`complex double` by value"),
        ("pr", "a variadic function taking or returning a struct, a union or an `__int128` by value"),
        ("add4", "a vector type (16 bytes) by value"),
        ("mkv", "a vector type (16 bytes) by value"),
    ] {
        let e = Build::new().preamble(decls).allow([name]).out_dir(out()).generate("refused").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Unsupported { .. }) && msg.contains(what), "{name}: {msg}");
        assert!(msg.contains(&format!("`refused::{name}`")) && msg.contains("preamble"), "{name}: {msg}");
    }
}
