//! What an archive says about itself: the images it holds, from the description files the tar
//! walk kept ([`crate::image::walk`]).
//!
//! After the load the loader knows which references and which image id the archive promised
//! and checks the engine against them; `inspect` reads archives the same way. Both layouts are
//! read: docker-archive (`manifest.json` with `RepoTags`, which `docker save` writes last) and
//! OCI (`index.json` with the `ref.name` annotation). An image has two content digests, and
//! which one an engine calls its id depends on its image store: the sha256 of the image config
//! (classic docker, podman) and the digest of its manifest (docker's containerd image store;
//! see [`Image::target`]).
//!
//! Where an archive offers one name for several platforms (an image index, or the name on
//! several images), it is described as an engine on the device gets it through
//! [`crate::rewrite::Loadable`]: the name on the device's image alone.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;

use serde_json::Value;

use crate::decode::TarAt;
use crate::image::digest::{blob, sha256_digest, sha256_hex};
use crate::image::limits::{
    within, Invalid, IMAGES_MAX, LAYERS_MAX, NAMES_MAX, NAME_LEN_MAX, NESTING_MAX, PLATFORM_LEN_MAX,
};
use crate::image::platform::{best, Best, Platform, Unsuited};
use crate::image::walk::{walk_at, Walked, Watcher, Watching};
use crate::input::reference::{canonical, Reference};

/// The OCI annotation that names an image in an OCI archive.
pub(crate) const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full name, beside a bare tag as ref.name (`docker save`
/// from docker >= 25 writes both).
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The manifest containerd makes up for a docker-archive, and the media types it gives.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Any compressed layer: containerd 1.7 labels zstd layers gzip too (measured).
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// BuildKit's annotation on the attestation manifests it puts in an index beside the images.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// What the archive calls the image: RepoTags, or the OCI ref name. May be empty.
    pub references: Vec<String>,
    /// `sha256:<hex>` of the image config: the id classic docker and podman give the image.
    pub id: Option<String>,
    /// `sha256:<hex>` of the manifest (or index) the image is known by in a content store,
    /// the id docker's containerd image store gives it: the archive's own descriptor in
    /// index.json where it has an OCI layout (containerd prefers that over manifest.json),
    /// else the docker manifest containerd makes up for a docker-archive, computed here the
    /// same way (config and layer digests and sizes, in the JSON that Go's encoder writes).
    pub target: Option<String>,
    pub layer_sizes: Vec<u64>,
    pub(crate) architecture: Option<String>,
    pub(crate) os: Option<String>,
    pub(crate) variant: Option<String>,
    /// An image index with no entry for this device: why, with the platforms it holds (the
    /// image then has no id, platform or layers of its own).
    pub(crate) not_for_device: Option<Unsuited>,
}

impl Image {
    /// The platform its config names.
    pub(crate) fn platform(&self) -> Option<Platform> {
        Some(Platform {
            os: self.os.clone()?,
            architecture: self.architecture.clone()?,
            variant: self.variant.clone(),
        })
    }
}

/// The images of one archive and how they are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub(crate) layout: &'static str,
    pub images: Vec<Image>,
}

/// Which of an archive's images a list entry's reference stands for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match<'a> {
    /// The archive carries the reference.
    Named(&'a Image),
    /// The archive holds one image and does not carry the reference.
    Only(&'a Image),
    /// Several images, none of them under the reference.
    Ambiguous(usize),
    /// No image at all.
    Empty,
}

impl Images {
    /// The image `reference` stands for. Names compare as the engines read them: a name without
    /// registry is on docker.io, one without a path under `library/`, and no tag means `latest`.
    /// Where several images carry the reference (one per platform), the one for the device.
    pub(crate) fn find(&self, reference: &Reference) -> Match<'_> {
        let wanted = canonical(reference.as_str());
        let device = Platform::device();
        let named = self
            .images
            .iter()
            .filter(|i| i.references.iter().any(|r| canonical(r) == wanted))
            .min_by_key(|i| {
                let rank = i.platform().and_then(|p| p.rank(&device));
                rank.unwrap_or(u8::MAX)
            });
        match (named, self.images.as_slice()) {
            (Some(image), _) => Match::Named(image),
            (None, [only]) => Match::Only(only),
            (None, []) => Match::Empty,
            (None, all) => Match::Ambiguous(all.len()),
        }
    }
}

/// Reads a whole decoded archive (to its end, where the decoder checks its checksum) and says
/// which images it holds: `Ok(None)` for a tar that describes none.
/// An archive found [`Invalid`] stops the reading there.
pub(crate) fn read(decoded: impl Read) -> io::Result<Option<Images>> {
    let mut watching = Watching::new(decoded);
    let mut buf = vec![0; 64 << 10];
    while watching.read(&mut buf)? > 0 {
        if let Some(invalid) = watching.watcher.invalid() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, invalid.clone()));
        }
    }
    described(watching.watcher)
}

/// Reads a tar by position, `size` bytes at most (its headers and description files only,
/// [`walk_at`]), and says which images it holds, as [`read`] does.
pub(crate) fn read_at(source: &mut dyn TarAt, size: u64) -> io::Result<Option<Images>> {
    let mut watcher = Watcher::default();
    walk_at(source, size, &mut watcher, &mut Vec::new())?;
    if let Some(invalid) = watcher.invalid() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, invalid.clone()));
    }
    described(watcher)
}

