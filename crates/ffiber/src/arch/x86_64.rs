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

/// Argument registers of a SysV call: up to six integer/pointer registers
/// (`rdi, rsi, rdx, rcx, r8, r9`) and up to eight vector registers
/// (`xmm0-7`, low 64 bits), plus the count of vector registers used (`al`,
/// which variadic callees read).
///
/// `NI` and `NS` say how many of each the call uses: only those registers
/// are loaded, the others are left as they are (a callee never reads an
/// argument register it has no parameter for). The defaults, all of them,
/// suit a call whose arguments are only known at run time (variadic
/// calls).
#[derive(Clone, Copy, Debug)]
pub struct Regs<const NI: usize = 6, const NS: usize = 8> {
    /// Integer and pointer arguments, in order (narrower values zero- or
    /// sign-extended; the callee reads only their low bits).
    pub int: [u64; NI],
    /// Floating-point arguments, in order, as bits: an `f64` as
    /// `to_bits()`, an `f32` as its `to_bits()` in the low 32 bits.
    pub sse: [u64; NS],
    /// How many `sse` entries are used (read by variadic callees).
    pub nsse: u8,
}

impl<const NI: usize, const NS: usize> Regs<NI, NS> {
    /// The registers of a call with exactly these arguments (`nsse` is
    /// `NS`).
    ///
    /// ```
    /// let regs = ffiber::ffi::Regs::new([7], [1.5f64.to_bits()]);
    /// assert_eq!((regs.int[0], regs.nsse), (7, 1));
    /// ```
    pub const fn new(int: [u64; NI], sse: [u64; NS]) -> Self {
        const { assert!(NI <= 6 && NS <= 8, "SysV passes at most 6 integer and 8 vector arguments in registers") };
        Regs { int, sse, nsse: NS as u8 }
    }
}

impl<const NI: usize, const NS: usize> Default for Regs<NI, NS> {
    /// All arguments zero, `nsse` zero.
    fn default() -> Self {
        Regs { int: [0; NI], sse: [0; NS], nsse: 0 }
    }
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

/// One trampoline: loads the listed integer and vector argument registers
/// (register name, index into the 6- and 8-entry arrays), switches to
/// `top`, calls `f`, switches back and collects the return registers.
macro_rules! call_on {
    ($f:ident, $top:ident, $int:ident, $sse:ident, $nsse:ident,
     [$($ir:tt $ii:tt)*], [$($sr:tt $si:tt)*]) => {{
        let (rax, rdx, xmm0, xmm1): (u64, u64, u64, u64);
        // SAFETY: see `call_regs`, whose caller guarantees that `top` is a
        // free, aligned stack top and that `f` follows the C ABI (it
        // preserves r12, rbx, rbp, r13-r15 and the FP control state) and
        // takes its arguments in exactly these registers.
        unsafe {
            core::arch::asm!(
                "mov r12, rsp",      // keep our stack pointer where C preserves it
                "mov rsp, {top}",    // run C on the system stack
                "call {f}",          // arguments are already in place
                "mov rsp, r12",      // back on the green thread's stack
                top = in(reg) $top,
                f = in(reg) $f,
                $(in($ir) $int[$ii],)*
                $(in($sr) $sse[$si],)*
                inout("rax") $nsse as u64 => rax,
                lateout("rdx") rdx,
                lateout("xmm0") xmm0,
                lateout("xmm1") xmm1,
                out("r12") _,
                clobber_abi("C"),
            );
        }
        RegsOut { rax, rdx, xmm0, xmm1 }
    }};
}

/// Picks the trampoline for `NS` vector arguments (the integer ones fixed).
macro_rules! by_sse {
    ($f:ident, $top:ident, $int:ident, $sse:ident, $nsse:ident, $ints:tt,
     [$(($n:literal [$($sr:tt $si:tt)*]))*]) => {
        match NS {
            $($n => call_on!($f, $top, $int, $sse, $nsse, $ints, [$($sr $si)*]),)*
            _ => unreachable!(),
        }
    };
}

/// Picks the trampoline for `NI` integer and `NS` vector arguments: a
/// match on constants, so each instance keeps one arm.
macro_rules! by_int {
    ($f:ident, $top:ident, $int:ident, $sse:ident, $nsse:ident,
     [$(($n:literal [$($ir:tt $ii:tt)*]))*], $sses:tt) => {
        match NI {
            $($n => by_sse!($f, $top, $int, $sse, $nsse, [$($ir $ii)*], $sses),)*
            _ => unreachable!(),
        }
    };
}

/// [`call_regs`] for a function of two words that may hold uninitialised
/// bytes (a small value's padding, or the unused half of a one-word value),
/// in `rdi` and `rsi`: how a small closure travels to the system stack by
/// value (`ffi::run_on_system_stack`). `MaybeUninit` all the way: no byte
/// is read as an integer on either side.
///
/// # Safety
///
/// As for [`call_regs`]: `f` follows the C ABI, takes its arguments as
/// two `MaybeUninit<u64>` in `rdi` and `rsi`, and `top` is the 16-byte
/// aligned end of a free region large enough for everything `f` does.
#[inline(always)]
pub unsafe fn call_words(
    f: unsafe extern "C" fn(),
    top: *mut u8,
    a: core::mem::MaybeUninit<u64>,
    b: core::mem::MaybeUninit<u64>,
) -> RegsOut {
    let (rax, xmm0): (u64, u64);
    // SAFETY: our caller guarantees that `top` is a free, aligned stack top
    // and that `f` follows the C ABI (it preserves r12, rbx, rbp, r13-r15
    // and the FP control state) and takes its arguments in rdi and rsi.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",      // keep our stack pointer where C preserves it
            "mov rsp, {top}",    // run on the system stack
            "call {f}",          // the two words are in rdi and rsi
            "mov rsp, r12",      // back on the green thread's stack
            top = in(reg) top,
            f = in(reg) f,
            in("rdi") a,
            in("rsi") b,
            lateout("rax") rax,
            lateout("xmm0") xmm0,
            out("r12") _,
            clobber_abi("C"),
        );
    }
    RegsOut { rax, rdx: 0, xmm0, xmm1: 0 }
}

