//! # ffiber-build: cgo's code generator, for ffiber
//!
//! Turns C declarations into Rust bindings whose every function goes
//! through ffiber's foreign-call path — learning each declaration from the
//! **C compiler itself**, as `cmd/cgo` does, instead of parsing C (no
//! libclang, no hand-written parser):
//!
//! 1. **kind probes**: small programs, one per kind of question, each probe
//!    behind its own `#line` marker so that a compiler error names the probe
//!    it came from (`probe.rs`): is `N` a type, an integer constant, a
//!    string, a floating constant, a function or variable — or undeclared?
//! 2. **a DWARF probe**: `__typeof__(N) *probe_i;` for every function and
//!    constant, compiled with `-g`; its `.debug_info` (read with `object` +
//!    `gimli`, relocations applied since the object is unlinked) gives each
//!    exact type (`dwarf.rs`);
//! 3. **data probes**: the values of constants, read from the same object's
//!    data sections.
//!
//! Generated functions call C through `ffiber::ffi::call_regs` — the
//! register pass-through trampoline: arguments stay in registers, the stack
//! switch and the scheduler announcement cost a few nanoseconds — in each
//! function's [`Mode`] (default: fully safe).
//!
//! ```no_run
//! // In build.rs:
//! let r = ffiber_build::Build::new()
//!     .header("zlib.h")
//!     .allow(["crc32", "adler32", "zlibVersion", "Z_OK", "ZLIB_VERSION"])
//!     .link("z")
//!     .generate("zlib");
//! if let Err(e) = r {
//!     e.exit(); // a clear build error, not a panic backtrace
//! }
//! // In src/lib.rs:  pub mod zlib { include!(concat!(env!("OUT_DIR"), "/zlib.rs")); }
//! ```
//!
//! Also: struct and union layouts (asserted at compile time against the C
//! compiler's), variadic functions (`printf`), inline preambles with
//! [`Build::file`]/[`Build::compile`] and `ffiber::cgo!`, and the
//! `ffiber_export.h` header of `#[ffiber::export]` functions (records of
//! the preamble included), bitfield getters and setters, C variables (as
//! their addresses), callable function-pointer types, structs and unions
//! by value.

mod ctype;
mod dwarf;
mod emit;
mod inline;
mod probe;

use ctype::CType;
use emit::layout::{collect_records, opaque, record};
use emit::names::reserved;
use probe::Kind;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// How generated code calls a C function (see `ffiber::ffi::Mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// May block, may call back: fully safe.
    #[default]
    Default,
    /// Never calls back into Rust.
    NoCallback,
    /// A short call that never blocks.
    NonBlocking,
    /// Known to block: the processor slot is handed off for the call.
    Blocking,
}

impl Mode {
    fn path(self) -> &'static str {
        match self {
            Mode::Default => "::ffiber::ffi::Mode::Default",
            Mode::NoCallback => "::ffiber::ffi::Mode::NoCallback",
            Mode::NonBlocking => "::ffiber::ffi::Mode::NonBlocking",
            Mode::Blocking => "::ffiber::ffi::Mode::Blocking",
        }
    }
}

