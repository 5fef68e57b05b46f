//! x86-64 System V context switch.
//!
//! A suspended context is nothing but a stack pointer. Everything else the
//! ABI asks a callee to preserve is pushed on the suspended stack itself by
//! [`switch`], so saving a context costs seven stores and restoring it seven
//! loads, with no heap object and no kernel call.
//!
//! ```text
//!             suspended stack (grows down)
//!   higher  +---------------------------+
//!           | ... caller frames ...     |
//!           | return address into caller|  <- pushed by `call switch`
//!           | rbp                       |
//!           | rbx                       |
//!           | r12                       |
//!           | r13                       |
//!           | r14                       |
//!           | r15                       |
//!           | fpucw:u16 | mxcsr:u32     |  <- 8-byte slot; saved sp points here
//!   lower   +---------------------------+
//! ```
//!
//! A fresh green-thread stack is laid out by [`init_stack`] so that the first
//! [`switch`] into it "returns" into [`start_trampoline`], which calls the
//! entry function with its argument:
//!
//! ```text
//!   top     +---------------------------+  (16-byte aligned)
//!           | 0  (end of backtrace)     |  top - 8
//!           | &start_trampoline         |  top - 16   <- popped by `ret`
//!           | rbp = 0                   |  top - 24
//!           | rbx = entry fn            |
//!           | r12 = entry arg           |
//!           | r13, r14, r15 = 0         |
//!           | default fpucw | mxcsr     |  <- initial saved sp
//!           +---------------------------+
//! ```
//!
//! The switch carries CFI directives describing the pushes, so a debugger or
//! unwinder that stops inside it still finds the caller's frame; the
//! trampoline marks the return address as undefined, which ends every
//! backtrace of a green thread cleanly at its entry function (as Go's
//! `goexit` does) instead of walking into garbage.

use core::arch::naked_asm;

/// Default MXCSR (all exceptions masked, round to nearest) and x87 control
/// word (all exceptions masked, 64-bit precision), as a freshly started
/// thread has them. Packed the way [`switch`] stores them.
const DEFAULT_FP_STATE: u64 = 0x1F80 | (0x037F << 32);

/// Saves the current context on the current stack, stores its stack pointer
/// in `*from_sp`, and resumes the context whose stack pointer is `to_sp`.
///
/// Returns when some other call to `switch` resumes the saved context.
///
/// # Safety
///
/// `to_sp` must be a stack pointer previously stored by `switch` (or built by
/// [`init_stack`]) whose context has not been resumed since, and the stack it
/// points into must stay mapped while the context runs. `from_sp` must be
/// valid for a write.
#[unsafe(naked)]
pub unsafe extern "C" fn switch(from_sp: *mut *mut u8, to_sp: *mut u8) {
    naked_asm!(
        ".cfi_startproc",
        // On entry the return address is at [rsp]; the CFA is rsp + 8.
        "push rbp",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset rbp, 0",
        "push rbx",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset rbx, 0",
        "push r12",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset r12, 0",
        "push r13",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset r13, 0",
        "push r14",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset r14, 0",
        "push r15",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset r15, 0",
        // One slot for the floating-point control state the ABI says is
        // callee-saved: MXCSR in the low 4 bytes, the x87 control word above.
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        // Publish where this context is; from here on it may be resumed.
        "mov [rdi], rsp",
        // Adopt the other context's stack. Its layout is the same as ours,
        // so the CFI above stays true for the frame we are now in.
        "mov rsp, rsi",
        "ldmxcsr [rsp]",
        "fldcw [rsp + 4]",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "pop r15",
        ".cfi_adjust_cfa_offset -8",
        "pop r14",
        ".cfi_adjust_cfa_offset -8",
        "pop r13",
        ".cfi_adjust_cfa_offset -8",
        "pop r12",
        ".cfi_adjust_cfa_offset -8",
        "pop rbx",
        ".cfi_adjust_cfa_offset -8",
        "pop rbp",
        ".cfi_adjust_cfa_offset -8",
        // Return into the resumed context's caller (or the trampoline).
        "ret",
        ".cfi_endproc",
    )
}

