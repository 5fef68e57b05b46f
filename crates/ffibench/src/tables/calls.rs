//! The foreign-call table of "Why cgo is slow" (one call to `plusone`,
//! every peer) and the four reasons decomposed.

use super::{collect, error_notes, stats};
use crate::peers::{self, calibrate_peers, cgo_peer, self_peer};
use crate::{Options, report};
use std::collections::BTreeMap;

/// The foreign-call rows: (metric key, label, the peer that reports it,
/// the row it is compared with).
pub(crate) const FFI_ROWS: &[(&str, &str, &str, &str)] = &[
    ("c_plt_ns", "C through the PLT (the talk's baseline)", "c", "c_plt_ns"),
    ("c_direct_ns", "C direct call (the floor)", "c", "c_plt_ns"),
    ("c_plt_inproc_ns", "C through the PLT, inside ffibench (the paired base, vs itself)", "ffiber", "c_plt_ns"),
    ("rust_plt_ns", "Rust extern \"C\" (through the GOT)", "ffiber", "c_plt_ns"),
    ("ffiber_on_stack_ns", "ffiber call_on_green_stack (unsafe: no switch)", "ffiber", "c_plt_ns"),
    ("ffiber_regs_nonblocking_ns", "ffiber NonBlocking, register trampoline", "ffiber", "c_plt_ns"),
    ("ffiber_regs_ns", "ffiber default, register trampoline (generated)", "ffiber", "c_plt_ns"),
    ("ffiber_foreign_ns", "ffiber default, #[ffiber::foreign] on an extern block", "ffiber", "c_plt_ns"),
    ("ffiber_nonblocking_ns", "ffiber NonBlocking, closure", "ffiber", "c_plt_ns"),
    ("ffiber_nocallback_ns", "ffiber NoCallback, closure", "ffiber", "c_plt_ns"),
    ("ffiber_default_ns", "ffiber ffi::call (default: fully safe), closure", "ffiber", "c_plt_ns"),
    ("ffiber_default_move_ns", "ffiber ffi::call, move closure (captures in registers)", "ffiber", "c_plt_ns"),
    ("ffiber_blocking_ns", "ffiber Blocking, closure (nothing queued: P kept)", "ffiber", "c_plt_ns"),
    ("cgo_ns", "Go cgo", "cgo", "c_plt_ns"),
    ("cgo_nc_ns", "Go cgo, #cgo noescape + nocallback", "cgo", "c_plt_ns"),
    ("luajit_ns", "LuaJIT FFI", "luajit", "c_plt_ns"),
    ("java_jni_ns", "Java JNI", "jni", "c_plt_ns"),
    ("java_ffm_ns", "Java FFM (Panama)", "ffm", "c_plt_ns"),
    ("node_napi_ns", "Node.js, Node-API addon", "node", "c_plt_ns"),
    ("python_ctypes_ns", "Python ctypes", "python", "c_plt_ns"),
    ("python_cffi_ns", "Python cffi (ABI mode)", "python", "c_plt_ns"),
    ("may_direct_ns", "may coroutine, direct call (no protection)", "may", "c_plt_ns"),
    ("golib_with_syscall_ns", "go-lib 0.6 with_syscall per call", "golib", "c_plt_ns"),
    ("tokio_block_in_place_ns", "tokio block_in_place per call", "tokio", "c_plt_ns"),
    ("tokio_spawn_blocking_ns", "tokio spawn_blocking per call (awaited)", "tokio", "c_plt_ns"),
    ("plain_callback_ns", "callback round trip, plain: Rust -> C -> Rust", "ffiber", "c_plt_ns"),
    ("ffiber_callback_ns", "callback round trip, ffiber: call -> C -> export", "ffiber", "c_plt_ns"),
    ("cgo_callback_ns", "callback round trip, cgo: Go -> C -> Go", "cgo", "c_plt_ns"),
    ("plain_callback_loop_ns", "callback only (C loop): plain extern \"C\" fn", "ffiber", "c_plt_ns"),
    (
        "ffiber_callback_loop_ns",
        "callback only (C loop): #[ffiber::export] (vs plain)",
        "ffiber",
        "plain_callback_loop_ns",
    ),
    ("cgo_callback_loop_ns", "callback only (C loop): cgo //export", "cgo", "c_plt_ns"),
    ("ffiber_default_ns_check", "ffiber ffi::call, FFIBER_CHECK=1 (vs off)", "check", "ffiber_default_ns"),
    ("spawn_join_ns_check", "spawn+join ns/thread, FFIBER_CHECK=1 (vs off)", "check", "spawn_join_ns"),
];

