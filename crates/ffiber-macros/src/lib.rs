//! Procedural macros for ffiber.
//!
//! `#[ffiber::main]` turns `fn main` into a program whose body runs as the
//! main green thread of a runtime with default settings.

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