/// Calls the C function `f` on the stack whose top is `top`, with its
/// arguments already in the registers the ABI puts them in, and returns
/// its return registers: the register pass-through trampoline. Inlined
/// into the caller, so a call costs the stack-pointer moves and nothing
/// else — no closure, no argument struct, no second function, and no
/// register loaded that the callee does not read (`NI`, `NS`).
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
/// its arguments as the ABI lays them out (the first `NI` integer and `NS`
/// vector registers); `top` must be the 16-byte aligned end of a writable,
/// unused region large enough for everything `f` does.
#[inline(always)]
pub unsafe fn call_regs<const NI: usize, const NS: usize>(
    f: unsafe extern "C" fn(),
    top: *mut u8,
    regs: &Regs<NI, NS>,
) -> RegsOut {
    const { assert!(NI <= 6 && NS <= 8, "SysV passes at most 6 integer and 8 vector arguments in registers") };
    // Fixed-size copies, so that every arm below indexes in bounds; the
    // compiler folds them away.
    let mut int = [0u64; 6];
    int[..NI].copy_from_slice(&regs.int);
    let mut sse = [0u64; 8];
    sse[..NS].copy_from_slice(&regs.sse);
    let nsse = regs.nsse;
    by_int!(f, top, int, sse, nsse,
        [(0 []) (1 ["rdi" 0]) (2 ["rdi" 0 "rsi" 1]) (3 ["rdi" 0 "rsi" 1 "rdx" 2])
         (4 ["rdi" 0 "rsi" 1 "rdx" 2 "rcx" 3]) (5 ["rdi" 0 "rsi" 1 "rdx" 2 "rcx" 3 "r8" 4])
         (6 ["rdi" 0 "rsi" 1 "rdx" 2 "rcx" 3 "r8" 4 "r9" 5])],
        [(0 []) (1 ["xmm0" 0]) (2 ["xmm0" 0 "xmm1" 1]) (3 ["xmm0" 0 "xmm1" 1 "xmm2" 2])
         (4 ["xmm0" 0 "xmm1" 1 "xmm2" 2 "xmm3" 3]) (5 ["xmm0" 0 "xmm1" 1 "xmm2" 2 "xmm3" 3 "xmm4" 4])
         (6 ["xmm0" 0 "xmm1" 1 "xmm2" 2 "xmm3" 3 "xmm4" 4 "xmm5" 5])
         (7 ["xmm0" 0 "xmm1" 1 "xmm2" 2 "xmm3" 3 "xmm4" 4 "xmm5" 5 "xmm6" 6])
         (8 ["xmm0" 0 "xmm1" 1 "xmm2" 2 "xmm3" 3 "xmm4" 4 "xmm5" 5 "xmm6" 6 "xmm7" 7])])
}
