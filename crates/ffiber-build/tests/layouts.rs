//! Generative layout tests (issue 15, item 11): random C structs and unions
//! — nesting, arrays, bitfields, packing, pointers — are compiled by the C
//! compiler, bound by ffiber-build, and compared field by field: a C
//! program and a Rust program (rustc, the generated bindings, nothing
//! else) read the same bytes through every leaf field and must print the
//! same values, and the same sizes.
//!
//! `FFIBER_LAYOUT_TYPES` sets how many types (default 60; `scripts/soak.sh`
//! uses more), `FFIBER_LAYOUT_SEED` replays a run (the seed is printed).

use ffiber_build::Build;
use std::fmt::Write as _;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// C scalar types: (spelling, class, bits).
const SCALARS: &[(&str, Class, u32)] = &[
    ("char", Class::Signed, 8),
    ("signed char", Class::Signed, 8),
    ("unsigned char", Class::Unsigned, 8),
    ("short", Class::Signed, 16),
    ("unsigned short", Class::Unsigned, 16),
    ("int", Class::Signed, 32),
    ("unsigned int", Class::Unsigned, 32),
    ("long", Class::Signed, 64),
    ("unsigned long", Class::Unsigned, 64),
    ("long long", Class::Signed, 64),
    ("unsigned long long", Class::Unsigned, 64),
    ("float", Class::F32, 32),
    ("double", Class::F64, 64),
    ("void *", Class::Ptr, 64),
    ("int *", Class::Ptr, 64),
];

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Signed,
    Unsigned,
    F32,
    F64,
    Ptr,
}

/// One step of a path from a value to a leaf.
#[derive(Clone)]
enum Step {
    Field(String),
    Index(usize),
    Bits(String),
}

#[derive(Clone)]
struct Leaf {
    path: Vec<Step>,
    class: Class,
}

struct Type {
    name: String,
    decl: String,
    leaves: Vec<Leaf>,
}

const MAX_LEAVES: usize = 120;

fn gen_types(rng: &mut Rng, n: usize) -> Vec<Type> {
    let mut types: Vec<Type> = Vec::new();
    for k in 0..n {
        let union = rng.below(4) == 0;
        let packed = !union && rng.below(4) == 0;
        let nfields = 1 + rng.below(6);
        let mut body = String::new();
        let mut leaves = Vec::new();
        for f in 0..nfields {
            let fname = format!("f{f}");
            let pick = rng.below(10);
            if pick < 2 && !types.is_empty() {
                // A nested type, or an array of one, if the leaves stay few.
                let j = rng.below(types.len());
                let len = if rng.below(3) == 0 { 1 + rng.below(3) } else { 0 };
                let count = types[j].leaves.len() * len.max(1);
                if leaves.len() + count <= MAX_LEAVES {
                    let inner = &types[j];
                    if len == 0 {
                        writeln!(body, "    {} {fname};", inner.name).unwrap();
                        for l in &inner.leaves {
                            let mut path = vec![Step::Field(fname.clone())];
                            path.extend(l.path.iter().cloned());
                            leaves.push(Leaf { path, class: l.class });
                        }
                    } else {
                        writeln!(body, "    {} {fname}[{len}];", inner.name).unwrap();
                        for i in 0..len {
                            for l in &inner.leaves {
                                let mut path = vec![Step::Field(fname.clone()), Step::Index(i)];
                                path.extend(l.path.iter().cloned());
                                leaves.push(Leaf { path, class: l.class });
                            }
                        }
                    }
                    continue;
                }
            }
            if pick < 5 && !union {
                // A run of bitfields of one integer type.
                let ints: Vec<_> = SCALARS.iter().filter(|s| matches!(s.1, Class::Signed | Class::Unsigned)).collect();
                let (ty, class, bits) = *ints[rng.below(ints.len())];
                for b in 0..1 + rng.below(3) {
                    let width = 1 + rng.below(bits as usize - 1);
                    let bname = format!("{fname}b{b}");
                    writeln!(body, "    {ty} {bname} : {width};").unwrap();
                    leaves.push(Leaf { path: vec![Step::Bits(bname)], class });
                }
                continue;
            }
            let (ty, class, _) = SCALARS[rng.below(SCALARS.len())];
            if rng.below(4) == 0 {
                let len = 1 + rng.below(4);
                writeln!(body, "    {ty} {fname}[{len}];").unwrap();
                for i in 0..len {
                    leaves.push(Leaf { path: vec![Step::Field(fname.clone()), Step::Index(i)], class });
                }
            } else {
                writeln!(body, "    {ty} {fname};").unwrap();
                leaves.push(Leaf { path: vec![Step::Field(fname.clone())], class });
            }
        }
        let name = format!("t{k}");
        let kw = if union { "union" } else { "struct" };
        let attr = if packed { " __attribute__((packed))" } else { "" };
        let decl = format!("typedef {kw}{attr} {{\n{body}}} {name};\n");
        types.push(Type { name, decl, leaves });
    }
    types
}

fn c_path(l: &Leaf) -> String {
    let mut s = String::from("v");
    for st in &l.path {
        match st {
            Step::Field(f) | Step::Bits(f) => write!(s, ".{f}").unwrap(),
            Step::Index(i) => write!(s, "[{i}]").unwrap(),
        }
    }
    s
}

