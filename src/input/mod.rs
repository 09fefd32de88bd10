//! What comes from outside the loader: image lists (`list`), references (`reference`),
//! archive files inside their images directory (`archive`) and what their first bytes say
//! (`format`), whole files read within a bound (`bounded`), and sizes as flags and
//! messages write them (`sizes`).

pub(crate) mod archive;
pub(crate) mod bounded;
pub mod format;
pub mod list;
pub mod reference;
pub(crate) mod sizes;
