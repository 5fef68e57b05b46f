//! Emitting records: structs and unions with the compiler's exact layout
//! (built as data by a [`Layout`] tracker, then rendered), opaque types for
//! incomplete ones, bitfield accessors, and names for what C leaves
//! anonymous.

use super::names::ident;
use crate::ctype::CType;

/// An opaque Rust type for an incomplete C struct or union.
pub(crate) fn opaque(kind: &str, name: &str) -> String {
    format!(
        "/// `{kind} {name}`: opaque here (it cannot be built or read in Rust; pass pointers).\n\
         #[repr(C)]\npub struct {name} {{\n    _private: [u8; 0],\n    _not_send: ::core::marker::PhantomData<*mut u8>,\n}}\n\n"
    )
}

/// Every struct or union reachable from `t` (through pointers, fields,
/// arrays, typedefs and function signatures): complete ones as records,
/// incomplete ones as opaque names.
pub(crate) fn collect_records(t: &CType, out: &mut Vec<CType>, depth: u32) {
    if depth > 12 {
        return;
    }
    match t {
        CType::Named { kind: "struct" | "union", name, .. }
            if !name.is_empty() && !out.iter().any(|r| matches!(r, CType::Named { name: n, .. } if n == name)) =>
        {
            out.push(t.clone());
        }
        CType::Record { name, fields, .. } => {
            if out.iter().any(|r| matches!(r, CType::Record { name: n, .. } if n == name)) {
                return;
            }
            out.push(t.clone());
            for f in fields {
                collect_records(&f.ty, out, depth + 1);
            }
        }
        CType::Pointer { pointee, .. } => collect_records(pointee, out, depth + 1),
        // A typedef of an untagged struct is generated under the typedef's name.
        CType::Typedef { name, target } => match &**target {
            CType::Record { union, name: tag, size, fields } if tag.is_empty() => collect_records(
                &CType::Record { union: *union, name: name.clone(), size: *size, fields: fields.clone() },
                out,
                depth + 1,
            ),
            // A typedef of a typedef of an untagged record (`sigset_t` of
            // `__sigset_t`): pointers spell it by this name, so it is
            // generated as an alias of the record.
            CType::Typedef { .. } if t.untagged_name().is_some() => {
                if !out.iter().any(|r| matches!(r, CType::Typedef { name: n, .. } if n == name)) {
                    out.push(t.clone());
                }
                collect_records(target, out, depth + 1);
            }
            _ => collect_records(target, out, depth + 1),
        },
        CType::Array { elem, .. } => collect_records(elem, out, depth + 1),
        CType::Func { params, ret, .. } => {
            params.iter().for_each(|p| collect_records(p, out, depth + 1));
            collect_records(ret, out, depth + 1);
        }
        _ => {}
    }
}

/// What a generated record holds, in order, kept as data while the
/// members are laid out (as bindgen's `StructLayoutTracker` does) and
/// rendered once at the end: widening a run of bitfield storage changes a
/// number here instead of re-parsing text already emitted.
#[derive(Default)]
struct Layout {
    slots: Vec<Slot>,
    /// The first byte no slot covers yet (struct), or the largest member
    /// size so far (union).
    at: u64,
}

enum Slot {
    /// Bytes C leaves between members.
    Pad { len: u64 },
    /// The bytes bitfields live in, from byte `first`.
    Bits { first: u64, len: u64 },
    /// A member: its C name, Rust identifier, offset and Rust type.
    Field { c_name: String, id: String, offset: u64, ty: String },
}

impl Layout {
    /// Padding up to byte `off` (struct), if anything is missing before it.
    fn pad_to(&mut self, off: u64) {
        if off > self.at {
            self.slots.push(Slot::Pad { len: off - self.at });
            self.at = off;
        }
    }

    /// Bitfield storage covering bytes `first..=last`: a new run after
    /// padding, or the current run widened when the bitfield starts inside
    /// it and ends past it.
    fn bits(&mut self, first: u64, last: u64) {
        if first >= self.at {
            self.pad_to(first);
            self.slots.push(Slot::Bits { first, len: last + 1 - first });
            self.at = last + 1;
        } else if last >= self.at {
            if let Some(Slot::Bits { first: start, len }) =
                self.slots.iter_mut().rev().find(|s| matches!(s, Slot::Bits { .. }))
            {
                *len = last + 1 - *start;
            }
            self.at = last + 1;
        }
    }

