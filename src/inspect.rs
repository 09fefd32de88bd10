//! `inspect`: which images an archive holds, read in one streaming pass.
//!
//! The archive is decoded once, never to disk, and the tar walk of [`crate::manifest`] notes
//! what describes its images, exactly as it does while a load streams. Nothing reaches an
//! engine.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::decode::{self, DecodeError, Format};
use crate::load::Exit;
use crate::manifest::{self, Image};
use crate::stdout::Stdout;
use crate::units::Size;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub format: Format,
    pub layout: &'static str,
    pub compressed: u64,
    pub uncompressed: u64,
    pub images: Vec<Image>,
}

#[derive(Debug)]
pub enum InspectError {
    Open { path: PathBuf, source: io::Error },
    UnknownFormat { path: PathBuf },
    Read { path: PathBuf, source: io::Error },
    NotAnImage { path: PathBuf },
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Open { path, source } => write!(f, "{}: {source}", path.display()),
            InspectError::UnknownFormat { path } => write!(
                f,
                "{}: not zstd, gzip, xz or tar (by its first bytes)",
                path.display()
            ),
            InspectError::Read { path, source } => match DecodeError::find(source) {
                Some(d) => write!(f, "{}: {d}", path.display()),
                None => write!(f, "{}: {source}", path.display()),
            },
            InspectError::NotAnImage { path } => write!(
                f,
                "{}: a tar, but neither a docker-archive (manifest.json) nor an OCI archive (index.json)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for InspectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InspectError::Open { source, .. } | InspectError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the archive at `path`.
pub fn inspect_file(path: &Path, memory_limit: u64) -> Result<Inspected, InspectError> {
    let open = |source| InspectError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(open)?;
    if !file.metadata().map_err(open)?.is_file() {
        return Err(open(io::Error::other("not a regular file")));
    }
    let (head, format) = decode::peek(&mut file).map_err(open)?;
    let format = format.ok_or_else(|| InspectError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let decoder = decode::decoder(format, head, file, memory_limit);
    let progress = decoder.progress.clone();
    let found = manifest::read(decoder)
        .map_err(|source| InspectError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| InspectError::NotAnImage {
            path: path.to_owned(),
        })?;
    Ok(Inspected {
        format,
        layout: found.layout,
        compressed: progress.compressed(),
        uncompressed: progress.decoded(),
        images: found.images,
    })
}

/// `container-loader inspect`: prints each archive's images; exit 1 if one cannot be read.
pub fn run(archives: &[PathBuf], json: bool, memory_limit: u64, log: &crate::log::Log) -> Exit {
    let mut results = Vec::new();
    let mut failed = false;
    let mut out = Stdout::default();
    for path in archives {
        match inspect_file(path, memory_limit) {
            Ok(i) if json => results.push(i.to_json(path)),
            Ok(i) => out.write(&i.to_text(path)),
            Err(e) => {
                log.error(&e);
                failed = true;
            }
        }
    }
    if json {
        out.write(&format!("{}\n", Value::Array(results)));
    }
    let exit = if failed { Exit::Failed } else { Exit::Done };
    out.finish(exit, log)
}

impl Inspected {
    pub fn to_json(&self, path: &Path) -> Value {
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|i| {
                json!({
                    "references": i.references,
                    "id": i.id,
                    // The id on docker's containerd image store (manifest or index digest).
                    "manifest_digest": i.target,
                    "layers": i.layer_sizes.len(),
                    "layer_sizes": i.layer_sizes,
                    "architecture": i.architecture,
                    "os": i.os,
                })
            })
            .collect();
        json!({
            "archive": path.display().to_string(),
            "format": self.format.name(),
            "layout": self.layout,
            "compressed_size": self.compressed,
            "uncompressed_size": self.uncompressed,
            "images": images,
        })
    }

    pub fn to_text(&self, path: &Path) -> String {
        let mut out = format!(
            "{} ({}, {}, {} -> {})\n",
            path.display(),
            self.layout,
            self.format,
            Size(self.compressed),
            Size(self.uncompressed)
        );
        for i in &self.images {
            let names = match i.references.is_empty() {
                true => "(no reference)".to_owned(),
                false => i.references.join(", "),
            };
            let platform = match (&i.os, &i.architecture) {
                (Some(os), Some(arch)) => format!("{os}/{arch}"),
                _ => "unknown platform".to_owned(),
            };
            let layers = i.layer_sizes.len();
            out.push_str(&format!(
                "  {names}\n    id {}  {platform}  {layers} layer{}, {}\n",
                i.id.as_deref().unwrap_or("unknown"),
                if layers == 1 { "" } else { "s" },
                Size(i.layer_sizes.iter().sum())
            ));
            if let Some(target) = &i.target {
                out.push_str(&format!("    manifest {target}\n"));
            }
        }
        out
    }
}
