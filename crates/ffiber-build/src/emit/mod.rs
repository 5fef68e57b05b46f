//! The emitters: what the generator writes, by kind — functions
//! (`function`), records and their layouts (`layout`), names (`names`).
//! `Build::emit` in the crate root walks the bound names and calls these.

pub(crate) mod function;
pub(crate) mod layout;
pub(crate) mod names;
