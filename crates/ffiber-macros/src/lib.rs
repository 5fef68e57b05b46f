//! Procedural macros for ffiber.
//!
//! `#[ffiber::main]` turns `fn main` into a program whose body runs as the
//! main green thread of a runtime with default settings; `#[ffiber::export]`
//! makes a Rust function callable from C (cgo's `//export`).

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, parse_macro_input};

/// Runs `main`'s body as the main green thread of an ffiber runtime, like
/// `ffiber::run(|| body)`. Works with any return type, including `Result`.
///
/// ```ignore
/// #[ffiber::main]
/// fn main() {
///     let h = ffiber::go(|| 1 + 1);
///     assert_eq!(h.join().unwrap(), 2);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[ffiber::main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_some() {
        return syn::Error::new_spanned(f.sig.asyncness, "#[ffiber::main] runs a plain fn; remove `async`")
            .to_compile_error()
            .into();
    }
    if !f.sig.inputs.is_empty() {
        return syn::Error::new_spanned(&f.sig.inputs, "#[ffiber::main] functions take no arguments")
            .to_compile_error()
            .into();
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let sig = &f.sig;
    let body = &f.block;
    quote! {
        #(#attrs)*
        #vis #sig {
            ::ffiber::run(move || #body)
        }
    }
    .into()
}

/// Exports a Rust function to C as an `extern "C"` symbol, the way cgo's
/// `//export` does; C code (and the C libraries it calls) can then call it
/// back during a foreign call, or from threads it created itself.
///
/// The Rust function stays as it is; the macro adds an `extern "C"`
/// function with the same parameters, exported under the function's name
/// (or `name = "..."`), whose body runs the Rust function through
/// `ffiber::ffi::callback`: back on the green thread's stack with a P, so
/// the function may use channels, spawn, sleep and call C again. A panic is
/// caught at the C boundary and re-raised when the foreign call returns.
///
/// Parameters and the return type must be C types (integers, floats, raw
/// pointers, `#[repr(C)]` structs of those); after a panic C receives a
/// zeroed value.
///
/// ```ignore
/// #[ffiber::export]
/// fn on_row(ncols: i32) -> i32 { 0 }            // exported as `on_row`
///
/// #[ffiber::export(name = "my_lib_compare")]
/// fn compare(a: *const u8, b: *const u8) -> i32 { 0 }
/// ```
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    match export_impl(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn export_impl(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let f: ItemFn = syn::parse2(item)?;
    let mut c_name = f.sig.ident.to_string();
    if !attr.is_empty() {
        let nv: syn::MetaNameValue = syn::parse2(attr)?;
        if !nv.path.is_ident("name") {
            return Err(syn::Error::new_spanned(&nv.path, "#[ffiber::export] takes only `name = \"c_symbol\"`"));
        }
        match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => c_name = s.value(),
            other => return Err(syn::Error::new_spanned(other, "the C symbol name must be a string literal")),
        }
    }
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(a, "#[ffiber::export] functions are called by C: they cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "#[ffiber::export] functions cannot be generic: C needs one symbol",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new_spanned(v, "#[ffiber::export] functions cannot be variadic"));
    }
    let mut params = Vec::new();
    let mut args = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            syn::FnArg::Receiver(r) => {
                return Err(syn::Error::new_spanned(r, "#[ffiber::export] exports free functions, not methods"));
            }
            syn::FnArg::Typed(pt) => {
                let name = quote::format_ident!("__ffiber_arg{}", i);
                let ty = &pt.ty;
                params.push(quote! { #name: #ty });
                args.push(name);
            }
        }
    }
    let rust_name = &sig.ident;
    let ret = &sig.output;
    let shim = quote::format_ident!("__ffiber_export_{}", rust_name);
    Ok(quote! {
        #f

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::too_many_arguments)]
        #[unsafe(export_name = #c_name)]
        pub extern "C" fn #shim(#(#params),*) #ret {
            ::ffiber::ffi::callback(#c_name, move || #rust_name(#(#args),*))
        }
    })
}

