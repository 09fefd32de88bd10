//! The commands `main.rs` runs, one each: they share what the layers below hold, never each
//! other.

pub mod inspect;
pub mod load;
pub mod scan;
pub mod status;