/// The images a finished walk describes.
fn described(watcher: Watcher) -> io::Result<Option<Images>> {
    let invalid = |reason| io::Error::new(io::ErrorKind::InvalidData, reason);
    let contents = watcher.finish().map_err(invalid)?;
    contents
        .describe()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl Walked {
    /// The images described, `None` when the tar is neither a docker-archive nor OCI, or when
    /// it is [`Invalid`] (see [`Walked::describe`]).
    pub fn images(&self) -> Option<Images> {
        self.describe().ok().flatten()
    }

    /// The images described, `None` when the tar is neither a docker-archive nor OCI; an
    /// error when it describes more than the loader reads. Where the archive offers one name
    /// for several platforms, the image this machine's engine gets ([`Walked::describe_for`]).
    pub fn describe(&self) -> Result<Option<Images>, Invalid> {
        self.describe_for(&Platform::device())
    }

    /// The images described as an engine on `device` gets them: where several carry one name,
    /// the one for `device` alone ([`one_per_name`]), and an image index resolved to its
    /// manifest for `device`. Where no single image suits `device`, every image is listed as
    /// the archive has it (the load fails before its end, [`crate::rewrite`]).
    pub(crate) fn describe_for(&self, device: &Platform) -> Result<Option<Images>, Invalid> {
        let described = self.describe_all(device);
        self.settled().and(described)
    }

    fn describe_all(&self, device: &Platform) -> Result<Option<Images>, Invalid> {
        // containerd reads index.json only with an `oci-layout` file beside it, and then
        // ignores manifest.json; docker and podman read manifest.json first.
        let oci_layout = self
            .json("oci-layout")
            .is_some_and(|l| l["imageLayoutVersion"].is_string());
        let index = self.json("index.json");
        if let Some(manifest) = self.json("manifest.json") {
            let index = index.as_deref().filter(|_| oci_layout);
            return Ok(Some(Images {
                layout: "docker-archive",
                images: self.docker_images(&manifest, index, device)?,
            }));
        }
        let Some(index) = index else {
            return Ok(None);
        };
        Ok(Some(Images {
            layout: "oci-archive",
            images: self.oci_images(&index, device)?,
        }))
    }

    /// An image with what its config at `path` says: its id and platform.
    fn image_of_config(&self, path: &str) -> Result<Image, Invalid> {
        let kept = self.kept_file(path);
        let config = self.json(path);
        let text = |key: &str| match config.as_ref().and_then(|c| c[key].as_str()) {
            Some(t) if t.len() > PLATFORM_LEN_MAX => Err(Invalid::TooLong {
                what: "platform (os, architecture or variant) in an image config",
                max: PLATFORM_LEN_MAX,
            }),
            t => Ok(t.map(str::to_owned)),
        };
        Ok(Image {
            references: Vec::new(),
            id: kept.map(|(sha256, _)| format!("sha256:{sha256}")),
            target: None,
            layer_sizes: Vec::new(),
            architecture: text("architecture")?,
            os: text("os")?,
            variant: text("variant")?,
            not_for_device: None,
        })
    }

    /// The image manifest a descriptor stands for on `device`: its blob, or where that is an
    /// image index (one image for several platforms), its entry for `device` ([`Walked::
    /// best_child`]), as the engines pick it. An error when the archive lacks the blob, or no
    /// entry suits `device` (the platforms offered then).
    pub(crate) fn image_manifest(
        &self,
        descriptor: &Value,
        device: &Platform,
        depth: usize,
    ) -> Result<Rc<Value>, Unresolved> {
        let digest = descriptor["digest"].as_str();
        let missing = || Unresolved::Missing(digest.unwrap_or("a manifest without digest").into());
        let manifest = self
            .json(&blob(digest).ok_or_else(missing)?)
            .ok_or_else(missing)?;
        if !manifest["manifests"].is_array() {
            return Ok(manifest);
        }
        if depth >= NESTING_MAX {
            return Err(Unresolved::TooDeep);
        }
        match self.best_child(&manifest, device, depth) {
            Some(child) => self.image_manifest(child, device, depth + 1),
            None => Err(Unresolved::NoPlatform(
                self.children_platforms(&manifest, device, depth),
            )),
        }
    }

    /// The entry of the image index `index` for `device`: the one whose platform suits it
    /// best, the first of equals, as podman and containerd pick it; attestations are no
    /// images. `None` when none suits it, or the index is nested deeper than [`NESTING_MAX`].
    fn best_child<'v>(
        &self,
        index: &'v Value,
        device: &Platform,
        depth: usize,
    ) -> Option<&'v Value> {
        if depth >= NESTING_MAX {
            return None;
        }
        let children = index["manifests"].as_array()?;
        children
            .iter()
            .filter(|c| !attestation(c))
            .filter_map(|c| Some((self.platform_at(c, device, depth + 1)?.rank(device)?, c)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c)
    }

    /// The platforms an image index offers (its entries', as [`Walked::platform_at`] tells
    /// them), for a message.
    fn children_platforms(
        &self,
        index: &Value,
        device: &Platform,
        depth: usize,
    ) -> Vec<Option<Platform>> {
        let children = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
        children
            .iter()
            .filter(|c| !attestation(c))
            .map(|c| self.platform_at(c, device, depth + 1))
            .collect()
    }

    /// The platform of the image a descriptor stands for on `device`: the one the descriptor
    /// names, else its manifest's config's, and for an image index its entry's for `device`.
    fn platform_at(&self, descriptor: &Value, device: &Platform, depth: usize) -> Option<Platform> {
        if !self.spend() {
            return None;
        }
        if let Some(platform) = Platform::of(&descriptor["platform"]) {
            return Some(platform);
        }
        let manifest = self.json(&blob(descriptor["digest"].as_str())?)?;
        if manifest["manifests"].is_array() {
            let child = self.best_child(&manifest, device, depth)?;
            return self.platform_at(child, device, depth + 1);
        }
        Platform::of(&*self.json(&blob(manifest["config"]["digest"].as_str())?)?)
    }

    /// Which items of manifest.json an engine on `device` gets, under which names: `None` for
    /// an item left out ([`one_per_name`], each item's platform from its config).
    pub(crate) fn docker_choice(
        &self,
        items: &[Value],
        device: &Platform,
    ) -> Result<Vec<Option<Vec<String>>>, Unsuited> {
        let images: Vec<(Vec<String>, Option<Platform>)> = items
            .iter()
            .map(|item| {
                let names = strings(&item["RepoTags"]);
                let config = item["Config"].as_str().filter(|_| !names.is_empty());
                let platform = config.and_then(|c| Platform::of(&*self.json(c)?));
                (names, platform)
            })
            .collect();
        one_per_name(&images, device)
    }

    /// Which entries of index.json an engine on `device` gets (`true`: kept): where several
    /// carry one name, the one for `device` ([`one_per_name`]; an entry that loses a name is
    /// left out, names and all); entries without a name, where they are for several
    /// platforms, the one for `device` (podman refuses several, docker's containerd store
    /// loads each). Attestations stay: they are no images.
    pub(crate) fn index_choice(
        &self,
        descriptors: &[Value],
        device: &Platform,
    ) -> Result<Vec<bool>, Unsuited> {
        let images: Vec<(Vec<String>, Option<Platform>)> = descriptors
            .iter()
            .map(|d| match attestation(d) {
                true => (Vec::new(), None),
                false => (descriptor_names(d), self.platform_at(d, device, 0)),
            })
            .collect();
        let kept = one_per_name(&images, device)?;
        let mut keep: Vec<bool> = kept
            .iter()
            .zip(&images)
            .map(|(k, (names, _))| k.as_ref().is_some_and(|k| k.len() == names.len()))
            .collect();
        let unnamed: Vec<usize> = (0..descriptors.len())
            .filter(|&i| images[i].0.is_empty() && !attestation(&descriptors[i]))
            .collect();
        let platforms: Vec<Option<Platform>> =
            unnamed.iter().map(|&i| images[i].1.clone()).collect();
        if platforms.iter().any(|p| *p != platforms[0]) {
            let chosen = match best(&platforms, device) {
                Best::One(i) => i,
                Best::Several(at) => at[0],
                Best::NoneFits => return Err(Unsuited::none_fits(None, device, &platforms)),
            };
            for (j, &i) in unnamed.iter().enumerate() {
                keep[i] = j == chosen;
            }
        }
        Ok(keep)
    }

    /// The images of a docker-archive; `index` is its index.json when it also has an OCI
    /// layout (`docker save` from docker >= 25), which names the manifests.
    fn docker_images(
        &self,
        manifest: &Value,
        index: Option<&Value>,
        device: &Platform,
    ) -> Result<Vec<Image>, Invalid> {
        let items = manifest.as_array().map_or(&[][..], Vec::as_slice);
        let chosen = self.docker_choice(items, device).ok();
        let mut layers_total = 0;
        let mut images = Vec::with_capacity(items.len().min(IMAGES_MAX));
        for (i, item) in items.iter().enumerate() {
            let names_kept = match &chosen {
                Some(chosen) => match &chosen[i] {
                    Some(kept) => kept.clone(),
                    None => continue,
                },
                None => strings(&item["RepoTags"]),
            };
            let config = item["Config"].as_str().unwrap_or("");
            let mut image = self.image_of_config(config)?;
            image.references = names(names_kept)?;
            let layers = strings(&item["Layers"]);
            layers_total += layers.len();
            image.target = match index {
                Some(index) => self.described_by(index, &image.references, image.id.as_deref()),
                None => self.docker_manifest_digest(config, &layers),
            };
            image.layer_sizes = layers.iter().map(|l| self.size(l).unwrap_or(0)).collect();
            images.push(image);
            within(images.len(), IMAGES_MAX, "images")?;
            within(layers_total, LAYERS_MAX, "layers")?;
        }
        Ok(images)
    }

    /// The digest of the index.json descriptor for an image of manifest.json: the one that
    /// carries one of its names, else the one whose manifest has its config.
    fn described_by(&self, index: &Value, names: &[String], id: Option<&str>) -> Option<String> {
        let descriptors = index["manifests"].as_array()?;
        let wanted: Vec<String> = names.iter().map(|n| canonical(n)).collect();
        let named = descriptors.iter().find(|d| {
            descriptor_names(d)
                .iter()
                .any(|n| wanted.contains(&canonical(n)))
        });
        let by_config = || {
            descriptors.iter().find(|d| {
                let manifest = blob(d["digest"].as_str()).and_then(|p| self.json(&p));
                id.is_some() && manifest.is_some_and(|m| m["config"]["digest"].as_str() == id)
            })
        };
        named
            .or_else(by_config)
            .and_then(|d| sha256_digest(d["digest"].as_str()?))
    }

    /// The digest of the manifest containerd writes for a docker-archive image, which has
    /// none of its own (`ImportIndex` in containerd's images/archive): Go's JSON of
    /// `{schemaVersion, mediaType, config, layers}`, each descriptor `{mediaType, digest,
    /// size}`. A plain layer's digest is its diffID, which the engine checks on load; a
    /// compressed one's was hashed as it passed. `None` when a part is missing or odd.
    fn docker_manifest_digest(&self, config_path: &str, layers: &[String]) -> Option<String> {
        let manifest = self.docker_manifest(config_path, layers)?;
        Some(format!("sha256:{}", sha256_hex(manifest.as_bytes())))
    }

    /// That manifest's JSON text; the OCI layout written for the containerd store holds it.
    pub(crate) fn docker_manifest(&self, config_path: &str, layers: &[String]) -> Option<String> {
        let (config_sha256, config_size) = self.kept_file(config_path)?;
        let parsed = self.json(config_path)?;
        let diff_ids = parsed["rootfs"]["diff_ids"].as_array()?;
        let mut descriptors = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let size = self.size(layer)?;
            let (media_type, digest) = match self.compressed_digest(layer) {
                Some(digest) => (DOCKER_LAYER_GZIP, digest.to_owned()),
                None => (DOCKER_LAYER, sha256_digest(diff_ids.get(i)?.as_str()?)?),
            };
            descriptors.push(format!(
                r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#
            ));
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"sha256:{}","size":{}}},"layers":[{}]}}"#,
            config_sha256,
            config_size,
            descriptors.join(",")
        );
        Some(manifest)
    }

    fn oci_images(&self, index: &Value, device: &Platform) -> Result<Vec<Image>, Invalid> {
        let descriptors = index["manifests"].as_array().map_or(&[][..], Vec::as_slice);
        let chosen = self.index_choice(descriptors, device).ok();
        let kept = |i: usize| chosen.as_ref().is_none_or(|c| c[i]);
        let mut layers_total = 0;
        let mut images = Vec::new();
        for (i, descriptor) in descriptors.iter().enumerate() {
            if attestation(descriptor) || !kept(i) {
                continue;
            }
            let (manifest, not_for_device) = match self.image_manifest(descriptor, device, 0) {
                Ok(manifest) => (manifest, None),
                Err(Unresolved::NoPlatform(offered)) => (
                    Rc::default(),
                    Some(Unsuited::none_fits(None, device, &offered)),
                ),
                Err(_) => (Rc::default(), None),
            };
            let mut image = match blob(manifest["config"]["digest"].as_str()) {
                Some(p) => self.image_of_config(&p)?,
                None => self.image_of_config("")?,
            };
            image.references = names(descriptor_names(descriptor))?;
            image.not_for_device = not_for_device;
            // The descriptor itself, an index for several platforms included: what
            // containerd files the image under.
            image.target = descriptor["digest"].as_str().and_then(sha256_digest);
            let layers = manifest["layers"].as_array().map_or(&[][..], Vec::as_slice);
            layers_total += layers.len();
            within(layers_total, LAYERS_MAX, "layers")?;
            image.layer_sizes = layers
                .iter()
                .map(|l| l["size"].as_u64().unwrap_or(0))
                .collect();
            images.push(image);
            within(images.len(), IMAGES_MAX, "images")?;
        }
        Ok(images)
    }
}

