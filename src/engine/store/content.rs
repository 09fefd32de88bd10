//! containerd's content store as files: which image config an image id names there.
//!
//! docker's containerd image store names an image by its manifest (or index) digest, which
//! also records how the layers are stored (compressed or not, by which tool): the same config,
//! and so the same layers' content, has one id as a docker-archive and another as an OCI
//! archive with gzip layers. docker's API does not give the config behind an id on this store
//! (`GET /images/{id}/json` has no config digest, and answers 404 for one), so `--verify`
//! reads it where containerd keeps it, `blobs/sha256/<hex>` under its content store: the blob
//! named by the id, checked against its digest, and for an index the manifest for the device.
//! Blobs are read whole but bounded ([`BLOB_MAX`]); the id is only used in a path once it is
//! `sha256:` and 64 hex digits.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::image::digest::{sha256_digest, sha256_hex};
use crate::image::platform::Platform;
use crate::input::bounded;

/// containerd's content store, under its root: blobs by algorithm and hex digest.
const BLOBS_SUBDIR: &str = "io.containerd.content.v1.content/blobs/sha256";
/// The largest manifest or index read (4 MiB: a manifest of 16,384 layers is ~3 MiB).
const BLOB_MAX: u64 = 4 << 20;

/// Why the config behind an id cannot be read from the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentError {
    /// Not `sha256:` and 64 lower-case hex digits: never made into a path.
    NotADigest(String),
    /// The blob could not be read (missing, unreadable, larger than [`BLOB_MAX`]).
    Unread { blob: PathBuf, why: String },
    /// The blob's bytes do not hash to its name.
    Damaged { blob: PathBuf },
    /// Neither a manifest naming a config nor an index naming a manifest for the device.
    Unknown { blob: PathBuf, why: &'static str },
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentError::NotADigest(id) => write!(f, "{id:.80} is not a sha256 digest"),
            ContentError::Unread { blob, why } => {
                write!(f, "cannot read {}: {why}", blob.display())
            }
            ContentError::Damaged { blob } => {
                write!(f, "{} does not match its digest", blob.display())
            }
            ContentError::Unknown { blob, why } => write!(f, "{}: {why}", blob.display()),
        }
    }
}

/// The digest of the config the image `id` names in the content store under `root`: the
/// manifest's, or for an index the one of the manifest that suits `device` best (the one
/// docker runs), where the store has it.
pub(super) fn config_of(root: &Path, id: &str, device: &Platform) -> Result<String, ContentError> {
    let blobs = root.join(BLOBS_SUBDIR);
    let (blob, value) = read(&blobs, id)?;
    if let Some(config) = config(&value) {
        return Ok(config);
    }
    let candidates = manifests_for(&value, device).ok_or_else(|| ContentError::Unknown {
        blob: blob.clone(),
        why: "neither a manifest with a config nor an index of manifests",
    })?;
    // Several platforms of one index: only those pulled or loaded are in the store.
    for digest in candidates {
        if let Ok((_, manifest)) = read(&blobs, &digest) {
            if let Some(config) = config(&manifest) {
                return Ok(config);
            }
        }
    }
    Err(ContentError::Unknown {
        blob,
        why: "an index with no manifest for this device in the content store",
    })
}

/// The blob `digest` names, parsed, with its path.
fn read(blobs: &Path, digest: &str) -> Result<(PathBuf, Value), ContentError> {
    let hex = sha256_digest(digest)
        .map(|d| d[7..].to_owned())
        .ok_or_else(|| ContentError::NotADigest(digest.to_owned()))?;
    let blob = blobs.join(&hex);
    let unread = |e: io::Error| ContentError::Unread {
        blob: blob.clone(),
        why: e.to_string(),
    };
    let data = File::open(&blob)
        .and_then(|file| bounded::read(&file, BLOB_MAX))
        .map_err(unread)?;
    if sha256_hex(&data) != hex {
        return Err(ContentError::Damaged { blob });
    }
    match serde_json::from_slice(&data) {
        Ok(value) => Ok((blob, value)),
        Err(_) => Err(ContentError::Unknown {
            blob,
            why: "not JSON",
        }),
    }
}

