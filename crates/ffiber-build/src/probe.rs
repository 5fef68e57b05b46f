//! Asking the C compiler what names are (cmd/cgo's technique).
//!
//! For every name the bindings need, probe programs are compiled with the
//! same compiler and flags the C code will be built with. Each probe sits
//! behind its own `#line` marker (`#line <n> "ffiber-probe-<kind>-<i>"`), so a
//! compiler error names the probe it came from: one compile per kind of
//! probe answers the question for every name at once.
//!
//! - `N *p;` compiles: `N` is a type;
//! - `enum { e = (N)*1 };` compiles: an integer constant;
//! - `static const char s[] = N;` compiles: a string literal;
//! - `static const double d = (N);` compiles: a floating constant;
//! - `__typeof__(N) *p;` compiles: a function or a variable;
//! - none of them: undeclared (or a function-like macro, which `cc -E -dM`
//!   tells apart).

use crate::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a name turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Type,
    IntConst,
    StrConst,
    FloatConst,
    /// A function or a variable (DWARF says which).
    Expr,
    FuncMacro,
    Undeclared,
}

/// The compiler, its flags, the preamble, and a scratch directory.
pub struct Compiler {
    pub cc: cc::Tool,
    pub flags: Vec<String>,
    pub preamble: String,
    pub dir: PathBuf,
}

impl Compiler {
    fn command(&self) -> Command {
        let mut c = self.cc.to_command();
        c.args(&self.flags);
        c
    }

    /// Compiles `body` (after the preamble) to an object; returns the
    /// compiler's stderr on failure.
    pub fn compile(&self, stem: &str, body: &str, debug: bool) -> Result<PathBuf, String> {
        let src = self.dir.join(format!("{stem}.c"));
        let obj = self.dir.join(format!("{stem}.o"));
        std::fs::write(&src, format!("{}\n{body}", self.preamble)).map_err(|e| e.to_string())?;
        let mut c = self.command();
        c.args(["-c", "-w", "-O0"]);
        if debug {
            c.arg("-g");
        }
        c.arg("-o").arg(&obj).arg(&src);
        let out = c.output().map_err(|e| format!("could not run the C compiler {:?}: {e}", self.cc.path()))?;
        if out.status.success() { Ok(obj) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }

    /// Names defined as function-like macros by the preamble.
    fn function_macros(&self) -> BTreeSet<String> {
        let src = self.dir.join("ffiber-macros.c");
        if std::fs::write(&src, &self.preamble).is_err() {
            return BTreeSet::new();
        }
        let out = self.command().args(["-E", "-dM"]).arg(&src).output();
        let Ok(out) = out else { return BTreeSet::new() };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("#define "))
            .filter_map(|l| {
                let name: String = l.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                l[name.len()..].starts_with('(').then_some(name)
            })
            .collect()
    }
}

/// Probes of one kind for every name; returns the indices that compiled.
fn probe(
    c: &Compiler,
    kind: &str,
    names: &[String],
    template: impl Fn(&str, usize) -> String,
) -> Result<BTreeSet<usize>, Error> {
    let mut body = String::new();
    for (i, n) in names.iter().enumerate() {
        // A distinct line per probe: gcc drops a diagnostic that repeats an
        // earlier one's line and column, even under another file name.
        body += &format!("#line {} \"ffiber-probe-{kind}-{i}\"\n{}\n", 1000 * (i + 1), template(n, i));
    }
    let failed: BTreeSet<usize> = match c.compile(&format!("ffiber-probe-{kind}"), &body, false) {
        Ok(_) => BTreeSet::new(),
        Err(stderr) => {
            let tag = format!("ffiber-probe-{kind}-");
            // An error inside a macro is reported at the macro's definition,
            // with a note "in expansion of macro" at the probe's line: with
            // warnings off (-w), every diagnostic line that names a probe
            // belongs to an error in that probe.
            let failed: BTreeSet<usize> = stderr
                .lines()
                .filter_map(|l| l.split(&tag).nth(1))
                .filter_map(|rest| rest.split(':').next()?.parse().ok())
                .collect();
            if failed.is_empty() {
                // An error outside every probe: the preamble itself is bad.
                return Err(Error::Preamble(stderr));
            }
            failed
        }
    };
    Ok((0..names.len()).filter(|i| !failed.contains(i)).collect())
}

