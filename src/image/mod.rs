//! What an archive describes, read as its tar streams by: the description files and the
//! images they make (`manifest`), platforms (`platform`) and an archive file's contents as
//! `inspect` and `scan` show them (`contents`).

pub mod contents;
pub mod manifest;
pub mod platform;
