//! Emitting functions: the wrappers that call C through ffiber's register
//! path (or the closure form where registers cannot carry a signature),
//! variadic functions, function-pointer types and variables.

use super::super::{Build, Mode};
use crate::ctype::{CType, Class};

impl Build {
    /// A C variable: a function returning its address (what cgo's `C.v`
    /// names), through the symbol or, for preambles, a pointer variable.
    pub(crate) fn variable(&self, name: &str, t: &CType) -> String {
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
    pub(crate) fn call_body(&self, name: &str, params: &[CType], ret: &CType, mode: Mode, sig: &Sig) -> String {
        let ints: Vec<String> = params
            .iter()
            .zip(&sig.args)
            .filter(|(t, _)| t.class() == Class::Integer)
            .map(|(t, a)| int_reg(t, a))
            .collect();
        let sses: Vec<String> =
            params.iter().zip(&sig.args).filter(|(t, _)| t.class() == Class::Sse).map(|(t, a)| sse_reg(t, a)).collect();
        // More arguments than registers, or a value no one register
        // carries — a struct or union, an `__int128` (classified by rustc's
        // `extern "C"`, in registers or memory, as the C compiler does):
        // the closure form, which carries anything.
        let wide = |t: &CType| t.class() == Class::None && !matches!(t.resolved(), CType::Void);
        if ints.len() > 6 || sses.len() > 8 || params.iter().chain([ret]).any(wide) {
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
    pub(crate) fn fn_pointer_type(&self, name: &str, params: &[CType], ret: &CType) -> String {
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
    pub(crate) fn variadic(&self, name: &str, params: &[CType], ret: &CType) -> String {
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
    pub(crate) fn c_fn(&self, name: &str, decl: &str, ret_sig: &str, fn_ty: &str) -> String {
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

    /// Why a function of this signature cannot be bound — what it is, and
    /// what to do instead — or `None` if it can.
    pub(crate) fn cannot_bind(&self, params: &[CType], ret: &CType, variadic: bool) -> Option<(String, String)> {
        if let Some(c) = params.iter().chain([ret]).find_map(CType::by_value_bits) {
            // A C spelling in backticks; a description as it is.
            let c = if c.starts_with("a ") { c } else { format!("`{c}`") };
            return Some((
                format!(
                    "a function taking or returning {c} by value (alone or in a struct or union), whose \
                     registers Rust cannot fill"
                ),
                "wrap it in a C function in the preamble that passes it by pointer (or converts it to a type \
                 Rust has, such as `double`); pointers to it and records holding it are bound"
                    .to_string(),
            ));
        }
        // Structs and unions by value travel through the closure form
        // (`call_body`): rustc's `extern "C"` applies the System V
        // classification to `#[repr(C)]` records, as the C compiler does.
        let by_value = |t: &CType| t.supported() || matches!(t.resolved(), CType::Record { .. });
        let ok = if variadic {
            // Every argument in one register (`VarArg::pack`).
            let one = |t: &CType| t.class() != Class::None;
            params.iter().all(one) && ret.supported() && (matches!(ret.resolved(), CType::Void) || one(ret))
        } else {
            params.iter().all(by_value) && by_value(ret)
        };
        (!ok).then(|| {
            (
                "a variadic function taking or returning a struct, a union or an `__int128` by value".to_string(),
                "wrap it in a C function in the preamble that passes the value by pointer".to_string(),
            )
        })
    }

    /// A function; `emit` checked [`cannot_bind`](Self::cannot_bind) first.
    pub(crate) fn function(&self, name: &str, params: &[CType], ret: &CType, variadic: bool) -> String {
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

/// A binding's signature, spelled once for every form that needs it.
pub(crate) struct Sig {
    /// Argument names `a0, a1, ...`.
    pub(crate) args: Vec<String>,
    /// `a0: T0, a1: T1`.
    decl: String,
    /// The Rust result type.
    rty: String,
    /// ` -> R`, or empty for `void`.
    ret_sig: String,
    /// `unsafe extern "C" fn(T0, T1[, ...]) -> R`.
    fn_ty: String,
}

pub(crate) fn sig(params: &[CType], ret: &CType, variadic: bool) -> Sig {
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
pub(crate) fn int_reg(t: &CType, a: &str) -> String {
    match t.resolved() {
        _ if t.is_fn_pointer() => format!("{a}.map_or(0, |f| f as usize as u64)"),
        CType::Pointer { .. } => format!("{a} as usize as u64"),
        _ => format!("{a} as u64"),
    }
}

/// Argument `a` of type `t` as the bits of a vector register.
pub(crate) fn sse_reg(t: &CType, a: &str) -> String {
    match t.resolved() {
        CType::Float { size: 4 } => format!("{a}.to_bits() as u64"),
        _ => format!("{a}.to_bits()"),
    }
}

/// The result of type `ret`, read from the return registers in `out`.
pub(crate) fn ret_from_regs(ret: &CType, rty: &str) -> String {
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
