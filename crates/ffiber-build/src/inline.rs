//! `ffiber::cgo!` blocks: C preambles written in Rust files, as cgo's
//! comment above `import "C"`.
//!
//! [`Build::file`](crate::Build::file) parses the Rust file with `syn`,
//! finds each `cgo! { mod NAME; "preamble" }` block, and binds what the
//! file uses as `NAME::x` (cgo binds the `C.x` a file uses) plus every
//! function the preamble itself defines. The preamble is compiled into a
//! static library; its `static` (and `static inline`) functions, which
//! have no symbol, are reached through a function-pointer variable the
//! library exports for each. `#line` markers make the C compiler's errors
//! point at the Rust file and line where the preamble line sits.

use crate::{Error, Mode};
use proc_macro2::{TokenStream, TokenTree};
use std::collections::BTreeSet;
use std::path::Path;

/// One `cgo!` block.
pub struct Block {
    pub module: String,
    /// The preamble with `#cgo` lines blanked, behind a `#line` marker.
    pub preamble: String,
    pub modes: Vec<(String, Mode)>,
    pub errno: Vec<String>,
    pub cflags: Vec<String>,
    pub ldflags: Vec<String>,
    pub pkg_config: Vec<String>,
    /// Names the Rust file uses through the module.
    pub used: BTreeSet<String>,
}

/// Finds the `cgo!` blocks of a Rust file.
pub fn blocks(path: &Path) -> Result<Vec<Block>, Error> {
    let src = std::fs::read_to_string(path).map_err(|e| Error::Other(format!("reading {}: {e}", path.display())))?;
    let file = syn::parse_file(&src).map_err(|e| {
        let at = e.span().start();
        Error::Other(format!("{}:{}:{}: not valid Rust: {e}", path.display(), at.line, at.column + 1))
    })?;
    let tokens: TokenStream = src.parse().map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    collect(&file.items, path, &tokens, &mut out)?;
    Ok(out)
}

