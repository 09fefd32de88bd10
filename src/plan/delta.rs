//! Delta loads: an upload that leaves out the layer files the engine will not read, because
//! its store already holds those layers.
//!
//! Before an upload, where the engine's store takes such an archive ([`Delta`]) and holds any
//! layer at all ([`Held`]), a first pass reads what the archive describes: a plain tar's
//! headers and description files only, stepping over layer bodies; a compressed archive is
//! decoded as far as its first layer file. Where that file is named by its diffID
//! (`<hex>.tar`, as containers/image, so skopeo, `podman save` and ISAR's fetcher write a
//! docker-archive), the upload decides from the names as the files stream by ([`ByName`]) and
//! confirms that against the archive's description before the tar's end, so the archive is
//! decoded once; any other compressed archive is decoded through once more for its
//! description files. The [`Plan`] names the layer files every image of the archive can do
//! without; the upload leaves them out ([`crate::rewrite::Loadable::leaving_out`]) and is
//! otherwise the same tar, so the engine gives the image the archive's id. Whatever goes wrong
//! here (an engine answer that cannot be read, an archive that cannot be walked, a name that
//! told wrong) only means a whole upload.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;

use crate::decode::{self, FramedTar, Frames};
use crate::engine::requests::Requests;
use crate::engine::store::Reads;
use crate::engine::store::{Delta, Holds, Omit};
use crate::engine::{chain_on, EngineError, Held};
use crate::image::describe::strings;
use crate::image::digest::{blob_digest, sha256_digest};
use crate::image::items::docker_items;
use crate::image::platform::Platform;
use crate::image::walk::{walk_at, Extent, WalkError, Walked, Watcher, BLOCK};
use crate::input::format::Format;
use crate::rewrite::{Needed, Omission};

/// The layer files an upload leaves out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Their paths, as [`crate::image::walk::normalize`] writes them.
    pub omit: HashSet<String>,
    /// Their bytes in the tar, data only.
    pub bytes: u64,
    /// Whether each stays as an empty file rather than being left out altogether.
    pub empty: bool,
    /// Whether the engine's listing must show the image after the load ([`Delta::check_listed`]).
    pub check_listed: bool,
}

/// Why an upload goes whole although the store takes less.
#[derive(Debug)]
pub enum Whole {
    /// The engine holds no layer (or none the loader could learn of).
    NothingHeld,
    /// What the engine holds could not be asked.
    Engine(EngineError),
    /// Nor could it earlier in this run.
    GaveUp,
    /// The first pass could not read the archive; the upload says why, as it would have.
    Unread(PassError),
    /// The archive's images need every layer file it has.
    AllNeeded,
    /// The first layer file the first pass met, named by its diffID, is not held: the pass
    /// stopped there rather than decode the rest for nothing.
    BottomNotHeld,
}

impl std::fmt::Display for Whole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Whole::NothingHeld => f.write_str("the engine holds no layer"),
            Whole::Engine(e) => write!(f, "what the engine holds is not known: {e}"),
            Whole::GaveUp => {
                f.write_str("what the engine holds could not be asked earlier in this run")
            }
            Whole::Unread(e) => write!(f, "the first pass over the archive failed: {e}"),
            Whole::AllNeeded => f.write_str("the engine holds none of its layers"),
            Whole::BottomNotHeld => {
                f.write_str("the engine does not hold the first layer it names (read no further)")
            }
        }
    }
}

/// Why the first pass could not read the archive.
#[derive(Debug)]
pub enum PassError {
    /// Reading or decoding the file failed.
    Read(io::Error),
    /// The tar walk stopped: not a tar, or one the loader refuses.
    Walk(WalkError),
}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassError::Read(e) => e.fmt(f),
            PassError::Walk(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PassError {}

/// What an upload leaves out, and how it is told.
pub struct Leaving<'a> {
    /// The files left out, as the tar streams by.
    pub omission: Box<dyn Omission + 'a>,
    /// Their bytes in the tar, where known before the upload (not when told by name).
    pub bytes: Option<u64>,
    /// Whether each stays as an empty file rather than being left out altogether.
    pub empty: bool,
    /// Whether the engine's listing must show the image after the load ([`Delta::check_listed`]).
    pub check_listed: bool,
    /// A layer-framed archive's frames, and the tar's ranges (the data of the files left
    /// out) whose frames the upload steps over rather than decodes.
    pub skip: Option<(Frames, Vec<Range<u64>>)>,
}

