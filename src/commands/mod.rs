//! The commands `main.rs` runs, one each: they share what the layers below hold, never each
//! other.

pub mod inspect;
pub mod load;
#[cfg(feature = "pack")]
pub mod pack;
pub mod scan;
pub mod status;
