//! What the engine already holds of the layers an archive brings, so that an upload can leave
//! those out (see [`super::store::Delta`]).
//!
//! The engine is asked for its images (`GET /images/json`, podman's `GET /libpod/images/json`)
//! and, for each image not seen before in this run, for its diffIDs (`RootFS.Layers` of
//! `GET /images/{id}/json`, podman's libpod route alike: [`super::api`] reads both); classic docker holds every prefix of
//! an image's layer stack, named by its chain of diffIDs, podman every layer by its diffID.
//! The engine's answers are bounded: each is read up to [`super::ANSWER_MAX`] bytes and parsed
//! within a budget of values, at most [`IMAGES_MAX`] images are asked about, an image of more
//! than [`LAYERS_MAX`] layers is not kept, and the images' layers are kept up to [`CHAINS_MAX`]
//! in all, counted image by image (an image past that is not asked about). What is not kept
//! only makes an upload larger, never wrong.

use std::collections::{HashMap, HashSet};

use super::store::Holds;
use super::{Engine, EngineError};
use crate::image::digest::sha256_hex;

/// Most images whose layers are asked about (one request each, ~1 ms on docker 26). A device
/// holds tens; an engine with more is sent whole archives.
pub(super) const IMAGES_MAX: usize = 1_000;
/// Most layers of one image taken: docker itself refuses images of more than 127 layers on
/// overlay2, so an answer with more is not a real image's.
pub(super) const LAYERS_MAX: usize = 512;
/// Most chains kept in all, counted over every image's list as kept (as many as the layers one
/// archive may describe): ~100 bytes each, so some 3 MiB with the set they make. Counting
/// only the set let an engine of 1,000 images of 512 layers each take the loader to 61 MiB.
const CHAINS_MAX: usize = 16_384;

/// The layers an engine holds, kept across the entries of a run: each image is asked about
/// once, and images gone since are forgotten.
#[derive(Default)]
pub struct Held {
    by_image: HashMap<String, Vec<String>>,
    all: HashSet<String>,
    /// Asking failed once in this run (an engine of more images than are asked about, an
    /// answer that cannot be read): not asked again, every later upload goes whole.
    pub gave_up: bool,
}

impl Held {
    /// Whether the engine holds the layer that `key` (as its store tells layers) names.
    pub fn has(&self, key: &str) -> bool {
        self.all.contains(key)
    }

    /// Whether the engine holds any layer at all.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Unit tests: an engine holding the layers `keys` name.
    #[cfg(test)]
    pub fn of(keys: &[String]) -> Held {
        Held {
            by_image: HashMap::new(),
            all: keys.iter().cloned().collect(),
            gave_up: false,
        }
    }
}

impl Engine {
    /// Brings `held` up to date with the engine's images, as a store that `holds` layers so
    /// tells them.
    pub fn held(&self, holds: Holds, held: &mut Held) -> Result<(), EngineError> {
        let ids = self.ask(self.api.image_ids())?;
        held.by_image.retain(|id, _| ids.contains(id));
        let mut kept: usize = held.by_image.values().map(Vec::len).sum();
        for id in &ids {
            if !held.by_image.contains_key(id) {
                let keys = self.keys_within(holds, id, CHAINS_MAX.saturating_sub(kept))?;
                kept += keys.len();
                held.by_image.insert(id.clone(), keys);
            }
        }
        held.all = held.by_image.values().flatten().cloned().collect();
        Ok(())
    }

    /// The keys of image `id`'s layers as a store that `holds` layers tells them, at most
    /// `room` of them: its bottom ones, each still held whatever is above it. Not asked about
    /// when there is no room.
    fn keys_within(&self, holds: Holds, id: &str, room: usize) -> Result<Vec<String>, EngineError> {
        if room == 0 {
            return Ok(Vec::new());
        }
        let mut keys = holds.keys(self.ask(self.api.diff_ids(id))?);
        keys.truncate(room);
        Ok(keys)
    }
}

/// The chain ids of a stack of layers given bottom up by their diffIDs (OCI image-spec).
pub(crate) fn chains(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        out.push(chain_on(out.last().map(String::as_str), diff_id));
    }
    out
}

/// The chain id of the layer `diff_id` on a stack whose chain id is `below` (none: the bottom
/// layer): its diffID at the bottom, else `sha256(below + " " + diffID)`.
pub(crate) fn chain_on(below: Option<&str>, diff_id: &str) -> String {
    match below {
        None => diff_id.to_owned(),
        Some(below) => format!(
            "sha256:{}",
            sha256_hex(format!("{below} {diff_id}").as_bytes())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_a_stack_of_diff_ids_as_the_image_spec_does() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        // printf '%s %s' "$a" "$b" | sha256sum
        let ab = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c";
        assert_eq!(chains(&[a.clone(), b]), vec![a, ab.to_owned()]);
        assert!(chains(&[]).is_empty());
    }
}
