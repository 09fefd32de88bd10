//! Why an entry failed, and the classes of failure the load tells apart: the archive's fault
//! (it cannot be opened, decoded or read: nothing was loaded, nothing to undo), the space
//! check's (nothing was sent), and the engine's (it refused the archive, or loaded it without
//! the reference on the archive's image: the names it moved are put back).

use std::fmt;
use std::io;

use super::names::Change;
use crate::decode::DecodeError;
use crate::engine::EngineError;
use crate::input::archive::ArchiveError;
use crate::input::reference::Reference;
use crate::plan::space::Shortfall;
use crate::plan::verify::VerifyError;

/// Why an entry failed: everything its log line needs, the archive named where it matters.
#[derive(Debug)]
pub enum EntryError {
    /// Asking the engine whether it has the image failed.
    Presence(EngineError),
    /// The archive cannot be used: missing, outside the images dir, not a file, unknown format.
    Archive(ArchiveError),
    /// The archive would not fit where the engine copies it; nothing was sent.
    Space(Shortfall),
    /// The decoder found the archive corrupt (or too large for --memory-limit) mid-upload, or
    /// its OCI layout cannot be given the manifest.json classic docker reads.
    Decode { archive: String, source: io::Error },
    /// Reading the archive file failed mid-upload.
    Read { archive: String, source: io::Error },
    /// The engine refused or failed the upload.
    Load {
        archive: String,
        source: EngineError,
    },
    /// The upload succeeded, but the engine has no image under the listed reference.
    NotPresentAfterLoad {
        archive: String,
        image: String,
        carried: Vec<String>,
    },
    /// The upload succeeded, but the reference names another image than the archive's.
    NotTheArchives {
        archive: String,
        image: String,
        engine_id: String,
        archive_id: String,
    },
    /// The archive does not carry the reference, and giving the loaded image that name failed.
    Tag {
        archive: String,
        source: EngineError,
    },
    /// `--verify`: which image the archive holds for the reference cannot be told.
    Unverifiable(VerifyError),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Presence(e) => e.fmt(f),
            EntryError::Archive(e) => e.fmt(f),
            EntryError::Space(e) => e.fmt(f),
            EntryError::Decode { archive, source } => write!(
                f,
                "{archive}: {}; nothing was loaded, the archive is kept",
                DecodeError::cause(source)
            ),
            EntryError::Read { archive, source } => {
                write!(
                    f,
                    "cannot read archive {archive}: {source}; nothing was loaded"
                )
            }
            EntryError::Load {
                archive,
                source: EngineError::Refused { message },
            } => write!(f, "engine refused {archive}: {message}"),
            EntryError::Load { archive, source } => write!(f, "loading {archive}: {source}"),
            EntryError::NotPresentAfterLoad {
                archive,
                image,
                carried,
            } => {
                let carried = match carried.is_empty() {
                    true => "no name".to_owned(),
                    false => carried.join(", "),
                };
                write!(
                    f,
                    "loaded {archive} but the engine has no {image} (the archive carries {carried}); fix the list or retag the archive"
                )
            }
            EntryError::NotTheArchives {
                archive,
                image,
                engine_id,
                archive_id,
            } => write!(
                f,
                "loaded {archive}, but the engine's {image} is {engine_id}, not the archive's {archive_id}; check the archive's names (container-loader inspect)"
            ),
            EntryError::Tag { archive, source } => {
                write!(f, "loaded {archive}, but could not name it: {source}")
            }
            EntryError::Unverifiable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EntryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EntryError::Presence(e)
            | EntryError::Load { source: e, .. }
            | EntryError::Tag { source: e, .. } => Some(e),
            EntryError::Archive(e) => Some(e),
            EntryError::Space(e) => Some(e),
            EntryError::Unverifiable(e) => Some(e),
            EntryError::Decode { source, .. } | EntryError::Read { source, .. } => Some(source),
            EntryError::NotPresentAfterLoad { .. } | EntryError::NotTheArchives { .. } => None,
        }
    }
}

/// A load that did not work, and what is known of the names it may have moved.
pub(super) enum Failed {
    /// The request was aborted before the tar's end (the archive, the disk, the space check):
    /// the engine loaded nothing.
    Aborted(EntryError),
    /// The engine refused the archive: `names` are those it may have moved.
    Refused {
        error: EntryError,
        names: Vec<Reference>,
    },
    /// The engine loaded it, but the names are not the archive's image: as read back.
    Read(EntryError, Vec<Change>),
}
