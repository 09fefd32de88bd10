//! `inspect`: which images an archive holds, read in one streaming pass.
//!
//! The decoded stream goes through the tar crate once, never to disk. Every entry's size is
//! noted, and the small JSON files that describe the images (manifest.json, index.json, image
//! configs, OCI manifests) are kept in memory; which of them matter is only known at the end,
//! since `docker save` writes manifest.json last. Both layouts are read: docker-archive
//! (`manifest.json` with `RepoTags`) and OCI (`index.json` with the `ref.name` annotation).
//! The image id is the sha256 of the config, as the engines compute it.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::decode::{self, DecodeError, Format};
use crate::load::Exit;
use crate::units::Size;

/// Descriptions are small; a larger entry is a layer and only its size is kept.
const SMALL_MAX: u64 = 1 << 20;
/// Bound on what is kept in memory, whatever the archive holds.
const KEEP_MAX: u64 = 32 << 20;
/// The OCI annotation that names an image in an OCI archive.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// What the archive calls the image: RepoTags, or the OCI ref name. May be empty.
    pub references: Vec<String>,
    /// `sha256:<hex>` of the image config, which is the id the engine will give the image.
    pub id: Option<String>,
    pub layer_sizes: Vec<u64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
}

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
    let contents = Contents::read(decoder).map_err(|source| InspectError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (layout, images) = contents.images().ok_or_else(|| InspectError::NotAnImage {
        path: path.to_owned(),
    })?;
    Ok(Inspected {
        format,
        layout,
        compressed: progress.compressed(),
        uncompressed: progress.decoded(),
        images,
    })
}

/// What one pass over the tar noted.
#[derive(Default)]
struct Contents {
    sizes: HashMap<String, u64>,
    links: HashMap<String, String>,
    kept: HashMap<String, Vec<u8>>,
}

impl Contents {
    fn read(decoded: impl Read) -> io::Result<Contents> {
        let mut contents = Contents::default();
        let mut kept_bytes = 0;
        let mut archive = tar::Archive::new(decoded);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = normalize(&entry.path()?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name()? {
                    let target = target.to_string_lossy();
                    // A symlink is relative to its own directory, a hard link to the archive root.
                    let base = match kind.is_symlink() {
                        true => path.rsplit_once('/').map_or("", |(dir, _)| dir),
                        false => "",
                    };
                    let resolved = join(base, &target);
                    contents.links.insert(path, resolved);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.size();
            contents.sizes.insert(path.clone(), size);
            let describes = path.ends_with(".json") || path.starts_with("blobs/") || path == "json";
            if describes && size <= SMALL_MAX && kept_bytes + size <= KEEP_MAX {
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes)?;
                kept_bytes += size;
                contents.kept.insert(path, bytes);
            }
        }
        // Past the end-of-archive blocks: read to the end so the decoder checks its checksum.
        io::copy(&mut archive.into_inner(), &mut io::sink())?;
        Ok(contents)
    }

    fn resolve<'a>(&'a self, path: &'a str) -> &'a str {
        let mut path = path;
        for _ in 0..8 {
            match self.links.get(path) {
                Some(target) => path = target,
                None => break,
            }
        }
        path
    }

    fn json(&self, path: &str) -> Option<Value> {
        serde_json::from_slice(self.kept.get(self.resolve(&normalize(path)))?).ok()
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.sizes.get(self.resolve(&normalize(path))).copied()
    }

    fn config(&self, path: &str) -> (Option<String>, Option<String>, Option<String>) {
        let bytes = self.kept.get(self.resolve(&normalize(path)));
        let id = bytes.map(|b| format!("sha256:{}", sha256_hex(b)));
        let config: Value = bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let text = |key: &str| config[key].as_str().map(str::to_owned);
        (id, text("architecture"), text("os"))
    }

    fn images(&self) -> Option<(&'static str, Vec<Image>)> {
        if let Some(manifest) = self.json("manifest.json") {
            return Some(("docker-archive", self.docker_images(&manifest)));
        }
        let index = self.json("index.json")?;
        Some(("oci-archive", self.oci_images(&index)))
    }

