//! Reading the DWARF probe object: types from `.debug_info` (with the
//! unlinked object's relocations applied, since its string and abbreviation
//! references are relocations against other sections), constant values from
//! its data sections.

use crate::ctype::CType;
use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::collections::HashMap;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// The probe object, parsed once.
pub struct Probe {
    data: Vec<u8>,
    sections: HashMap<&'static str, Vec<u8>>,
    /// Variable name -> its type, for every `__ffiber_*` variable.
    types: HashMap<String, CType>,
}

impl Probe {
    pub fn load(path: &std::path::Path) -> Result<Probe, String> {
        let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut p = Probe { data, sections: HashMap::new(), types: HashMap::new() };
        p.read_sections()?;
        p.read_types()?;
        Ok(p)
    }

    /// Copies each DWARF section and applies its relocations.
    fn read_sections(&mut self) -> Result<(), String> {
        let file = object::File::parse(&*self.data).map_err(|e| e.to_string())?;
        for id in [
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugStrOffsets,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugRngLists,
            gimli::SectionId::DebugLine,
        ] {
            let Some(section) = file.section_by_name(id.name()) else { continue };
            let mut bytes = section.uncompressed_data().map_err(|e| e.to_string())?.into_owned();
            for (offset, reloc) in section.relocations() {
                let base = match reloc.target() {
                    RelocationTarget::Symbol(s) => file.symbol_by_index(s).map(|s| s.address()).unwrap_or(0),
                    RelocationTarget::Section(s) => file.section_by_index(s).map(|s| s.address()).unwrap_or(0),
                    _ => 0,
                };
                let value = (base as i64).wrapping_add(reloc.addend()) as u64;
                let at = offset as usize;
                match reloc.size() {
                    32 if at + 4 <= bytes.len() => bytes[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes()),
                    64 if at + 8 <= bytes.len() => bytes[at..at + 8].copy_from_slice(&value.to_le_bytes()),
                    _ => {}
                }
            }
            self.sections.insert(id.name(), bytes);
        }
        Ok(())
    }

    fn read_types(&mut self) -> Result<(), String> {
        let sections = &self.sections;
        let empty: &[u8] = &[];
        let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> {
            Ok(EndianSlice::new(sections.get(id.name()).map_or(empty, |v| v.as_slice()), RunTimeEndian::Little))
        })
        .map_err(|e| e.to_string())?;
        let mut units = dwarf.units();
        let mut types = HashMap::new();
        while let Some(header) = units.next().map_err(|e| e.to_string())? {
            let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
            let mut entries = unit.entries();
            while let Some((_, e)) = entries.next_dfs().map_err(|e| e.to_string())? {
                if e.tag() != gimli::DW_TAG_variable {
                    continue;
                }
                let Some(name) = attr_string(&dwarf, &unit, e.attr_value(gimli::DW_AT_name).ok().flatten()) else {
                    continue;
                };
                if !name.starts_with("__ffiber_") {
                    continue;
                }
                if let Some(AttributeValue::UnitRef(off)) = e.attr_value(gimli::DW_AT_type).ok().flatten() {
                    types.insert(name, type_at(&dwarf, &unit, off, 0));
                }
            }
        }
        self.types = types;
        Ok(())
    }

    /// Every probe variable's type.
    pub fn all_types(&self) -> impl Iterator<Item = &CType> {
        self.types.values()
    }

    /// The type of probe variable `name`.
    pub fn var_type(&self, name: &str) -> Option<&CType> {
        self.types.get(name)
    }

    /// The bytes of the data symbol `name` (zeros if it lives in `.bss`).
    pub fn symbol_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let file = object::File::parse(&*self.data).ok()?;
        let sym = file.symbols().find(|s| s.name() == Ok(name))?;
        let section = file.section_by_index(sym.section_index()?).ok()?;
        let size = sym.size() as usize;
        let data = section.data().ok()?;
        if data.is_empty() {
            return Some(vec![0; size]); // .bss
        }
        let at = (sym.address() - section.address()) as usize;
        data.get(at..at + size).map(<[u8]>::to_vec)
    }
}

fn attr_string(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    v: Option<AttributeValue<R<'_>>>,
) -> Option<String> {
    let s = dwarf.attr_string(unit, v?).ok()?;
    Some(s.to_string_lossy().into_owned())
}

