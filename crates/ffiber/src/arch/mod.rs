//! Architecture-specific code: the context switch and the stack switch.
//!
//! Everything that knows about registers lives here, behind these items:
//! the context switch ([`switch`], [`init_stack`]), the register
//! trampoline for foreign calls ([`call_regs`] with [`Regs`] and
//! [`RegsOut`]), the stack pointer ([`stack_pointer`]), and the per-thread
//! current-M slot that no compiler optimisation may cache
//! ([`current_m_slot`], [`set_current_m_slot`]). Porting ffiber to another
//! architecture (aarch64 is next) means adding one sibling of `x86_64.rs`
//! that provides the same eight.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{
    Regs, RegsOut, call_regs, call_words, current_m_slot, init_stack, set_current_m_slot, stack_pointer, switch,
};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("ffiber supports x86-64 only so far; see src/arch/mod.rs");
