//! C types as the DWARF of a probe object describes them, and how each
//! maps to Rust.

/// A C type.
#[derive(Clone, Debug, PartialEq)]
pub enum CType {
    Void,
    Bool,
    /// An integer of `size` bytes.
    Int {
        size: u64,
        signed: bool,
    },
    /// `float` (4) or `double` (8).
    Float {
        size: u64,
    },
    /// A pointer; `is_const` when the pointee is `const`.
    Pointer {
        pointee: Box<CType>,
        is_const: bool,
    },
    /// A function type (what a function name or a function pointer names).
    Func {
        params: Vec<CType>,
        ret: Box<CType>,
        variadic: bool,
    },
    /// A struct, union or enum known only by name here (opaque).
    Named {
        kind: &'static str,
        name: String,
        size: Option<u64>,
    },
    /// A typedef of another type.
    Typedef {
        name: String,
        target: Box<CType>,
    },
    /// A fixed-size array.
    Array {
        elem: Box<CType>,
        len: Option<u64>,
    },
}

/// Register class of a value in the SysV x86-64 ABI, for the register
/// pass-through trampoline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Integer,
    Sse,
    None,
}

impl CType {
    /// The type with typedefs (and qualifiers) looked through.
    pub fn resolved(&self) -> &CType {
        match self {
            CType::Typedef { target, .. } => target.resolved(),
            t => t,
        }
    }

    /// The Rust spelling of this type in generated code.
    pub fn rust(&self) -> String {
        match self {
            CType::Void => "()".into(),
            CType::Bool => "bool".into(),
            CType::Int { size, signed } => format!("{}{}", if *signed { "i" } else { "u" }, size * 8),
            CType::Float { size: 4 } => "f32".into(),
            CType::Float { .. } => "f64".into(),
            CType::Pointer { pointee, is_const } => {
                let inner = match pointee.resolved() {
                    CType::Void | CType::Func { .. } => "::core::ffi::c_void".to_string(),
                    CType::Named { .. } => "::core::ffi::c_void".to_string(),
                    _ => pointee.rust(),
                };
                format!("{}{}", if *is_const { "*const " } else { "*mut " }, inner)
            }
            CType::Func { .. } => "*const ::core::ffi::c_void".into(),
            CType::Named { .. } => "::core::ffi::c_void".into(),
            CType::Typedef { target, .. } => target.rust(),
            CType::Array { elem, len } => format!("[{}; {}]", elem.rust(), len.unwrap_or(0)),
        }
    }

    /// Whether values of this type travel in one register, and which kind.
    pub fn class(&self) -> Class {
        match self.resolved() {
            CType::Bool | CType::Int { .. } | CType::Pointer { .. } => Class::Integer,
            CType::Float { .. } => Class::Sse,
            _ => Class::None,
        }
    }

    /// Whether this type can be a parameter or result in generated code.
    pub fn supported(&self) -> bool {
        matches!(
            self.resolved(),
            CType::Void | CType::Bool | CType::Int { .. } | CType::Float { .. } | CType::Pointer { .. }
        )
    }
}
