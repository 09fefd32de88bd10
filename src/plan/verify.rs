//! `--verify`: whether the engine's image under an entry's reference is the archive's image,
//! for `load` and `status` alike.
//!
//! "The archive's image" is its config and so its layers' content (the config names each layer
//! by the digest of its uncompressed tar), whatever the manifest says of how the layers are
//! stored. Classic docker and podman name an image by its config digest, so their ids compare
//! directly. docker's containerd store names it by its manifest's digest, which also records
//! whether a layer was gzipped: the same image has one id from a docker-archive and another
//! from an OCI archive with gzip layers. There, an id other than the one the archive would get
//! is followed to its config ([`crate::engine::store::Store::config_of`]) before the image is
//! said to differ.

use std::fmt;
use std::io;

use crate::decode::DecodeError;
use crate::engine::requests::Requests;
use crate::engine::short_id;
use crate::image::contents::{read_archive, Opened};
use crate::image::describe::Match;
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
    /// The engine's image has another id than the archive's would, and which config it has
    /// cannot be told (the containerd store's content cannot be read from here).
    EngineConfig(Box<ConfigUntold>),
}

/// Which ids `--verify` could not follow to their configs, and why ([`VerifyError::EngineConfig`]).
#[derive(Debug)]
pub struct ConfigUntold {
    archive: String,
    engine_id: String,
    archive_id: String,
    reason: String,
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
            VerifyError::EngineConfig(untold) => {
                let ConfigUntold {
                    archive,
                    engine_id,
                    archive_id,
                    reason,
                } = untold.as_ref();
                prefix(f, archive)?;
                write!(
                    f,
                    "the engine's {} is another manifest than the archive's {}, and which \
                     config it has cannot be told: {reason}",
                    short_id(engine_id),
                    short_id(archive_id)
                )
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

/// The archive's image for an entry, as the engine's store names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// The id the store gives it when it loads the archive (its config digest, or the manifest
    /// digest on docker's containerd image store).
    pub id: String,
    /// Its config's digest.
    pub config: Option<String>,
}

/// Whether the engine's image is the archive's ([`compare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Same {
    /// The engine's id is the one the archive's image gets.
    Id,
    /// Another id over the archive's config (this digest): the same image, stored under
    /// another manifest.
    Config(String),
    /// Another image; with its config's digest where the store's ids are not configs.
    No { config: Option<String> },
}

/// The image that `entry`'s archive holds for its reference, read from the whole archive.
pub fn archive_image(
    entry: &Entry,
    engine: &dyn Requests,
    memory_limit: u64,
) -> Result<ArchiveImage, VerifyError> {
    let archive = || entry.archive.clone();
    let file = Archive::open(&entry.images_dir, &entry.archive).map_err(VerifyError::Archive)?;
    let size = file.size;
    let (format, head, file) = file.into_parts();
    let opened = Opened {
        format,
        head,
        file,
        len: size,
    };
    let images = read_archive(opened, memory_limit)
        .map_err(|source| VerifyError::Read {
            archive: archive(),
            source,
        })?
        .images
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
        Ok(Some(id)) => Ok(ArchiveImage {
            id: id.to_owned(),
            config: image.id.clone(),
        }),
        Ok(None) => Err(VerifyError::Missing { archive: archive() }),
        Err(e) => Err(VerifyError::Store {
            archive: archive(),
            reason: e.to_string(),
        }),
    }
}

/// Whether the engine's image `engine_id` is `archive`'s image (read from `entry`'s archive):
/// the same id, or else the same config.
pub fn compare(
    entry: &Entry,
    engine: &dyn Requests,
    engine_id: &str,
    archive: &ArchiveImage,
) -> Result<Same, VerifyError> {
    if engine_id == archive.id {
        return Ok(Same::Id);
    }
    let config = engine.config_of(engine_id).map_err(|e| {
        VerifyError::EngineConfig(Box::new(ConfigUntold {
            archive: entry.archive.clone(),
            engine_id: engine_id.to_owned(),
            archive_id: archive.id.clone(),
            reason: e.to_string(),
        }))
    })?;
    Ok(match archive.config.as_ref() == Some(&config) {
        true => Same::Config(config),
        false => Same::No {
            config: (config != engine_id).then_some(config),
        },
    })
}

/// The engine's image and the archive's, as `--verify` words them: the ids as the caller
/// shows them (short in the load's log, whole in `status`), configs where the store's ids are
/// not configs.
pub struct Compared {
    pub engine_id: String,
    pub engine_config: Option<String>,
    /// The archive's name in its list.
    pub archive: String,
    pub archive_id: String,
    pub archive_config: Option<String>,
}

impl Compared {
    /// `A has the config C of ARCHIVE's image, under another manifest than the archive's B`.
    pub fn same_config(&self) -> String {
        let config = self.engine_config.as_deref().unwrap_or("?");
        format!(
            "{} has the config {config} of {}'s image, under another manifest than the \
             archive's {}",
            self.engine_id, self.archive, self.archive_id
        )
    }

    /// `the engine has A, ARCHIVE holds B`, with both configs where both are known.
    pub fn differs(&self) -> String {
        let (id, archive, archive_id) = (&self.engine_id, &self.archive, &self.archive_id);
        match (&self.engine_config, &self.archive_config) {
            (Some(theirs), Some(ours)) => format!(
                "the engine has {id} (config {theirs}), {archive} holds {archive_id} (config {ours})"
            ),
            _ => format!("the engine has {id}, {archive} holds {archive_id}"),
        }
    }
}