    fn docker_images(&self, manifest: &Value) -> Vec<Image> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        manifest
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let (id, architecture, os) = self.config(item["Config"].as_str().unwrap_or(""));
                Image {
                    references: strings(&item["RepoTags"]),
                    id,
                    layer_sizes: strings(&item["Layers"])
                        .iter()
                        .map(|l| self.size(l).unwrap_or(0))
                        .collect(),
                    architecture,
                    os,
                }
            })
            .collect()
    }

    fn oci_images(&self, index: &Value) -> Vec<Image> {
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|descriptor| {
                let name = descriptor["annotations"][OCI_REF_NAME].as_str();
                // The OCI spec lets ref.name be a bare tag; only a full name is a reference.
                let references = name
                    .filter(|n| n.contains('/') || n.contains(':'))
                    .map(|n| vec![n.to_owned()])
                    .unwrap_or_default();
                let manifest = blob(descriptor["digest"].as_str())
                    .and_then(|p| self.json(&p))
                    .unwrap_or_default();
                let (id, architecture, os) = match blob(manifest["config"]["digest"].as_str()) {
                    Some(p) => self.config(&p),
                    None => (None, None, None),
                };
                Image {
                    references,
                    id,
                    layer_sizes: manifest["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| l["size"].as_u64().unwrap_or(0))
                        .collect(),
                    architecture,
                    os,
                }
            })
            .collect()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256:<hex>` -> `blobs/sha256/<hex>`.
fn blob(digest: Option<&str>) -> Option<String> {
    let (alg, hex) = digest?.split_once(':')?;
    Some(format!("blobs/{alg}/{hex}"))
}

fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned()
}

/// `dir` + a relative link target, with `..` folded.
fn join(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// `container-loader inspect`: prints each archive's images; exit 1 if one cannot be read.
pub fn run(archives: &[PathBuf], json: bool, memory_limit: u64, log: &crate::log::Log) -> Exit {
    let mut results = Vec::new();
    let mut failed = false;
    for path in archives {
        match inspect_file(path, memory_limit) {
            Ok(i) if json => results.push(i.to_json(path)),
            Ok(i) => print!("{}", i.to_text(path)),
            Err(e) => {
                log.error(&e);
                failed = true;
            }
        }
    }
    if json {
        println!("{}", Value::Array(results));
    }
    if failed {
        Exit::Failed
    } else {
        Exit::Done
    }
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
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_a_docker_archive_whose_manifest_comes_last() {
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let id = sha256_hex(config);
        let manifest = format!(
            r#"[{{"Config":"{id}.json","RepoTags":["debian:bookworm"],"Layers":["l1/layer.tar"]}}]"#
        );
        let tar = tar_of(&[
            ("l1/layer.tar", &[0u8; 3000]),
            (&format!("{id}.json"), config),
            ("manifest.json", manifest.as_bytes()),
        ]);
        let c = Contents::read(&tar[..]).unwrap();
        let (layout, images) = c.images().unwrap();
        assert_eq!(layout, "docker-archive");
        assert_eq!(
            images,
            [Image {
                references: vec!["debian:bookworm".into()],
                id: Some(format!("sha256:{id}")),
                layer_sizes: vec![3000],
                architecture: Some("arm64".into()),
                os: Some("linux".into()),
            }]
        );
    }

    #[test]
    fn reads_an_oci_archive_and_ignores_a_bare_tag_as_name() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cfg = sha256_hex(config);
        let manifest = format!(
            r#"{{"config":{{"digest":"sha256:{cfg}"}},"layers":[{{"size":123}},{{"size":456}}]}}"#
        );
        let man = sha256_hex(manifest.as_bytes());
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{man}","annotations":{{"{OCI_REF_NAME}":"localhost/a/b:1"}}}},{{"digest":"sha256:{man}","annotations":{{"{OCI_REF_NAME}":"1.0"}}}}]}}"#
        );
        let tar = tar_of(&[
            ("index.json", index.as_bytes()),
            (&format!("blobs/sha256/{man}"), manifest.as_bytes()),
            (&format!("blobs/sha256/{cfg}"), config),
        ]);
        let (layout, images) = Contents::read(&tar[..]).unwrap().images().unwrap();
        assert_eq!(layout, "oci-archive");
        assert_eq!(images[0].references, ["localhost/a/b:1"]);
        assert!(images[1].references.is_empty());
        assert_eq!(images[0].id, Some(format!("sha256:{cfg}")));
        assert_eq!(images[0].layer_sizes, [123, 456]);
    }

    #[test]
    fn follows_relative_symlinks_to_layers() {
        assert_eq!(join("abc", "../def.tar"), "def.tar");
        assert_eq!(join("a/b", "./c"), "a/b/c");
    }

    #[test]
    fn says_when_a_tar_holds_no_image() {
        let tar = tar_of(&[("etc/hostname", b"x")]);
        assert!(Contents::read(&tar[..]).unwrap().images().is_none());
    }
}
