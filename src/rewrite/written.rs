//! The tar entries written just before the end of the archive, for the store at hand:
//! manifest.json into an OCI archive for classic docker, an OCI layout into a docker-archive
//! for docker's containerd store.

use std::collections::HashSet;

use serde_json::Value;

use crate::engine::store::{Reads, ZstdLayers};
use crate::image::describe::{strings, CONTAINERD_NAME, DOCKER_MANIFEST, OCI_REF_NAME};
use crate::image::digest::{blob, sha256_hex};
use crate::image::items::{items, Item};
use crate::image::platform::Platform;
use crate::image::walk::{Walked, BLOCK};
use crate::input::reference::canonical;

use super::Unloadable;

/// Whether the tar is an OCI archive without the file classic docker reads.
pub(super) fn needs_manifest(contents: &Walked) -> bool {
    contents.size("manifest.json").is_none() && contents.size("index.json").is_some()
}

/// The tar entries to write before the end of the archive, `None` when nothing is to be
/// written: manifest.json into an OCI archive for classic docker, the OCI layout into a
/// docker-archive for the containerd store. An archive's index.json is checked whatever the
/// engine: one without an image for the device (behind an image index, or one name side by
/// side) fails here, before the engine could load a wrong one, and so does one with zstd
/// layers for an engine that does not unpack them, but for those it is spared (sent decoded,
/// or left out: `spared`).
pub(super) fn written(
    contents: &Walked,
    device: &Platform,
    reads: Reads,
    zstd_layers: &ZstdLayers,
    spared: &HashSet<String>,
) -> Result<Option<Vec<u8>>, Unloadable> {
    if reads == Reads::OciLayout && is_docker_archive(contents) {
        return oci_layout(contents, device);
    }
    let Some(index) = contents.json("index.json") else {
        return Ok(None);
    };
    let items = items(contents, &index, device)?;
    if !needs_manifest(contents) || items.is_empty() || reads != Reads::DockerArchive {
        // Nothing to describe: docker refuses the archive in its own words.
        return Ok(None);
    }
    if let ZstdLayers::Unread { version } = zstd_layers {
        if has_zstd_layers(contents, &index, device, spared) {
            return Err(Unloadable::ZstdLayers {
                version: version.clone(),
            });
        }
    }
    Ok(Some(entry(
        "manifest.json",
        manifest_json(&items).as_bytes(),
    )))
}

/// Whether classic docker of a version not known gets an OCI archive whose layers are zstd,
/// which it unpacks only from 23.0 on: the cause to name should it refuse them.
pub(super) fn zstd_unsure(
    contents: &Walked,
    device: &Platform,
    reads: Reads,
    zstd_layers: &ZstdLayers,
) -> bool {
    let classic = reads == Reads::DockerArchive && *zstd_layers == ZstdLayers::Unknown;
    classic
        && needs_manifest(contents)
        && contents
            .json("index.json")
            .is_some_and(|index| has_zstd_layers(contents, &index, device, &HashSet::new()))
}

/// Whether an image the index gives `device` has a layer compressed with zstd
/// (`application/vnd.oci.image.layer.v1.tar+zstd`) whose blob the engine is not spared
/// unpacking (its path in `spared`: sent decoded, or left out).
fn has_zstd_layers(
    contents: &Walked,
    index: &Value,
    device: &Platform,
    spared: &HashSet<String>,
) -> bool {
    let descriptors = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
    descriptors
        .iter()
        .filter_map(|d| contents.image_manifest(d, device, 0).ok())
        .any(|manifest| {
            manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|layer| {
                    let path = blob(layer["digest"].as_str()).and_then(|p| contents.file(&p));
                    !path.is_some_and(|(path, _)| spared.contains(&path))
                })
                .filter_map(|layer| layer["mediaType"].as_str())
                .any(|media_type| media_type.ends_with("+zstd"))
        })
}

/// Whether the tar is a docker-archive without an OCI layout beside it.
fn is_docker_archive(contents: &Walked) -> bool {
    contents.size("manifest.json").is_some() && contents.size("index.json").is_none()
}

/// The OCI layout of a docker-archive, as containerd's importer would describe it if it could
/// not find compressed copies of its layers: per image the device gets ([`Walked::
/// docker_choice`]) the manifest the loader computes ([`Walked::docker_manifest`]), and in
/// index.json a descriptor per name, annotated as containerd annotates the ones it makes.
/// `None` when an image cannot be described (a file it names is missing): containerd then
/// does as it would have done.
fn oci_layout(contents: &Walked, device: &Platform) -> Result<Option<Vec<u8>>, Unloadable> {
    let Some(manifest) = contents.json("manifest.json") else {
        return Ok(None);
    };
    let items = manifest.as_array().map_or(&[][..], Vec::as_slice);
    let chosen = contents.docker_choice(items, device)?;
    let mut blobs: Vec<(String, String)> = Vec::new();
    let mut descriptors: Vec<Value> = Vec::new();
    for (item, names) in items.iter().zip(chosen) {
        let Some(names) = names else {
            continue;
        };
        let Some((digest, json)) = item_manifest(contents, item) else {
            return Ok(None);
        };
        let descriptor = serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": digest,
            "size": json.len(),
        });
        if names.is_empty() {
            descriptors.push(descriptor.clone());
        }
        for name in names {
            let full = canonical(&name);
            let tag = full.rsplit_once(':').map_or("", |(_, t)| t).to_owned();
            let mut named = descriptor.clone();
            named["annotations"] = serde_json::json!({CONTAINERD_NAME: full, OCI_REF_NAME: tag});
            descriptors.push(named);
        }
        blobs.push((digest, json));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descriptors,
    });
    let mut out = Vec::new();
    for (digest, json) in &blobs {
        let path = format!("blobs/sha256/{}", &digest["sha256:".len()..]);
        out.extend(entry(&path, json.as_bytes()));
    }
    out.extend(entry("index.json", index.to_string().as_bytes()));
    out.extend(entry("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
    Ok(Some(out))
}

/// The digest and JSON of the manifest the loader computes for an item of manifest.json.
fn item_manifest(contents: &Walked, item: &Value) -> Option<(String, String)> {
    let config = item["Config"].as_str()?;
    let layers = strings(&item["Layers"]);
    let json = contents.docker_manifest(config, &layers)?;
    let digest = format!("sha256:{}", sha256_hex(json.as_bytes()));
    Some((digest, json))
}

/// A tar entry (header and padded data) for a regular file of `name` (at most 100 bytes).
pub(super) fn entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    // Written as is: the tar crate's path setter weighs 4 KiB of binary for a few fixed names.
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut entry = header.as_bytes().to_vec();
    entry.extend_from_slice(data);
    entry.resize(entry.len().div_ceil(BLOCK) * BLOCK, 0);
    entry
}

/// manifest.json as docker writes it: `Config`, `RepoTags`, `Layers`, in that order.
fn manifest_json(items: &[Item]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                r#"{{"Config":{},"RepoTags":{},"Layers":{}}}"#,
                Value::from(i.config.as_str()),
                Value::from(i.repo_tags.clone()),
                Value::from(i.layers.clone())
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}