/// Classifies every name (a handful of compiles in all).
pub fn kinds(c: &Compiler, names: &[String]) -> Result<Vec<Kind>, Error> {
    // The preamble alone must compile; otherwise say so, with its errors.
    if let Err(stderr) = c.compile("ffiber-preamble", "", false) {
        return Err(Error::Preamble(stderr));
    }
    // Each probe is the body of a function of its own: the compiler
    // recovers from a syntax error at the closing brace, so one name's
    // error cannot swallow the next probe.
    let f = |kind: &str, i: usize, body: String| format!("void __ffiber_{kind}_{i}(void) {{ {body} }}");
    let types = probe(c, "type", names, |n, i| f("t", i, format!("{n} *p = 0; (void)p;")))?;
    let ints = probe(c, "int", names, |n, i| f("i", i, format!("enum {{ e = ({n})*1 }};")))?;
    let strs = probe(c, "str", names, |n, i| f("s", i, format!("static const char s[] = {n}; (void)s;")))?;
    let floats = probe(c, "float", names, |n, i| f("f", i, format!("static const double d = ({n}); (void)d;")))?;
    let exprs = probe(c, "expr", names, |n, i| f("e", i, format!("__typeof__({n}) *p = 0; (void)p;")))?;
    let fmacros = c.function_macros();
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if types.contains(&i) {
                Kind::Type
            } else if ints.contains(&i) {
                Kind::IntConst
            } else if strs.contains(&i) {
                Kind::StrConst
            } else if floats.contains(&i) {
                // (A static initializer must be constant: variables and
                // functions fail this probe, so it is not just "an expression".)
                Kind::FloatConst
            } else if exprs.contains(&i) {
                Kind::Expr
            } else if fmacros.contains(n) {
                Kind::FuncMacro
            } else {
                Kind::Undeclared
            }
        })
        .collect())
}

/// Which of `names` (`struct x`, `union x`) are complete record types: a
/// name the Rust file uses that is only a tag (`c::x` for `struct x`) binds
/// that record. (A pointer to an unknown tag compiles, declaring it: so the
/// probe asks for the size.)
pub fn complete_records(c: &Compiler, names: &[String]) -> Result<BTreeSet<usize>, Error> {
    probe(c, "tag", names, |n, i| format!("void __ffiber_r_{i}(void) {{ (void)sizeof({n}); }}"))
}

/// The DWARF probe: one object with a typed variable per name, and the
/// values of the constants in its data sections.
pub fn dwarf_probe(c: &Compiler, names: &[String], kinds: &[Kind]) -> Result<PathBuf, Error> {
    let mut body = String::new();
    for (i, (n, k)) in names.iter().zip(kinds).enumerate() {
        body += &match k {
            Kind::Type => format!("{n} *__ffiber_d_{i};\n"),
            Kind::Expr => format!("__typeof__({n}) *__ffiber_d_{i};\n"),
            Kind::IntConst => format!(
                "long long __ffiber_v_{i} = (long long)({n});\nunsigned long long __ffiber_u_{i} = (unsigned long long)({n});\n\
                 __typeof__({n}) *__ffiber_d_{i};\n"
            ),
            Kind::StrConst => format!("const char __ffiber_s_{i}[] = {n};\n"),
            Kind::FloatConst => format!("double __ffiber_f_{i} = ({n});\n"),
            _ => String::new(),
        };
    }
    c.compile("ffiber-dwarf", &body, true).map_err(Error::Preamble)
}

/// The alignment probe: `char v[_Alignof(T)]` for each record spelling,
/// whose array lengths DWARF then gives (layout inference cannot tell a
/// packed record whose members all happen to sit aligned from an unpacked
/// one; the compiler can). A spelling that does not compile (an incomplete
/// type) is left out, so the probe is retried without the failing ones.
pub fn align_probe(c: &Compiler, spellings: &[String]) -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    if spellings.is_empty() {
        return m;
    }
    let body: String =
        spellings.iter().enumerate().map(|(i, s)| format!("char __ffiber_al_{i}[_Alignof({s})];\n")).collect();
    let Ok(obj) = c.compile("ffiber-align", &body, true) else {
        if spellings.len() > 1 {
            // Halve until the failing spellings are isolated.
            let (a, b) = spellings.split_at(spellings.len() / 2);
            m.extend(align_probe(c, a));
            m.extend(align_probe(c, b));
        }
        return m;
    };
    let Ok(p) = crate::dwarf::Probe::load(&obj) else { return m };
    for (i, s) in spellings.iter().enumerate() {
        if let Some(crate::ctype::CType::Array { len: Some(n), .. }) = p.var_type(&format!("__ffiber_al_{i}")) {
            m.insert(s.clone(), *n);
        }
    }
    m
}

/// Where the probes go: `$OUT_DIR/ffiber-build` (or a temp dir outside
/// build scripts).
pub fn scratch(out: &Path) -> PathBuf {
    let d = out.join("ffiber-build");
    let _ = std::fs::create_dir_all(&d);
    d
}
