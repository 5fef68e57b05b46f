//! Architecture-specific code: the context switch and the stack switch.
//!
//! Everything that knows about registers lives here, behind four items:
//! [`switch`], [`init_stack`], [`call_regs`] and [`stack_pointer`]. Porting ffiber to another
//! architecture (aarch64 is next) means adding one sibling of `x86_64.rs`.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{Regs, RegsOut, call_regs, current_m_slot, init_stack, set_current_m_slot, stack_pointer, switch};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("ffiber supports x86-64 only so far; see src/arch/mod.rs");
