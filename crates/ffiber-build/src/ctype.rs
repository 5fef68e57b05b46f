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
    /// A C scalar that Rust has no type for — `long double` (x87),
    /// `__float128`, `_Complex` numbers, `_Decimal*`, GNU vectors
    /// (`__m128`, `vector_size`) — held as `repr`, a
    /// Rust type of the same size and alignment (`u128`, `[f64; 2]`…), so
    /// that records and pointers holding one are laid out as in C. Never
    /// by value: its register class is not `repr`'s (`long double` travels
    /// on the x87 stack, `__float128` in a vector register), so a function
    /// taking or returning one, or a record holding one, by value is
    /// refused with a message; a function pointer of such a type is
    /// spelled as an opaque pointer.
    Bits {
        /// The C spelling (`long double`).
        c: String,
        repr: Box<CType>,
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

/// `Option<unsafe extern "C" fn(..) -> R>`: how a C function pointer is
/// spelled (null is `None`; the layout is a pointer's).
fn fn_pointer(params: &[CType], ret: &CType, variadic: bool) -> String {
    let mut ps: Vec<String> = params.iter().map(CType::rust).collect();
    if variadic {
        ps.push("...".into());
    }
    let ret = match ret.resolved() {
        CType::Void => String::new(),
        _ => format!(" -> {}", ret.rust()),
    };
    format!("Option<unsafe extern \"C\" fn({}){ret}>", ps.join(", "))
}

impl CType {
    /// Whether this is a pointer to a function (spelled
    /// `Option<unsafe extern "C" fn(..)>`). Not for a function whose
    /// signature has a scalar Rust cannot pass (see [`CType::Bits`]): that
    /// pointer is opaque.
    pub fn is_fn_pointer(&self) -> bool {
        matches!(self.resolved(), CType::Pointer { pointee, .. }
            if matches!(pointee.resolved(), CType::Func { params, ret, .. }
                if params.iter().chain([&**ret]).all(|t| t.by_value_bits().is_none())))
    }

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
            CType::Bits { repr, .. } => repr.rust(),
            CType::Pointer { pointee, is_const } => {
                // A function pointer: nullable, as in C; opaque where its
                // signature has a scalar Rust cannot pass (see `Bits`).
                if let CType::Func { params, ret, variadic } = pointee.resolved() {
                    if !self.is_fn_pointer() {
                        return "*const ::core::ffi::c_void".into();
                    }
                    return fn_pointer(params, ret, *variadic);
                }
                let inner = match pointee.resolved() {
                    // A typedef of an untagged struct or union (`sigset_t`,
                    // `pthread_mutex_t`): the record is generated under the
                    // typedef that names it (see `collect_records`).
                    CType::Record { name, .. } | CType::Named { name, .. } if name.is_empty() => match &**pointee {
                        // As the header spells it: the typedef the pointer
                        // names (an alias of the record's own typedef).
                        CType::Typedef { name, .. } => name.clone(),
                        _ => "::core::ffi::c_void".to_string(),
                    },
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

    /// For a typedef (chain) of an untagged struct or union: the name of
    /// the typedef that names the record itself, which is what it is
    /// generated as.
    pub fn untagged_name(&self) -> Option<String> {
        let mut t = self;
        while let CType::Typedef { name, target } = t {
            match &**target {
                CType::Record { name: tag, .. } | CType::Named { name: tag, .. } if tag.is_empty() => {
                    return Some(name.clone());
                }
                next => t = next,
            }
        }
        None
    }

    /// Whether values of this type travel in one register, and which kind
    /// (`__int128` takes two: `None`, as records and `Bits` do).
    pub fn class(&self) -> Class {
        match self.resolved() {
            CType::Int { size: 16, .. } => Class::None,
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
            CType::Bits { repr, .. } => repr.size(),
            CType::Typedef { .. } => None,
        }
    }

    /// The C spelling of a [`CType::Bits`] scalar this type holds by value
    /// (itself, or a member of a record or array it is), if any: such a
    /// value cannot be a parameter or result of generated code.
    pub fn by_value_bits(&self) -> Option<String> {
        match self.resolved() {
            CType::Bits { c, .. } => Some(c.clone()),
            CType::Record { fields, .. } => fields.iter().find_map(|f| f.ty.by_value_bits()),
            CType::Array { elem, .. } => elem.by_value_bits(),
            _ => None,
        }
    }

    /// Alignment in bytes (x86-64 SysV). A record's is what the C compiler
    /// said (`_Alignof`, see [`set_probed_aligns`]) when it can be named;
    /// else inferred: 1 for a record found packed.
    pub fn align(&self) -> u64 {
        if let Some(a) = self.probed_align() {
            return a;
        }
        match self.resolved() {
            CType::Record { .. } if self.is_packed() => 1,
            CType::Record { .. } => self.natural_align(),
            CType::Array { elem, .. } => elem.align(),
            CType::Bits { repr, .. } => repr.align(),
            t => t.size().unwrap_or(1).clamp(1, 16),
        }
    }

    /// The compiler's `_Alignof` for this record, if it has a name C can
    /// spell (a typedef on the way to it, or its tag) and was probed.
    fn probed_align(&self) -> Option<u64> {
        PROBED_ALIGNS.with(|m| {
            let m = m.borrow();
            let mut t = self;
            loop {
                match t {
                    CType::Typedef { name, target } => {
                        if matches!(target.resolved(), CType::Record { .. })
                            && let Some(a) = m.get(name)
                        {
                            return Some(*a);
                        }
                        t = target;
                    }
                    CType::Record { union, name, .. } if !name.is_empty() => {
                        let kind = if *union { "union" } else { "struct" };
                        return m.get(&format!("{kind} {name}")).or_else(|| m.get(name)).copied();
                    }
                    _ => return None,
                }
            }
        })
    }

    /// Every record this type holds or points to, with a C spelling for it
    /// (`struct tag`, `union tag`, or a typedef name), for the alignment
    /// probe.
    pub fn nameable_records(&self, out: &mut std::collections::BTreeSet<String>) {
        match self {
            CType::Typedef { name, target } => {
                if matches!(target.resolved(), CType::Record { .. }) && !name.is_empty() {
                    out.insert(name.clone());
                }
                target.nameable_records(out);
            }
            CType::Record { union, name, fields, .. } => {
                if !name.is_empty() {
                    let kind = if *union { "union" } else { "struct" };
                    if !out.insert(format!("{kind} {name}")) {
                        return; // seen (and recursive through pointers)
                    }
                }
                fields.iter().for_each(|f| f.ty.nameable_records(out));
            }
            CType::Pointer { pointee, .. } => pointee.nameable_records(out),
            CType::Array { elem, .. } => elem.nameable_records(out),
            CType::Func { params, ret, .. } => {
                params.iter().for_each(|p| p.nameable_records(out));
                ret.nameable_records(out);
            }
            _ => {}
        }
    }

    /// A record's alignment were it not packed: its members' largest.
    /// Named bitfields count with their declared type (SysV ABI).
    pub fn natural_align(&self) -> u64 {
        match self.resolved() {
            CType::Record { fields, .. } => fields.iter().map(|f| f.ty.align()).max().unwrap_or(1),
            _ => self.align(),
        }
    }

    /// Whether a record is `__attribute__((packed))`, as far as its layout
    /// shows: a member off its (recursively computed) alignment, or a size
    /// that is not a multiple of the natural alignment. (A packed record
    /// whose members all happen to sit aligned is laid out exactly like an
    /// unpacked one; only its own alignment differs, which DWARF does not
    /// record.)
    pub fn is_packed(&self) -> bool {
        if let Some(a) = self.probed_align() {
            return a < self.natural_align();
        }
        match self.resolved() {
            CType::Record { fields, size, .. } => {
                fields.iter().any(|f| f.bits.is_none() && f.offset % f.ty.align() != 0)
                    || size % self.natural_align() != 0
            }
            _ => false,
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

thread_local! {
    /// `_Alignof` of the records of the bindings being generated, by C
    /// spelling (`struct tag`, `union tag`, typedef name).
    static PROBED_ALIGNS: std::cell::RefCell<std::collections::HashMap<String, u64>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Records the compiler's alignments for [`CType::align`] (for the
/// bindings generated next on this thread).
pub fn set_probed_aligns(m: std::collections::HashMap<String, u64>) {
    PROBED_ALIGNS.with(|p| *p.borrow_mut() = m);
}