/// Why a descriptor stands for no image manifest ([`Walked::image_manifest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// The archive does not hold the manifest or index with this digest.
    Missing(String),
    /// An image index has no entry for the device; the platforms it offers.
    NoPlatform(Vec<Option<Platform>>),
    /// Image indexes nested in one another deeper than [`NESTING_MAX`].
    TooDeep,
}

/// The names each of several images keeps on `device` (`None`: the image is left out), from
/// each image's names and platform. Where several carry one name (one image for several
/// platforms, which every engine would give the last of them), only the one that suits the
/// device keeps it, and an image left without any of its names is left out; an image without
/// names stays as it is. An error for the first name that no single image suits.
fn one_per_name(
    images: &[(Vec<String>, Option<Platform>)],
    device: &Platform,
) -> Result<Vec<Option<Vec<String>>>, Unsuited> {
    // Each name (as the engines read it), with the images that carry it, in their order.
    let mut carriers: Vec<(String, Vec<usize>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, (names, _)) in images.iter().enumerate() {
        for name in names {
            let slot = *at.entry(canonical(name)).or_insert_with(|| {
                carriers.push((name.clone(), Vec::new()));
                carriers.len() - 1
            });
            if carriers[slot].1.last() != Some(&i) {
                carriers[slot].1.push(i);
            }
        }
    }
    let mut lost: HashSet<(usize, String)> = HashSet::new();
    for (name, carrying) in carriers.iter().filter(|(_, c)| c.len() > 1) {
        let platforms: Vec<Option<Platform>> =
            carrying.iter().map(|&i| images[i].1.clone()).collect();
        let winner = match best(&platforms, device) {
            Best::One(winner) => winner,
            Best::NoneFits => {
                return Err(Unsuited::none_fits(Some(name.clone()), device, &platforms))
            }
            Best::Several(at) => {
                return Err(Unsuited::Several {
                    name: name.clone(),
                    device: device.clone(),
                    count: at.len(),
                })
            }
        };
        let key = canonical(name);
        for (j, &i) in carrying.iter().enumerate() {
            if j != winner {
                lost.insert((i, key.clone()));
            }
        }
    }
    let kept = images.iter().enumerate().map(|(i, (names, _))| {
        let kept: Vec<String> = names
            .iter()
            .filter(|n| !lost.contains(&(i, canonical(n))))
            .cloned()
            .collect();
        (names.is_empty() || !kept.is_empty()).then_some(kept)
    });
    Ok(kept.collect())
}