/// A manifest's config digest.
fn config(manifest: &Value) -> Option<String> {
    sha256_digest(manifest["config"]["digest"].as_str()?)
}

/// An index's manifests that run on `device`, best first; `None` when it is no index.
fn manifests_for(index: &Value, device: &Platform) -> Option<Vec<String>> {
    let mut ranked: Vec<(u8, String)> = index["manifests"]
        .as_array()?
        .iter()
        .filter_map(|m| {
            let rank = Platform::of(&m["platform"])?.rank(device)?;
            Some((rank, sha256_digest(m["digest"].as_str()?)?))
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    Some(ranked.into_iter().map(|(_, digest)| digest).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A content store in a fresh directory, holding `blobs`; its root and their digests.
    fn store(tag: &str, blobs: &[&[u8]]) -> (PathBuf, Vec<String>) {
        let root = std::env::temp_dir().join(format!("cl-content-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join(BLOBS_SUBDIR)).unwrap();
        let digests = blobs
            .iter()
            .map(|data| {
                fs::write(root.join(BLOBS_SUBDIR).join(sha256_hex(data)), data).unwrap();
                digest(data)
            })
            .collect();
        (root, digests)
    }

    fn manifest(config: &str) -> Vec<u8> {
        serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": config, "size": 2}, "layers": []})
        .to_string()
        .into_bytes()
    }

    fn index(entries: &[(&str, &str)]) -> Vec<u8> {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(digest, arch)| {
                serde_json::json!({"digest": digest, "size": 1,
                    "platform": {"os": "linux", "architecture": arch}})
            })
            .collect();
        serde_json::json!({"schemaVersion": 2, "manifests": manifests})
            .to_string()
            .into_bytes()
    }

    fn digest(data: &[u8]) -> String {
        format!("sha256:{}", sha256_hex(data))
    }

    fn config_digest(n: u8) -> String {
        digest(&[n])
    }

    fn amd64() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    #[test]
    fn a_manifest_names_its_config() {
        let (root, ids) = store("manifest", &[&manifest(&config_digest(1))]);
        assert_eq!(config_of(&root, &ids[0], &amd64()), Ok(config_digest(1)));
    }

    #[test]
    fn an_index_names_the_config_of_the_devices_manifest() {
        let (arm, amd) = (manifest(&config_digest(2)), manifest(&config_digest(3)));
        let idx = index(&[(&digest(&arm), "arm64"), (&digest(&amd), "amd64")]);
        let (root, ids) = store("index", &[&idx, &arm, &amd]);
        assert_eq!(config_of(&root, &ids[0], &amd64()), Ok(config_digest(3)));
    }

    #[test]
    fn an_index_whose_manifest_for_the_device_is_not_there_is_unknown() {
        let arm = manifest(&config_digest(4));
        let idx = index(&[(&digest(b"absent"), "amd64"), (&digest(&arm), "arm64")]);
        let (root, ids) = store("index-absent", &[&idx, &arm]);
        let e = config_of(&root, &ids[0], &amd64()).unwrap_err();
        assert!(e.to_string().contains("no manifest for this device"), "{e}");
    }

    #[test]
    fn a_blob_that_does_not_hash_to_its_name_is_damaged() {
        let (root, ids) = store("damaged", &[&manifest(&config_digest(5))]);
        let path = root.join(BLOBS_SUBDIR).join(&ids[0][7..]);
        fs::write(&path, manifest(&config_digest(6))).unwrap();
        assert_eq!(
            config_of(&root, &ids[0], &amd64()),
            Err(ContentError::Damaged { blob: path })
        );
    }

    #[test]
    fn an_id_that_is_no_digest_is_never_made_a_path() {
        let (root, _) = store("traversal", &[]);
        let e = config_of(&root, "sha256:../../../etc/shadow", &amd64()).unwrap_err();
        assert!(matches!(e, ContentError::NotADigest(_)), "{e}");
    }

    #[test]
    fn a_missing_blob_names_the_path_it_looked_at() {
        let (root, _) = store("missing", &[]);
        let e = config_of(&root, &config_digest(7), &amd64()).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /"), "{e}");
        assert!(e.to_string().contains(&config_digest(7)[7..]), "{e}");
    }
}