/// Reads a leaf by copying each step out (a reference into a packed
/// struct is not allowed; copies are).
fn rust_read(l: &Leaf) -> String {
    let mut s = String::from("{ let x0 = v; ");
    for (k, st) in l.path.iter().enumerate() {
        let last = k + 1 == l.path.len();
        let e = match st {
            Step::Field(f) => format!("x{k}.{f}"),
            Step::Index(i) => format!("x{k}[{i}]"),
            Step::Bits(f) => format!("x{k}.{f}()"),
        };
        if last {
            s += &e;
        } else {
            write!(s, "let x{} = {e}; ", k + 1).unwrap();
        }
    }
    s += " }";
    match l.class {
        Class::Signed | Class::Unsigned => format!("({s}) as i128"),
        Class::Ptr => format!("({s}) as usize as i128"),
        Class::F32 | Class::F64 => format!("({s}).to_bits() as i128"),
    }
}

fn c_print(t: &str, l: &Leaf) -> String {
    let p = c_path(l);
    let label = format!("{t} {}", c_path(l));
    match l.class {
        Class::Signed => format!("    printf(\"{label} %lld\\n\", (long long)({p}));\n"),
        Class::Unsigned => format!("    printf(\"{label} %llu\\n\", (unsigned long long)({p}));\n"),
        Class::Ptr => format!("    printf(\"{label} %llu\\n\", (unsigned long long)(uintptr_t)({p}));\n"),
        Class::F32 => {
            format!("    {{ float f = {p}; uint32_t u; memcpy(&u, &f, 4); printf(\"{label} %u\\n\", u); }}\n")
        }
        Class::F64 => format!(
            "    {{ double f = {p}; uint64_t u; memcpy(&u, &f, 8); printf(\"{label} %llu\\n\", (unsigned long long)u); }}\n"
        ),
    }
}

#[test]
fn random_structs_and_unions_read_the_same_in_c_and_rust() {
    let n: usize = std::env::var("FFIBER_LAYOUT_TYPES").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("FFIBER_LAYOUT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("layouts: {n} types, FFIBER_LAYOUT_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let types = gen_types(&mut rng, n);
    let decls: String = types.iter().map(|t| t.decl.as_str()).collect();
    let dir = std::env::temp_dir().join(format!("ffiber-layouts-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("types.h"), &decls).unwrap();
    let bindings = Build::new()
        .preamble(&format!("#include <stdint.h>\n{decls}"))
        .allow(types.iter().map(|t| t.name.clone()))
        .out_dir(&dir)
        .generate("layouts")
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{decls}"));

    // The byte pattern both sides read: byte i of every value.
    let pattern = |i: &str| format!("(({i}) * 131 + 7) & 0xff");

    let mut c = String::from("#include <stdio.h>\n#include <stdint.h>\n#include <string.h>\n#include \"types.h\"\n");
    c += "int main(void) {\n";
    for t in &types {
        let name = &t.name;
        writeln!(
            c,
            "  {{\n    {name} v; unsigned char b[sizeof v];\n    for (size_t i = 0; i < sizeof v; i++) b[i] = {};\n    \
             memcpy(&v, b, sizeof v);\n    printf(\"{name} size %zu align %zu\\n\", sizeof v, _Alignof({name}));",
            pattern("i")
        )
        .unwrap();
        for l in &t.leaves {
            c += &c_print(name, l);
        }
        c += "  }\n";
    }
    c += "  return 0;\n}\n";
    std::fs::write(dir.join("main.c"), &c).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-w", "-o"])
        .arg(dir.join("c_side"))
        .arg(dir.join("main.c"))
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));

    let mut rs = format!(
        "#![allow(warnings)]\nmod layouts {{ include!({:?}); }}\nuse layouts::*;\nfn main() {{\n",
        bindings.display().to_string()
    );
    for t in &types {
        let name = &t.name;
        writeln!(
            rs,
            "  {{\n    let mut b = [0u8; ::core::mem::size_of::<{name}>()];\n    for i in 0..b.len() {{ b[i] = ({}) as u8; }}\n    \
             let v: {name} = unsafe {{ ::core::ptr::read_unaligned(b.as_ptr() as *const {name}) }};\n    \
             println!(\"{name} size {{}} align {{}}\", ::core::mem::size_of::<{name}>(), ::core::mem::align_of::<{name}>());",
            pattern("i")
        )
        .unwrap();
        for l in &t.leaves {
            writeln!(rs, "    println!(\"{name} {} {{}}\", unsafe {{ {} }});", c_path(l), rust_read(l)).unwrap();
        }
        rs += "  }\n";
    }
    rs += "}\n";
    std::fs::write(dir.join("main.rs"), &rs).unwrap();
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "-O", "-o"])
        .arg(dir.join("rust_side"))
        .arg(dir.join("main.rs"))
        .output()
        .unwrap();
    assert!(
        rustc.status.success(),
        "seed {seed}: the bindings do not compile (their layout assertions fail?):\n{}",
        String::from_utf8_lossy(&rustc.stderr)
    );
    let run = |exe: &str| {
        let out = std::process::Command::new(dir.join(exe)).output().unwrap();
        assert!(out.status.success(), "{exe}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let (from_c, from_rust) = (run("c_side"), run("rust_side"));
    let leaves: usize = types.iter().map(|t| t.leaves.len()).sum();
    assert_eq!(from_c.lines().count(), n + leaves);
    for (a, b) in from_c.lines().zip(from_rust.lines()) {
        assert_eq!(a, b, "seed {seed}: C and the bindings disagree (C first); types in {}", dir.display());
    }
    assert_eq!(from_c, from_rust);
    println!("layouts: {n} types, {leaves} leaf fields agree");
    let _ = std::fs::remove_dir_all(&dir);
}