/// The archive a first pass reads.
pub struct Opened<'f> {
    pub format: Format,
    pub file: &'f File,
    pub size: u64,
    /// Its frames, where it is a layer-framed zstd archive whose seek table was checked.
    pub frames: Option<Frames>,
}

/// What an upload of the `opened` archive can leave out on this engine, whose store takes
/// it as `delta`; `held` is brought up to date first.
pub fn prepare<'h>(
    engine: &dyn Requests,
    delta: Delta,
    held: &'h mut Held,
    opened: Opened,
    memory_limit: u64,
) -> Result<Leaving<'h>, Whole> {
    if held.gave_up {
        return Err(Whole::GaveUp);
    }
    engine.held(delta.holds, held).map_err(|e| {
        held.gave_up = true;
        Whole::Engine(e)
    })?;
    if held.is_empty() {
        return Err(Whole::NothingHeld);
    }
    let held: &'h Held = held;
    let (contents, framing) = match first_pass(opened, memory_limit, held) {
        Err(e) => return Err(Whole::Unread(e)),
        Ok(Pass::BottomNotHeld) => return Err(Whole::BottomNotHeld),
        Ok(Pass::ByName) => {
            let by_name = ByName::new(delta, engine.reads(), held);
            return Ok(Leaving {
                empty: by_name.empty,
                omission: Box::new(by_name),
                bytes: None,
                check_listed: delta.check_listed,
                skip: None,
            });
        }
        Ok(Pass::Read(contents, framing)) => (contents, framing),
    };
    let plan = plan(&contents, &Platform::device(), delta, engine.reads(), held);
    match plan.omit.is_empty() {
        true => Err(Whole::AllNeeded),
        false => Ok(Leaving {
            bytes: Some(plan.bytes),
            empty: plan.empty,
            check_listed: plan.check_listed,
            skip: framing.map(|(frames, extents)| (frames, holes(&extents, &plan.omit))),
            omission: Box::new(plan.omit),
        }),
    }
}

/// The tar's ranges of the files in `omit` (their data and its padding), sorted and apart.
fn holes(extents: &[Extent], omit: &HashSet<String>) -> Vec<Range<u64>> {
    let mut holes: Vec<Range<u64>> = extents
        .iter()
        .filter(|e| omit.contains(&e.path))
        .map(|e| e.at..e.at + e.size.div_ceil(BLOCK as u64) * BLOCK as u64)
        .collect();
    holes.sort_by_key(|h| h.start);
    holes.dedup_by(|later, earlier| later.start < earlier.end);
    holes
}

/// How far the first pass went.
enum Pass {
    /// Through the archive: what it describes; for a layer-framed one, its frames and where
    /// its large files lie.
    Read(Box<Walked>, Option<(Frames, Vec<Extent>)>),
    /// To a compressed archive's first layer file, named by a diffID the engine does not
    /// hold: decoding the rest, as long as the upload's own decode, would most likely find
    /// nothing to leave out (a layer above a base the engine lacks is seldom held).
    BottomNotHeld,
    /// To a compressed archive's first layer file, named by a diffID the engine holds: the
    /// upload tells the others by their names ([`ByName`]).
    ByName,
}

/// What the archive describes, or how far it had to be read to decide, without moving the
/// file's position. A compressed archive stops at its first layer file where that is named by
/// its diffID (containers/image writes the bottom layer first).
fn first_pass(opened: Opened, memory_limit: u64, held: &Held) -> Result<Pass, PassError> {
    let Opened {
        format,
        file,
        size,
        frames,
    } = opened;
    let mut watcher = Watcher::default();
    let mut framing = None;
    match (format, frames) {
        (Format::Tar, _) => {
            walk_at(&mut &*file, size, &mut watcher, &mut Vec::new()).map_err(PassError::Read)?
        }
        (_, Some(frames)) => {
            let file = file.try_clone().map_err(PassError::Read)?;
            let len = frames.tar_len();
            let mut tar = FramedTar::new(file, frames, Vec::new(), memory_limit);
            let mut extents = Vec::new();
            walk_at(&mut tar, len, &mut watcher, &mut extents).map_err(PassError::Read)?;
            framing = Some((tar.into_frames(), extents));
        }
        _ => {
            let mut decoded =
                decode::reread(format, file, memory_limit).map_err(PassError::Read)?;
            let mut buf = vec![0; decode::READ_BUF];
            loop {
                let n = decoded.read(&mut buf).map_err(PassError::Read)?;
                if n == 0 || watcher.to_next_header().is_none() {
                    break;
                }
                watcher.feed(&buf[..n]);
                if watcher.invalid().is_some() {
                    break;
                }
                // A bottom layer's chain id is its diffID: one look serves every store.
                if let Some(diff_id) = watcher.first_layer().and_then(named_by_diff_id) {
                    return Ok(match held.has(&diff_id) {
                        true => Pass::ByName,
                        false => Pass::BottomNotHeld,
                    });
                }
            }
        }
    }
    let walked = watcher.finish().map_err(PassError::Walk)?;
    Ok(Pass::Read(Box::new(walked), framing))
}