/// What went wrong, said for people: which name, which header, what to do.
#[derive(Debug)]
pub enum Error {
    /// The headers (or preamble) do not compile; the compiler's messages.
    Preamble(String),
    /// A name the bindings were asked for is not declared.
    Undeclared { module: String, name: String },
    /// A function-like macro was asked for.
    FunctionMacro { module: String, name: String },
    /// A library pkg-config could not find.
    PkgConfig { lib: String, message: String },
    /// A name whose kind of declaration the bindings cannot express yet.
    Unsupported { module: String, name: String, what: String, instead: String },
    /// Anything else (I/O, an object the probes could not read).
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Preamble(msg) => {
                // A missing header: say which, and how to find its package.
                if let Some(h) = msg.lines().find_map(|l| {
                    let l = l.split("fatal error: ").nth(1)?;
                    l.strip_suffix(": No such file or directory").map(str::to_string)
                }) {
                    return write!(
                        f,
                        "ffiber-build: header `{h}` not found; install the development package that provides it \
                         (on Debian: apt-file search {h}), or add its directory with .flag(\"-I...\") / \
                         `#cgo CFLAGS: -I...`\n{}",
                        msg.trim_end()
                    );
                }
                write!(
                    f,
                    "ffiber-build: the C headers/preamble do not compile with the C compiler:\n{}",
                    msg.trim_end()
                )
            }
            Error::Undeclared { module, name } => {
                write!(f, "ffiber-build: `{module}::{name}` is not declared by the preamble or its headers")
            }
            Error::FunctionMacro { module, name } => write!(
                f,
                "ffiber-build: `{module}::{name}` is a function-like macro, which bindings cannot call; wrap it in a \
                 `static inline` function in the preamble and bind that"
            ),
            Error::PkgConfig { lib, message } => write!(
                f,
                "ffiber-build: pkg-config could not find `{lib}` ({}); install its development package (for \
                 example: apt-get install lib{lib}-dev or {lib}1g-dev)",
                message.lines().next().unwrap_or("").trim()
            ),
            Error::Unsupported { module, name, what, instead } => {
                write!(f, "ffiber-build: `{module}::{name}` is {what}, which bindings cannot express yet; {instead}")
            }
            Error::Other(msg) => write!(f, "ffiber-build: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Prints the error the way cargo shows build-script failures and exits
    /// with status 1 (no panic, no backtrace).
    pub fn exit(self) -> ! {
        eprintln!("error: {self}");
        std::process::exit(1)
    }
}

/// A set of bindings to generate.
#[derive(Default, Clone, Debug)]
pub struct Build {
    headers: Vec<String>,
    preamble: String,
    names: Vec<String>,
    flags: Vec<String>,
    links: Vec<String>,
    pkg: Vec<String>,
    modes: BTreeMap<String, Mode>,
    errno: Vec<String>,
    out_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    /// Functions are reached through function-pointer variables named
    /// `<prefix><name>` (exported by a compiled preamble), not by symbol.
    via_ptr: Option<String>,
    /// Names bound because the preamble defines them, not because they were
    /// asked for: one that cannot be expressed is skipped, not an error.
    optional: BTreeSet<String>,
}

impl Build {
    /// An empty set of bindings.
    pub fn new() -> Build {
        Build::default()
    }

    /// `#include <header>` in the preamble.
    pub fn header(mut self, h: &str) -> Build {
        self.headers.push(h.to_string());
        self
    }

    /// C code added to the preamble (after the headers).
    pub fn preamble(mut self, c: &str) -> Build {
        self.preamble += c;
        self.preamble += "\n";
        self
    }

    /// Names to bind: functions, constants (macros, enumerators), types.
    pub fn allow<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Build {
        self.names.extend(names.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// A flag for the C compiler (`-I...`, `-D...`).
    pub fn flag(mut self, f: &str) -> Build {
        self.flags.push(f.to_string());
        self
    }

    /// Links a library (`cargo:rustc-link-lib`).
    pub fn link(mut self, lib: &str) -> Build {
        self.links.push(lib.to_string());
        self
    }

    /// Finds a library with pkg-config: its include paths go to the probes,
    /// its link lines to cargo.
    pub fn pkg_config(mut self, lib: &str) -> Build {
        self.pkg.push(lib.to_string());
        self
    }

    /// Calls function `name` in `mode` instead of the default.
    pub fn mode(mut self, name: &str, mode: Mode) -> Build {
        self.modes.insert(name.to_string(), mode);
        self
    }

    /// Also generates `<name>_errno`, returning `(result, errno)`.
    pub fn errno(mut self, name: &str) -> Build {
        self.errno.push(name.to_string());
        self
    }

    /// A Rust source file whose `ffiber::cgo!` blocks [`compile`](Self::compile) binds.
    pub fn file(mut self, path: impl AsRef<Path>) -> Build {
        self.files.push(path.as_ref().to_path_buf());
        self
    }

    /// For every `ffiber::cgo! { mod m; "preamble" }` block of the
    /// [`file`](Self::file)s: compiles the preamble into a static library
    /// (linked into the crate), binds every `m::name` the file uses plus
    /// every function the preamble defines, and writes
    /// `$OUT_DIR/ffiber_cgo_<m>.rs`, which the macro includes. Call it from
    /// build.rs.
    pub fn compile(self) -> Result<(), Error> {
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| Error::Other("OUT_DIR is not set: call compile from build.rs".into()))?,
        };
        // The exports' header first (cgo's `_cgo_export.h`): preambles may
        // `#include "ffiber_export.h"` to call Rust back.
        let mut header = String::from(
            "/* The Rust functions marked #[ffiber::export], for C: generated by ffiber-build. */\n\
             #ifndef FFIBER_EXPORT_H\n#define FFIBER_EXPORT_H\n#include <stdbool.h>\n#include <stdint.h>\n",
        );
        let blocks = self.files.iter().map(|f| inline::blocks(f)).collect::<Result<Vec<_>, _>>()?;
        let mut tags = BTreeSet::new();
        let mut prototypes = String::new();
        for (file, blocks) in self.files.iter().zip(&blocks) {
            for e in inline::exports(file, blocks)? {
                prototypes += &format!("/* {} */\n{}\n", e.c_name, e.prototype);
                tags.extend(e.tags);
            }
        }
        for tag in tags {
            header += &format!("{tag};\n");
        }
        header += &prototypes;
        header += "#endif\n";
        let h = out.join("ffiber_export.h");
        std::fs::write(&h, header).map_err(|e| Error::Other(format!("writing {}: {e}", h.display())))?;
        let mut this = self.clone();
        this.flags.push(format!("-I{}", out.display()));
        for (file, blocks) in this.files.iter().zip(&blocks) {
            println!("cargo:rerun-if-changed={}", file.display());
            for b in blocks {
                this.compile_block(b, &out)?;
            }
        }
        Ok(())
    }

