//! What an archive file holds, read in one streaming pass: its format, layout, sizes and
//! images. `inspect` prints it; `scan` writes a list from it.
//!
//! The archive is decoded once, never to disk, and the tar walk of [`crate::image::walk`] notes
//! what describes its images, exactly as it does while a load streams. Nothing reaches an
//! engine.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::decode::{self, DecodeError, FramedTar, Frames};
use crate::image::describe::{self, Image, Images};
use crate::input::format::{self, Foreign, Format, NotOurs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub(crate) format: Format,
    pub(crate) layout: &'static str,
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
    pub images: Vec<Image>,
}

/// Why an archive file could not be read: the path, and the reason (which a caller that
/// names the file itself shows alone).
#[derive(Debug)]
pub struct InspectError {
    pub(crate) path: PathBuf,
    pub(crate) reason: Unreadable,
}

#[derive(Debug)]
pub(crate) enum Unreadable {
    Open(io::Error),
    /// None of the loader's formats; the compression, when the first bytes name one.
    UnknownFormat(Option<Foreign>),
    Read(io::Error),
    NotAnImage,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::Open(source) => source.fmt(f),
            Unreadable::UnknownFormat(foreign) => NotOurs(*foreign).fmt(f),
            Unreadable::Read(source) => DecodeError::cause(source).fmt(f),
            Unreadable::NotAnImage => f.write_str(
                "a tar, but neither a docker-archive (manifest.json) nor an OCI archive (index.json)",
            ),
        }
    }
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for InspectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            Unreadable::Open(source) | Unreadable::Read(source) => Some(source),
            _ => None,
        }
    }
}

/// Reads the archive at `path`.
pub fn inspect_file(path: &Path, memory_limit: u64) -> Result<Inspected, InspectError> {
    let fail = |reason| InspectError {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| fail(Unreadable::Open(e)))?;
    let metadata = file.metadata().map_err(|e| fail(Unreadable::Open(e)))?;
    if !metadata.is_file() {
        return Err(fail(Unreadable::Open(io::Error::other(
            "not a regular file",
        ))));
    }
    let (head, format) = format::peek(&mut file).map_err(|e| fail(Unreadable::Open(e)))?;
    let format = format.ok_or_else(|| fail(Unreadable::UnknownFormat(format::foreign(&head))))?;
    let opened = Opened {
        format,
        head,
        file,
        len: metadata.len(),
    };
    let read = read_archive(opened, memory_limit).map_err(|e| fail(Unreadable::Read(e)))?;
    let found = read.images.ok_or_else(|| fail(Unreadable::NotAnImage))?;
    Ok(Inspected {
        format,
        layout: found.layout,
        compressed: read.compressed,
        uncompressed: read.decoded,
        images: found.images,
    })
}

/// An archive file opened for reading: its format, the first bytes already read from it,
/// and its length.
pub(crate) struct Opened {
    pub(crate) format: Format,
    pub(crate) head: Vec<u8>,
    pub(crate) file: File,
    pub(crate) len: u64,
}

/// What [`read_archive`] found, and the bytes it stands for: the archive's, and the tar's.
pub(crate) struct Described {
    pub(crate) images: Option<Images>,
    pub(crate) compressed: u64,
    pub(crate) decoded: u64,
}

/// The images an archive describes. A layer-framed zstd archive whose seek table holds is
/// read by its frames, headers and description files only (docs/design.md "Layer-framed
/// archives"); any other archive is decoded to its end, where its checksum is checked.
pub(crate) fn read_archive(opened: Opened, memory_limit: u64) -> io::Result<Described> {
    let Opened {
        format,
        head,
        file,
        len,
    } = opened;
    if format == Format::Zstd {
        if let Ok(frames) = Frames::read(&file, len) {
            let decoded = frames.tar_len();
            let mut tar = FramedTar::new(file, frames, Vec::new(), memory_limit);
            let images = describe::read_at(&mut tar, decoded)?;
            return Ok(Described {
                images,
                compressed: len,
                decoded,
            });
        }
    }
    let decoder = decode::decoder(format, head, file, memory_limit);
    let progress = decoder.progress.clone();
    let images = describe::read(decoder)?;
    Ok(Described {
        images,
        compressed: progress.compressed(),
        decoded: progress.decoded(),
    })
}
