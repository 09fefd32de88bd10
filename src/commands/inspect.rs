//! `inspect`: which images an archive holds, as text for people or as `--json` for tools
//! ([`ArchiveJson`]), read by [`crate::image::contents`] without an engine.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::image::contents::{inspect_file, Inspected};
use crate::image::describe::Image;
use crate::image::platform::Unsuited;
use crate::input::sizes::Size;
use crate::report::exit::Exit;
use crate::report::log::Log;
use crate::report::stdout::Stdout;

/// One element of `inspect --json`: an archive. Fields are written in this order (by name), as
/// they always were.
#[derive(Debug, Serialize)]
pub struct ArchiveJson<'a> {
    /// The path as given on the command line.
    pub archive: String,
    /// The archive file's bytes read.
    pub compressed_size: u64,
    /// `zstd`, `gzip`, `xz` or `tar`.
    pub format: &'static str,
    /// The images the archive describes, in the order it lists them.
    pub images: Vec<ImageJson<'a>>,
    /// `docker-archive` (manifest.json) or `oci-archive` (index.json).
    pub layout: &'static str,
    /// The tar's bytes, after decompression.
    pub uncompressed_size: u64,
}

/// An image inside an archive, in `inspect --json`.
#[derive(Debug, Serialize)]
pub struct ImageJson<'a> {
    /// From the image config; `null` when it does not say.
    pub architecture: Option<&'a str>,
    /// The config digest (`sha256:...`): the image id on classic docker and podman.
    pub id: Option<&'a str>,
    /// Each layer's size in the archive, in bytes.
    pub layer_sizes: &'a [u64],
    /// How many layers.
    pub layers: usize,
    /// The id on docker's containerd image store (manifest or index digest).
    pub manifest_digest: Option<&'a str>,
    /// From the image config; `null` when it does not say.
    pub os: Option<&'a str>,
    /// An image index with no image for this device: the platforms it holds (the image then
    /// has no id, platform or layers). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_platforms: Option<&'a [String]>,
    /// The names the archive gives the image (possibly none).
    pub references: &'a [String],
}

/// `container-loader inspect`: prints each archive's images; exit 1 if one cannot be read.
pub fn run(archives: &[PathBuf], json: bool, memory_limit: u64, log: &Log) -> Exit {
    let mut results = Vec::new();
    let mut failed = false;
    let mut out = Stdout::default();
    for path in archives {
        match inspect_file(path, memory_limit) {
            Ok(i) if json => results.push((path, i)),
            Ok(i) => out.write(&to_text(&i, path)),
            Err(e) => {
                log.error(&e);
                failed = true;
            }
        }
    }
    if json {
        let array: Vec<ArchiveJson> = results.iter().map(|(p, i)| to_json(i, p)).collect();
        let text = serde_json::to_string(&array).expect("plain structs serialize");
        out.write(&format!("{text}\n"));
    }
    let exit = if failed { Exit::Failed } else { Exit::Done };
    out.finish(exit, log)
}

/// The archive at `path` as `inspect --json` writes it.
pub fn to_json<'a>(inspected: &'a Inspected, path: &Path) -> ArchiveJson<'a> {
    let images = inspected
        .images
        .iter()
        .map(|i| ImageJson {
            architecture: i.architecture.as_deref(),
            id: i.id.as_deref(),
            layer_sizes: &i.layer_sizes,
            layers: i.layer_sizes.len(),
            manifest_digest: i.target.as_deref(),
            os: i.os.as_deref(),
            other_platforms: i.not_for_device.as_ref().and_then(offered),
            references: &i.references,
        })
        .collect();
    ArchiveJson {
        archive: path.display().to_string(),
        compressed_size: inspected.compressed,
        format: inspected.format.name(),
        images,
        layout: inspected.layout,
        uncompressed_size: inspected.uncompressed,
    }
}

/// The archive at `path` as `inspect` prints it.
pub fn to_text(inspected: &Inspected, path: &Path) -> String {
    let mut out = format!(
        "{} ({}, {}, {} -> {})\n",
        path.display(),
        inspected.layout,
        inspected.format,
        Size(inspected.compressed),
        Size(inspected.uncompressed)
    );
    for i in &inspected.images {
        let names = match i.references.is_empty() {
            true => "(no reference)".to_owned(),
            false => i.references.join(", "),
        };
        out.push_str(&format!("  {names}\n"));
        if let Some(unsuited) = &i.not_for_device {
            // What the load would refuse, in its words, rather than an image of nothing.
            out.push_str(&format!("    {unsuited}\n"));
        } else {
            out.push_str(&image_line(i));
        }
        if let Some(target) = &i.target {
            out.push_str(&format!("    manifest {target}\n"));
        }
    }
    out
}

/// An image's id, platform and layers, as `inspect` prints them below its names.
fn image_line(i: &Image) -> String {
    let platform = match (&i.os, &i.architecture) {
        (Some(os), Some(arch)) => format!("{os}/{arch}"),
        _ => "unknown platform".to_owned(),
    };
    let layers = i.layer_sizes.len();
    format!(
        "    id {}  {platform}  {layers} layer{}, {}\n",
        i.id.as_deref().unwrap_or("unknown"),
        if layers == 1 { "" } else { "s" },
        Size(i.layer_sizes.iter().sum())
    )
}

/// The platforms an image index holds where none is for this device.
fn offered(unsuited: &Unsuited) -> Option<&[String]> {
    match unsuited {
        Unsuited::NoneFits { offered, .. } => Some(offered),
        Unsuited::Several { .. } => None,
    }
}