/// Layer files named by their diffIDs (`<hex>.tar`), left out as they stream by where the
/// engine holds the layer: by diffID, or for a store that holds chains, while the files so far
/// stack up to a chain it holds (containers/image writes an image's layers bottom up).
/// Confirmed against [`plan`] once the archive's description has passed.
pub struct ByName<'h> {
    delta: Delta,
    reads: Reads,
    held: &'h Held,
    empty: bool,
    /// The chain of the files left out so far, and whether a file broke it (no later file
    /// is then left out).
    chain: Option<String>,
    broken: bool,
    left_out: Vec<String>,
}

impl<'h> ByName<'h> {
    pub fn new(delta: Delta, reads: Reads, held: &'h Held) -> Self {
        ByName {
            delta,
            reads,
            held,
            // `<hex>.tar` files are a docker-archive's.
            empty: delta.docker_archive == Omit::Empty,
            chain: None,
            broken: false,
            left_out: Vec::new(),
        }
    }
}

impl Omission for ByName<'_> {
    fn omits(&mut self, path: &str) -> bool {
        let Some(diff_id) = named_by_diff_id(path) else {
            return false;
        };
        let held = match self.delta.holds {
            Holds::DiffIds => self.held.has(&diff_id),
            Holds::Chains if self.broken => false,
            Holds::Chains => {
                let chain = chain_on(self.chain.as_deref(), &diff_id);
                self.broken = !self.held.has(&chain);
                self.chain = Some(chain);
                !self.broken
            }
        };
        if held {
            self.left_out.push(path.to_owned());
        }
        held
    }

    fn confirm(&self, contents: &Walked) -> Result<(), Needed> {
        let plan = plan(
            contents,
            &Platform::device(),
            self.delta,
            self.reads,
            self.held,
        );
        if plan.empty != self.empty {
            return Err(Needed::NotADockerArchive);
        }
        match self.left_out.iter().find(|p| !plan.omit.contains(*p)) {
            Some(path) => Err(Needed::NotHeld { path: path.clone() }),
            None => Ok(()),
        }
    }
}

/// `sha256:<hex>` of a layer file named `<hex>.tar` at the archive's top, as containers/image
/// writes a docker-archive's layers (by diffID).
fn named_by_diff_id(path: &str) -> Option<String> {
    sha256_digest(&format!("sha256:{}", path.strip_suffix(".tar")?))
}

