//! An archive's images as docker-archive items: each image's config and layer files, and its
//! names as docker's RepoTags take them. A delta load plans with them; the manifest.json written
//! for classic docker holds them.

use serde_json::Value;

use crate::image::describe::{attestation, strings, Unresolved, CONTAINERD_NAME, OCI_REF_NAME};
use crate::image::digest::blob;
use crate::image::limits::{within, Invalid, IMAGES_MAX, NESTING_MAX};
use crate::image::platform::{Platform, Unsuited};
use crate::image::walk::Walked;
use crate::input::reference::{canonical, Reference};

/// Why an index's images cannot be told as manifest.json items. An upload fails with it as
/// [`crate::rewrite::Unloadable`], which words it; a delta's plan gives up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemError {
    /// The index names a manifest or config the archive does not hold.
    Missing { digest: String },
    /// An image index has no image for the device's platform, or one name has several.
    Unsuited(Unsuited),
    /// The archive describes more than the loader reads.
    Invalid(Invalid),
}

impl From<Unsuited> for ItemError {
    fn from(unsuited: Unsuited) -> Self {
        ItemError::Unsuited(unsuited)
    }
}

impl From<Invalid> for ItemError {
    fn from(invalid: Invalid) -> Self {
        ItemError::Invalid(invalid)
    }
}

/// Each image of the archive: its config's path and its layer files' paths, from manifest.json,
/// or for an OCI archive from its index as the manifest.json written for classic docker has
/// them (the device's platform chosen). `None` when the archive describes no image.
pub(crate) fn docker_items(
    contents: &Walked,
    device: &Platform,
) -> Option<Vec<(String, Vec<String>)>> {
    if let Some(manifest) = contents.json("manifest.json") {
        let items = manifest.as_array()?.iter().map(|item| {
            let config = item["Config"].as_str().unwrap_or_default().to_owned();
            (config, strings(&item["Layers"]))
        });
        return Some(items.collect());
    }
    let index = contents.json("index.json")?;
    let items = items(contents, &index, device).ok()?;
    Some(items.into_iter().map(|i| (i.config, i.layers)).collect())
}

/// One item of manifest.json.
pub(crate) struct Item {
    pub(crate) config: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) layers: Vec<String>,
}

/// The manifest.json items for the images an engine on `device` gets of the index: the
/// entries [`Walked::index_choice`] keeps, each image index resolved to its manifest for
/// `device`. An error when an entry's image is missing, or an image index has none for the
/// device.
pub(crate) fn items(
    contents: &Walked,
    index: &Value,
    device: &Platform,
) -> Result<Vec<Item>, ItemError> {
    let descriptors = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
    let keep = contents.index_choice(descriptors, device)?;
    let mut items: Vec<Item> = Vec::new();
    for (descriptor, _) in descriptors
        .iter()
        .zip(keep)
        .filter(|(d, k)| *k && !attestation(d))
    {
        let names = repo_tags(descriptor);
        let resolved = contents.image_manifest(descriptor, device, 0);
        let manifest = resolved.map_err(|e| match e {
            Unresolved::Missing(digest) => ItemError::Missing { digest },
            Unresolved::NoPlatform(offered) => {
                let name = names.first().cloned();
                Unsuited::none_fits(name, device, &offered).into()
            }
            Unresolved::TooDeep => ItemError::Invalid(Invalid::TooMany {
                what: "image indexes nested in one another",
                max: NESTING_MAX,
            }),
        })?;
        let config = blob_in(contents, manifest["config"]["digest"].as_str())?;
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| blob_in(contents, l["digest"].as_str()))
            .collect::<Result<_, _>>()?;
        let taken = |t: &String| items.iter().any(|i| i.repo_tags.contains(t));
        let tags: Vec<String> = names.into_iter().filter(|t| !taken(t)).collect();
        match items.iter_mut().find(|i| i.config == config) {
            Some(item) => item.repo_tags.extend(tags),
            None => items.push(Item {
                config,
                repo_tags: tags,
                layers,
            }),
        }
        within(items.len(), IMAGES_MAX, "images")?;
    }
    Ok(items)
}

/// The names a descriptor gives its image, as docker's RepoTags take them (`name:tag`). The
/// OCI ref.name may be a bare tag, which is no name; a digest cannot be a RepoTag.
fn repo_tags(descriptor: &Value) -> Vec<String> {
    let annotations = &descriptor["annotations"];
    let mut tags: Vec<String> = Vec::new();
    for key in [OCI_REF_NAME, CONTAINERD_NAME] {
        let Some(name) = annotations[key].as_str() else {
            continue;
        };
        if !name.contains('/') && !name.contains(':') {
            continue;
        }
        let Ok(reference) = Reference::parse(name) else {
            continue;
        };
        let Some((repo, tag)) = reference.repository_and_tag() else {
            continue;
        };
        let tag = format!("{repo}:{tag}");
        if !tags.iter().any(|t| canonical(t) == canonical(&tag)) {
            tags.push(tag);
        }
    }
    tags
}

/// The path of the blob `digest` names, if the archive holds it.
fn blob_in(contents: &Walked, digest: Option<&str>) -> Result<String, ItemError> {
    blob(digest)
        .filter(|p| contents.size(p).is_some())
        .ok_or_else(|| ItemError::Missing {
            digest: digest.unwrap_or("a config without digest").to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_images_as_docker_reads_repo_tags() {
        let names = |annotations: Value| repo_tags(&json!({ "annotations": annotations }));
        assert_eq!(names(json!({OCI_REF_NAME: "1.0"})), Vec::<String>::new());
        assert_eq!(
            names(json!({OCI_REF_NAME: "example.org/a"})),
            ["example.org/a:latest"]
        );
        assert_eq!(
            names(json!({OCI_REF_NAME: "1.0", CONTAINERD_NAME: "docker.io/library/a:1.0"})),
            ["docker.io/library/a:1.0"]
        );
        assert_eq!(
            names(json!({OCI_REF_NAME: "a:1.0", CONTAINERD_NAME: "docker.io/library/a:1.0"})),
            ["a:1.0"]
        );
        let digest = format!("example.org/a@sha256:{}", "0".repeat(64));
        assert_eq!(names(json!({ OCI_REF_NAME: digest })), Vec::<String>::new());
        assert_eq!(
            names(json!({OCI_REF_NAME: "Upper/Case:1"})),
            Vec::<String>::new()
        );
    }
}
