//! How a closure's result comes back from the system stack.
//!
//! The closure form runs the closure in a small function on the system
//! stack (`on_system_stack`). Two things make that function cost more than
//! the register form's direct call of C, and both are about its return:
//!
//! - a function that does anything after the closure's C call returns (a
//!   store of the result, a zero-extension) cannot *tail-call* C, so the
//!   call stays two levels deep: `push`, `call`, `pop`, `ret` more. On the
//!   talk's loop (`x = plusone(x)`) that is ~0.8 ns of a ~3 ns call;
//! - a result stored on one stack and loaded on the other puts a
//!   store-to-load forwarding delay on the caller's dependency chain.
//!
//! So when the trampoline knows which register the C ABI returns `R` in, the
//! function returns `R` itself (as `MaybeUninit<R>`, whose ABI is `R`'s),
//! the compiler turns the closure's last call into a jump, and the
//! trampoline reads the register: [`Ret::Int`] (`rax`: integers, `bool`,
//! `char`, thin pointers) or [`Ret::Sse`] (`xmm0`: `f32`, `f64`).
//! Which register holds a type is the ABI's *classification*, which only
//! the compiler knows for a type in general (a newtype of `f64` is in
//! `xmm0`, a struct of two `i32` in `rax`): so only types whose class is
//! certain take this way, found by exact type identity, and everything else
//! comes back in two words ([`Ret::Words`]: `rax:rdx`, reassembled from
//! bytes, so no classification is needed) or, if larger than 16 bytes,
//! through memory ([`Ret::Memory`]).

use std::any::TypeId;
use std::marker::PhantomData;

/// How the trampoline finds a closure's result of a given type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ret {
    /// A zero-sized result: nothing to carry.
    Void,
    /// Returned as `R` in `rax` (INTEGER class, at most 8 bytes).
    Int,
    /// Returned as `R` in `xmm0` (SSE class: `f32`, `f64`).
    Sse,
    /// Copied byte for byte into `rax:rdx` (at most 16 bytes, alignment at
    /// most 8).
    Words,
    /// Written through a pointer the trampoline passes.
    Memory,
}

/// The way `R` comes back. Folds to a constant in optimised builds (type
/// identities and sizes are compile-time constants).
#[inline(always)]
pub(super) fn ret_of<R>() -> Ret {
    let id = type_id_of::<R>();
    let is = |ids: &[TypeId]| ids.contains(&id);
    if size_of::<R>() == 0 {
        Ret::Void
    } else if is(&[
        TypeId::of::<u8>(),
        TypeId::of::<i8>(),
        TypeId::of::<u16>(),
        TypeId::of::<i16>(),
        TypeId::of::<u32>(),
        TypeId::of::<i32>(),
        TypeId::of::<u64>(),
        TypeId::of::<i64>(),
        TypeId::of::<usize>(),
        TypeId::of::<isize>(),
        TypeId::of::<bool>(),
        TypeId::of::<char>(),
    ]) || thin_pointer::<R>()
    {
        Ret::Int
    } else if is(&[TypeId::of::<f32>(), TypeId::of::<f64>()]) {
        Ret::Sse
    } else if fits_words::<R>() {
        Ret::Words
    } else {
        Ret::Memory
    }
}

/// `R` fits `rax:rdx` as bytes: every way but [`Ret::Memory`].
pub(super) const fn fits_words<R>() -> bool {
    size_of::<R>() <= 16 && align_of::<R>() <= 8
}

/// `R` is `*const T`, `*mut T`, `&T` or `&mut T` for a sized `T` (one
/// word, in `rax`). Recognised by the name the compiler gives it: no other
/// type's name starts with `*` or `&`, and a name format that changed would
/// only send pointers the `Words` way (correct, a little slower), never a
/// wrong way.
#[inline(always)]
fn thin_pointer<R>() -> bool {
    size_of::<R>() == 8 && matches!(std::any::type_name::<R>().as_bytes().first(), Some(b'*' | b'&'))
}

/// `TypeId::of::<T>()` without `T: 'static` (lifetimes are erased from type
/// identities anyway): the identity is used only to pick a register, never
/// to convert a value from one type to another, so a type that differs
/// only in lifetimes is the same case.
#[inline(always)]
fn type_id_of<T: ?Sized>() -> TypeId {
    trait Id {
        fn id(&self) -> TypeId
        where
            Self: 'static;
    }
    impl<T: ?Sized> Id for PhantomData<T> {
        #[inline(always)]
        fn id(&self) -> TypeId
        where
            Self: 'static,
        {
            TypeId::of::<T>()
        }
    }
    let marker = PhantomData::<T>;
    let any: &dyn Id = &marker;
    // SAFETY: only the trait object's lifetime bound changes. `id` reads
    // no data (a `PhantomData` has none) and returns the identity of `T`
    // with lifetimes erased, which is what `TypeId::of` computes for any
    // `T`; nothing is downcast or transmuted through the result.
    let any = unsafe { std::mem::transmute::<&dyn Id, &(dyn Id + 'static)>(any) };
    any.id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_certain_or_byte_copies() {
        #[derive(Clone, Copy)]
        struct Meters(#[allow(dead_code)] f64);
        #[derive(Clone, Copy)]
        struct Two(#[allow(dead_code)] i32, #[allow(dead_code)] i32);
        assert_eq!(ret_of::<()>(), Ret::Void);
        assert_eq!(ret_of::<i32>(), Ret::Int);
        assert_eq!(ret_of::<libc::c_long>(), Ret::Int);
        assert_eq!(ret_of::<bool>(), Ret::Int);
        assert_eq!(ret_of::<*mut libc::c_void>(), Ret::Int);
        assert_eq!(ret_of::<*const u8>(), Ret::Int);
        assert_eq!(ret_of::<f64>(), Ret::Sse);
        assert_eq!(ret_of::<f32>(), Ret::Sse);
        // Not certain: byte copies.
        assert_eq!(ret_of::<Meters>(), Ret::Words);
        assert_eq!(ret_of::<Two>(), Ret::Words);
        assert_eq!(ret_of::<&str>(), Ret::Words);
        assert_eq!(ret_of::<*const [u8]>(), Ret::Words);
        assert_eq!(ret_of::<Option<Box<i32>>>(), Ret::Words);
        assert_eq!(ret_of::<u128>(), Ret::Memory);
        assert_eq!(ret_of::<[u64; 3]>(), Ret::Memory);
        fn borrowed<'a>(_: &'a u8) -> Ret {
            ret_of::<&'a u8>()
        }
        assert_eq!(borrowed(&1), Ret::Int);
        assert_eq!(ret_of::<&mut [u8]>(), Ret::Words);
    }
}
