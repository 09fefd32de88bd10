//! What a delta load leaves out of the tar, and why an upload stops when a file left out is
//! needed after all.

use std::collections::HashSet;
use std::fmt;
use std::io;

use crate::image::walk::Walked;

/// What a delta load leaves out of the tar, told file by file as the tar streams by.
pub(crate) trait Omission {
    /// Whether the regular file at `path` (as [`crate::image::walk::normalize`] writes it) is
    /// left out.
    fn omits(&mut self, path: &str) -> bool;
    /// Once the archive is described, before its end is passed on: why not, when what was
    /// left out is more than its images can do without.
    fn confirm(&self, contents: &Walked) -> Result<(), Needed>;
}

/// The files at these paths, decided before the upload from what the archive describes.
impl Omission for HashSet<String> {
    fn omits(&mut self, path: &str) -> bool {
        self.contains(path)
    }

    fn confirm(&self, _: &Walked) -> Result<(), Needed> {
        Ok(())
    }
}

/// An upload that left out a file an image of the archive needs from it ([`Omission`]):
/// stopped before the tar's end, so the engine loads nothing; the archive is fine, and goes
/// whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOutNeeded(pub(crate) Needed);

impl fmt::Display for LeftOutNeeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a layer file left out is needed: {}", self.0)
    }
}

/// Why what an [`Omission`] left out is more than the archive's images can do without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Needed {
    /// The files were told apart by name as a docker-archive's, and the archive is none.
    NotADockerArchive,
    /// The file at `path` was taken for a layer the engine holds, and is not one for every
    /// image of the archive.
    NotHeld { path: String },
}

impl fmt::Display for Needed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needed::NotADockerArchive => f.write_str("the archive is not a docker-archive"),
            Needed::NotHeld { path } => write!(
                f,
                "{path} is not a layer the engine holds for every image of the archive"
            ),
        }
    }
}

impl std::error::Error for LeftOutNeeded {}

impl LeftOutNeeded {
    /// The `LeftOutNeeded` inside `e`, if it is one.
    pub(crate) fn find(e: &io::Error) -> Option<&LeftOutNeeded> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}