    fn compile_block(&self, b: &inline::Block, out: &Path) -> Result<(), Error> {
        let m = &b.module;
        // The functions the preamble defines (static inline ones included).
        let mut defs = self.clone();
        defs.preamble = b.preamble.clone();
        defs.flags.extend(b.cflags.iter().cloned());
        let mut names: Vec<String> = b.used.iter().cloned().collect();
        let mut optional = BTreeSet::new();
        // gcc drops unused static inline functions even at -O0 unless told
        // to keep them; a compiler that does not know the flags gets a
        // second try without them.
        let mut c = defs.compiler(probe::scratch(out))?;
        c.flags.extend(["-fkeep-inline-functions", "-fkeep-static-functions"].map(String::from));
        let obj = match c.compile(&format!("ffiber-defs-{m}"), "", false) {
            Ok(o) => o,
            Err(_) => defs
                .compiler(probe::scratch(out))?
                .compile(&format!("ffiber-defs-{m}"), "", false)
                .map_err(Error::Preamble)?,
        };
        for f in defined_functions(&obj) {
            if !names.contains(&f) {
                optional.insert(f.clone());
                names.push(f);
            }
        }
        let mut sub = Build {
            headers: Vec::new(),
            preamble: b.preamble.clone(),
            names,
            flags: self.flags.iter().chain(&b.cflags).cloned().collect(),
            links: Vec::new(),
            pkg: b.pkg_config.clone(),
            modes: self.modes.clone(),
            errno: b.errno.clone(),
            out_dir: Some(out.to_path_buf()),
            files: Vec::new(),
            via_ptr: Some(format!("__ffiber_ptr_{m}_")),
            optional,
        };
        sub.modes.extend(b.modes.iter().cloned());
        for lib in &b.pkg_config {
            let found = pkg_config::Config::new()
                .probe(lib)
                .map_err(|e| Error::PkgConfig { lib: lib.clone(), message: e.to_string() })?;
            sub.flags.extend(found.include_paths.iter().map(|p| format!("-I{}", p.display())));
        }
        let flags = sub.flags.clone();
        let (_, functions) = sub.generate_inner(&format!("ffiber_cgo_{m}"), m)?;
        // The library: the preamble itself, and a pointer to each function.
        let mut lib = b.preamble.clone();
        // A pointer per function (its address) and per variable (`&v`).
        for f in &functions {
            lib += &format!("__typeof__({f}) *const __ffiber_ptr_{m}_{f} = &{f};\n");
        }
        let lib_c = probe::scratch(out).join(format!("ffiber_cgo_{m}.c"));
        std::fs::write(&lib_c, lib).map_err(|e| Error::Other(format!("writing {}: {e}", lib_c.display())))?;
        let mut cc = cc::Build::new();
        cc.file(&lib_c).warnings(false).out_dir(out);
        if std::env::var_os("OUT_DIR").is_none() {
            // Outside a build script (tests, tools): no cargo to tell, and
            // cc has no TARGET/HOST/OPT_LEVEL.
            let t = "x86_64-unknown-linux-gnu";
            cc.cargo_metadata(false).target(t).host(t).opt_level(0);
        }
        for f in &flags {
            cc.flag(f);
        }
        cc.try_compile(&format!("ffiber_cgo_{m}"))
            .map_err(|e| Error::Other(format!("compiling the preamble of `{m}`: {e}")))?;
        for f in &b.ldflags {
            if let Some(l) = f.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={l}");
            } else if let Some(d) = f.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={d}");
            } else {
                println!("cargo:rustc-link-arg={f}");
            }
        }
        Ok(())
    }

    /// Where to write (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Build {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    fn compiler(&self, dir: PathBuf) -> Result<probe::Compiler, Error> {
        let mut b = cc::Build::new();
        b.cargo_metadata(false).warnings(false);
        // Outside a build script (tests), cc has no TARGET/HOST/OPT_LEVEL.
        for (var, set) in [("TARGET", true), ("HOST", false)] {
            if std::env::var_os(var).is_none() {
                let t = "x86_64-unknown-linux-gnu";
                if set {
                    b.target(t);
                } else {
                    b.host(t);
                }
            }
        }
        if std::env::var_os("OPT_LEVEL").is_none() {
            b.opt_level(0);
        }
        let cc = b.try_get_compiler().map_err(|e| Error::Other(format!("no C compiler: {e}")))?;
        let mut preamble: String = self.headers.iter().map(|h| format!("#include <{h}>\n")).collect();
        preamble += &self.preamble;
        Ok(probe::Compiler { cc, flags: self.flags.clone(), preamble, dir })
    }

    /// Learns every name from the C compiler and writes `<out>/<module>.rs`
    /// (include it with `include!(concat!(env!("OUT_DIR"), "/<module>.rs"))`).
    pub fn generate(self, module: &str) -> Result<PathBuf, Error> {
        self.generate_inner(module, module).map(|(p, _)| p)
    }

    /// Generates `<file>.rs`; `module` is the name errors use. Returns the
    /// path and the functions bound.
    fn generate_inner(mut self, file: &str, module: &str) -> Result<(PathBuf, Vec<String>), Error> {
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                Error::Other("OUT_DIR is not set: call generate from build.rs, or set out_dir".into())
            })?,
        };
        let in_build_script = std::env::var_os("OUT_DIR").is_some() && self.out_dir.is_none();
        for lib in self.pkg.clone() {
            let found = pkg_config::Config::new()
                .cargo_metadata(in_build_script)
                .probe(&lib)
                .map_err(|e| Error::PkgConfig { lib: lib.clone(), message: e.to_string() })?;
            self.flags.extend(found.include_paths.iter().map(|p| format!("-I{}", p.display())));
        }
        if in_build_script {
            for l in &self.links {
                println!("cargo:rustc-link-lib={l}");
            }
        }
        let c = self.compiler(probe::scratch(&out))?;
        let mut kinds = probe::kinds(&c, &self.names)?;
        // A name that is only a tag (`c::ifl` for `struct ifl`): that record,
        // bound under its tag.
        let tags: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i] == Kind::Undeclared).collect();
        for kw in ["struct", "union"] {
            let spelled: Vec<String> = tags.iter().map(|&i| format!("{kw} {}", self.names[i])).collect();
            for j in probe::complete_records(&c, &spelled)? {
                let i = tags[j];
                if kinds[i] == Kind::Undeclared {
                    kinds[i] = Kind::Type;
                    self.names[i] = spelled[j].clone();
                }
            }
        }
        for (n, k) in self.names.iter().zip(&kinds) {
            match k {
                Kind::Undeclared => return Err(Error::Undeclared { module: module.into(), name: n.clone() }),
                Kind::FuncMacro => return Err(Error::FunctionMacro { module: module.into(), name: n.clone() }),
                _ => {}
            }
        }
        let obj = probe::dwarf_probe(&c, &self.names, &kinds)?;
        let p = dwarf::Probe::load(&obj).map_err(Error::Other)?;
        let mut spellings = std::collections::BTreeSet::new();
        p.all_types().for_each(|t| t.nameable_records(&mut spellings));
        ctype::set_probed_aligns(probe::align_probe(&c, &spellings.into_iter().collect::<Vec<_>>()));
        let code = self.emit(module, &kinds, &p)?;
        let path = out.join(format!("{file}.rs"));
        std::fs::write(&path, code).map_err(|e| Error::Other(format!("writing {}: {e}", path.display())))?;
        let functions = self
            .names
            .iter()
            .zip(&kinds)
            .enumerate()
            .filter(|(i, (_, k))| **k == Kind::Expr && p.var_type(&format!("__ffiber_d_{i}")).is_some())
            .map(|(_, (n, _))| n.clone())
            .collect();
        Ok((path, functions))
    }

    fn emit(&self, module: &str, kinds: &[Kind], p: &dwarf::Probe) -> Result<String, Error> {
        // A name that cannot be expressed: an error if it was asked for, a
        // comment if it is only bound because a preamble defines it.
        let unsupported = |name: &str, what: &str, instead: &str| -> Result<String, Error> {
            let e = Error::Unsupported {
                module: module.to_string(),
                name: name.to_string(),
                what: what.to_string(),
                instead: instead.to_string(),
            };
            if self.optional.contains(name) { Ok(format!("// ffiber-build: skipped: {e}\n\n")) } else { Err(e) }
        };
        let mut s = format!(
            "// Bindings for `{module}`, generated by ffiber-build from the C compiler's view of:\n{}\
             // Do not edit: they are rewritten on every build.\n\n",
            self.headers.iter().map(|h| format!("//     #include <{h}>\n")).collect::<String>()
        );
        let mut emitted = std::collections::BTreeSet::new();
        for (i, (name, kind)) in self.names.iter().zip(kinds).enumerate() {
            let ty = p.var_type(&format!("__ffiber_d_{i}")).cloned();
            let pointee = match &ty {
                Some(CType::Pointer { pointee, .. }) => Some((**pointee).clone()),
                _ => None,
            };
            match kind {
                Kind::IntConst => {
                    let t = pointee
                        .filter(|t| matches!(t.resolved(), CType::Int { .. }))
                        .unwrap_or(CType::Int { size: 8, signed: true });
                    let signed = matches!(t.resolved(), CType::Int { signed: true, .. });
                    let v = if signed {
                        p.symbol_bytes(&format!("__ffiber_v_{i}"))
                            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])).to_string())
                    } else {
                        p.symbol_bytes(&format!("__ffiber_u_{i}"))
                            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])).to_string())
                    };
                    s += &format!(
                        "/// `{name}` (C integer constant).\npub const {name}: {} = {};\n\n",
                        t.rust(),
                        v.unwrap_or_else(|| "0".into())
                    );
                }
                Kind::StrConst => {
                    let bytes = p.symbol_bytes(&format!("__ffiber_s_{i}")).unwrap_or_default();
                    let lit: String = bytes
                        .iter()
                        .take_while(|b| **b != 0)
                        .map(|&b| match b {
                            b'"' => "\\\"".to_string(),
                            b'\\' => "\\\\".to_string(),
                            0x20..=0x7e => (b as char).to_string(),
                            _ => format!("\\x{b:02x}"),
                        })
                        .collect();
                    s += &format!(
                        "/// `{name}` (C string constant).\npub const {name}: &::core::ffi::CStr = c\"{lit}\";\n\n"
                    );
                }
                Kind::FloatConst => {
                    let v = p
                        .symbol_bytes(&format!("__ffiber_f_{i}"))
                        .map_or(0.0, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                    s += &format!("/// `{name}` (C floating constant).\npub const {name}: f64 = {v:?};\n\n");
                }
                Kind::Type => match pointee.as_ref().map(CType::resolved) {
                    Some(CType::Pointer { pointee: f, .. })
                        if matches!(&**f, CType::Func { params, ret, variadic: false }
                            if params.iter().all(CType::supported) && ret.supported()) =>
                    {
                        if let CType::Func { params, ret, .. } = &**f {
                            s += &self.fn_pointer_type(name, params, ret);
                            emitted.insert(name.clone());
                        }
                    }
                    Some(rec @ CType::Record { name: tag, .. })
                        if name.strip_prefix("struct ").or_else(|| name.strip_prefix("union ")) == Some(tag) =>
                    {
                        // A record the file names by its tag.
                        if !emitted.contains(tag) {
                            record(tag, rec, &mut s, &mut emitted);
                        }
                    }
                    Some(rec @ CType::Record { name: tag, .. }) => {
                        record(name, rec, &mut s, &mut emitted);
                        if !tag.is_empty() && tag != name && emitted.insert(tag.clone()) {
                            s += &format!(
                                "/// `struct {tag}`, the same type as [`{name}`].\npub type {tag} = {name};\n\n"
                            );
                        }
                    }
                    Some(CType::Named { kind, name: tag, .. }) => {
                        emitted.insert(name.clone());
                        if !tag.is_empty() && tag != name && emitted.insert(tag.clone()) {
                            s += &format!(
                                "/// `{kind} {tag}`, the same type as [`{name}`].\npub type {tag} = {name};\n\n"
                            );
                        }
                        s += &opaque(kind, name);
                    }
                    Some(t) if t.supported() => {
                        s += &format!("/// `{name}` (C typedef).\npub type {name} = {};\n\n", t.rust())
                    }
                    _ => {
                        s += &unsupported(
                            name,
                            "a type of a kind not supported yet",
                            "bind a typedef of a scalar, pointer, struct or union instead",
                        )?;
                        continue;
                    }
                },
                Kind::Expr => match pointee {
                    Some(CType::Func { params, ret, variadic }) => {
                        if let Some((what, instead)) = self.cannot_bind(&params, &ret, variadic) {
                            s += &unsupported(name, &what, &instead)?;
                            continue;
                        }
                        s += &self.function(name, &params, &ret, variadic);
                    }
                    Some(t)
                        if t.supported()
                            || matches!(
                                t.resolved(),
                                CType::Record { .. } | CType::Array { .. } | CType::Bits { .. }
                            ) =>
                    {
                        s += &self.variable(name, &t);
                    }
                    _ => {
                        s += &unsupported(
                            name,
                            "a variable of a type not supported yet",
                            "wrap it in a C function in the preamble that returns its address",
                        )?;
                        continue;
                    }
                },
                Kind::FuncMacro | Kind::Undeclared => {}
            }
        }
        // Complete structs that bound items refer to (by pointer or by value)
        // but that were not bound themselves: generated too, so every name
        // the bindings use exists.
        let mut referenced = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            if matches!(kind, Kind::Type | Kind::Expr)
                && let Some(t) = p.var_type(&format!("__ffiber_d_{i}"))
            {
                collect_records(t, &mut referenced, 0);
            }
        }
        for rec in referenced {
            match &rec {
                CType::Record { name, .. } if !name.is_empty() && !emitted.contains(name) => {
                    record(&name.clone(), &rec, &mut s, &mut emitted);
                }
                CType::Named { kind, name, .. } if !name.is_empty() && emitted.insert(name.clone()) => {
                    s += &opaque(kind, name);
                }
                CType::Typedef { name, .. } if emitted.insert(name.clone()) => {
                    let record = rec.untagged_name().unwrap_or_default();
                    s += &format!("/// `{name}`, the same type as [`{record}`].\npub type {name} = {record};\n\n");
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// Functions an object defines (global or static).
fn defined_functions(obj: &Path) -> Vec<String> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let Ok(data) = std::fs::read(obj) else { return Vec::new() };
    let Ok(file) = object::File::parse(&*data) else { return Vec::new() };
    file.symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
        .filter_map(|s| s.name().ok().map(String::from))
        // Names reserved to the implementation (`__x`, `_X`) are the
        // headers' own static inline helpers, not the preamble's.
        .filter(|n| !reserved(n))
        .collect()
}