    /// A member of `size` bytes at `offset`.
    fn field(&mut self, c_name: &str, id: &str, offset: u64, size: u64, ty: String, union: bool) {
        if !union {
            self.pad_to(offset);
        }
        self.slots.push(Slot::Field { c_name: c_name.to_string(), id: id.to_string(), offset, ty });
        self.at = if union { self.at.max(size) } else { offset + size };
    }

    /// The body of the Rust record, with the alignment marker first if any.
    fn render(&self, align_marker: Option<&str>) -> String {
        let mut body = String::new();
        if let Some(m) = align_marker {
            body += &format!("    _ffiber_align: [{m}; 0],\n");
        }
        let mut pads = 0;
        for slot in &self.slots {
            match slot {
                Slot::Pad { len } => {
                    body += &format!("    _ffiber_pad{pads}: [u8; {len}],\n");
                    pads += 1;
                }
                Slot::Bits { first, len } => body += &format!("    _ffiber_bits{first}: [u8; {len}],\n"),
                Slot::Field { c_name, id, offset, ty } => {
                    body += &format!("    /// `{c_name}` (offset {offset}).\n    pub {id}: {ty},\n");
                }
            }
        }
        body
    }
}

/// Emits a struct or union with the compiler's exact layout: fields in
/// offset order, padding explicit, and a compile-time assertion of the
/// size, alignment and every field's offset.
pub(crate) fn record(name: &str, rec: &CType, s: &mut String, emitted: &mut std::collections::BTreeSet<String>) {
    let named = name_anonymous(name, rec);
    let CType::Record { union, name: tag, size, fields } = &named else { return };
    let rec = &named;
    if !emitted.insert(name.to_string()) {
        return;
    }
    // Records held by value (directly or in arrays) must exist too, under
    // the name their Rust spelling uses.
    for f in fields {
        let mut t = &f.ty;
        while let CType::Array { elem, .. } = t {
            t = elem;
        }
        let rname = t.rust();
        if let CType::Record { .. } = t.resolved()
            && !rname.is_empty()
            && !rname.contains(':')
        {
            record(&rname, t.resolved(), s, emitted);
        }
    }
    let kind = if *union { "union" } else { "struct" };
    // Packed (`__attribute__((packed))`): a member off its natural
    // alignment, or a size that is not a multiple of it.
    // Asked under the Rust name too: an untagged record's only C spelling
    // is the typedef that named it, which the alignment probe used.
    let view = CType::Typedef { name: name.to_string(), target: Box::new(rec.clone()) };
    let packed = view.is_packed();
    let align = view.align();
    let mut asserts = vec![
        format!("assert!(::core::mem::size_of::<{name}>() == {size});"),
        format!("assert!(::core::mem::align_of::<{name}>() == {align});"),
    ];
    let mut layout = Layout::default();
    let mut accessors = String::new();
    for f in fields {
        if let Some((bit, width)) = f.bits {
            // A bitfield: its bytes are storage in the struct (merged with
            // the neighbours that share them), read and written through a
            // getter and a setter (cgo drops bitfields).
            if *union {
                continue;
            }
            layout.bits(bit / 8, (bit + width - 1) / 8);
            accessors += &bitfield_accessors(&f.name, &f.ty, bit, width);
            continue;
        }
        let Some(fsize) = f.ty.size() else { continue };
        let id = ident(&f.name);
        layout.field(&f.name, &id, f.offset, fsize, f.ty.rust(), *union);
        asserts.push(format!("assert!(::core::mem::offset_of!({name}, {id}) == {});", f.offset));
    }
    if !*union && layout.at < *size && layout.at.div_ceil(align) * align < *size {
        layout.pad_to(*size);
    }
    // The C alignment, where the Rust fields do not already give it
    // (bitfield storage is bytes in Rust, so the declared types that set
    // the C alignment may be missing): a zero-length array of an integer
    // of that alignment, first. Not `repr(align)`, which Rust forbids
    // inside packed structs, where C allows such a record (at offset 1,
    // say). Only alignments above 16 need `repr(align)`.
    let rust_align = fields
        .iter()
        .filter(|f| f.bits.is_none() && f.ty.size().is_some())
        .map(|f| f.ty.align())
        .max()
        .unwrap_or(1)
        .max(1);
    let (repr, marker) = if packed && align == 1 {
        ("C, packed".to_string(), None)
    } else if packed {
        // `#pragma pack(N)`: members aligned to at most N.
        (format!("C, packed({align})"), None)
    } else if align <= rust_align {
        ("C".to_string(), None)
    } else if align <= 16 {
        let marker = match align {
            2 => "u16",
            4 => "u32",
            8 => "u64",
            _ => "u128",
        };
        ("C".to_string(), Some(marker))
    } else {
        (format!("C, align({align})"), None)
    };
    let body = layout.render(marker);
    let c_name = if tag.is_empty() { name.to_string() } else { format!("{kind} {tag}") };
    *s += &format!(
        "/// `{c_name}`: {size} bytes, laid out as the C compiler does (asserted below).\n\
         #[repr({repr})]\n#[derive(Clone, Copy)]\npub {kind} {name} {{\n{body}}}\n\n\
         const _: () = {{\n    {}\n}};\n\n\
         impl Default for {name} {{\n    /// All zero: null pointers, zero numbers.\n    fn default() -> Self {{\n        \
         // SAFETY: every field is an integer, float, bool, raw pointer, or an\n        \
         // array or record of those, for all of which all-zero bytes are valid.\n        \
         unsafe {{ ::core::mem::zeroed() }}\n    }}\n}}\n\n",
        asserts.join("\n    ")
    );
    if !accessors.is_empty() {
        *s += &format!(
            "#[allow(clippy::identity_op, clippy::let_and_return, clippy::unnecessary_cast)]\n\
             impl {name} {{\n    fn _ffiber_bytes(&self) -> &[u8; {size}] {{\n        \
             // SAFETY: `Self` is {size} bytes (asserted above) of plain data.\n        \
             unsafe {{ &*(self as *const Self).cast::<[u8; {size}]>() }}\n    }}\n\n    \
             fn _ffiber_bytes_mut(&mut self) -> &mut [u8; {size}] {{\n        \
             // SAFETY: as above; any bytes are a valid value of `Self`.\n        \
             unsafe {{ &mut *(self as *mut Self).cast::<[u8; {size}]>() }}\n    }}\n{accessors}}}\n\n"
        );
    }
}

