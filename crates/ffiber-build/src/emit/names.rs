//! Rust names for C names.

/// A Rust identifier for a C member name (raw if it is a Rust keyword).
pub(crate) fn ident(n: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl",
        "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "super",
        "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&n) { format!("r#{n}") } else { n.to_string() }
}

/// A C identifier reserved to the implementation (`__x`, `_X`), or empty.
pub(crate) fn reserved(n: &str) -> bool {
    n.is_empty() || n.starts_with("__") || (n.starts_with('_') && n[1..].starts_with(|c: char| c.is_ascii_uppercase()))
}
