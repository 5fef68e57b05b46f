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
    /// A struct or union with its layout, as the compiler laid it out.
    Record {
        union: bool,
        name: String,
        size: u64,
        fields: Vec<Field>,
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

/// A member of a struct or union.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: CType,
    /// Byte offset (0 in a union).
    pub offset: u64,
    /// A bitfield: (bit offset from the start of the record, bit width).
    pub bits: Option<(u64, u64)>,
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
                    // Opaque structs and unions by their C tag too (declared
                    // opaque in the bindings when they are not bound).
                    CType::Named { kind: "struct" | "union", name, .. } if !name.is_empty() => name.clone(),
                    CType::Named { .. } => "::core::ffi::c_void".to_string(),
                    // Records are named by their C tag (generated as an alias
                    // of the bound type when it is bound, else opaque).
                    CType::Record { name, .. } if !name.is_empty() => name.clone(),
                    CType::Record { .. } => "::core::ffi::c_void".to_string(),
                    _ => pointee.rust(),
                };
                format!("{}{}", if *is_const { "*const " } else { "*mut " }, inner)
            }
            CType::Func { .. } => "*const ::core::ffi::c_void".into(),
            CType::Named { .. } => "::core::ffi::c_void".into(),
            CType::Record { name, .. } => name.clone(),
            // A typedef of an untagged struct or union is its only name.
            CType::Typedef { name, target } => match &**target {
                CType::Record { name: tag, .. } | CType::Named { name: tag, .. } if tag.is_empty() => name.clone(),
                _ => target.rust(),
            },
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

    /// Size in bytes, where known.
    pub fn size(&self) -> Option<u64> {
        match self.resolved() {
            CType::Void => Some(0),
            CType::Bool => Some(1),
            CType::Int { size, .. } | CType::Float { size } => Some(*size),
            CType::Pointer { .. } | CType::Func { .. } => Some(8),
            CType::Named { size, .. } => *size,
            CType::Record { size, .. } => Some(*size),
            CType::Array { elem, len } => Some(elem.size()? * len.unwrap_or(0)),
            CType::Typedef { .. } => None,
        }
    }

    /// Alignment in bytes (x86-64 SysV).
    pub fn align(&self) -> u64 {
        match self.resolved() {
            // Named bitfields count with their declared type (SysV ABI).
            CType::Record { fields, .. } => fields.iter().map(|f| f.ty.align()).max().unwrap_or(1),
            CType::Array { elem, .. } => elem.align(),
            t => t.size().unwrap_or(1).clamp(1, 16),
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
