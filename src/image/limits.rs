//! How much of an archive the loader reads at most, and the error past it.
//!
//! An archive is input from whoever built the image, so what is kept of it is bounded, and so
//! is the work of describing it: past the limits below (images, names, layers, files tracked,
//! JSON kept) the archive is refused as [`Invalid`], naming the limit, rather than read in
//! memory or time without end. So is an archive holding one description file twice, which the
//! engines and the loader could read differently.

use std::fmt;

/// Bound on the description files kept in memory, whatever the archive holds (4 MiB; `docker
/// save` of 100 images writes well under 1 MiB of them).
pub(crate) const KEEP_MAX: u64 = 4 << 20;
/// Most JSON values in the kept files together: each one costs about 50 bytes once parsed.
pub(crate) const VALUES_MAX: usize = 65_536;
/// Longest PAX extended header or GNU long name accepted.
pub(crate) const EXTENSION_MAX: u64 = 64 << 10;
/// Most files and links whose size, target or digest the walk notes (a docker-archive has
/// about three per layer), and the longest path it notes: no tool names a layer or a
/// description file longer (`blobs/sha512/<128 hex>` is 141 bytes).
pub(crate) const ENTRIES_MAX: usize = 16_384;
pub(crate) const PATH_MAX: usize = 256;
/// Most images one archive may describe, names one image may carry, and layers all its
/// images may list together.
pub(crate) const IMAGES_MAX: usize = 1_000;
pub(crate) const NAMES_MAX: usize = 64;
pub(crate) const LAYERS_MAX: usize = 16_384;
/// Longest name kept (a valid reference is at most 255 + 1 + 128 + 1 + 135 bytes), and the
/// longest os, architecture or variant.
pub(crate) const NAME_LEN_MAX: usize = 600;
pub(crate) const PLATFORM_LEN_MAX: usize = 64;
/// Most lookups of a description file while describing the archive: image indexes may name
/// each other and the same files many times over.
pub(crate) const LOOKUPS_MAX: usize = 100_000;
/// How deep image indexes may nest inside each other.
pub(crate) const NESTING_MAX: usize = 4;

/// Why an archive that is a readable tar is refused: it holds a description file twice, or
/// more than the loader reads. The text completes "ARCHIVE: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A description file the tar holds twice: podman reads the first, docker and the loader
    /// the last.
    Twice(String),
    /// More of `what` than `max`.
    TooMany { what: &'static str, max: usize },
    /// A `what` longer than `max` bytes.
    TooLong { what: &'static str, max: usize },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Twice(path) => write!(
                f,
                "holds {path} twice, and engines differ in which one they read: an invalid archive; save the image again"
            ),
            Invalid::TooMany { what, max } => write!(
                f,
                "describes more than {max} {what}, more than the loader reads: not an archive it loads; save fewer images into one archive"
            ),
            Invalid::TooLong { what, max } => write!(
                f,
                "has a {what} longer than {max} bytes, more than the loader reads: not an archive it loads"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// An error when `count` of `what` is above `max`.
pub(crate) fn within(count: usize, max: usize, what: &'static str) -> Result<(), Invalid> {
    match count > max {
        true => Err(Invalid::TooMany { what, max }),
        false => Ok(()),
    }
}