/// C code inline, as cgo's preamble: a module name (with a visibility if
/// the bindings are to be public: `pub mod c;`) and the C source whose
/// declarations the module binds.
///
/// ```ignore
/// ffiber::cgo! {
///     mod c;
///     r#"
///     #include <math.h>
///     #cgo errno sqrt
///     static inline double half(double x) { return x / 2; }
///     "#
/// }
/// // build.rs: ffiber_build::Build::new().file("src/main.rs").compile();
/// let h = unsafe { c::half(3.0) };
/// let (r, errno) = unsafe { c::sqrt_errno(-1.0) };
/// ```
///
/// The build script (`ffiber_build::Build::file`) finds the block, compiles
/// the preamble with the system C compiler, binds every name the Rust file
/// uses as `c::name` plus every function the preamble defines, and writes
/// the module's contents to `OUT_DIR`; this macro includes them. `#cgo`
/// lines in the preamble set per-function modes (`nocallback`,
/// `nonblocking`, `blocking`, `errno`), `CFLAGS:`, `LDFLAGS:` and
/// `pkg-config:`, as in cgo.
#[proc_macro]
pub fn cgo(input: TokenStream) -> TokenStream {
    match cgo_impl(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct CgoBlock {
    vis: syn::Visibility,
    name: syn::Ident,
}

impl syn::parse::Parse for CgoBlock {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let vis: syn::Visibility = input.parse()?;
        input.parse::<syn::Token![mod]>()?;
        let name: syn::Ident = input.parse()?;
        input.parse::<syn::Token![;]>()?;
        let _preamble: syn::LitStr = input.parse()?;
        Ok(CgoBlock { vis, name })
    }
}

/// The file being expanded, relative to its package (as `Build::file`
/// takes it), when the compiler says.
fn source_file_in_package() -> Option<String> {
    let file = std::panic::catch_unwind(|| proc_macro::Span::call_site().local_file()).ok()??;
    let file = std::fs::canonicalize(file).ok()?;
    let manifest = std::fs::canonicalize(std::env::var_os("CARGO_MANIFEST_DIR")?).ok()?;
    Some(file.strip_prefix(manifest).ok()?.to_string_lossy().into_owned())
}

fn cgo_impl(input: proc_macro2::TokenStream) -> syn::Result<proc_macro2::TokenStream> {
    let block: CgoBlock = syn::parse2(input)
        .map_err(|e| syn::Error::new(e.span(), format!("ffiber::cgo! expects `mod NAME; \"C preamble\"`: {e}")))?;
    let name = &block.name;
    let vis = &block.vis;
    let file = format!("/ffiber_cgo_{name}.rs");
    let here = source_file_in_package().unwrap_or_else(|| "src/main.rs".to_string());
    let build_line = format!("ffiber_build::Build::new().file({here:?}).compile().unwrap_or_else(|e| e.exit());");
    // Cargo sets OUT_DIR for a crate only when it has a build script; say
    // which one is missing rather than let `env!` fail with a bare name.
    let Ok(out_dir) = std::env::var("OUT_DIR") else {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "ffiber::cgo! needs a build script that generates the bindings: add `build.rs` beside \
                 Cargo.toml with `fn main() {{ {build_line} }}` and `ffiber-build` under \
                 [build-dependencies]"
            ),
        ));
    };
    if !std::path::Path::new(&format!("{out_dir}{file}")).exists() {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "ffiber::cgo!: no bindings were generated for `mod {name}`: the build script did not \
                 process this file; in build.rs call `{build_line}`"
            ),
        ));
    }
    Ok(quote! {
        #[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
        #vis mod #name {
            include!(concat!(env!("OUT_DIR"), #file));
        }
    })
}

