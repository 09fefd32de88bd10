//! The description files whose choice depends on the device's platform: manifest.json and
//! index.json, as an engine on the device is to get them.

use std::collections::HashSet;

use serde_json::Value;

use crate::image::describe::{attestation, descriptor_names, strings};
use crate::image::platform::{Platform, Unsuited};
use crate::image::walk::{Entry, Walked, SMALL_MAX};
use crate::input::reference::canonical;

/// The top-level files that say which images an engine loads, and under which names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Description {
    ManifestJson,
    IndexJson,
}

impl Description {
    /// The file a walked entry is, if it is one small enough to be held.
    pub(super) fn of(entry: &Entry) -> Option<Description> {
        let small = entry.file && entry.size <= SMALL_MAX;
        match entry.path.as_str() {
            "manifest.json" if small => Some(Description::ManifestJson),
            "index.json" if small => Some(Description::IndexJson),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Description::ManifestJson => "manifest.json",
            Description::IndexJson => "index.json",
        }
    }

    /// Whether `json` gives one name to several images (or, in index.json, holds several
    /// without a name): then which of them an engine gets depends on the device's platform.
    pub(super) fn offers_a_choice(self, json: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<Value>(json) else {
            return false;
        };
        let names: Vec<Vec<String>> = match self {
            Description::ManifestJson => value
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| strings(&item["RepoTags"]))
                .collect(),
            Description::IndexJson => value["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| !attestation(d))
                .map(descriptor_names)
                .collect(),
        };
        let mut seen = HashSet::new();
        let mut unnamed = 0;
        for image in &names {
            unnamed += usize::from(image.is_empty());
            let own: HashSet<String> = image.iter().map(|n| canonical(n)).collect();
            if own.into_iter().any(|n| !seen.insert(n)) {
                return true;
            }
        }
        self == Description::IndexJson && unnamed > 1
    }

    /// What an engine on `device` is to get of the file `json`: `None` when that is the file
    /// as it is.
    pub(super) fn chosen(
        self,
        contents: &Walked,
        json: &[u8],
        device: &Platform,
    ) -> Result<Option<Vec<u8>>, Unsuited> {
        match self {
            Description::ManifestJson => docker_for_device(contents, json, device),
            Description::IndexJson => for_device(contents, json, device),
        }
    }
}

/// index.json with only the entries an engine on `device` gets ([`Walked::index_choice`]):
/// where it offers one name (or no name) for several platforms side by side, the device's;
/// `None` when nothing is left out.
fn for_device(
    contents: &Walked,
    index: &[u8],
    device: &Platform,
) -> Result<Option<Vec<u8>>, Unsuited> {
    let Ok(mut index) = serde_json::from_slice::<Value>(index) else {
        return Ok(None);
    };
    let Some(manifests) = index["manifests"].as_array() else {
        return Ok(None);
    };
    let keep = contents.index_choice(manifests, device)?;
    if keep.iter().all(|&k| k) {
        return Ok(None);
    }
    let kept: Vec<Value> = manifests
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(m, _)| m.clone())
        .collect();
    index["manifests"] = Value::Array(kept);
    Ok(serde_json::to_vec(&index).ok())
}

/// manifest.json with only the items an engine on `device` gets, under the names they keep
/// ([`Walked::docker_choice`]); `None` when that is all of them as they are.
fn docker_for_device(
    contents: &Walked,
    manifest: &[u8],
    device: &Platform,
) -> Result<Option<Vec<u8>>, Unsuited> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(manifest) else {
        return Ok(None);
    };
    let chosen = contents.docker_choice(&items, device)?;
    let same = |(item, names): &(&Value, &Option<Vec<String>>)| {
        names.as_ref() == Some(&strings(&item["RepoTags"]))
    };
    if items.iter().zip(&chosen).all(|pair| same(&pair)) {
        return Ok(None);
    }
    let kept: Vec<Value> = items
        .iter()
        .zip(&chosen)
        .filter_map(|(item, names)| {
            let mut item = item.clone();
            item["RepoTags"] = Value::from(names.clone()?);
            Some(item)
        })
        .collect();
    Ok(serde_json::to_vec(&kept).ok())
}