/// The layer files that no image of the archive needs from it: each image's layer is held
/// (as the store tells layers) or its file is not left out. A file a hard link points to, or
/// that is also a config, stays: the engine's tar reader makes the link from it, or reads it
/// as the config. A symlink to a file left out may dangle (podman's docker-archives have
/// one per layer, `<v1 id>/layer.tar`, which no engine opens for a layer it holds). Where the
/// store `reads` the archive's OCI layout as it is, a blob is taken for its layer only where
/// it is that layer uncompressed (its digest is the diffID): a compressed blob's layer is known
/// to the store by a digest the loader does not know.
pub fn plan(contents: &Walked, device: &Platform, delta: Delta, reads: Reads, held: &Held) -> Plan {
    let Some(items) = docker_items(contents, device) else {
        return Plan::default();
    };
    let oci = reads != Reads::DockerArchive && contents.size("manifest.json").is_none();
    let stand_in = match oci {
        true => delta.oci_layout,
        false => delta.docker_archive,
    };
    let mut needed: HashSet<String> = HashSet::new();
    let mut spared: HashSet<String> = HashSet::new();
    for (config, layers) in &items {
        needed.extend(contents.file(config).map(|(path, _)| path));
        let diff_ids = contents
            .json(config)
            .map(|c| strings(&c["rootfs"]["diff_ids"]))
            .unwrap_or_default();
        let keys = delta.holds.keys(diff_ids.clone());
        // An image whose layers and diffIDs do not pair up is the engine's to judge, whole.
        let paired = keys.len() == layers.len();
        for (i, layer) in layers.iter().enumerate() {
            let Some((path, _)) = contents.file(layer) else {
                continue;
            };
            let uncompressed = || blob_digest(&path) == diff_ids.get(i).cloned();
            match paired && held.has(&keys[i]) && (!oci || uncompressed()) {
                true => spared.insert(path),
                false => needed.insert(path),
            };
        }
    }
    // Past the walk's budget of lookups, what was found is incomplete: nothing is left out.
    if contents.settled().is_err() {
        return Plan::default();
    }
    let omit: HashSet<String> = spared
        .into_iter()
        .filter(|p| !needed.contains(p) && !contents.hard_linked(p))
        .collect();
    let bytes = omit
        .iter()
        .filter_map(|p| contents.file(p).map(|(_, size)| size))
        .sum();
    Plan {
        omit,
        bytes,
        empty: stand_in == Omit::Empty,
        check_listed: delta.check_listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chains;
    use crate::engine::store::Holds;
    use crate::image::walk::Watching;

    const CLASSIC: Delta = Delta {
        holds: Holds::Chains,
        docker_archive: Omit::Drop,
        oci_layout: Omit::Drop,
        check_listed: false,
    };
    const PODMAN: Delta = Delta {
        holds: Holds::DiffIds,
        docker_archive: Omit::Empty,
        oci_layout: Omit::Drop,
        check_listed: false,
    };

    #[test]
    fn takes_a_top_level_hex_tar_for_a_layer_named_by_its_diff_id() {
        let hex = "ab".repeat(32);
        assert_eq!(
            named_by_diff_id(&format!("{hex}.tar")),
            Some(format!("sha256:{hex}"))
        );
        for other in [
            format!("{hex}/layer.tar"),
            format!("{}.tar", "AB".repeat(32)),
            format!("{}.tar", &hex[1..]),
            format!("{hex}.json"),
        ] {
            assert_eq!(named_by_diff_id(&other), None, "{other}");
        }
    }

    fn digest(data: &[u8]) -> String {
        format!("sha256:{}", crate::image::digest::sha256_hex(data))
    }

    /// A docker-archive of images made of the layers named (each layer's content is its
    /// name), the layer files at `<name>/layer.tar`, and `links` (path, target, kind).
    fn archive(images: &[&[&str]], links: &[(&str, &str, tar::EntryType)]) -> Walked {
        let mut b = tar::Builder::new(Vec::new());
        let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).unwrap();
        };
        let mut added = HashSet::new();
        let mut items = Vec::new();
        for (i, layers) in images.iter().enumerate() {
            for layer in *layers {
                if added.insert(*layer) {
                    add(&mut b, &format!("{layer}/layer.tar"), layer.as_bytes());
                }
            }
            let diff_ids: Vec<String> = layers.iter().map(|l| digest(l.as_bytes())).collect();
            let config = serde_json::json!({"os": "linux", "n": i,
                "rootfs": {"type": "layers", "diff_ids": diff_ids}});
            add(&mut b, &format!("c{i}.json"), config.to_string().as_bytes());
            let files: Vec<String> = layers.iter().map(|l| format!("{l}/layer.tar")).collect();
            items.push(serde_json::json!({"Config": format!("c{i}.json"), "Layers": files}));
        }
        for (path, target, kind) in links {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_size(0);
            b.append_link(&mut h, path, target).unwrap();
        }
        let manifest = serde_json::Value::from(items).to_string();
        add(&mut b, "manifest.json", manifest.as_bytes());
        let tar = b.into_inner().unwrap();
        let mut watching = Watching::new(&tar[..]);
        io::copy(&mut watching, &mut io::sink()).unwrap();
        watching.watcher.finish().unwrap()
    }

    /// A docker-archive of one image of `layers` (each layer's content is its name), the
    /// layer files at the top named `<name>.tar` by `names`, and its description.
    fn named_archive(layers: &[&str], names: &[String]) -> Walked {
        let mut b = tar::Builder::new(Vec::new());
        let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        };
        for (layer, name) in layers.iter().zip(names) {
            add(&mut b, &format!("{name}.tar"), layer.as_bytes());
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l.as_bytes())).collect();
        let config = serde_json::json!({"rootfs": {"diff_ids": diff_ids}}).to_string();
        add(&mut b, "c.json", config.as_bytes());
        let files: Vec<String> = names.iter().map(|n| format!("{n}.tar")).collect();
        let manifest = serde_json::json!([{"Config": "c.json", "Layers": files}]).to_string();
        add(&mut b, "manifest.json", manifest.as_bytes());
        let tar = b.into_inner().unwrap();
        let mut watching = Watching::new(&tar[..]);
        io::copy(&mut watching, &mut io::sink()).unwrap();
        watching.watcher.finish().unwrap()
    }

    fn hex(layer: &str) -> String {
        crate::image::digest::sha256_hex(layer.as_bytes())
    }

    #[test]
    fn by_name_leaves_out_files_while_they_stack_up_to_a_chain_the_engine_holds() {
        // `top` is held on its own, not above `app`: its chain is not.
        let mut keys = stack(&["base"]);
        keys.push(digest(b"top"));
        let held = Held::of(&keys);
        let mut by_name = ByName::new(CLASSIC, Reads::DockerArchive, &held);
        let omits: Vec<bool> = ["base", "app", "top"]
            .iter()
            .map(|l| by_name.omits(&format!("{}.tar", hex(l))))
            .collect();
        assert_eq!(omits, [true, false, false]);
        let contents = named_archive(
            &["base", "app", "top"],
            &[hex("base"), hex("app"), hex("top")],
        );
        assert_eq!(by_name.confirm(&contents), Ok(()));
    }

    #[test]
    fn by_name_leaves_out_a_held_diff_id_anywhere_in_the_stack_as_an_empty_file() {
        let held = Held::of(&[digest(b"top")]);
        let mut by_name = ByName::new(PODMAN, Reads::Either, &held);
        assert!(!by_name.omits(&format!("{}.tar", hex("base"))));
        assert!(by_name.omits(&format!("{}.tar", hex("top"))));
        assert!(by_name.empty);
        let contents = named_archive(&["base", "top"], &[hex("base"), hex("top")]);
        assert_eq!(by_name.confirm(&contents), Ok(()));
    }

    #[test]
    fn by_name_leaves_no_file_out_that_is_not_named_by_a_digest() {
        let held = Held::of(&stack(&["base"]));
        let mut by_name = ByName::new(CLASSIC, Reads::DockerArchive, &held);
        assert!(!by_name.omits(&format!("{}/layer.tar", hex("base"))));
        assert!(!by_name.omits(&format!("{}.json", hex("base"))));
    }

    #[test]
    fn by_name_is_not_confirmed_for_a_file_misnamed_for_a_held_layer() {
        let held = Held::of(&stack(&["base"]));
        let mut by_name = ByName::new(CLASSIC, Reads::DockerArchive, &held);
        // The bottom layer is `other`, its file named as if it were `base`.
        assert!(by_name.omits(&format!("{}.tar", hex("base"))));
        let contents = named_archive(&["other", "app"], &[hex("base"), hex("app")]);
        let why = by_name.confirm(&contents).unwrap_err();
        let path = format!("{}.tar", hex("base"));
        assert_eq!(why, Needed::NotHeld { path });
    }

    /// The chain ids of a stack of layers named bottom up.
    fn stack(layers: &[&str]) -> Vec<String> {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l.as_bytes())).collect();
        chains(&diff_ids)
    }

    fn omitted(contents: &Walked, held: &Held) -> Vec<String> {
        let plan = plan(
            contents,
            &Platform::device(),
            CLASSIC,
            Reads::DockerArchive,
            held,
        );
        let mut omit: Vec<String> = plan.omit.into_iter().collect();
        omit.sort();
        omit
    }

    #[test]
    fn leaves_out_the_layers_whose_chain_is_held_and_sends_the_others() {
        let contents = archive(&[&["base", "app"]], &[]);
        let held = Held::of(&stack(&["base"]));
        assert_eq!(omitted(&contents, &held), ["base/layer.tar"]);
        let plan = plan(
            &contents,
            &Platform::device(),
            CLASSIC,
            Reads::DockerArchive,
            &held,
        );
        assert_eq!(plan.bytes, "base".len() as u64);
        assert!(!plan.empty);
    }

    #[test]
    fn by_diff_id_leaves_empty_a_layer_held_at_another_place_in_its_stack() {
        let contents = archive(&[&["base", "app"]], &[]);
        let held = Held::of(&[digest(b"app")]);
        let plan = plan(&contents, &Platform::device(), PODMAN, Reads::Either, &held);
        let omit: Vec<&String> = plan.omit.iter().collect();
        assert_eq!(omit, ["app/layer.tar"]);
        assert!(
            plan.empty,
            "podman's docker-archive reader needs every layer file"
        );
    }

    #[test]
    fn sends_a_layer_held_only_on_another_stack() {
        // The engine has `app` right above `other`, not above `base`: its chain differs.
        let contents = archive(&[&["base", "app"]], &[]);
        let mut keys = stack(&["other", "app"]);
        keys.remove(0);
        assert!(omitted(&contents, &Held::of(&keys)).is_empty());
    }

    #[test]
    fn sends_a_layer_that_one_image_of_the_archive_needs() {
        // Both images start with `base`; only the second one's stack is held.
        let contents = archive(&[&["x", "base"], &["base"]], &[]);
        let held = Held::of(&stack(&["base"]));
        assert!(omitted(&contents, &held).is_empty());
    }

    #[test]
    fn sends_a_held_layer_a_hard_link_points_to() {
        let link = ("dup/layer.tar", "base/layer.tar", tar::EntryType::Link);
        let contents = archive(&[&["base", "app"]], &[link]);
        let held = Held::of(&stack(&["base"]));
        assert!(omitted(&contents, &held).is_empty());
    }

    #[test]
    fn leaves_out_a_held_layer_a_symlink_points_to() {
        let link = (
            "dup/layer.tar",
            "../base/layer.tar",
            tar::EntryType::Symlink,
        );
        let contents = archive(&[&["base", "app"]], &[link]);
        let held = Held::of(&stack(&["base"]));
        assert_eq!(omitted(&contents, &held), ["base/layer.tar"]);
    }

    #[test]
    fn a_first_pass_over_a_plain_tar_steps_over_the_layers_and_plans_as_well() {
        let (dir, tar, base) = scratch_tar("plain");
        let file = File::open(&tar).unwrap();
        let size = file.metadata().unwrap().len();
        let held = Held::of(&chains(&[base]));
        let opened = Opened {
            format: Format::Tar,
            file: &file,
            size,
            frames: None,
        };
        let Ok(Pass::Read(skipping, None)) = first_pass(opened, 1 << 30, &held) else {
            panic!("a plain tar is read through");
        };
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(omitted(&skipping, &held), ["base/layer.tar"]);
    }

    #[test]
    fn a_first_pass_over_a_framed_archive_steps_over_the_layers_it_leaves_out() {
        let (dir, tar, base) = scratch_tar("framed");
        let tar = std::fs::read(&tar).unwrap();
        let pieces: Vec<&[u8]> = tar.chunks(1 << 20).collect();
        let path = dir.join("a.tar.zst");
        std::fs::write(&path, crate::decode::framed::tests::archive_of(&pieces)).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        let size = file.metadata().unwrap().len();
        let held = Held::of(&chains(&[base]));
        let opened = Opened {
            format: Format::Zstd,
            file: &file,
            size,
            frames: Some(Frames::read(&file, size).unwrap()),
        };
        let Ok(Pass::Read(contents, Some((_, extents)))) = first_pass(opened, 1 << 30, &held)
        else {
            panic!("a framed archive is read through by its frames");
        };
        let omit: HashSet<String> = omitted(&contents, &held).into_iter().collect();
        // base/layer.tar is the tar's first file: its data follows the first header block.
        assert_eq!(
            holes(&extents, &omit),
            vec![Range {
                start: 512,
                end: 512 + (3 << 20)
            }]
        );
    }

    /// A tar file on disk (in a directory of its own) with a large base layer and an image on
    /// it, and the base layer's diffID.
    fn scratch_tar(tag: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("delta-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let big = vec![b'b'; 3 << 20];
        let layers: [(&str, &[u8]); 2] = [("base", &big), ("app", b"app")];
        for (name, data) in layers {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            b.append_data(&mut h, format!("{name}/layer.tar"), data)
                .unwrap();
        }
        let diff_ids = [digest(&big), digest(b"app")];
        let config = serde_json::json!({"rootfs": {"diff_ids": diff_ids}}).to_string();
        let mut h = tar::Header::new_ustar();
        h.set_size(config.len() as u64);
        b.append_data(&mut h, "c.json", config.as_bytes()).unwrap();
        let manifest = r#"[{"Config":"c.json","Layers":["base/layer.tar","app/layer.tar"]}]"#;
        let mut h = tar::Header::new_ustar();
        h.set_size(manifest.len() as u64);
        b.append_data(&mut h, "manifest.json", manifest.as_bytes())
            .unwrap();
        let path = dir.join("a.tar");
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        (dir, path, digest(&big))
    }
}
