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
//! `ffiber_export.h` header of `#[ffiber::export]` functions, bitfield
//! getters and setters, C variables (as their addresses), callable
//! function-pointer types. Not yet: structs passed by value.

mod ctype;
mod dwarf;
mod inline;
mod probe;

use ctype::{CType, Class};
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
        for file in &self.files {
            for e in inline::exports(file)? {
                header += &format!("/* {} */\n{}\n", e.c_name, e.prototype);
            }
        }
        header += "#endif\n";
        let h = out.join("ffiber_export.h");
        std::fs::write(&h, header).map_err(|e| Error::Other(format!("writing {}: {e}", h.display())))?;
        let mut this = self.clone();
        this.flags.push(format!("-I{}", out.display()));
        for file in &this.files {
            println!("cargo:rerun-if-changed={}", file.display());
            for b in inline::blocks(file)? {
                this.compile_block(&b, &out)?;
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
        cc.file(&lib_c).warnings(false);
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
        let kinds = probe::kinds(&c, &self.names)?;
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
                        if !self.can_bind(&params, &ret, variadic) {
                            s += &unsupported(
                                name,
                                "a function taking or returning a struct by value (or variadic with such arguments)",
                                "wrap it in a C function in the preamble that passes the struct by pointer",
                            )?;
                            continue;
                        }
                        s += &self.function(name, &params, &ret, variadic);
                    }
                    Some(t) if t.supported() || matches!(t.resolved(), CType::Record { .. } | CType::Array { .. }) => {
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

    /// A C variable: a function returning its address (what cgo's `C.v`
    /// names), through the symbol or, for preambles, a pointer variable.
    fn variable(&self, name: &str, t: &CType) -> String {
        let ty = t.rust();
        let addr = match &self.via_ptr {
            None => format!(
                "    unsafe extern \"C\" {{\n        #[link_name = \"{name}\"]\n        static mut V: {ty};\n    }}\n    \
                 // SAFETY: only the address is taken; reading or writing through it is the caller's business.\n    \
                 unsafe {{ &raw mut V }}\n"
            ),
            Some(prefix) => format!(
                "    unsafe extern \"C\" {{\n        #[link_name = \"{prefix}{name}\"]\n        static P: *mut {ty};\n    }}\n    \
                 // SAFETY: the compiled preamble initialises the pointer to `&{name}` and never changes it.\n    \
                 unsafe {{ P }}\n"
            ),
        };
        format!(
            "/// The address of the C variable `{name}` (read and write it through the pointer;\n\
             /// C may change it at any time, so each access is as unsafe as in C).\n\
             #[inline]\npub fn {name}() -> *mut {ty} {{\n{addr}}}\n\n"
        )
    }

    /// The body of a call to the local `c` (a C function of `fn_ty`) with
    /// arguments `args`: the register trampoline where the signature fits,
    /// else the closure form.
    fn call_body(&self, name: &str, params: &[CType], ret: &CType, mode: Mode, sig: &Sig) -> String {
        let ints: Vec<String> = params
            .iter()
            .zip(&sig.args)
            .filter(|(t, _)| t.class() == Class::Integer)
            .map(|(t, a)| int_reg(t, a))
            .collect();
        let sses: Vec<String> =
            params.iter().zip(&sig.args).filter(|(t, _)| t.class() == Class::Sse).map(|(t, a)| sse_reg(t, a)).collect();
        if ints.len() > 6 || sses.len() > 8 {
            return format!(
                "    // SAFETY: forwarded to the caller.\n    ::ffiber::ffi::call_named({}, \"{name}\", || unsafe {{ c({}) }})\n",
                mode.path(),
                sig.args.join(", ")
            );
        }
        format!(
            "    let regs = ::ffiber::ffi::Regs::new([{}], [{}]);\n    \
             // SAFETY: `c` is `{name}` itself, whose arguments all travel in the registers set above and\n    \
             // whose result comes back in the one read below (checked when these bindings were generated).\n    \
             let out = unsafe {{ ::ffiber::ffi::call_regs({}, \"{name}\", ::core::mem::transmute::<{}, unsafe extern \"C\" fn()>(c), &regs) }};\n{}",
            ints.join(", "),
            sses.join(", "),
            mode.path(),
            sig.fn_ty,
            ret_from_regs(ret, &sig.rty)
        )
    }

    /// A C function-pointer type: a transparent wrapper whose `call` goes
    /// through ffiber's foreign-call path.
    fn fn_pointer_type(&self, name: &str, params: &[CType], ret: &CType) -> String {
        let sig = sig(params, ret, false);
        let mode = self.modes.get(name).copied().unwrap_or_default();
        format!(
            "/// `{name}`: a C function pointer (null is `None`); [`call`]({name}::call) goes through ffiber's \
             foreign-call path.\n\
             #[repr(transparent)]\n#[derive(Clone, Copy, Debug)]\npub struct {name}(pub Option<{}>);\n\n\
             impl {name} {{\n    /// Calls the function. Panics with a message if the pointer is null.\n    ///\n    \
             /// # Safety\n    ///\n    \
             /// The pointer is a live C function of this type, and the arguments are what it expects.\n    \
             #[inline]\n    #[allow(clippy::too_many_arguments, clippy::unnecessary_cast, clippy::useless_transmute)]\n    \
             pub unsafe fn call(self{}{}){} {{\n        \
             let Some(c) = self.0 else {{ panic!(\"ffiber: called a null C function pointer of type {name}\") }};\n{}    }}\n}}\n\n",
            sig.fn_ty,
            if sig.decl.is_empty() { "" } else { ", " },
            sig.decl,
            sig.ret_sig,
            self.call_body(name, params, ret, mode, &sig).lines().map(|l| format!("    {l}\n")).collect::<String>(),
        )
    }

    /// A variadic function (`printf`): the fixed parameters, then a slice of
    /// `ffiber::ffi::VarArg`s, all passed in registers.
    fn variadic(&self, name: &str, params: &[CType], ret: &CType) -> String {
        let mode = self.modes.get(name).copied().unwrap_or_default();
        let sig = sig(params, ret, true);
        let mut regs = String::from("    let mut regs: ::ffiber::ffi::Regs = ::ffiber::ffi::Regs::default();\n");
        let (mut ints, mut sses) = (0, 0);
        for (t, a) in params.iter().zip(&sig.args) {
            if t.class() == Class::Integer {
                regs += &format!("    regs.int[{ints}] = {};\n", int_reg(t, a));
                ints += 1;
            } else {
                regs += &format!("    regs.sse[{sses}] = {};\n", sse_reg(t, a));
                sses += 1;
            }
        }
        let Sig { decl, ret_sig, fn_ty, rty, .. } = &sig;
        format!(
            "/// `{name}` (variadic C function): the fixed arguments, then the `...` ones as\n\
             /// [`VarArg`](::ffiber::ffi::VarArg)s (integers, pointers, doubles; all must fit in registers).\n\
             ///\n/// # Safety\n///\n/// As for calling `{name}` from C: the arguments must match what it reads.\n///\n\
             /// # Panics\n///\n/// If the arguments do not all fit in registers.\n\
             #[inline]\n#[allow(clippy::too_many_arguments, clippy::unnecessary_cast, clippy::useless_transmute)]\n\
             pub unsafe fn {name}({decl}{}varargs: &[::ffiber::ffi::VarArg]){ret_sig} {{\n{}{regs}    \
             ::ffiber::ffi::VarArg::pack(&mut regs, {ints}, {sses}, varargs).unwrap_or_else(|e| panic!(\"{{e}} in a call to {name}\"));\n    \
             // SAFETY: `c` is `{name}`; its fixed arguments sit in the registers the ABI gives them and\n    \
             // the variadic ones follow, with `al` holding the count of vector registers used.\n    \
             let out = unsafe {{ ::ffiber::ffi::call_regs({}, \"{name}\", ::core::mem::transmute::<{fn_ty}, unsafe extern \"C\" fn()>(c), &regs) }};\n\
             {}}}\n\n",
            if decl.is_empty() { "" } else { ", " },
            self.c_fn(name, &format!("{decl}, ..."), ret_sig, fn_ty),
            mode.path(),
            ret_from_regs(ret, rty),
        )
    }

    /// The local `c`: the C function itself, by symbol or (for preambles)
    /// through the function-pointer variable the compiled preamble exports.
    fn c_fn(&self, name: &str, decl: &str, ret_sig: &str, fn_ty: &str) -> String {
        match &self.via_ptr {
            None => format!(
                "    unsafe extern \"C\" {{\n        #[link_name = \"{name}\"]\n        fn c({decl}){ret_sig};\n    }}\n"
            ),
            Some(prefix) => format!(
                "    unsafe extern \"C\" {{\n        #[link_name = \"{prefix}{name}\"]\n        static C: {fn_ty};\n    }}\n    \
                 // SAFETY: the compiled preamble initialises the pointer to `{name}` and never changes it.\n    \
                 let c = unsafe {{ C }};\n"
            ),
        }
    }

    fn can_bind(&self, params: &[CType], ret: &CType, variadic: bool) -> bool {
        if variadic {
            params.iter().all(|p| p.class() != Class::None) && ret.supported()
        } else {
            params.iter().all(CType::supported) && ret.supported()
        }
    }

    /// A function; `emit` checked [`can_bind`](Self::can_bind) first.
    fn function(&self, name: &str, params: &[CType], ret: &CType, variadic: bool) -> String {
        if variadic {
            return self.variadic(name, params, ret);
        }
        let mode = self.modes.get(name).copied().unwrap_or_default();
        let sig = sig(params, ret, false);
        let Sig { args, decl, rty, ret_sig, fn_ty } = &sig;
        let c = self.c_fn(name, decl, ret_sig, fn_ty);
        let mut s = format!(
            "/// `{name}` (C function), called through ffiber's foreign-call path in `{mode:?}` mode.\n\
             ///\n/// # Safety\n///\n/// As for calling `{name}` from C: the arguments must be what it expects.\n\
             #[inline]\n#[allow(clippy::too_many_arguments, clippy::unnecessary_cast, clippy::useless_transmute)]\n\
             pub unsafe fn {name}({decl}){ret_sig} {{\n{c}{}}}\n\n",
            self.call_body(name, params, ret, mode, &sig),
        );
        if self.errno.iter().any(|e| e == name) {
            s += &format!(
                "/// `{name}`, also returning `errno` as the call left it (cleared before the call).\n\
                 ///\n/// # Safety\n///\n/// As for [`{name}`].\n#[inline]\n#[allow(clippy::too_many_arguments)]\n\
                 pub unsafe fn {name}_errno({decl}) -> ({rty}, i32) {{\n{c}    \
                 // SAFETY: forwarded to the caller.\n    ::ffiber::ffi::call_named_errno({}, \"{name}\", || unsafe {{ c({}) }})\n}}\n\n",
                mode.path(),
                args.join(", ")
            );
        }
        s
    }
}

/// An opaque Rust type for an incomplete C struct or union.
fn opaque(kind: &str, name: &str) -> String {
    format!(
        "/// `{kind} {name}`: opaque here (it cannot be built or read in Rust; pass pointers).\n\
         #[repr(C)]\npub struct {name} {{\n    _private: [u8; 0],\n    _not_send: ::core::marker::PhantomData<*mut u8>,\n}}\n\n"
    )
}

/// Every struct or union reachable from `t` (through pointers, fields,
/// arrays, typedefs and function signatures): complete ones as records,
/// incomplete ones as opaque names.
fn collect_records(t: &CType, out: &mut Vec<CType>, depth: u32) {
    if depth > 12 {
        return;
    }
    match t {
        CType::Named { kind: "struct" | "union", name, .. }
            if !name.is_empty() && !out.iter().any(|r| matches!(r, CType::Named { name: n, .. } if n == name)) =>
        {
            out.push(t.clone());
        }
        CType::Record { name, fields, .. } => {
            if out.iter().any(|r| matches!(r, CType::Record { name: n, .. } if n == name)) {
                return;
            }
            out.push(t.clone());
            for f in fields {
                collect_records(&f.ty, out, depth + 1);
            }
        }
        CType::Pointer { pointee, .. } => collect_records(pointee, out, depth + 1),
        // A typedef of an untagged struct is generated under the typedef's name.
        CType::Typedef { name, target } => match &**target {
            CType::Record { union, name: tag, size, fields } if tag.is_empty() => collect_records(
                &CType::Record { union: *union, name: name.clone(), size: *size, fields: fields.clone() },
                out,
                depth + 1,
            ),
            // A typedef of a typedef of an untagged record (`sigset_t` of
            // `__sigset_t`): pointers spell it by this name, so it is
            // generated as an alias of the record.
            CType::Typedef { .. } if t.untagged_name().is_some() => {
                if !out.iter().any(|r| matches!(r, CType::Typedef { name: n, .. } if n == name)) {
                    out.push(t.clone());
                }
                collect_records(target, out, depth + 1);
            }
            _ => collect_records(target, out, depth + 1),
        },
        CType::Array { elem, .. } => collect_records(elem, out, depth + 1),
        CType::Func { params, ret, .. } => {
            params.iter().for_each(|p| collect_records(p, out, depth + 1));
            collect_records(ret, out, depth + 1);
        }
        _ => {}
    }
}

/// A Rust identifier for a C member name (raw if it is a Rust keyword).
fn ident(n: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl",
        "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "super",
        "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&n) { format!("r#{n}") } else { n.to_string() }
}

/// Emits a struct or union with the compiler's exact layout: fields in
/// offset order, padding explicit, and a compile-time assertion of the
/// size, alignment and every field's offset.
fn record(name: &str, rec: &CType, s: &mut String, emitted: &mut std::collections::BTreeSet<String>) {
    let named = name_anonymous(name, rec);
    let CType::Record { union, name: tag, size, fields } = &named else { return };
    let rec = &named;
    if !emitted.insert(name.to_string()) {
        return;
    }
    // Records held by value (directly or in arrays) must exist too, under
    // the name their Rust spelling uses.
    for f in fields {
        let mut t = &f.ty;
        while let CType::Array { elem, .. } = t {
            t = elem;
        }
        let rname = t.rust();
        if let CType::Record { .. } = t.resolved()
            && !rname.is_empty()
            && !rname.contains(':')
        {
            record(&rname, t.resolved(), s, emitted);
        }
    }
    let kind = if *union { "union" } else { "struct" };
    // Packed (`__attribute__((packed))`): a member off its natural
    // alignment, or a size that is not a multiple of it.
    // Asked under the Rust name too: an untagged record's only C spelling
    // is the typedef that named it, which the alignment probe used.
    let view = CType::Typedef { name: name.to_string(), target: Box::new(rec.clone()) };
    let packed = view.is_packed();
    let align = view.align();
    let mut body = String::new();
    let mut asserts = vec![
        format!("assert!(::core::mem::size_of::<{name}>() == {size});"),
        format!("assert!(::core::mem::align_of::<{name}>() == {align});"),
    ];
    let mut at = 0u64;
    let mut pad = 0;
    let mut accessors = String::new();
    for f in fields {
        if let Some((bit, width)) = f.bits {
            // A bitfield: its bytes are storage in the struct (merged with
            // the neighbours that share them), read and written through a
            // getter and a setter (cgo drops bitfields).
            if *union {
                continue;
            }
            let (first, last) = (bit / 8, (bit + width - 1) / 8);
            if first >= at {
                if first > at {
                    body += &format!("    _ffiber_pad{pad}: [u8; {}],\n", first - at);
                    pad += 1;
                }
                body += &format!("    _ffiber_bits{first}: [u8; {}],\n", last + 1 - first);
                at = last + 1;
            } else if last >= at {
                // Extends the previous storage: widen it.
                let old = "    _ffiber_bits";
                if let Some(pos) = body.rfind(&old) {
                    let line_end = body[pos..].find('\n').map_or(body.len(), |e| pos + e);
                    let start: u64 =
                        body[pos + old.len()..].split(':').next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    body.replace_range(pos..line_end, &format!("    _ffiber_bits{start}: [u8; {}],", last + 1 - start));
                }
                at = last + 1;
            }
            accessors += &bitfield_accessors(&f.name, &f.ty, bit, width);
            continue;
        }
        let Some(fsize) = f.ty.size() else { continue };
        if !*union && f.offset > at {
            body += &format!("    _ffiber_pad{pad}: [u8; {}],\n", f.offset - at);
            pad += 1;
        }
        let id = ident(&f.name);
        body += &format!("    /// `{}` (offset {}).\n    pub {id}: {},\n", f.name, f.offset, f.ty.rust());
        asserts.push(format!("assert!(::core::mem::offset_of!({name}, {id}) == {});", f.offset));
        at = if *union { at.max(fsize) } else { f.offset + fsize };
    }
    if !*union && at < *size && at.div_ceil(align) * align < *size {
        body += &format!("    _ffiber_pad{pad}: [u8; {}],\n", size - at);
    }
    // The C alignment, where the Rust fields do not already give it
    // (bitfield storage is bytes in Rust, so the declared types that set
    // the C alignment may be missing): a zero-length array of an integer
    // of that alignment, first. Not `repr(align)`, which Rust forbids
    // inside packed structs, where C allows such a record (at offset 1,
    // say). Only alignments above 16 need `repr(align)`.
    let rust_align = fields
        .iter()
        .filter(|f| f.bits.is_none() && f.ty.size().is_some())
        .map(|f| f.ty.align())
        .max()
        .unwrap_or(1)
        .max(1);
    let repr = if packed && align == 1 {
        "C, packed".to_string()
    } else if packed {
        // `#pragma pack(N)`: members aligned to at most N.
        format!("C, packed({align})")
    } else if align <= rust_align {
        "C".to_string()
    } else if align <= 16 {
        let marker = match align {
            2 => "u16",
            4 => "u32",
            8 => "u64",
            _ => "u128",
        };
        body.insert_str(0, &format!("    _ffiber_align: [{marker}; 0],\n"));
        "C".to_string()
    } else {
        format!("C, align({align})")
    };
    let c_name = if tag.is_empty() { name.to_string() } else { format!("{kind} {tag}") };
    *s += &format!(
        "/// `{c_name}`: {size} bytes, laid out as the C compiler does (asserted below).\n\
         #[repr({repr})]\n#[derive(Clone, Copy)]\npub {kind} {name} {{\n{body}}}\n\n\
         const _: () = {{\n    {}\n}};\n\n\
         impl Default for {name} {{\n    /// All zero: null pointers, zero numbers.\n    fn default() -> Self {{\n        \
         // SAFETY: every field is an integer, float, bool, raw pointer, or an\n        \
         // array or record of those, for all of which all-zero bytes are valid.\n        \
         unsafe {{ ::core::mem::zeroed() }}\n    }}\n}}\n\n",
        asserts.join("\n    ")
    );
    if !accessors.is_empty() {
        *s += &format!(
            "#[allow(clippy::identity_op, clippy::let_and_return, clippy::unnecessary_cast)]\n\
             impl {name} {{\n    fn _ffiber_bytes(&self) -> &[u8; {size}] {{\n        \
             // SAFETY: `Self` is {size} bytes (asserted above) of plain data.\n        \
             unsafe {{ &*(self as *const Self).cast::<[u8; {size}]>() }}\n    }}\n\n    \
             fn _ffiber_bytes_mut(&mut self) -> &mut [u8; {size}] {{\n        \
             // SAFETY: as above; any bytes are a valid value of `Self`.\n        \
             unsafe {{ &mut *(self as *mut Self).cast::<[u8; {size}]>() }}\n    }}\n{accessors}}}\n\n"
        );
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

/// A C identifier reserved to the implementation (`__x`, `_X`), or empty.
fn reserved(n: &str) -> bool {
    n.is_empty() || n.starts_with("__") || (n.starts_with('_') && n[1..].starts_with(|c: char| c.is_ascii_uppercase()))
}

/// A getter and a setter for a bitfield `width` bits wide at bit `bit` of
/// the record (little-endian bit numbering, as x86-64 lays them out).
fn bitfield_accessors(name: &str, ty: &CType, bit: u64, width: u64) -> String {
    let signed = matches!(ty.resolved(), CType::Int { signed: true, .. });
    let rty = if signed { "i64" } else { "u64" };
    let (byte, shift) = (bit / 8, bit % 8);
    let nbytes = (shift + width).div_ceil(8);
    let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
    let id = ident(name);
    let set = format!("set_{name}");
    let read = if signed { format!("((raw << {}) as i64) >> {}", 64 - width, 64 - width) } else { "raw".to_string() };
    format!(
        "\n    /// The `{name}` bitfield ({width} bits at bit {bit}).\n    pub fn {id}(&self) -> {rty} {{\n        \
         let b = self._ffiber_bytes();\n        let mut word = 0u128;\n        \
         for i in 0..{nbytes} {{\n            word |= (b[{byte} + i] as u128) << (8 * i);\n        }}\n        \
         let raw = ((word >> {shift}) as u64) & {mask:#x};\n        {read}\n    }}\n\n    \
         /// Sets the `{name}` bitfield (the value is truncated to {width} bits).\n    \
         pub fn {set}(&mut self, v: {rty}) {{\n        let b = self._ffiber_bytes_mut();\n        \
         let mut word = 0u128;\n        for i in 0..{nbytes} {{\n            word |= (b[{byte} + i] as u128) << (8 * i);\n        }}\n        \
         word = (word & !(({mask:#x} as u128) << {shift})) | ((((v as u64) & {mask:#x}) as u128) << {shift});\n        \
         for i in 0..{nbytes} {{\n            b[{byte} + i] = (word >> (8 * i)) as u8;\n        }}\n    }}\n"
    )
}

/// Gives names to what C leaves anonymous inside record `parent`: an
/// anonymous member (C11 `struct { union { int a; float b; }; }`) becomes
/// field `_anonN`, and an untagged struct or union type of a member becomes
/// type `<parent>__<member>` (so it can be generated and referred to).
fn name_anonymous(parent: &str, rec: &CType) -> CType {
    let CType::Record { union, name, size, fields } = rec else { return rec.clone() };
    let fields = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            if f.name.is_empty() {
                f.name = format!("_anon{i}");
            }
            if let CType::Record { name: n, .. } = &mut f.ty
                && n.is_empty()
            {
                *n = format!("{parent}__{}", f.name.trim_start_matches('_'));
            }
            f
        })
        .collect();
    CType::Record { union: *union, name: name.clone(), size: *size, fields }
}

/// A binding's signature, spelled once for every form that needs it.
struct Sig {
    /// Argument names `a0, a1, ...`.
    args: Vec<String>,
    /// `a0: T0, a1: T1`.
    decl: String,
    /// The Rust result type.
    rty: String,
    /// ` -> R`, or empty for `void`.
    ret_sig: String,
    /// `unsafe extern "C" fn(T0, T1[, ...]) -> R`.
    fn_ty: String,
}

fn sig(params: &[CType], ret: &CType, variadic: bool) -> Sig {
    let args: Vec<String> = (0..params.len()).map(|i| format!("a{i}")).collect();
    let decl = params.iter().zip(&args).map(|(t, a)| format!("{a}: {}", t.rust())).collect::<Vec<_>>().join(", ");
    let rty = ret.rust();
    let ret_sig = if matches!(ret.resolved(), CType::Void) { String::new() } else { format!(" -> {rty}") };
    let mut tys: Vec<String> = params.iter().map(CType::rust).collect();
    if variadic {
        tys.push("...".into());
    }
    let fn_ty = format!("unsafe extern \"C\" fn({}){ret_sig}", tys.join(", "));
    Sig { args, decl, rty, ret_sig, fn_ty }
}

/// Argument `a` of type `t` as the bits of an integer register.
fn int_reg(t: &CType, a: &str) -> String {
    match t.resolved() {
        _ if t.is_fn_pointer() => format!("{a}.map_or(0, |f| f as usize as u64)"),
        CType::Pointer { .. } => format!("{a} as usize as u64"),
        _ => format!("{a} as u64"),
    }
}

/// Argument `a` of type `t` as the bits of a vector register.
fn sse_reg(t: &CType, a: &str) -> String {
    match t.resolved() {
        CType::Float { size: 4 } => format!("{a}.to_bits() as u64"),
        _ => format!("{a}.to_bits()"),
    }
}

/// The result of type `ret`, read from the return registers in `out`.
fn ret_from_regs(ret: &CType, rty: &str) -> String {
    match ret.resolved() {
        CType::Void => "    let _ = out;\n".to_string(),
        CType::Bool => "    out.rax as u8 != 0\n".to_string(),
        _ if ret.is_fn_pointer() => format!(
            "    // SAFETY: a C function pointer (or null) came back in `rax`; `{rty}` has a pointer's layout, with\n    \
             // null as `None`.\n    unsafe {{ ::core::mem::transmute::<usize, {rty}>(out.rax as usize) }}\n"
        ),
        CType::Pointer { .. } => format!("    out.rax as usize as {rty}\n"),
        CType::Float { size: 4 } => "    f32::from_bits(out.xmm0 as u32)\n".to_string(),
        CType::Float { .. } => "    f64::from_bits(out.xmm0)\n".to_string(),
        _ => format!("    out.rax as {rty}\n"),
    }
}