/// First code a new context runs. [`init_stack`] left the entry function in
/// `rbx` and its argument in `r12`.
#[unsafe(naked)]
unsafe extern "C" fn start_trampoline() {
    naked_asm!(
        ".cfi_startproc",
        // Nothing called us: tell unwinders the backtrace ends here.
        ".cfi_undefined rip",
        // rsp = top - 8 here (≡ 8 mod 16, as at any function entry, with the
        // zero "return address" at [rsp]). Push a zero frame pointer so the
        // callee is entered with rsp ≡ 8 mod 16 after the `call`, and
        // frame-pointer walkers stop at a null rbp.
        "push 0",
        "xor ebp, ebp",
        "mov rdi, r12",
        "call rbx",
        // The entry function never returns: it switches away for good.
        "ud2",
        ".cfi_endproc",
    )
}

/// Number of bytes [`init_stack`] writes below the stack top.
pub const INIT_FRAME_BYTES: usize = 9 * 8;

/// Lays out a fresh context at the top of a stack and returns its stack
/// pointer, ready for [`switch`]. When first resumed, the context calls
/// `entry(arg)`; `entry` must never return (it must switch away for good).
///
/// # Safety
///
/// `top` must be 16-byte aligned and the end of a writable region of at
/// least [`INIT_FRAME_BYTES`] bytes that is not in use.
pub unsafe fn init_stack(top: *mut u8, entry: unsafe extern "C" fn(usize) -> !, arg: usize) -> *mut u8 {
    debug_assert_eq!(top as usize % 16, 0, "stack top must be 16-byte aligned");
    let words: [u64; 9] = [
        DEFAULT_FP_STATE,                              // fp control slot   <- sp
        0,                                             // r15
        0,                                             // r14
        0,                                             // r13
        arg as u64,                                    // r12: argument
        entry as *const () as usize as u64,            // rbx: entry function
        0,                                             // rbp
        start_trampoline as *const () as usize as u64, // return address of `switch`
        0,                                             // fake return address of the trampoline, at top - 8
    ];
    let sp = top.wrapping_sub(INIT_FRAME_BYTES);
    // SAFETY: the caller guarantees [top - INIT_FRAME_BYTES, top) is writable
    // and unused; `sp` is 8-byte aligned because `top` is 16-byte aligned and
    // the frame is a whole number of words, so the u64 writes are aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp.cast::<u64>(), words.len()) };
    sp
}

/// Current stack pointer (approximately: the caller's frame).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

// The per-OS-thread slot that holds the running M (`sched::m::current_m`),
// defined here rather than with `thread_local!`: the compiler treats a
// thread-local's address as fixed for the whole of a function, so after
// inlining it may compute `fs:0 + offset` once and keep reading that
// address after a green thread has moved to another OS thread — reading,
// and writing through, the previous thread's M. Reads and writes of this
// slot are `asm!` blocks, which the compiler neither merges nor hoists.
// Initial-exec model: the slot lives in the static TLS block, at a fixed
// offset from `fs` that the GOT holds (the linker turns the load into an
// immediate in an executable).
core::arch::global_asm!(
    ".pushsection .tbss.ffiber_current_m,\"awT\",@nobits",
    ".p2align 3",
    ".globl ffiber_current_m",
    ".hidden ffiber_current_m",
    ".type ffiber_current_m, @tls_object",
    ".size ffiber_current_m, 8",
    "ffiber_current_m:",
    ".zero 8",
    ".popsection",
);

/// This OS thread's current-M slot (0 if none). Each call reads the slot
/// afresh, on whatever thread runs it.
#[inline(always)]
pub fn current_m_slot() -> usize {
    let v: usize;
    // SAFETY: the initial-exec access sequence for our own TLS slot: load
    // its offset from the GOT, then read through `fs`. Reads memory only.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [rip + ffiber_current_m@GOTTPOFF]",
            "mov {v}, qword ptr fs:[{v}]",
            v = out(reg) v,
            options(nostack, readonly, preserves_flags),
        )
    };
    v
}