/// A getter and a setter for a bitfield `width` bits wide at bit `bit` of
/// the record (little-endian bit numbering, as x86-64 lays them out).
pub(crate) fn bitfield_accessors(name: &str, ty: &CType, bit: u64, width: u64) -> String {
    let signed = matches!(ty.resolved(), CType::Int { signed: true, .. });
    let rty = if signed { "i64" } else { "u64" };
    let (byte, shift) = (bit / 8, bit % 8);
    let nbytes = (shift + width).div_ceil(8);
    let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
    let id = ident(name);
    let set = format!("set_{name}");
    let read = if signed { format!("((raw << {}) as i64) >> {}", 64 - width, 64 - width) } else { "raw".to_string() };
    format!(
        "\n    /// The `{name}` bitfield ({width} bits at bit {bit}).\n    pub fn {id}(&self) -> {rty} {{\n        \
         let b = self._ffiber_bytes();\n        let mut word = 0u128;\n        \
         for i in 0..{nbytes} {{\n            word |= (b[{byte} + i] as u128) << (8 * i);\n        }}\n        \
         let raw = ((word >> {shift}) as u64) & {mask:#x};\n        {read}\n    }}\n\n    \
         /// Sets the `{name}` bitfield (the value is truncated to {width} bits).\n    \
         pub fn {set}(&mut self, v: {rty}) {{\n        let b = self._ffiber_bytes_mut();\n        \
         let mut word = 0u128;\n        for i in 0..{nbytes} {{\n            word |= (b[{byte} + i] as u128) << (8 * i);\n        }}\n        \
         word = (word & !(({mask:#x} as u128) << {shift})) | ((((v as u64) & {mask:#x}) as u128) << {shift});\n        \
         for i in 0..{nbytes} {{\n            b[{byte} + i] = (word >> (8 * i)) as u8;\n        }}\n    }}\n"
    )
}

/// Gives names to what C leaves anonymous inside record `parent`: an
/// anonymous member (C11 `struct { union { int a; float b; }; }`) becomes
/// field `_anonN`, and an untagged struct or union type of a member becomes
/// type `<parent>__<member>` (so it can be generated and referred to).
pub(crate) fn name_anonymous(parent: &str, rec: &CType) -> CType {
    let CType::Record { union, name, size, fields } = rec else { return rec.clone() };
    let fields = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            if f.name.is_empty() {
                f.name = format!("_anon{i}");
            }
            if let CType::Record { name: n, .. } = &mut f.ty
                && n.is_empty()
            {
                *n = format!("{parent}__{}", f.name.trim_start_matches('_'));
            }
            f
        })
        .collect();
    CType::Record { union: *union, name: name.clone(), size: *size, fields }
}
