//! What an archive describes, read as its tar streams by: the tar walk (`walk`), the
//! description files and the images they make (`describe`), those images as docker-archive
//! items (`items`), digests (`digest`), the bounds on what is read (`limits`), platforms
//! (`platform`) and an archive file read whole for `inspect` and `scan` (`contents`).

pub mod contents;
pub mod describe;
pub(crate) mod digest;
pub(crate) mod items;
pub mod limits;
pub mod platform;
pub mod walk;