fn collect(items: &[syn::Item], path: &Path, tokens: &TokenStream, out: &mut Vec<Block>) -> Result<(), Error> {
    for item in items {
        match item {
            syn::Item::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "cgo") => {
                out.push(block(&m.mac.tokens, path, tokens)?);
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    collect(items, path, tokens, out)?;
                }
            }
            syn::Item::Fn(f) => {
                // A block inside a function body (at statement level).
                for stmt in &f.block.stmts {
                    if let syn::Stmt::Macro(m) = stmt
                        && m.mac.path.segments.last().is_some_and(|s| s.ident == "cgo")
                    {
                        out.push(block(&m.mac.tokens, path, tokens)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn block(body: &TokenStream, path: &Path, file_tokens: &TokenStream) -> Result<Block, Error> {
    let mut it = body.clone().into_iter();
    let bad = || Error::Other(format!("{}: ffiber::cgo! expects `mod NAME; \"C preamble\"`", path.display()));
    // An optional visibility first: `pub`, `pub(crate)`, `pub(super)`.
    let mut first = it.next();
    if matches!(&first, Some(TokenTree::Ident(i)) if i == "pub") {
        first = it.next();
        if matches!(&first, Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis) {
            first = it.next();
        }
    }
    match first {
        Some(TokenTree::Ident(i)) if i == "mod" => {}
        _ => return Err(bad()),
    }
    let Some(TokenTree::Ident(module)) = it.next() else { return Err(bad()) };
    match it.next() {
        Some(TokenTree::Punct(p)) if p.as_char() == ';' => {}
        _ => return Err(bad()),
    }
    let Some(TokenTree::Literal(lit)) = it.next() else { return Err(bad()) };
    let line = lit.span().start().line;
    let lit: syn::LitStr = syn::parse_str(&lit.to_string()).map_err(|_| bad())?;
    let module = module.to_string();
    let mut b = Block {
        module: module.clone(),
        preamble: String::new(),
        modes: Vec::new(),
        errno: Vec::new(),
        cflags: Vec::new(),
        ldflags: Vec::new(),
        pkg_config: Vec::new(),
        used: BTreeSet::new(),
    };
    // Directives, as cgo's: removed from the C (blank lines keep numbering).
    let mut c = format!("#line {line} \"{}\"\n", path.display());
    for l in lit.value().lines() {
        let t = l.trim();
        if let Some(d) = t.strip_prefix("#cgo") {
            let d = d.trim();
            if let Some(v) = d.strip_prefix("CFLAGS:") {
                b.cflags.extend(v.split_whitespace().map(String::from));
            } else if let Some(v) = d.strip_prefix("LDFLAGS:") {
                b.ldflags.extend(v.split_whitespace().map(String::from));
            } else if let Some(v) = d.strip_prefix("pkg-config:") {
                b.pkg_config.extend(v.split_whitespace().map(String::from));
            } else {
                let mut w = d.split_whitespace();
                let kind = w.next().unwrap_or("");
                let mode = match kind {
                    "nocallback" => Some(Mode::NoCallback),
                    "nonblocking" => Some(Mode::NonBlocking),
                    "blocking" => Some(Mode::Blocking),
                    "errno" => None,
                    other => {
                        return Err(Error::Other(format!(
                            "{}:{line}: unknown directive `#cgo {other}`; known: nocallback, nonblocking, blocking, \
                             errno, CFLAGS:, LDFLAGS:, pkg-config:",
                            path.display()
                        )));
                    }
                };
                for name in w {
                    match mode {
                        Some(m) => b.modes.push((name.to_string(), m)),
                        None => b.errno.push(name.to_string()),
                    }
                }
            }
            c += "\n";
        } else {
            c += l;
            c += "\n";
        }
    }
    b.preamble = c;
    b.used = used(file_tokens, &module);
    for e in &b.errno {
        b.used.insert(e.clone());
    }
    // `m::f_errno` asks for `f` with its errno twin.
    let twins: Vec<String> = b.used.iter().filter_map(|u| u.strip_suffix("_errno").map(String::from)).collect();
    for t in twins {
        b.used.remove(&format!("{t}_errno"));
        b.used.insert(t.clone());
        if !b.errno.contains(&t) {
            b.errno.push(t);
        }
    }
    Ok(b)
}

/// Every `module::name` path in the token stream (macro bodies included).
fn used(tokens: &TokenStream, module: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let toks: Vec<TokenTree> = tokens.clone().into_iter().collect();
    for (i, t) in toks.iter().enumerate() {
        match t {
            TokenTree::Group(g) => out.extend(used(&g.stream(), module)),
            TokenTree::Ident(id) if id == module => {
                if let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(name))) =
                    (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3))
                    && a.as_char() == ':'
                    && b.as_char() == ':'
                {
                    out.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// A `#[ffiber::export]` function of a Rust file: its C name and C prototype.
pub struct Export {
    pub c_name: String,
    pub prototype: String,
    /// Tags the prototype names (`struct dd`, `union num`): declared ahead
    /// of it in the header, so that it compiles wherever the preamble
    /// includes the header — before the records' definitions too (C allows
    /// incomplete parameter and result types in a declaration).
    pub tags: Vec<String>,
}

/// The `#[ffiber::export]` functions of a Rust file (whose `cgo!` blocks
/// are `blocks`), with C prototypes. A parameter or result whose type is
/// a record of one of the file's `cgo!` modules (`c::dd`) is spelled as
/// that module's preamble spells it (see [`Records`]).
pub fn exports(path: &Path, blocks: &[Block]) -> Result<Vec<Export>, Error> {
    let src = std::fs::read_to_string(path).map_err(|e| Error::Other(format!("reading {}: {e}", path.display())))?;
    let file = syn::parse_file(&src).map_err(|e| Error::Other(format!("{}: not valid Rust: {e}", path.display())))?;
    let records = Records { blocks };
    let mut out = Vec::new();
    export_items(&file.items, path, &records, &mut out)?;
    Ok(out)
}

/// How the preambles of a file spell the records they define, for the
/// export header: `m::name` is `struct name` or `union name` if the
/// preamble of module `m` names that tag, else `name` if it has a typedef
/// of that name (which the preamble must then define before it includes
/// the header).
pub struct Records<'a> {
    blocks: &'a [Block],
}

impl Records<'_> {
    /// The C spelling of `m::name`, and the tag to declare ahead, if `m` is
    /// one of the file's `cgo!` modules and its preamble defines `name`.
    fn spell(&self, module: &str, name: &str) -> Option<(String, Option<String>)> {
        let block = self.blocks.iter().find(|b| b.module == module)?;
        let words = c_words(&block.preamble);
        let follows = |kw: &str| words.windows(2).any(|w| w[0] == kw && w[1] == name);
        for kw in ["struct", "union"] {
            if follows(kw) {
                let tag = format!("{kw} {name}");
                return Some((tag.clone(), Some(tag)));
            }
        }
        // `typedef ... name;`: the name right before the `;` that ends a
        // typedef (outside the braces of a record it defines).
        let (mut in_typedef, mut depth) = (false, 0usize);
        for w in words.windows(2) {
            match w[0].as_str() {
                "typedef" if depth == 0 => in_typedef = true,
                "{" => depth += 1,
                "}" => depth = depth.saturating_sub(1),
                ";" if depth == 0 => in_typedef = false,
                _ => {}
            }
            if in_typedef && depth == 0 && w[0] == name && w[1] == ";" {
                return Some((name.to_string(), None));
            }
        }
        None
    }
}

/// The identifiers and punctuation of C source, comments dropped (enough
/// to find `struct name` and `typedef ... name;`).
fn c_words(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') || c == b'#' {
            i = src[i..].find('\n').map_or(b.len(), |e| i + e);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(src[start..i].to_string());
        } else {
            if !c.is_ascii_whitespace() {
                out.push((c as char).to_string());
            }
            i += 1;
        }
    }
    out
}

fn export_items(items: &[syn::Item], path: &Path, records: &Records<'_>, out: &mut Vec<Export>) -> Result<(), Error> {
    for item in items {
        match item {
            syn::Item::Fn(f) => {
                let Some(attr) = f.attrs.iter().find(|a| a.path().segments.last().is_some_and(|s| s.ident == "export"))
                else {
                    continue;
                };
                let mut c_name = f.sig.ident.to_string();
                if let syn::Meta::List(l) = &attr.meta
                    && let Ok(nv) = syn::parse2::<syn::MetaNameValue>(l.tokens.clone())
                    && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
                {
                    c_name = s.value();
                }
                let line = f.sig.ident.span().start().line;
                let at = |what: String| {
                    Error::Other(format!("{}:{line}: exported function `{c_name}`: {what}", path.display()))
                };
                let mut tags = Vec::new();
                let mut spell = |t: &syn::Type| {
                    if let Some(c) = c_type(t) {
                        return Ok(c);
                    }
                    let no_type = || {
                        at(format!(
                            "no C type for `{}`; use a C type, or a record of this file's ffiber::cgo! module \
                             (`c::name`, defined in its preamble)",
                            quote_ty(t)
                        ))
                    };
                    let (module, name) = record_path(t).ok_or_else(no_type)?;
                    let (c, tag) = records.spell(&module, &name).ok_or_else(no_type)?;
                    tags.extend(tag);
                    Ok(c)
                };
                let mut params = Vec::new();
                for input in &f.sig.inputs {
                    let syn::FnArg::Typed(pt) = input else { return Err(at("methods cannot be exported".into())) };
                    params.push(spell(&pt.ty)?);
                }
                let ret = match &f.sig.output {
                    syn::ReturnType::Default => "void".to_string(),
                    syn::ReturnType::Type(_, t) => spell(t)?,
                };
                let params = if params.is_empty() { "void".to_string() } else { params.join(", ") };
                out.push(Export { prototype: format!("{ret} {c_name}({params});"), c_name, tags });
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    export_items(items, path, records, out)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `m::name` (or `self::m::name`, `crate::m::name`, `super::m::name`): a
/// record of a `cgo!` module `m`, as (`m`, `name`).
fn record_path(t: &syn::Type) -> Option<(String, String)> {
    let syn::Type::Path(tp) = t else { return None };
    let segs: Vec<String> = tp.path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segs.as_slice() {
        [.., m, name] if !matches!(m.as_str(), "self" | "crate" | "super") => Some((m.clone(), name.clone())),
        _ => None,
    }
}

fn quote_ty(t: &syn::Type) -> String {
    let mut ts = proc_macro2::TokenStream::new();
    quote::ToTokens::to_tokens(t, &mut ts);
    ts.to_string()
}

/// The C spelling of a Rust parameter or result type, if it has one.
fn c_type(t: &syn::Type) -> Option<String> {
    match t {
        syn::Type::Ptr(p) => {
            let inner = match &*p.elem {
                syn::Type::Path(tp) => match tp.path.segments.last()?.ident.to_string().as_str() {
                    "i8" | "u8" | "c_char" | "c_uchar" | "c_schar" => "char".to_string(),
                    _ => c_type(&p.elem).filter(|c| !c.contains('*')).unwrap_or_else(|| "void".into()),
                },
                syn::Type::Ptr(_) => c_type(&p.elem)?,
                _ => "void".into(),
            };
            Some(if p.const_token.is_some() { format!("const {inner} *") } else { format!("{inner} *") })
        }
        syn::Type::Tuple(t) if t.elems.is_empty() => Some("void".into()),
        syn::Type::Path(tp) => Some(
            match tp.path.segments.last()?.ident.to_string().as_str() {
                "i8" => "int8_t",
                "u8" => "uint8_t",
                "i16" => "int16_t",
                "u16" => "uint16_t",
                "i32" => "int32_t",
                "u32" => "uint32_t",
                "i64" => "int64_t",
                "u64" => "uint64_t",
                "isize" => "intptr_t",
                "usize" => "uintptr_t",
                "f32" => "float",
                "f64" => "double",
                "bool" => "bool",
                "c_char" => "char",
                "c_schar" => "signed char",
                "c_uchar" => "unsigned char",
                "c_short" => "short",
                "c_ushort" => "unsigned short",
                "c_int" => "int",
                "c_uint" => "unsigned int",
                "c_long" => "long",
                "c_ulong" => "unsigned long",
                "c_longlong" => "long long",
                "c_ulonglong" => "unsigned long long",
                "c_float" => "float",
                "c_double" => "double",
                "c_void" => "void",
                _ => return None,
            }
            .to_string(),
        ),
        _ => None,
    }
}
