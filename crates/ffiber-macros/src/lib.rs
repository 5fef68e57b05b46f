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

/// C code inline, as cgo's preamble: a module name and the C source whose
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
    name: syn::Ident,
}

impl syn::parse::Parse for CgoBlock {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        input.parse::<syn::Token![mod]>()?;
        let name: syn::Ident = input.parse()?;
        input.parse::<syn::Token![;]>()?;
        let _preamble: syn::LitStr = input.parse()?;
        Ok(CgoBlock { name })
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
        mod #name {
            include!(concat!(env!("OUT_DIR"), #file));
        }
    })
}