/// The names of one image, within [`NAMES_MAX`] and [`NAME_LEN_MAX`].
fn names(names: Vec<String>) -> Result<Vec<String>, Invalid> {
    within(names.len(), NAMES_MAX, "names for one image")?;
    if names.iter().any(|n| n.len() > NAME_LEN_MAX) {
        return Err(Invalid::TooLong {
            what: "image name",
            max: NAME_LEN_MAX,
        });
    }
    Ok(names)
}

/// Whether an index entry is a build attestation (BuildKit puts them beside the images, for
/// platform unknown/unknown), not an image.
pub(crate) fn attestation(descriptor: &Value) -> bool {
    descriptor["annotations"][REFERENCE_TYPE].is_string()
        || descriptor["platform"]["architecture"] == "unknown"
}

/// The names an index.json descriptor gives its image: containerd's full name, and the OCI
/// ref.name where it is a full name too (the spec lets it be a bare tag, which is no reference).
pub(crate) fn descriptor_names(descriptor: &Value) -> Vec<String> {
    let annotations = &descriptor["annotations"];
    let mut names: Vec<String> = Vec::new();
    for key in [CONTAINERD_NAME, OCI_REF_NAME] {
        let Some(name) = annotations[key].as_str() else {
            continue;
        };
        let full = name.contains('/') || name.contains(':');
        if full && !names.iter().any(|n| canonical(n) == canonical(name)) {
            names.push(name.to_owned());
        }
    }
    names
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use container_loader_testkit::tar_of;

    use crate::image::limits::{ENTRIES_MAX, PATH_MAX, VALUES_MAX};
    use crate::image::walk::{json_values, Watcher, BLOCK, SINGLE_FILES, SMALL_MAX};

    /// Feeds `tar` in pieces of `step` bytes, as reads of any size would.
    fn watch(tar: &[u8], step: usize) -> Result<Walked, String> {
        let mut w = Watcher::default();
        for piece in tar.chunks(step) {
            w.feed(piece);
        }
        w.finish().map_err(|e| e.to_string())
    }

    fn docker_archive(tags: &str) -> (Vec<u8>, String) {
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let id = sha256_hex(config);
        let manifest =
            format!(r#"[{{"Config":"{id}.json","RepoTags":[{tags}],"Layers":["l1/layer.tar"]}}]"#);
        let tar = tar_of(&[
            ("l1/layer.tar", &[7u8; 3000]),
            (&format!("{id}.json"), config),
            ("manifest.json", manifest.as_bytes()),
        ]);
        (tar, id)
    }

    #[test]
    fn reads_a_docker_archive_whose_manifest_comes_last_in_pieces_of_any_size() {
        let (tar, id) = docker_archive(r#""debian:bookworm""#);
        for step in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(images.layout, "docker-archive");
            assert_eq!(
                images.images,
                [Image {
                    references: vec!["debian:bookworm".into()],
                    id: Some(format!("sha256:{id}")),
                    target: None,
                    layer_sizes: vec![3000],
                    architecture: Some("arm64".into()),
                    os: Some("linux".into()),
                    variant: None,
                    not_for_device: None,
                }],
                "fed {step} bytes at a time"
            );
        }
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
        let images = watch(&tar, 100).unwrap().images().unwrap();
        assert_eq!(images.layout, "oci-archive");
        assert_eq!(images.images[0].references, ["localhost/a/b:1"]);
        assert!(images.images[1].references.is_empty());
        assert_eq!(images.images[0].id, Some(format!("sha256:{cfg}")));
        assert_eq!(images.images[0].layer_sizes, [123, 456]);
        assert_eq!(images.images[0].target, Some(format!("sha256:{man}")));
    }

    /// An archive whose config has one layer, an empty tar (1024 zero bytes), sent as `layer`.
    fn one_empty_layer(name: &str, layer: &[u8]) -> Vec<u8> {
        let diff_id = format!("sha256:{}", sha256_hex(&[0u8; 1024]));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let cfg = sha256_hex(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{cfg}.json","RepoTags":["{name}"],"Layers":["l/layer.tar"]}}]"#
        );
        tar_of(&[
            ("l/layer.tar", layer),
            (&format!("{cfg}.json"), config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ])
    }

    // The expected digests are what dockerd 26.1.5 with the containerd image store
    // (containerd 1.7.24) answered as `Id` after loading these very archives.
    #[test]
    fn computes_the_manifest_digest_containerd_gives_a_docker_archive() {
        let tar = one_empty_layer("example.org/kat/plain:1", &[0u8; 1024]);
        for step in [1, 100, 512, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(
                images.images[0].target.as_deref(),
                Some("sha256:88cffdde6bcf3a0868488d5fc1846a04e33672edbfc6383cfc56e0df6dbecef4"),
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn hashes_a_compressed_layer_for_the_manifest_digest() {
        // gzip of the same empty tar (python's gzip.compress(mtime=0)).
        let gzip = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0x18, 0x05,
            0xa3, 0x60, 0x14, 0x8c, 0x54, 0x00, 0x00, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00,
            0x00,
        ];
        let tar = one_empty_layer("example.org/kat/gz:1", &gzip);
        for step in [1, 3, tar.len()] {
            let images = watch(&tar, step).unwrap().images().unwrap();
            assert_eq!(
                images.images[0].target.as_deref(),
                Some("sha256:f449af74e4d610f9d89d6014820f50cf3758c3f27646f5ce23dff155c2df2c14"),
                "fed {step} bytes at a time"
            );
        }
    }

    #[test]
    fn takes_the_index_descriptor_as_target_where_an_oci_layout_sits_beside_manifest_json() {
        let (docker, id) = docker_archive(r#""example.org/both:1""#);
        let index = format!(
            r#"{{"manifests":[{{"digest":"sha256:{}","annotations":{{"{CONTAINERD_NAME}":"example.org/both:1","{OCI_REF_NAME}":"1"}}}}]}}"#,
            "e".repeat(64)
        );
        let mut entries = tar::Archive::new(&docker[..]);
        let mut files: Vec<(String, Vec<u8>)> = entries
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, data)
            })
            .collect();
        files.push(("index.json".into(), index.into_bytes()));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let images = watch(&tar_of(&borrowed), 512).unwrap().images().unwrap();
        assert_eq!(images.layout, "docker-archive");
        let image = &images.images[0];
        assert_eq!(image.id, Some(format!("sha256:{id}")));
        assert_eq!(image.target, Some(format!("sha256:{}", "e".repeat(64))));
    }

    /// An OCI layout offering `name` for the device's platform and for one no device has,
    /// either as one nested image index or as two manifests side by side in index.json.
    /// Returns the tar, the device's config digest and the top descriptor's digest.
    fn two_platforms(name: &str, nested: bool) -> (Vec<u8>, String, String) {
        let device = Platform::device();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut descriptors = Vec::new();
        let mut device_config = String::new();
        for (os, arch) in [
            ("plan9", "mips"),
            (device.os.as_str(), device.architecture.as_str()),
        ] {
            let config = format!(r#"{{"architecture":"{arch}","os":"{os}"}}"#);
            let cfg = sha256_hex(config.as_bytes());
            if os == device.os {
                device_config = format!("sha256:{cfg}");
            }
            let manifest = format!(r#"{{"config":{{"digest":"sha256:{cfg}"}},"layers":[]}}"#);
            let man = sha256_hex(manifest.as_bytes());
            files.push((format!("blobs/sha256/{cfg}"), config.into_bytes()));
            files.push((format!("blobs/sha256/{man}"), manifest.into_bytes()));
            descriptors.push(format!(
                r#"{{"digest":"sha256:{man}","platform":{{"os":"{os}","architecture":"{arch}"}},"annotations":{{"{OCI_REF_NAME}":"{name}"}}}}"#
            ));
        }
        let top = if nested {
            let inner = format!(r#"{{"manifests":[{}]}}"#, descriptors.join(","));
            let digest = sha256_hex(inner.as_bytes());
            files.push((format!("blobs/sha256/{digest}"), inner.into_bytes()));
            format!(r#"{{"digest":"sha256:{digest}","annotations":{{"{OCI_REF_NAME}":"{name}"}}}}"#)
        } else {
            descriptors.join(",")
        };
        let index = format!(r#"{{"manifests":[{top}]}}"#);
        let target = serde_json::from_str::<Value>(&index).unwrap()["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        files.push(("index.json".into(), index.into_bytes()));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        (tar_of(&borrowed), device_config, target)
    }

    #[test]
    fn takes_the_devices_image_from_an_index_for_several_platforms() {
        let (tar, device_config, index) = two_platforms("example.org/multi:1", true);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        let image = &images.images[0];
        assert_eq!(image.id.as_deref(), Some(device_config.as_str()));
        assert_eq!(
            image.target.as_deref(),
            Some(index.as_str()),
            "the index itself"
        );
        assert_eq!(image.platform(), Some(Platform::device()));
    }

    #[test]
    fn describes_only_the_devices_image_where_index_json_gives_one_name_to_several() {
        let (tar, device_config, _) = two_platforms("example.org/multi:1", false);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 1, "the other is not loaded");
        let wanted = Reference::parse("example.org/multi:1").unwrap();
        match images.find(&wanted) {
            Match::Named(image) => assert_eq!(image.id.as_deref(), Some(device_config.as_str())),
            other => panic!("{other:?}"),
        }
    }

    /// A docker-archive of one image per `(platform, names)` (`os/arch`), each with a config
    /// of its own; and the images' ids.
    fn docker_archive_of(images: &[(&str, &[&str])]) -> (Vec<u8>, Vec<String>) {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut items = Vec::new();
        let mut ids = Vec::new();
        for (i, (platform, names)) in images.iter().enumerate() {
            let (os, arch) = platform.split_once('/').unwrap();
            let config = format!(r#"{{"architecture":"{arch}","os":"{os}","n":{i}}}"#);
            let id = sha256_hex(config.as_bytes());
            items.push(
                serde_json::json!({"Config": format!("{id}.json"), "RepoTags": names,
                "Layers": []}),
            );
            files.push((format!("{id}.json"), config.into_bytes()));
            ids.push(format!("sha256:{id}"));
        }
        files.push((
            "manifest.json".into(),
            Value::from(items).to_string().into_bytes(),
        ));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        (tar_of(&borrowed), ids)
    }

    /// Another platform than the device's.
    fn foreign() -> &'static str {
        match Platform::device().architecture.as_str() {
            "arm64" => "linux/amd64",
            _ => "linux/arm64",
        }
    }

    #[test]
    fn describes_only_the_devices_image_where_manifest_json_gives_one_name_to_several() {
        let device = Platform::device().to_string();
        let (tar, ids) = docker_archive_of(&[
            (&device, &["example.org/a:1"]),
            (foreign(), &["example.org/a:1"]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 1, "{images:?}");
        assert_eq!(images.images[0].id.as_ref(), Some(&ids[0]));
    }

    #[test]
    fn keeps_the_other_names_of_an_image_that_loses_one_to_the_devices() {
        let device = Platform::device().to_string();
        let (tar, ids) = docker_archive_of(&[
            (foreign(), &["a:1", "example.org/b:1"]),
            (&device, &["docker.io/library/a:1", "a:1"]),
            (foreign(), &[]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        let described: Vec<(&str, Vec<String>)> = images
            .images
            .iter()
            .map(|i| (i.id.as_deref().unwrap(), i.references.clone()))
            .collect();
        assert_eq!(
            described,
            [
                (ids[0].as_str(), vec!["example.org/b:1".to_owned()]),
                (
                    ids[1].as_str(),
                    vec!["docker.io/library/a:1".into(), "a:1".into()]
                ),
                (ids[2].as_str(), vec![]),
            ]
        );
    }

    #[test]
    fn lists_every_image_where_one_name_has_none_for_the_device() {
        let (tar, _) = docker_archive_of(&[
            ("plan9/mips", &["example.org/a:1"]),
            (foreign(), &["example.org/a:1"]),
        ]);
        let images = watch(&tar, 512).unwrap().images().unwrap();
        assert_eq!(images.images.len(), 2, "the load fails; inspect shows them");
    }

    #[test]
    fn reads_long_names_from_gnu_and_pax_headers() {
        let long = format!("{}/manifest.json", "d".repeat(120));
        let mut gnu = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        gnu.append_data(&mut h, &long, &b"[]"[..]).unwrap();
        let gnu = gnu.into_inner().unwrap();
        let contents = watch(&gnu, 64).unwrap();
        assert_eq!(
            contents.kept.get(&long).map(|k| k.bytes.as_slice()),
            Some(&b"[]"[..])
        );

        let body = format!(" path={long}\n");
        let record = format!("{}{body}", body.len() + 3);
        let mut pax = tar::Builder::new(Vec::new());
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_size(record.len() as u64);
        x.set_path("PaxHeaders/short.json").unwrap();
        x.set_cksum();
        pax.append(&x, record.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_path("short.json").unwrap();
        h.set_cksum();
        pax.append(&h, &b"[]"[..]).unwrap();
        let pax = pax.into_inner().unwrap();
        let contents = watch(&pax, 64).unwrap();
        assert_eq!(
            contents.kept.get(&long).map(|k| k.bytes.as_slice()),
            Some(&b"[]"[..])
        );
        assert!(!contents.kept.contains_key("short.json"));
    }

    #[test]
    fn refuses_a_manifest_json_held_twice_under_another_spelling() {
        for spelling in [
            "x/../manifest.json",
            "./manifest.json",
            ".//manifest.json",
            "/manifest.json",
        ] {
            let tar = tar_of(&[("manifest.json", b"[]"), (spelling, b"[]")]);
            assert_eq!(
                refused(&tar),
                Invalid::Twice("manifest.json".to_owned()).to_string(),
                "{spelling}"
            );
        }
    }

    #[test]
    fn says_when_a_tar_holds_no_image() {
        let tar = tar_of(&[("etc/hostname", b"x")]);
        assert!(watch(&tar, 512).unwrap().images().is_none());
    }

    #[test]
    fn refuses_what_is_not_a_tar_and_a_tar_cut_inside_an_entry() {
        let noise: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        assert!(watch(&noise, 300).unwrap_err().contains("not a tar"));
        let (tar, _) = docker_archive("");
        let cut = &tar[..BLOCK + 1000];
        assert!(watch(cut, 300)
            .unwrap_err()
            .contains("ends inside an entry"));
    }

    #[test]
    fn finds_the_image_a_reference_stands_for() {
        let image = |refs: &[&str]| Image {
            references: refs.iter().map(|r| r.to_string()).collect(),
            id: None,
            target: None,
            layer_sizes: vec![],
            architecture: None,
            os: None,
            variant: None,
            not_for_device: None,
        };
        let r = |s: &str| Reference::parse(s).unwrap();
        let one = Images {
            layout: "docker-archive",
            images: vec![image(&["debian:bookworm"])],
        };
        assert_eq!(
            one.find(&r("docker.io/library/debian:bookworm")),
            Match::Named(&one.images[0])
        );
        assert_eq!(one.find(&r("debian:trixie")), Match::Only(&one.images[0]));
        let two = Images {
            layout: "docker-archive",
            images: vec![image(&["a:1"]), image(&["quay.io/b/c"])],
        };
        assert_eq!(
            two.find(&r("quay.io/b/c:latest")),
            Match::Named(&two.images[1])
        );
        assert_eq!(two.find(&r("d:1")), Match::Ambiguous(2));
        let none = Images {
            layout: "oci-archive",
            images: vec![],
        };
        assert_eq!(none.find(&r("d:1")), Match::Empty);
    }

    /// The reason `tar` is refused, fed in pieces of 4096 bytes.
    fn refused(tar: &[u8]) -> String {
        match watch(tar, 4096) {
            Err(reason) => reason,
            Ok(contents) => match contents.describe() {
                Err(invalid) => invalid.to_string(),
                Ok(images) => panic!("accepted: {images:?}"),
            },
        }
    }

    /// A docker-archive whose manifest.json has `count` items, all naming one `config`.
    fn one_config_named(count: usize, config: &[u8]) -> Vec<u8> {
        let item = r#"{"Config":"c.json","RepoTags":[],"Layers":[]}"#;
        let manifest = format!("[{}]", vec![item; count].join(","));
        tar_of(&[("c.json", config), ("manifest.json", manifest.as_bytes())])
    }

    #[test]
    fn reads_a_config_once_however_many_images_name_it() {
        // 1,000 images of one 1 MiB config took 2 GB and minutes: each copied and hashed it.
        let filler = "a".repeat(SMALL_MAX as usize - 100);
        let config = format!(r#"{{"architecture":"amd64","os":"linux","x":"{filler}"}}"#);
        let tar = one_config_named(IMAGES_MAX, config.as_bytes());
        let started = std::time::Instant::now();
        let images = watch(&tar, 4096).unwrap().describe().unwrap().unwrap();
        assert_eq!(images.images.len(), IMAGES_MAX);
        let id = format!("sha256:{}", sha256_hex(config.as_bytes()));
        assert!(images.images.iter().all(|i| i.id.as_ref() == Some(&id)));
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }

    #[test]
    fn refuses_a_config_of_a_million_short_strings_before_parsing_it() {
        let strings = vec![r#""a""#; 260_000].join(",");
        let config = format!(r#"{{"os":"linux","x":[{strings}]}}"#);
        let tar = one_config_named(1, config.as_bytes());
        assert!(refused(&tar).contains("JSON values in its description files"));
    }

    #[test]
    fn refuses_an_archive_describing_more_than_a_thousand_images() {
        let tar = one_config_named(IMAGES_MAX + 1, br#"{"os":"linux"}"#);
        assert!(refused(&tar).starts_with("describes more than 1000 images"));
    }

    #[test]
    fn refuses_a_platform_name_longer_than_any_real_one() {
        let config = format!(r#"{{"architecture":"{}","os":"linux"}}"#, "a".repeat(65));
        let tar = one_config_named(1, config.as_bytes());
        assert!(refused(&tar).contains("platform (os, architecture or variant)"));
    }

    #[test]
    fn refuses_too_many_names_for_one_image_and_too_long_a_name() {
        let many = vec![r#""a:1""#; NAMES_MAX + 1].join(",");
        let (tar, _) = docker_archive(&many);
        assert!(refused(&tar).contains("more than 64 names for one image"));
        let (tar, _) = docker_archive(&format!(r#""{}""#, "a".repeat(NAME_LEN_MAX + 1)));
        assert!(refused(&tar).contains("image name longer than 600 bytes"));
    }

    #[test]
    fn refuses_a_manifest_json_index_json_or_oci_layout_held_twice() {
        for file in SINGLE_FILES {
            let tar = tar_of(&[(file, b"[]"), ("l/layer.tar", &[1; 10]), (file, b"{}")]);
            assert_eq!(
                refused(&tar),
                Invalid::Twice(file.to_owned()).to_string(),
                "{file}"
            );
        }
    }

    #[test]
    fn refuses_a_config_or_blob_held_twice() {
        let (tar, id) = docker_archive(r#""a:1""#);
        let config = format!("{id}.json");
        let twice = tar_of(&[(&config, b"{}"), ("x", b"y"), (&config, b"{}")]);
        assert!(refused(&twice).starts_with(&format!("holds {config} twice")));
        let blob = format!("blobs/sha256/{id}");
        let twice = tar_of(&[(&blob, b"{}"), (&blob, b"{}")]);
        assert!(refused(&twice).starts_with(&format!("holds {blob} twice")));
        assert!(watch(&tar, 512).is_ok(), "once is fine");
    }

    #[test]
    fn refuses_a_tar_of_more_files_than_it_tracks_as_soon_as_it_sees_one_more() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..=ENTRIES_MAX {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            b.append_data(&mut h, format!("f{i}"), &[][..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        assert!(refused(&tar).starts_with("describes more than 16384 files and links"));
    }

    #[test]
    fn refuses_a_file_name_longer_than_any_image_archive_has() {
        let long = "p".repeat(PATH_MAX + 1);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, &long, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(refused(&tar).starts_with("has a file name longer than 256 bytes"));
    }

    #[test]
    fn keeps_only_json_of_the_files_that_may_describe_images() {
        let gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3];
        let tar = tar_of(&[
            ("blobs/sha256/aa", &gzip),
            ("blobs/sha256/bb", b"  \n{\"a\":1}"),
            ("notes.json", b"plain text"),
        ]);
        let contents = watch(&tar, 3).unwrap();
        let kept: Vec<&String> = contents.kept.keys().collect();
        assert_eq!(kept, ["blobs/sha256/bb"]);
        assert_eq!(contents.size("blobs/sha256/aa"), Some(10));
    }

    #[test]
    fn refuses_more_description_json_than_it_keeps() {
        let big = format!("[{}]", "0".repeat(SMALL_MAX as usize - 2));
        let names: Vec<String> = (0..5).map(|i| format!("c{i}.json")).collect();
        let files: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), big.as_bytes())).collect();
        assert!(
            refused(&tar_of(&files)).starts_with("describes more than 4 MiB of description files")
        );
    }

    #[test]
    fn refuses_description_files_of_more_json_values_than_it_parses() {
        let values = format!("[{}0]", "0,".repeat(VALUES_MAX));
        let tar = tar_of(&[("c.json", values.as_bytes())]);
        assert!(refused(&tar).contains("JSON values"));
        assert_eq!(json_values(br#"{"a":[1,2],"b":"x,:[{"}"#), 7);
    }

    #[test]
    fn refuses_image_indexes_naming_each_other_over_and_over() {
        // A chain of four indexes, each naming the next 1,000 times, all for the device: each
        // is parsed once, but 1,000 images each weigh 4,000 entries. The time bound is a guard
        // against unbounded work (the debug build under load), not a measure of speed.
        let device = Platform::device();
        let platform = format!(
            r#""platform":{{"os":"{}","architecture":"{}"}}"#,
            device.os, device.architecture
        );
        let mut next = format!("sha256:{}", "0".repeat(64));
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for _ in 0..NESTING_MAX {
            let entry = format!(r#"{{"digest":"{next}",{platform}}}"#);
            let index = format!(
                r#"{{"manifests":[{}]}}"#,
                vec![entry.as_str(); 1000].join(",")
            );
            next = format!("sha256:{}", sha256_hex(index.as_bytes()));
            files.push((
                format!("blobs/{}", next.replace(':', "/")),
                index.into_bytes(),
            ));
        }
        let entry = format!(r#"{{"digest":"{next}"}}"#);
        let index = format!(
            r#"{{"manifests":[{}]}}"#,
            vec![entry.as_str(); 1000].join(",")
        );
        files.push(("index.json".into(), index.into_bytes()));
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let started = std::time::Instant::now();
        let reason = refused(&tar_of(&borrowed));
        assert!(reason.contains("more than 100000 references to its description files"));
        assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    }
}
