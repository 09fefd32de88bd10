//! `--verify`: the id an engine gives the image an entry's archive holds, read from the whole
//! archive, so that `load` and `status` compare the engine's image with the same id.

use std::fmt;
use std::io;

use crate::decode;
use crate::decode::DecodeError;
use crate::engine::requests::Requests;
use crate::image::describe::{self, Match};
use crate::input::archive::{Archive, ArchiveError};
use crate::input::list::Entry;

/// Why the archive's image id cannot be told. Messages name the archive.
#[derive(Debug)]
pub enum VerifyError {
    /// The archive cannot be opened (its message names it).
    Archive(ArchiveError),
    /// Decoding or walking the archive failed.
    Read { archive: String, source: io::Error },
    /// A tar without manifest.json or index.json.
    NoDescription { archive: String },
    /// Several images, none under the entry's reference.
    Ambiguous {
        archive: String,
        images: usize,
        reference: String,
    },
    /// A description that lists no image.
    Empty { archive: String },
    /// The image's config (or manifest, on containerd's store) is not in the archive.
    Missing { archive: String },
    /// The engine's store could not be told: the engine keeps that error (it is asked once per
    /// run), so its message is what is held here.
    Store { archive: String, reason: String },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = |f: &mut fmt::Formatter<'_>, archive: &str| {
            write!(f, "cannot verify against {archive}: ")
        };
        match self {
            VerifyError::Archive(e) => e.fmt(f),
            VerifyError::Read { archive, source } => {
                prefix(f, archive)?;
                DecodeError::cause(source).fmt(f)
            }
            VerifyError::NoDescription { archive } => {
                prefix(f, archive)?;
                f.write_str("it describes no image")
            }
            VerifyError::Ambiguous {
                archive,
                images,
                reference,
            } => {
                prefix(f, archive)?;
                write!(f, "it holds {images} images, none named {reference}")
            }
            VerifyError::Empty { archive } => {
                prefix(f, archive)?;
                f.write_str("it holds no image")
            }
            VerifyError::Missing { archive } => {
                prefix(f, archive)?;
                f.write_str("its image config or manifest is missing")
            }
            VerifyError::Store { archive, reason } => {
                prefix(f, archive)?;
                f.write_str(reason)
            }
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Archive(e) => Some(e),
            VerifyError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The id `engine` gives the image that `entry`'s archive holds for its reference (the config
/// digest, or the manifest digest on docker's containerd image store).
pub fn archive_id(
    entry: &Entry,
    engine: &dyn Requests,
    memory_limit: u64,
) -> Result<String, VerifyError> {
    let archive = || entry.archive.clone();
    let file = Archive::open(&entry.images_dir, &entry.archive).map_err(VerifyError::Archive)?;
    let images = describe::read(decode::open(file, memory_limit))
        .map_err(|source| VerifyError::Read {
            archive: archive(),
            source,
        })?
        .ok_or_else(|| VerifyError::NoDescription { archive: archive() })?;
    let image = match images.find(&entry.reference) {
        Match::Named(image) | Match::Only(image) => image,
        Match::Ambiguous(images) => {
            return Err(VerifyError::Ambiguous {
                archive: archive(),
                images,
                reference: entry.reference.to_string(),
            })
        }
        Match::Empty => return Err(VerifyError::Empty { archive: archive() }),
    };
    match engine.id_for(image) {
        Ok(Some(id)) => Ok(id.to_owned()),
        Ok(None) => Err(VerifyError::Missing { archive: archive() }),
        Err(e) => Err(VerifyError::Store {
            archive: archive(),
            reason: e.to_string(),
        }),
    }
}