/// Turns the declarations of an `extern "C"` block — your own, or copied
/// from a `-sys` crate's bindgen output — into wrappers that call each C
/// function through ffiber's register path (`ffiber::ffi::call_regs`), the
/// one `ffiber-build` generates: arguments go straight into registers, no
/// closure, at the cost of the call row "default, register trampoline".
///
/// ```ignore
/// #[ffiber::foreign(mode = nonblocking)]
/// unsafe extern "C" {
///     fn sqlite3_column_int(s: *mut sqlite3_stmt, i: c_int) -> c_int;
/// }
/// ```
///
/// Each `fn name(..) -> R;` becomes `unsafe fn name(..) -> R` (with the
/// item's visibility and attributes) that makes the call in `mode` —
/// `default` (the default), `nocallback`, `nonblocking` or `blocking`, as
/// `ffiber::ffi::Mode`. The C symbol is the item's name, or its
/// `#[link_name]`.
///
/// `from = path` calls the functions a `-sys` crate already declares,
/// `path::name`, instead of declaring them again; the signature written in
/// the block is checked against that declaration by the compiler:
///
/// ```ignore
/// #[ffiber::foreign(mode = nonblocking, from = libsqlite3_sys)]
/// unsafe extern "C" {
///     pub fn sqlite3_column_int(s: *mut sqlite3_stmt, i: c_int) -> c_int;
/// }
/// ```
///
/// Every parameter must travel in one register (integers, `bool`,
/// pointers, function pointers, `f32`, `f64`: `ffiber::ffi::RegArg`), at
/// most 6 integer and 8 floating-point ones, and the result must come back
/// in one (`ffiber::ffi::RegRet`) or be `()`. Anything else — a struct by
/// value, a variadic function — is a compile error naming the function;
/// call those through the closure form, `ffiber::ffi::call(|| ..)`.
#[proc_macro_attribute]
pub fn foreign(attr: TokenStream, item: TokenStream) -> TokenStream {
    match foreign_impl(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn foreign_impl(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    use syn::punctuated::Punctuated;
    let mut mode = quote! { ::ffiber::ffi::Mode::Default };
    let mut from: Option<syn::Path> = None;
    let args = syn::parse::Parser::parse2(Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated, attr)?;
    for nv in args {
        let value = &nv.value;
        let word = match value {
            syn::Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        };
        if nv.path.is_ident("mode") {
            mode = match word.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("default") => quote! { ::ffiber::ffi::Mode::Default },
                Some("nocallback") => quote! { ::ffiber::ffi::Mode::NoCallback },
                Some("nonblocking") => quote! { ::ffiber::ffi::Mode::NonBlocking },
                Some("blocking") => quote! { ::ffiber::ffi::Mode::Blocking },
                _ => {
                    return Err(syn::Error::new_spanned(
                        value,
                        "mode must be one of default, nocallback, nonblocking, blocking",
                    ));
                }
            };
        } else if nv.path.is_ident("from") {
            match value {
                syn::Expr::Path(p) => from = Some(p.path.clone()),
                _ => return Err(syn::Error::new_spanned(value, "from = takes a path, e.g. from = libsqlite3_sys")),
            }
        } else {
            return Err(syn::Error::new_spanned(&nv.path, "#[ffiber::foreign] takes `mode = ...` and `from = path`"));
        }
    }
    let block: syn::ItemForeignMod = syn::parse2(item)?;
    if block.abi.name.as_ref().is_some_and(|n| n.value() != "C") {
        return Err(syn::Error::new_spanned(&block.abi, "#[ffiber::foreign] takes an extern \"C\" block"));
    }
    let mut raw_items = Vec::new();
    let mut wrappers = Vec::new();
    for it in &block.items {
        let f = match it {
            syn::ForeignItem::Fn(f) => f,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "#[ffiber::foreign] wraps functions only; declare statics and types outside the block",
                ));
            }
        };
        let sig = &f.sig;
        let name = &sig.ident;
        if let Some(v) = &sig.variadic {
            return Err(syn::Error::new_spanned(
                v,
                format!(
                    "`{name}` is variadic: bind it with ffiber-build (which passes ffiber::ffi::VarArg in registers) \
                     or call it through ffiber::ffi::call(|| ..)"
                ),
            ));
        }
        let mut c_name = name.to_string();
        let mut attrs = Vec::new();
        for a in &f.attrs {
            if a.path().is_ident("link_name") {
                if let syn::Meta::NameValue(syn::MetaNameValue {
                    value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }),
                    ..
                }) = &a.meta
                {
                    c_name = s.value();
                }
            } else {
                attrs.push(a);
            }
        }
        let mut params = Vec::new();
        let mut names = Vec::new();
        let mut tys = Vec::new();
        for (i, input) in sig.inputs.iter().enumerate() {
            let syn::FnArg::Typed(pt) = input else {
                return Err(syn::Error::new_spanned(input, "a C function has no self parameter"));
            };
            let a = quote::format_ident!("__ffiber_a{}", i);
            let ty = &pt.ty;
            params.push(quote! { #a: #ty });
            names.push(a);
            tys.push(ty.clone());
        }
        let ret_ty: syn::Type = match &sig.output {
            syn::ReturnType::Default => syn::parse_quote! { () },
            syn::ReturnType::Type(_, t) => (**t).clone(),
        };
        let raw = quote::format_ident!("__ffiber_raw_{}", name);
        let target = match &from {
            Some(path) => quote! { #path::#name },
            None => {
                raw_items.push(quote! {
                    #[link_name = #c_name]
                    fn #raw(#(#params),*) -> #ret_ty;
                });
                quote! { #raw }
            }
        };
        let vis = &f.vis;
        let too_many_int = format!(
            "#[ffiber::foreign] `{name}`: more than 6 integer/pointer parameters do not fit in registers; call it \
             through ffiber::ffi::call(|| ..)"
        );
        let too_many_sse = format!(
            "#[ffiber::foreign] `{name}`: more than 8 floating-point parameters do not fit in registers; call it \
             through ffiber::ffi::call(|| ..)"
        );
        let doc = format!("`{c_name}` (C function), called through ffiber's register path.");
        wrappers.push(quote! {
            #[doc = #doc]
            #(#attrs)*
            #[inline]
            #[allow(clippy::too_many_arguments, clippy::useless_transmute, non_snake_case)]
            #vis unsafe fn #name(#(#params),*) -> #ret_ty {
                const NI: usize = 0 #( + !<#tys as ::ffiber::ffi::RegArg>::SSE as usize )*;
                const NS: usize = 0 #( + <#tys as ::ffiber::ffi::RegArg>::SSE as usize )*;
                const _: () = ::core::assert!(NI <= 6, #too_many_int);
                const _: () = ::core::assert!(NS <= 8, #too_many_sse);
                let mut regs = ::ffiber::ffi::Regs::<NI, NS>::default();
                regs.nsse = NS as u8;
                let (mut __i, mut __s) = (0usize, 0usize);
                #(
                    if <#tys as ::ffiber::ffi::RegArg>::SSE {
                        if let Some(r) = regs.sse.get_mut(__s) {
                            *r = ::ffiber::ffi::RegArg::to_reg(#names);
                        }
                        __s += 1;
                    } else {
                        if let Some(r) = regs.int.get_mut(__i) {
                            *r = ::ffiber::ffi::RegArg::to_reg(#names);
                        }
                        __i += 1;
                    }
                )*
                let _ = (__i, __s);
                let f: unsafe extern "C" fn(#(#tys),*) -> #ret_ty = #target;
                // SAFETY: the caller upholds the C function's contract; every
                // argument is in the register its type travels in (RegArg),
                // and the result is read where it comes back (RegRet).
                let out = unsafe {
                    ::ffiber::ffi::call_regs(
                        #mode,
                        #c_name,
                        ::core::mem::transmute::<unsafe extern "C" fn(#(#tys),*) -> #ret_ty, unsafe extern "C" fn()>(f),
                        &regs,
                    )
                };
                <#ret_ty as ::ffiber::ffi::RegRet>::from_regs(&out)
            }
        });
    }
    let block_attrs = &block.attrs;
    let raw_block = if raw_items.is_empty() {
        quote! {}
    } else {
        quote! {
            #(#block_attrs)*
            unsafe extern "C" {
                #(#raw_items)*
            }
        }
    };
    Ok(quote! {
        #raw_block
        #(#wrappers)*
    })
}