pub(crate) fn ffi_table(opts: &Options) -> Vec<report::Table> {
    let selected: Vec<_> = FFI_ROWS.iter().filter(|r| opts.wants(&[r.0, r.1, r.2])).collect();
    if selected.is_empty() {
        return Vec::new();
    }
    let scale = if opts.quick { 0.01 } else { 1.0 };
    let count = ((20_000_000.0 * scale) as usize).max(10);
    let mut cgo = cgo_peer("all", count);
    cgo.name = format!("{} cgo", cgo.name);
    cgo.counted = true;
    let mut check = self_peer("ffi", scale);
    if let Ok(c) = check.cmd.as_mut() {
        c.env("FFIBER_CHECK", "1");
    }
    check.name = "ffiber (FFIBER_CHECK=1)".into();
    let mut tokio = self_peer("tokio", scale);
    tokio.name = "tokio".into();
    let mut may = self_peer("may-ffi", scale);
    may.name = "may 0.3".into();
    let mut golib = self_peer("golib-ffi", scale);
    golib.name = "go-lib 0.6".into();
    let mut ffiber = self_peer("ffi", scale);
    ffiber.name = "ffiber".into();
    let ids = ["ffiber", "c", "cgo", "luajit", "jni", "ffm", "node", "python", "may", "golib", "tokio", "check"];
    let mut peers = vec![
        ffiber,
        peers::c(count),
        cgo,
        peers::luajit(count),
        peers::java_jni(count),
        peers::java_ffm(count),
        peers::node(count),
        peers::python((count / 10).max(10)),
        may,
        golib,
        tokio,
        check,
    ];
    // Peers none of whose rows are selected (nor needed as a base) do not run.
    for (i, id) in ids.iter().enumerate() {
        let needed = selected.iter().any(|r| r.2 == *id || (r.3 == "c_plt_ns" && *id == "c"))
            || (*id == "ffiber" && selected.iter().any(|r| r.3 != "c_plt_ns"));
        if !needed {
            peers[i].cmd = Err("not selected".into());
        }
    }
    if !opts.quick {
        calibrate_peers(&mut peers);
    }
    let (mut samples, errors) = collect("foreign calls", &mut peers, opts.runs);
    let idx = |id: &str| ids.iter().position(|x| *x == id).expect("known peer id");
    let runs = opts.runs;
    let mut t = report::Table {
        title: format!(
            "Foreign calls: int plusone(int) in a shared library (-O2), the talk's loop — median of {runs} run{} (min–max)",
            if runs == 1 { "" } else { "s" }
        ),
        header: vec!["row".into(), "ns/call".into(), "vs C PLT".into()],
        ..Default::default()
    };
    for (key, label, peer, base_key) in selected.iter().map(|r| **r) {
        // A base key that is not a row of its own (spawn_join_ns) comes
        // from the ffiber peer.
        let base_peer = FFI_ROWS.iter().find(|r| r.0 == base_key).map_or("ffiber", |r| r.2);
        let base = stats(samples[idx(base_peer)].get_mut(base_key)).map(|s| s.0);
        let i = idx(peer);
        let paired = paired_ratio(&mut samples, &|id| idx(id), peer, key, base_peer, base_key);
        let (cell, ratio, value) = match (&errors[i], stats(samples[i].get_mut(key))) {
            (None, Some((m, lo, hi))) => {
                let cell = if runs > 1 { format!("{m:.2} ({lo:.2}–{hi:.2})") } else { format!("{m:.2}") };
                let ratio = match paired {
                    Some(r) => format!("{r:.2}x"),
                    None => base.filter(|&b| b > 0.0).map_or("—".into(), |b| format!("{:.2}x", m / b)),
                };
                (cell, ratio, (base_key == "c_plt_ns").then_some(m))
            }
            (Some(_), _) => ("not available".to_string(), "—".to_string(), None),
            _ => ("—".to_string(), "—".to_string(), None),
        };
        t.rows.push(vec![label.to_string(), cell, ratio]);
        t.values.push(value);
    }
    t.notes.extend(error_notes(&peers, &errors));
    t.notes.push(
        "Paired ratios: every Rust row (ffiber, may, go-lib, tokio) is timed in its own process in ten slices that \
         alternate with the same C loop through the PLT, compiled into ffibench (bench/peers/c/plt_loop.c: the C \
         peer's loop, same compiler and flags); its ratio is the median over runs of each run's row/C ratio, so the \
         host's drift between processes does not move it (the \"inside ffibench\" row is that C loop paired with \
         itself: its distance from 1.00x is the pairing's own noise). The callback-only ffiber row is paired the same \
         way with the plain callback loop. Other rows divide medians of separate processes."
            .into(),
    );
    t.notes.push(
        "Every row calls the same plusone in libplusone.so; ratios are to C through the PLT unless marked. ffiber \
         rows run in a green thread: NonBlocking adds the switch to the OS thread's stack; default/NoCallback add \
         the scheduler announcement (plain stores and a load); the register trampoline is what generated bindings \
         use (no closure frame); Blocking looks at the run queues first and, with nothing queued (as here), keeps \
         its P and lets the monitor take it if work appears (with work queued it hands the P off: ~20 ns and a \
         thread wake-up)."
            .into(),
    );
    let mut out = vec![t];
    if opts.rows.is_none() {
        out.push(reasons_table(&mut samples, &errors, &|id| idx(id)));
    }
    out
}