/// Sets this OS thread's current-M slot.
#[inline(always)]
pub fn set_current_m_slot(v: usize) {
    // SAFETY: as in `current_m_slot`; writes only our own thread's slot.
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + ffiber_current_m@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {v}",
            t = out(reg) _,
            v = in(reg) v,
            options(nostack, preserves_flags),
        )
    };
}

/// Argument registers of a SysV call: six integer/pointer registers
/// (`rdi, rsi, rdx, rcx, r8, r9`) and eight vector registers (`xmm0-7`,
/// low 64 bits), plus the count of vector registers used (`al`, which
/// variadic callees read).
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    /// Integer and pointer arguments, in order (narrower values zero- or
    /// sign-extended; the callee reads only their low bits).
    pub int: [u64; 6],
    /// Floating-point arguments, in order, as bits: an `f64` as
    /// `to_bits()`, an `f32` as its `to_bits()` in the low 32 bits.
    pub sse: [u64; 8],
    /// How many `sse` entries are used (read by variadic callees).
    pub nsse: u8,
}

/// Return registers of a SysV call: `rax, rdx` and `xmm0, xmm1` (low 64
/// bits). A value of up to 16 bytes comes back in some of these.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegsOut {
    /// Integer/pointer result, or the first eightbyte of a small struct.
    pub rax: u64,
    /// Second integer eightbyte of a small struct.
    pub rdx: u64,
    /// Floating-point result (bits), or a small struct's first SSE eightbyte.
    pub xmm0: u64,
    /// A small struct's second SSE eightbyte (bits).
    pub xmm1: u64,
}

/// Calls the C function `f` on the stack whose top is `top`, with its
/// arguments already in the registers the ABI puts them in, and returns
/// its return registers: the register pass-through trampoline. Inlined
/// into the caller, so a call costs the stack-pointer moves and nothing
/// else — no closure, no argument struct, no second function.
///
/// ```text
///   r12 <- rsp          (callee-saved: C preserves it for us)
///   rsp <- top          (the M's system stack, 16-byte aligned)
///   call f              (arguments in rdi..r9, xmm0..7, al)
///   rsp <- r12
/// ```
///
/// This frame has no CFI for the switch: a debugger stopped inside C sees
/// the C frames, then this function's frame at an unknown CFA.
///
/// # Safety
///
/// `f` must be a C function whose parameters all travel in registers and
/// whose return value (if any) comes back in registers; `regs` must hold
/// its arguments as the ABI lays them out; `top` must be the 16-byte aligned
/// end of a writable, unused region large enough for everything `f` does.
#[inline(always)]
pub unsafe fn call_regs(f: unsafe extern "C" fn(), top: *mut u8, regs: &Regs) -> RegsOut {
    let (rax, rdx, xmm0, xmm1): (u64, u64, u64, u64);
    // SAFETY: forwarded to the caller: `top` is a free, aligned stack top,
    // `f` follows the C ABI (it preserves r12, rbx, rbp, r13-r15 and the
    // FP control state) and takes exactly these registers.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {f}",
            "mov rsp, r12",
            top = in(reg) top,
            f = in(reg) f,
            inout("rdi") regs.int[0] => _,
            inout("rsi") regs.int[1] => _,
            inout("rdx") regs.int[2] => rdx,
            inout("rcx") regs.int[3] => _,
            inout("r8") regs.int[4] => _,
            inout("r9") regs.int[5] => _,
            inout("xmm0") regs.sse[0] => xmm0,
            inout("xmm1") regs.sse[1] => xmm1,
            in("xmm2") regs.sse[2],
            in("xmm3") regs.sse[3],
            in("xmm4") regs.sse[4],
            in("xmm5") regs.sse[5],
            in("xmm6") regs.sse[6],
            in("xmm7") regs.sse[7],
            inout("rax") regs.nsse as u64 => rax,
            out("r12") _,
            clobber_abi("C"),
        );
    }
    RegsOut { rax, rdx, xmm0, xmm1 }
}