fn udata(v: Option<AttributeValue<R<'_>>>) -> Option<u64> {
    match v? {
        AttributeValue::Udata(x) => Some(x),
        AttributeValue::Data1(x) => Some(x.into()),
        AttributeValue::Data2(x) => Some(x.into()),
        AttributeValue::Data4(x) => Some(x.into()),
        AttributeValue::Data8(x) => Some(x),
        AttributeValue::Sdata(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

/// The C type at `off`. `depth` counts the pointers and function types
/// followed to get here — the only way C types can recurse — and a record
/// reached through 8 of them is named, not expanded. Records, arrays and
/// typedefs held by value cannot recurse and are always expanded (a depth
/// limit there turned deeply nested members into opaque types of a guessed
/// alignment); `nest` only guards against malformed debug information.
fn type_at(dwarf: &gimli::Dwarf<R<'_>>, unit: &gimli::Unit<R<'_>>, off: UnitOffset, depth: u32) -> CType {
    type_at_nested(dwarf, unit, off, depth, 0)
}

fn type_at_nested(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    off: UnitOffset,
    depth: u32,
    nest: u32,
) -> CType {
    if depth > 16 || nest > 512 {
        return CType::Void;
    }
    let type_at = |dwarf, unit, o, d: u32| {
        // By value when the depth did not grow (see above).
        type_at_nested(dwarf, unit, o, d, nest + 1)
    };
    let Ok(e) = unit.entry(off) else { return CType::Void };
    let attr = |a| e.attr_value(a).ok().flatten();
    let inner = |depth| match attr(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(o)) => type_at(dwarf, unit, o, depth),
        _ => CType::Void,
    };
    let name = attr_string(dwarf, unit, attr(gimli::DW_AT_name));
    let size = udata(attr(gimli::DW_AT_byte_size));
    match e.tag() {
        gimli::DW_TAG_base_type => {
            let size = size.unwrap_or(0);
            match attr(gimli::DW_AT_encoding) {
                Some(AttributeValue::Encoding(gimli::DW_ATE_boolean)) => CType::Bool,
                Some(AttributeValue::Encoding(gimli::DW_ATE_float)) if size == 4 || size == 8 => CType::Float { size },
                // `long double`, `__float128`, `_Complex`, `_Decimal*`:
                // laid out, never passed by value (see `CType::Bits`).
                Some(AttributeValue::Encoding(
                    enc @ (gimli::DW_ATE_float | gimli::DW_ATE_complex_float | gimli::DW_ATE_decimal_float),
                )) => {
                    let c = name.clone().unwrap_or_else(|| format!("a {size}-byte floating type"));
                    CType::Bits { c, repr: Box::new(bits_repr(enc, size)) }
                }
                Some(AttributeValue::Encoding(gimli::DW_ATE_signed | gimli::DW_ATE_signed_char)) => {
                    CType::Int { size, signed: true }
                }
                _ => CType::Int { size, signed: false },
            }
        }
        gimli::DW_TAG_pointer_type => {
            let is_const = match attr(gimli::DW_AT_type) {
                Some(AttributeValue::UnitRef(o)) => unit.entry(o).is_ok_and(|p| p.tag() == gimli::DW_TAG_const_type),
                _ => false,
            };
            CType::Pointer { pointee: Box::new(inner(depth + 1)), is_const }
        }
        gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type | gimli::DW_TAG_restrict_type => inner(depth),
        gimli::DW_TAG_typedef => CType::Typedef { name: name.unwrap_or_default(), target: Box::new(inner(depth)) },
        gimli::DW_TAG_subroutine_type => {
            let ret = Box::new(inner(depth + 1));
            let mut params = Vec::new();
            let mut variadic = false;
            if let Ok(mut tree) = unit.entries_tree(Some(off))
                && let Ok(root) = tree.root()
            {
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let c = child.entry();
                    match c.tag() {
                        gimli::DW_TAG_formal_parameter => {
                            if let Ok(Some(AttributeValue::UnitRef(o))) = c.attr_value(gimli::DW_AT_type) {
                                params.push(type_at(dwarf, unit, o, depth + 1));
                            }
                        }
                        gimli::DW_TAG_unspecified_parameters => variadic = true,
                        _ => {}
                    }
                }
            }
            CType::Func { params, ret, variadic }
        }
        gimli::DW_TAG_enumeration_type => match attr(gimli::DW_AT_type) {
            Some(AttributeValue::UnitRef(o)) => type_at(dwarf, unit, o, depth),
            _ => CType::Int { size: size.unwrap_or(4), signed: false },
        },
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
            let union = e.tag() == gimli::DW_TAG_union_type;
            let kind = if union { "union" } else { "struct" };
            let name = name.unwrap_or_default();
            // Incomplete (declared only), or too deep to expand: opaque.
            let declared_only = matches!(attr(gimli::DW_AT_declaration), Some(AttributeValue::Flag(true)));
            let Some(size) = size.filter(|_| !declared_only && depth < 8) else {
                return CType::Named { kind, name, size };
            };
            let mut fields = Vec::new();
            if let Ok(mut tree) = unit.entries_tree(Some(off))
                && let Ok(root) = tree.root()
            {
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let c = child.entry();
                    if c.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    let fname =
                        attr_string(dwarf, unit, c.attr_value(gimli::DW_AT_name).ok().flatten()).unwrap_or_default();
                    let ty = match c.attr_value(gimli::DW_AT_type) {
                        Ok(Some(AttributeValue::UnitRef(o))) => type_at(dwarf, unit, o, depth),
                        _ => CType::Void,
                    };
                    let offset = udata(c.attr_value(gimli::DW_AT_data_member_location).ok().flatten()).unwrap_or(0);
                    let bits = udata(c.attr_value(gimli::DW_AT_bit_size).ok().flatten()).map(|w| {
                        // DWARF 5 gives the offset from the record's start;
                        // DWARF 4 counts from the most significant bit of a
                        // storage unit of `byte_size` bytes at `offset`.
                        let v5 = udata(c.attr_value(gimli::DW_AT_data_bit_offset).ok().flatten());
                        let v4 = udata(c.attr_value(gimli::DW_AT_bit_offset).ok().flatten()).map(|b| {
                            let unit =
                                udata(c.attr_value(gimli::DW_AT_byte_size).ok().flatten()).or(ty.size()).unwrap_or(4);
                            offset * 8 + unit * 8 - b - w
                        });
                        (v5.or(v4).unwrap_or(offset * 8), w)
                    });
                    fields.push(crate::ctype::Field { name: fname, ty, offset, bits });
                }
            }
            CType::Record { union, name, size, fields }
        }
        gimli::DW_TAG_array_type => {
            // One subrange per dimension, outermost first: `int a[2][3]`
            // is an array of 2 arrays of 3.
            let mut lens = Vec::new();
            if let Ok(mut tree) = unit.entries_tree(Some(off))
                && let Ok(root) = tree.root()
            {
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let c = child.entry();
                    if c.tag() == gimli::DW_TAG_subrange_type {
                        lens.push(
                            udata(c.attr_value(gimli::DW_AT_count).ok().flatten()).or_else(|| {
                                udata(c.attr_value(gimli::DW_AT_upper_bound).ok().flatten()).map(|u| u + 1)
                            }),
                        );
                    }
                }
            }
            let mut t = inner(depth);
            for len in lens.iter().skip(1).rev() {
                t = CType::Array { elem: Box::new(t), len: *len };
            }
            let t = CType::Array { elem: Box::new(t), len: lens.first().copied().flatten() };
            // A GNU vector (`__m128`, `vector_size`): laid out as its
            // elements, but its register class is not an array's.
            if matches!(attr(gimli::DW_AT_GNU_vector), Some(AttributeValue::Flag(true))) {
                let c = name.unwrap_or_else(|| format!("a vector type ({} bytes)", t.size().unwrap_or(0)));
                return CType::Bits { c, repr: Box::new(t) };
            }
            t
        }
        _ => CType::Void,
    }
}

/// A Rust type with the size and alignment x86-64 gives a floating type of
/// `size` bytes and encoding `enc` that Rust has no type for: a complex
/// number as an array of its two parts, anything else as an unsigned
/// integer (16 bytes: `u128`, aligned 16 as `long double` and
/// `__float128` are).
fn bits_repr(enc: gimli::DwAte, size: u64) -> CType {
    let part = size / 2;
    match enc {
        gimli::DW_ATE_complex_float if part == 4 || part == 8 => {
            CType::Array { elem: Box::new(CType::Float { size: part }), len: Some(2) }
        }
        gimli::DW_ATE_complex_float => {
            CType::Array { elem: Box::new(CType::Int { size: part, signed: false }), len: Some(2) }
        }
        _ => CType::Int { size, signed: false },
    }
}