/// The row's ratio to its base from the pairs timed in one process:
/// the median over runs of `<key>_vs_<base>`; for a row of another
/// process whose base is paired too (the check-mode rows: both paired
/// with C), the ratio of the two paired medians. `None` if not paired.
fn paired_ratio(
    samples: &mut [BTreeMap<String, Vec<f64>>],
    idx: &dyn Fn(&str) -> usize,
    peer: &str,
    key: &str,
    base_peer: &str,
    base_key: &str,
) -> Option<f64> {
    let direct = format!("{key}_vs_{base_key}");
    if let Some((m, _, _)) = stats(samples[idx(peer)].get_mut(&direct)) {
        return Some(m);
    }
    // `<key>` is `<base_key>_check` (the check-mode peer prints its rows
    // with that suffix): compare each one's pairing with C.
    key.strip_suffix("_check")?;
    let row = stats(samples[idx(peer)].get_mut(&vs_c_key(key)))?.0;
    let base = stats(samples[idx(base_peer)].get_mut(&vs_c_key(base_key)))?.0;
    (base > 0.0).then_some(row / base)
}

/// The key under which a process printed row `key`'s paired ratio to the
/// C loop: `<key>_vs_c_plt_ns`, with a check-mode row's `_check` suffix
/// moved to the end (`Timed::print`).
fn vs_c_key(key: &str) -> String {
    match key.strip_suffix("_check") {
        Some(stem) => format!("{stem}_vs_c_plt_ns_check"),
        None => format!("{key}_vs_c_plt_ns"),
    }
}

/// The four reasons, decomposed: ffiber's mechanisms added one at a time,
/// and what Go lets us separate of cgo's, each with what it adds.
pub(crate) fn reasons_table(
    samples: &mut [BTreeMap<String, Vec<f64>>],
    errors: &[Option<String>],
    idx: &dyn Fn(&str) -> usize,
) -> report::Table {
    let mut t = report::Table {
        title: "Where the time goes: each mechanism added in turn (ns/call; ffiber's steps paired: ratio to the C loop × C through the PLT)".into(),
        header: vec!["step".into(), "ns/call".into(), "adds".into(), "the talk's reason".into()],
        ..Default::default()
    };
    let steps: &[(&str, &str, &str, &str)] = &[
        ("c_plt_ns", "c", "C through the PLT", "—"),
        ("ffiber_on_stack_ns", "ffiber", "ffiber: from a green thread, no switch", "—"),
        ("ffiber_regs_nonblocking_ns", "ffiber", "+ switch to the system stack", "2. small stacks"),
        ("ffiber_regs_ns", "ffiber", "+ scheduler announcement (store, store+load)", "3. the scheduler"),
        (
            "ffiber_default_ns",
            "ffiber",
            "+ closure form (captures by reference: stored, then loaded)",
            "1. calling convention",
        ),
        ("ffiber_default_ns_check", "check", "+ check mode (FFIBER_CHECK=1)", "4. memory rules"),
        ("go_call_ns", "cgo", "Go: a Go function call", "—"),
        ("cgo_nc_ns", "cgo", "Go: cgo with noescape + nocallback", "1-3"),
        ("cgo_ns", "cgo", "Go: cgo", "1-4"),
    ];
    // ffiber's steps from their paired ratios to the C loop (see
    // `paired_ratio`), scaled by C through the PLT: the differences between
    // steps then do not carry the host's drift between processes.
    let c_plt =
        if errors[idx("c")].is_none() { stats(samples[idx("c")].get_mut("c_plt_ns")).map(|s| s.0) } else { None };
    let mut prev: Option<f64> = None;
    for (i, (key, peer, label, reason)) in steps.iter().enumerate() {
        let p = idx(peer);
        let paired =
            |samples: &mut [BTreeMap<String, Vec<f64>>]| Some(stats(samples[p].get_mut(&vs_c_key(key)))?.0 * c_plt?);
        let m = if errors[p].is_some() {
            None
        } else if let Some(v) = paired(samples) {
            Some(v)
        } else {
            stats(samples[p].get_mut(*key)).map(|s| s.0)
        };
        if i == 6 {
            prev = None; // Go's steps start over
        }
        let adds = match (m, prev) {
            (Some(a), Some(b)) => format!("{:+.2}", a - b),
            _ => "—".into(),
        };
        t.rows.push(vec![
            label.to_string(),
            m.map_or("not available".into(), |m| format!("{m:.2}")),
            adds,
            reason.to_string(),
        ]);
        t.values.push(m);
        if m.is_some() {
            prev = m;
        }
    }
    t.notes.push(
        "The talk's four reasons: (1) calling convention: cgo packs arguments into a struct for a generated C stub; \
         (2) small stacks: C must run on the thread's system stack; (3) the scheduler: every call announces itself \
         so that a blocked call can lose its P; (4) the garbage collector's pointer rules, checked at run time. \
         ffiber's check mode does its work at green-thread exit, so per call it adds nothing measurable."
            .into(),
    );
    t
}
