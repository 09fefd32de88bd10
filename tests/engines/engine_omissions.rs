//! Which reduced uploads each real engine accepts: an archive of an image on base layers the
//! engine already holds, with the base's layer files left out (no tar entry) or left empty
//! (a zero-size entry in their place), in each layout the loader sends (a docker-archive, the
//! same with the OCI layout the loader appends for docker's containerd image store, an OCI
//! archive, with the manifest.json the loader appends for classic docker; plain or gzip layer
//! blobs). And what each engine answers, and leaves behind, when the base is gone by the time
//! such an upload arrives. A delta load relies on these facts; an engine upgrade that changes
//! one fails here.
//!
//! In short: classic docker skips a layer file whose chain it has; podman's docker-archive
//! reader needs every layer entry (an empty one does) and matches held layers by diffID, its
//! OCI reader needs none it holds but matches them by blob digest; the containerd store needs
//! the blob the manifest names in its content store, and loads an image without it (from a
//! snapshot) only to leave it out of its listing.

use std::fs;
use std::path::Path;

use crate::common::*;

/// How an archive describes its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `docker save` (before docker 25) / `podman save --format docker-archive`: manifest.json,
    /// `<diffID>/layer.tar`, `<config digest>.json`.
    DockerArchive,
    /// The docker-archive with the OCI layout the loader writes at its end for docker's
    /// containerd image store (`oci-layout`, `index.json`, the manifest blob).
    DockerArchivePlusOci,
    /// An OCI archive (`index.json`, `blobs/sha256/...`), uncompressed layers.
    Oci,
    /// The OCI archive with the manifest.json the loader writes at its end for classic docker;
    /// also how `docker save` of docker >= 25 lays an image out.
    OciWithManifestJson,
    /// An OCI archive whose layer blobs are gzip-compressed (as pulled or saved compressed).
    OciGzip,
    /// `OciGzip` made a docker-archive: `index.json` and `oci-layout` left out, a manifest.json
    /// naming the config and the gzip blobs under `blobs/sha256/` written instead.
    GzipBlobsUnderManifestJson,
}

impl Layout {
    fn is_oci(self) -> bool {
        matches!(
            self,
            Layout::Oci | Layout::OciWithManifestJson | Layout::OciGzip
        )
    }
}

/// What becomes of the held layers' files in the upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Omission {
    /// Every file as it is.
    Whole,
    /// No tar entry at all.
    Dropped,
    /// The entry is there, with no content (size 0).
    Empty,
}

/// An image built in memory from layer tars.
struct Image {
    /// What the archive names it (docker-archive RepoTags, OCI `ref.name`).
    reference: String,
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    config: String,
    /// The config's digest (`<hex>`): classic docker's and podman's image id.
    config_digest: String,
}

impl Image {
    fn new(reference: &str, layers: Vec<Vec<u8>>) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
        let config = serde_json::json!({
            "architecture": arch(),
            "os": "linux",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>(),
            },
        })
        .to_string();
        Image {
            reference: reference.to_owned(),
            config_digest: sha256_hex(config.as_bytes()),
            layers,
            diff_ids,
            config,
        }
    }

    /// The manifest of this image as the layout describes it: a docker schema 2 manifest for
    /// the OCI layout appended to a docker-archive (as the loader writes it), an OCI manifest
    /// for an OCI archive.
    fn manifest(&self, layout: Layout) -> String {
        let (manifest_type, config_type, layer_type) = match layout {
            Layout::OciGzip | Layout::GzipBlobsUnderManifestJson => (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            Layout::Oci | Layout::OciWithManifestJson => (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            ),
            _ => (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar",
            ),
        };
        let layers: Vec<String> = self
            .blobs(layout)
            .iter()
            .map(|(d, l)| {
                format!(
                    r#"{{"mediaType":"{layer_type}","digest":"sha256:{d}","size":{}}}"#,
                    l.len()
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{{"mediaType":"{config_type}","digest":"sha256:{}","size":{}}},"layers":[{}]}}"#,
            self.config_digest,
            self.config.len(),
            layers.join(",")
        )
    }

    /// The layer blobs as `layout` carries them: (digest hex, bytes).
    fn blobs(&self, layout: Layout) -> Vec<(String, Vec<u8>)> {
        self.layers
            .iter()
            .map(|l| match layout {
                Layout::OciGzip | Layout::GzipBlobsUnderManifestJson => {
                    let gz = gzip(l);
                    (sha256_hex(&gz), gz)
                }
                _ => (sha256_hex(l), l.clone()),
            })
            .collect()
    }

    /// The id `flavor` gives this image loaded from `layout` (`<hex>`): the config's digest,
    /// or on docker's containerd image store the digest of the manifest the archive carries.
    fn id_on(&self, flavor: Flavor, layout: Layout) -> String {
        match flavor.containerd_store() {
            true => sha256_hex(self.manifest(layout).as_bytes()),
            false => self.config_digest.clone(),
        }
    }

    /// The archive in `layout`, the files of the layers in `held` treated as `omission` says.
    fn archive(&self, layout: Layout, held: &[String], omission: Omission) -> Vec<u8> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        // Layer `i`'s file, or None when it is left out.
        let layer_file = |i: usize, layer: &Vec<u8>| -> Option<Vec<u8>> {
            match (held.contains(&self.diff_ids[i]), omission) {
                (false, _) | (true, Omission::Whole) => Some(layer.clone()),
                (true, Omission::Dropped) => None,
                (true, Omission::Empty) => Some(Vec::new()),
            }
        };
        let manifest = self.manifest(layout);
        let manifest_digest = sha256_hex(manifest.as_bytes());
        let full = full_name(&self.reference);
        match layout {
            Layout::DockerArchive | Layout::DockerArchivePlusOci => {
                for (i, (d, layer)) in self.diff_ids.iter().zip(&self.layers).enumerate() {
                    if let Some(data) = layer_file(i, layer) {
                        files.push((format!("{d}/layer.tar"), data));
                    }
                }
                files.push((
                    format!("{}.json", self.config_digest),
                    self.config.clone().into_bytes(),
                ));
                let manifest_json = serde_json::json!([{
                    "Config": format!("{}.json", self.config_digest),
                    "RepoTags": [self.reference],
                    "Layers": self.diff_ids.iter().map(|d| format!("{d}/layer.tar")).collect::<Vec<_>>(),
                }]);
                files.push((
                    "manifest.json".into(),
                    manifest_json.to_string().into_bytes(),
                ));
                if layout == Layout::DockerArchivePlusOci {
                    files.push((
                        format!("blobs/sha256/{manifest_digest}"),
                        manifest.clone().into_bytes(),
                    ));
                    files.push(("index.json".into(), index_json(&manifest, &full, layout)));
                    files.push(("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));
                }
            }
            Layout::Oci
            | Layout::OciWithManifestJson
            | Layout::OciGzip
            | Layout::GzipBlobsUnderManifestJson => {
                if layout != Layout::GzipBlobsUnderManifestJson {
                    files.push(("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));
                    files.push(("index.json".into(), index_json(&manifest, &full, layout)));
                    files.push((
                        format!("blobs/sha256/{manifest_digest}"),
                        manifest.clone().into_bytes(),
                    ));
                }
                files.push((
                    format!("blobs/sha256/{}", self.config_digest),
                    self.config.clone().into_bytes(),
                ));
                let blobs = self.blobs(layout);
                for (i, (d, layer)) in blobs.iter().enumerate() {
                    if let Some(data) = layer_file(i, layer) {
                        files.push((format!("blobs/sha256/{d}"), data));
                    }
                }
                if matches!(
                    layout,
                    Layout::OciWithManifestJson | Layout::GzipBlobsUnderManifestJson
                ) {
                    let manifest_json = serde_json::json!([{
                        "Config": format!("blobs/sha256/{}", self.config_digest),
                        "RepoTags": [self.reference],
                        "Layers": blobs.iter().map(|(d, _)| format!("blobs/sha256/{d}")).collect::<Vec<_>>(),
                    }]);
                    files.push((
                        "manifest.json".into(),
                        manifest_json.to_string().into_bytes(),
                    ));
                }
            }
        }
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut header, path, &data[..])
                .expect("append to tar");
        }
        b.into_inner().expect("finish tar")
    }
}

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// index.json naming the image as the loader writes it: containerd's name annotation and the
/// tag as `ref.name` for the OCI layout appended to a docker-archive; the full name as
/// `ref.name` in an OCI archive (what podman names the image after).
fn index_json(manifest: &str, full: &str, layout: Layout) -> Vec<u8> {
    let media_type = match layout.is_oci() {
        true => "application/vnd.oci.image.manifest.v1+json",
        false => "application/vnd.docker.distribution.manifest.v2+json",
    };
    let annotations = match layout.is_oci() {
        true => serde_json::json!({
            "io.containerd.image.name": full,
            "org.opencontainers.image.ref.name": full,
        }),
        false => serde_json::json!({
            "io.containerd.image.name": full,
            "org.opencontainers.image.ref.name": full.rsplit_once(':').map_or("", |(_, t)| t),
        }),
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": media_type,
            "digest": format!("sha256:{}", sha256_hex(manifest.as_bytes())),
            "size": manifest.len(),
            "annotations": annotations,
        }],
    })
    .to_string()
    .into_bytes()
}

fn full_name(reference: &str) -> String {
    match reference.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            reference.to_owned()
        }
        Some(_) => format!("docker.io/{reference}"),
        None => format!("docker.io/library/{reference}"),
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A layer tar holding one file of `len` bytes that do not compress, unique to `tag`.
fn layer(tag: &str, len: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = random_bytes(fresh_seed(), len);
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut header, format!("{tag}-{}.bin", unique()), &data[..])
        .expect("append layer file");
    b.into_inner().expect("finish layer tar")
}

/// A base image of two layers and an image on it with one more.
fn base_and_app() -> (Image, Image) {
    let n = unique();
    let b1 = layer("base1", 40_000);
    let b2 = layer("base2", 30_000);
    let app = layer("app", 20_000);
    let base = Image::new(&format!("omit-base-{n}:1"), vec![b1.clone(), b2.clone()]);
    let on_base = Image::new(&format!("omit-app-{n}:1"), vec![b1, b2, app]);
    (base, on_base)
}

/// The engine's load answer to `tar`: (HTTP status, body).
fn upload(engine: &Engine, tar: &[u8]) -> (u16, String) {
    let path = match engine.kind() {
        Kind::Docker => "/images/load?quiet=1",
        Kind::Podman => "/v4.0.0/libpod/images/load",
    };
    http_post(engine.socket_path(), path, tar)
        .unwrap_or_else(|| panic!("{} did not answer POST {path}", engine.flavor()))
}

fn accepted(answer: &(u16, String)) -> bool {
    answer.0 == 200 && !answer.1.contains("\"error")
}

fn image_json(engine: &Engine, reference: &str) -> serde_json::Value {
    let path = match engine.kind() {
        Kind::Docker => format!("/images/{reference}/json"),
        Kind::Podman => format!("/v4.0.0/libpod/images/{reference}/json"),
    };
    let (status, body) = http_get(engine.socket_path(), &path).expect("image json");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("image JSON")
}

/// The diffIDs the engine reports for `reference` (RootFS.Layers).
fn root_fs(engine: &Engine, reference: &str) -> Vec<String> {
    image_json(engine, reference)["RootFS"]["Layers"]
        .as_array()
        .expect("RootFS.Layers")
        .iter()
        .map(|l| bare_id(l.as_str().unwrap()).to_owned())
        .collect()
}

/// (status, size) of exporting `reference` again: every layer read back from the store.
fn export(engine: &Engine, reference: &str) -> (u16, usize) {
    let path = match engine.kind() {
        Kind::Docker => format!("/images/{reference}/get"),
        Kind::Podman => format!("/v4.0.0/libpod/images/{reference}/get"),
    };
    let (status, body) = http_get(engine.socket_path(), &path).expect("export");
    (status, body.len())
}

/// Files under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Declares, for each behaviour `fn(Flavor)`, a module of the same name with one `#[test]` per
/// engine listed (`docker20 Docker20, ...`), named as `on_every_engine!` names them.
macro_rules! on_engines {
    ($($behaviour:ident: $($engine:ident $flavor:ident),+;)*) => {
        $(
            mod $behaviour {
                $(
                    #[test]
                    fn $engine() {
                        super::$behaviour($crate::common::Flavor::$flavor)
                    }
                )+
            }
        )*
    };
}

/// Loads `base` whole in `layout` and checks the engine took it.
fn hold(engine: &Engine, base: &Image, layout: Layout) {
    let answer = upload(engine, &base.archive(layout, &[], Omission::Whole));
    assert!(
        accepted(&answer),
        "{}: loading the base whole ({layout:?}): {answer:?}",
        engine.flavor()
    );
}

/// Whether the engine's image listing names `reference` (podman may prefix `localhost/` or
/// `docker.io/library/`). Docker's containerd store leaves out an image whose content is
/// incomplete.
fn listed(engine: &Engine, reference: &str) -> bool {
    engine
        .list_images()
        .iter()
        .any(|n| n == reference || n.ends_with(&format!("/{reference}")))
}

/// The load of `app` was taken as a whole load would be: the engine answers success, gives the
/// image the archive's id and every diffID, lists it, and exports it with all its layers.
fn assert_loaded_as_whole(engine: &Engine, app: &Image, layout: Layout, answer: &(u16, String)) {
    let flavor = engine.flavor();
    assert!(accepted(answer), "{flavor}: {answer:?}");
    let id = engine.assert_has(&app.reference);
    assert_eq!(
        bare_id(&id),
        app.id_on(flavor, layout),
        "{flavor}: image id"
    );
    assert_eq!(root_fs(engine, &app.reference), app.diff_ids, "{flavor}");
    assert!(
        listed(engine, &app.reference),
        "{flavor}: {} not listed",
        app.reference
    );
    if engine.kind() == Kind::Podman && layout.is_oci() {
        // Podman keeps the archive's manifest (its `Digest`) when it loads an OCI archive.
        let digest = image_json(engine, &app.reference)["Digest"].clone();
        let manifest = format!("sha256:{}", sha256_hex(app.manifest(layout).as_bytes()));
        assert_eq!(digest, manifest, "{flavor}: Digest");
    }
    let (status, size) = export(engine, &app.reference);
    let layers: usize = app.layers.iter().map(Vec::len).sum();
    assert!(
        status == 200 && size > layers,
        "{flavor}: export of {} gave {status} and {size} bytes for {layers} bytes of layers",
        app.reference
    );
}

/// The refusal of a reduced upload: its text names `says`, and the engine keeps no image.
fn assert_refused_leaving_nothing(engine: &Engine, answer: &(u16, String), says: &str) {
    let flavor = engine.flavor();
    assert!(!accepted(answer), "{flavor}: accepted {answer:?}");
    assert!(
        answer.1.contains(says),
        "{flavor}: {answer:?} lacks {says:?}"
    );
    assert_eq!(
        engine.image_count(),
        0,
        "{flavor}: {:?}",
        engine.list_images()
    );
    // The engines' upload copies: DockerRootDir/tmp, podman's TMPDIR.
    let tmp = match engine.kind() {
        Kind::Docker => engine.dir().join("root/tmp"),
        Kind::Podman => engine.dir().join("tmp"),
    };
    assert_eq!(
        files_under(&tmp),
        Vec::<String>::new(),
        "{flavor}: left in {tmp:?}"
    );
}

/// On an engine holding the base (loaded whole in `layout`), the image on it with the base's
/// layer files `omission`ed loads as a whole load would.
fn loads_as_whole(flavor: Flavor, layout: Layout, omission: Omission) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, layout);
    let answer = upload(&engine, &app.archive(layout, &base.diff_ids, omission));
    assert_loaded_as_whole(&engine, &app, layout, &answer);
}

/// After the base was deleted, the image on it with the base's layer files `omission`ed is
/// refused (for docker's containerd store, see `gone_base_...`).
fn gone_base_refused(flavor: Flavor, layout: Layout, omission: Omission, says: &str) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, layout);
    engine.remove(&base.reference);
    let answer = upload(&engine, &app.archive(layout, &base.diff_ids, omission));
    assert_refused_leaving_nothing(&engine, &answer, says);
}

// --- What each engine reports of what it holds ------------------------------------------

/// `GET /images/{name}/json` (docker) and `/libpod/images/{name}/json` (podman) give an image's
/// diffIDs in order as `RootFS.Layers`: what the held layers (podman), chains (classic docker)
/// are computed from.
fn root_fs_layers_are_the_diff_ids(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, _) = base_and_app();
    let layout = match flavor.containerd_store() {
        true => Layout::DockerArchivePlusOci,
        false => Layout::DockerArchive,
    };
    hold(&engine, &base, layout);
    assert_eq!(root_fs(&engine, &base.reference), base.diff_ids);
}

on_every_engine! {
    root_fs_layers_are_the_diff_ids;
}

/// Podman's image listing carries no layers: they are learnt per image, by inspecting it.
fn image_listing_has_no_layers(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, _) = base_and_app();
    hold(&engine, &base, Layout::DockerArchive);
    let (status, body) =
        http_get(engine.socket_path(), "/v4.0.0/libpod/images/json?all=true").expect("listing");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&base.config_digest), "{body}");
    for d in &base.diff_ids {
        assert!(
            !body.contains(d.as_str()),
            "{flavor} lists layer {d}: {body}"
        );
    }
}

/// Docker 26 (API 1.45) offers no view of the containerd store's content: the listing of an
/// image's manifests and whether their blobs are there (`GET /images/json?manifests=1`,
/// `Manifests[].Available`) needs API 1.47.
fn manifest_listing_needs_a_newer_api(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (status, body) =
        http_get(engine.socket_path(), "/v1.47/images/json?manifests=1").expect("listing");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("1.47 is too new"), "{body}");
}

on_engines! {
    image_listing_has_no_layers: podman43 Podman43, podman54 Podman54;
    manifest_listing_needs_a_newer_api: docker26_containerd Docker26Containerd;
}

// --- Accepted: the engine never reads the held layers' files ----------------------------

fn docker_archive_with_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::DockerArchive, Omission::Dropped);
}

fn docker_archive_with_held_layers_empty_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::DockerArchive, Omission::Empty);
}

fn docker_archive_with_oci_layout_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::DockerArchivePlusOci, Omission::Dropped);
}

fn docker_archive_with_oci_layout_held_layers_empty_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::DockerArchivePlusOci, Omission::Empty);
}

fn oci_archive_with_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::Oci, Omission::Dropped);
}

fn oci_archive_with_held_layers_empty_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::Oci, Omission::Empty);
}

/// The OCI layout with manifest.json (`docker save` of docker >= 25, or what the loader sends
/// classic docker for an OCI archive): every engine reads it so that held blobs may be left out.
fn oci_with_manifest_json_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::OciWithManifestJson, Omission::Dropped);
}

fn oci_with_manifest_json_held_layers_empty_loads_as_whole(flavor: Flavor) {
    loads_as_whole(flavor, Layout::OciWithManifestJson, Omission::Empty);
}

on_every_engine! {
    oci_with_manifest_json_held_layers_dropped_loads_as_whole;
    oci_with_manifest_json_held_layers_empty_loads_as_whole;
}

on_engines! {
    docker_archive_with_held_layers_dropped_loads_as_whole:
        docker20 Docker20, docker26 Docker26;
    docker_archive_with_held_layers_empty_loads_as_whole:
        docker20 Docker20, docker26 Docker26, podman43 Podman43, podman54 Podman54;
    docker_archive_with_oci_layout_held_layers_dropped_loads_as_whole:
        docker26_containerd Docker26Containerd;
    docker_archive_with_oci_layout_held_layers_empty_loads_as_whole:
        docker26_containerd Docker26Containerd;
    oci_archive_with_held_layers_dropped_loads_as_whole:
        docker26_containerd Docker26Containerd, podman43 Podman43, podman54 Podman54;
    oci_archive_with_held_layers_empty_loads_as_whole:
        docker26_containerd Docker26Containerd, podman43 Podman43, podman54 Podman54;
}

/// From a docker-archive podman stores a manifest it makes up, with each layer's size as the
/// upload had it: after a load with empty entries the image's `Digest` (and `RepoDigests`)
/// differ from a whole load's, though its id is the same.
fn docker_archive_with_held_layers_empty_gets_another_manifest_digest(flavor: Flavor) {
    let (base, app) = base_and_app();
    let whole = Engine::start(flavor);
    let answer = upload(
        &whole,
        &app.archive(Layout::DockerArchive, &[], Omission::Whole),
    );
    assert!(accepted(&answer), "{answer:?}");
    let reduced = Engine::start(flavor);
    hold(&reduced, &base, Layout::DockerArchive);
    let archive = app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Empty);
    let answer = upload(&reduced, &archive);
    assert!(accepted(&answer), "{answer:?}");
    let (a, b) = (
        image_json(&whole, &app.reference),
        image_json(&reduced, &app.reference),
    );
    assert_eq!(a["Id"], b["Id"]);
    assert_ne!(a["Digest"], b["Digest"]);
}

/// Podman and the containerd store find a held layer by its digest alone: base [b1, b2], an
/// image on [b2, n] with b2 left out loads (podman: empty entry, its docker-archive needs one).
fn held_layer_at_another_position_is_reused(flavor: Flavor) {
    let (layout, omission) = match flavor.family() {
        Kind::Podman => (Layout::DockerArchive, Omission::Empty),
        Kind::Docker => (Layout::DockerArchivePlusOci, Omission::Dropped),
    };
    let engine = Engine::start(flavor);
    let n = unique();
    let b1 = layer("b1", 30_000);
    let b2 = layer("b2", 30_000);
    let base = Image::new(&format!("pos-base-{n}:1"), vec![b1, b2.clone()]);
    let app = Image::new(&format!("pos-app-{n}:1"), vec![b2, layer("n", 10_000)]);
    hold(&engine, &base, layout);
    let answer = upload(&engine, &app.archive(layout, &base.diff_ids, omission));
    assert_loaded_as_whole(&engine, &app, layout, &answer);
}

/// From a docker-archive podman finds a layer it holds from a gzip blob by its diffID too.
fn docker_archive_layer_held_from_a_gzip_blob_is_reused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::OciGzip);
    let answer = upload(
        &engine,
        &app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Empty),
    );
    assert_loaded_as_whole(&engine, &app, Layout::DockerArchive, &answer);
}

/// Podman and the containerd store find a gzip blob they hold by its digest: the base loaded
/// from gzip blobs, the image on it with the same blobs left out.
fn oci_archive_with_compressed_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::OciGzip);
    let answer = upload(
        &engine,
        &app.archive(Layout::OciGzip, &base.diff_ids, Omission::Dropped),
    );
    assert_loaded_as_whole(&engine, &app, Layout::OciGzip, &answer);
}

/// An OCI archive's gzip blobs sent to podman as a docker-archive (index.json and oci-layout
/// left out, manifest.json naming the blobs) are matched by diffID: layers held from plain tars
/// may be sent empty.
fn gzip_blobs_under_manifest_json_with_held_layers_empty_load_as_whole(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::DockerArchive);
    let layout = Layout::GzipBlobsUnderManifestJson;
    let answer = upload(
        &engine,
        &app.archive(layout, &base.diff_ids, Omission::Empty),
    );
    assert_loaded_as_whole(&engine, &app, layout, &answer);
}

on_engines! {
    oci_archive_with_compressed_held_layers_dropped_loads_as_whole:
        podman43 Podman43, podman54 Podman54, docker26_containerd Docker26Containerd;
    gzip_blobs_under_manifest_json_with_held_layers_empty_load_as_whole:
        podman43 Podman43, podman54 Podman54;
    held_layer_at_another_position_is_reused:
        podman43 Podman43, podman54 Podman54, docker26_containerd Docker26Containerd;
    docker_archive_layer_held_from_a_gzip_blob_is_reused: podman43 Podman43, podman54 Podman54;
    docker_archive_with_held_layers_empty_gets_another_manifest_digest:
        podman43 Podman43, podman54 Podman54;
}

// --- Refused although the base is held ---------------------------------------------------

/// Podman's docker-archive reader looks for every layer file named in manifest.json before it
/// asks the store for any (c/image docker/internal/tarfile `prepareLayerData`).
fn docker_archive_with_held_layers_dropped_is_refused_as_missing_tarfiles(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::DockerArchive);
    let answer = upload(
        &engine,
        &app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Dropped),
    );
    assert_eq!(answer.0, 500, "{answer:?}");
    assert!(
        answer
            .1
            .contains("Some layer tarfiles are missing in the tarball"),
        "{answer:?}"
    );
    engine.assert_has_not(&app.reference);
}

/// Classic docker keys layers by chain: b2 held on top of b1 is not b2 as a first layer, so
/// the image on [b2, n] needs b2's file.
fn held_layer_at_another_position_is_read_from_the_upload(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let n = unique();
    let b1 = layer("b1", 30_000);
    let b2 = layer("b2", 30_000);
    let base = Image::new(&format!("pos-base-{n}:1"), vec![b1, b2.clone()]);
    let app = Image::new(&format!("pos-app-{n}:1"), vec![b2, layer("n", 10_000)]);
    hold(&engine, &base, Layout::DockerArchive);
    let answer = upload(
        &engine,
        &app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Dropped),
    );
    let missing = format!("{}/layer.tar: no such file or directory", base.diff_ids[1]);
    assert!(answer.1.contains(&missing), "{answer:?}");
    engine.assert_has_not(&app.reference);
}

/// The containerd store unpacks a layer whose snapshot exists without reading its blob, so an
/// image whose manifest names blobs the store lacks loads, but stays incomplete: left out of the
/// listing, not exportable, until it is loaded whole. Here the base is held as gzip blobs and
/// the manifest names the plain ones, and the other way round.
fn layer_held_as_another_blob_loads_unlisted_until_loaded_whole(flavor: Flavor) {
    for (held_as, layout) in [
        (Layout::OciGzip, Layout::DockerArchivePlusOci),
        (Layout::DockerArchivePlusOci, Layout::OciGzip),
    ] {
        let engine = Engine::start(flavor);
        let (base, app) = base_and_app();
        hold(&engine, &base, held_as);
        let answer = upload(
            &engine,
            &app.archive(layout, &base.diff_ids, Omission::Dropped),
        );
        assert!(accepted(&answer), "{layout:?}: {answer:?}");
        let id = engine.assert_has(&app.reference);
        assert_eq!(bare_id(&id), app.id_on(flavor, layout), "{layout:?}");
        assert!(
            !listed(&engine, &app.reference),
            "{layout:?}: {:?}",
            engine.list_images()
        );
        // A whole image exports more bytes than its layers hold.
        let (_, size) = export(&engine, &app.reference);
        let layers: usize = app.layers.iter().map(Vec::len).sum();
        assert!(
            size < layers,
            "{layout:?}: exported {size} bytes for {layers}"
        );

        let answer = upload(&engine, &app.archive(layout, &[], Omission::Whole));
        assert_loaded_as_whole(&engine, &app, layout, &answer);
    }
}

/// Podman finds a compressed blob of an OCI archive only by that blob's digest: layers held
/// from plain tars do not stand for their gzip blobs.
fn oci_archive_with_compressed_layers_held_only_uncompressed_is_refused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::DockerArchive);
    let answer = upload(
        &engine,
        &app.archive(Layout::OciGzip, &base.diff_ids, Omission::Dropped),
    );
    assert_eq!(answer.0, 500, "{answer:?}");
    let first = &app.blobs(Layout::OciGzip)[0].0;
    let says = format!("oci-archive: reading blob sha256:{first}: open ");
    assert!(answer.1.contains(&says), "{answer:?} lacks {says:?}");
    engine.assert_has_not(&app.reference);
}

on_engines! {
    docker_archive_with_held_layers_dropped_is_refused_as_missing_tarfiles:
        podman43 Podman43, podman54 Podman54;
    held_layer_at_another_position_is_read_from_the_upload: docker20 Docker20, docker26 Docker26;
    layer_held_as_another_blob_loads_unlisted_until_loaded_whole:
        docker26_containerd Docker26Containerd;
    oci_archive_with_compressed_layers_held_only_uncompressed_is_refused:
        podman43 Podman43, podman54 Podman54;
}

// --- The base gone by the time the reduced upload arrives -------------------------------

fn gone_base_dropped_layer_is_refused_as_a_missing_file(flavor: Flavor) {
    gone_base_refused(
        flavor,
        Layout::DockerArchive,
        Omission::Dropped,
        "/layer.tar: no such file or directory",
    );
}

fn gone_base_dropped_blob_is_refused_as_a_missing_file(flavor: Flavor) {
    let layout = match flavor.family() {
        Kind::Docker => Layout::OciWithManifestJson,
        Kind::Podman => Layout::Oci,
    };
    gone_base_refused(
        flavor,
        layout,
        Omission::Dropped,
        ": no such file or directory",
    );
}

fn gone_base_empty_layer_is_refused_as_an_invalid_diff_id(flavor: Flavor) {
    gone_base_refused(
        flavor,
        Layout::DockerArchive,
        Omission::Empty,
        "invalid diffID for layer 0: expected",
    );
}

fn gone_base_empty_layer_is_refused_as_a_digest_mismatch(flavor: Flavor) {
    for layout in [Layout::DockerArchive, Layout::Oci] {
        gone_base_refused(
            flavor,
            layout,
            Omission::Empty,
            "Digest did not match, expected sha256:",
        );
    }
}

/// The containerd store refuses an image it cannot unpack, but keeps its name: shown by name,
/// left out of the listing.
fn gone_base_is_refused_as_content_not_found_keeping_the_name(flavor: Flavor) {
    for (layout, omission) in [
        (Layout::DockerArchivePlusOci, Omission::Dropped),
        (Layout::DockerArchivePlusOci, Omission::Empty),
        (Layout::Oci, Omission::Dropped),
    ] {
        let engine = Engine::start(flavor);
        let (base, app) = base_and_app();
        hold(&engine, &base, layout);
        engine.remove(&base.reference);
        let answer = upload(&engine, &app.archive(layout, &base.diff_ids, omission));
        let says = format!(
            "failed to unpack loaded image: failed to extract layer sha256:{0}: failed to get \
             reader from content store: content digest sha256:{0}: not found",
            base.diff_ids[0]
        );
        assert!(
            answer.1.contains(&says),
            "{layout:?} {omission:?}: {answer:?}"
        );
        assert!(engine.has_image(&app.reference), "{layout:?} {omission:?}");
        assert!(!listed(&engine, &app.reference), "{layout:?} {omission:?}");
        engine.remove(&app.reference);
    }
}

on_engines! {
    gone_base_dropped_layer_is_refused_as_a_missing_file: docker20 Docker20, docker26 Docker26;
    gone_base_dropped_blob_is_refused_as_a_missing_file:
        docker20 Docker20, docker26 Docker26, podman43 Podman43, podman54 Podman54;
    gone_base_empty_layer_is_refused_as_an_invalid_diff_id: docker20 Docker20, docker26 Docker26;
    gone_base_empty_layer_is_refused_as_a_digest_mismatch: podman43 Podman43, podman54 Podman54;
    gone_base_is_refused_as_content_not_found_keeping_the_name:
        docker26_containerd Docker26Containerd;
}

// --- Archives the engines wrote ----------------------------------------------------------

/// `tar` (an archive an engine saved, uncompressed layers) with the entries of the layers in
/// `held` treated as `omission` says: `<diffID>.tar` (podman's docker-archive),
/// `<diffID>/layer.tar` (docker < 25) and `blobs/sha256/<diffID>` (OCI).
fn reduced(tar: &[u8], held: &[String], omission: Omission) -> Vec<u8> {
    let is_held = |path: &str| {
        held.iter().any(|d| {
            path == format!("{d}.tar")
                || path == format!("{d}/layer.tar")
                || path == format!("blobs/sha256/{d}")
        })
    };
    let mut out = tar::Builder::new(Vec::new());
    let mut found = 0;
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().expect("read saved archive") {
        let mut entry = entry.expect("saved archive entry");
        let path = entry.path().expect("entry path").display().to_string();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("entry data");
        if header.entry_type().is_file() && is_held(&path) {
            found += 1;
            match omission {
                Omission::Whole => {}
                Omission::Dropped => continue,
                Omission::Empty => data.clear(),
            }
        }
        header.set_size(data.len() as u64);
        out.append_data(&mut header, &path, &data[..])
            .expect("append entry");
    }
    assert_eq!(found, held.len(), "held layer files in the saved archive");
    out.into_inner().expect("finish reduced archive")
}

/// The manifest.json of a docker-archive.
fn saved_manifest(tar: &[u8]) -> serde_json::Value {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().expect("read archive") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").as_os_str() == "manifest.json" {
            return serde_json::from_reader(&mut entry).expect("manifest.json");
        }
    }
    panic!("no manifest.json");
}

/// The image on the held base as `podman save --format <format>` (podman 4.3) writes it, with
/// the held layers `omission`ed, loads as a whole load would.
fn podman_saved_loads_as_whole(flavor: Flavor, format: &str, omission: Omission) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    let layout = match flavor.containerd_store() {
        true => Layout::DockerArchivePlusOci,
        false => Layout::DockerArchive,
    };
    hold(&engine, &base, layout);
    // Saved under its full name, so that every engine names it alike.
    let full = full_name(&app.reference);
    let fixture = Fixture {
        reference: full.clone(),
        tar: Image::new(&full, app.layers.clone()).archive(
            Layout::DockerArchive,
            &[],
            Omission::Whole,
        ),
        id: app.config_digest.clone(),
        manifest_id: String::new(),
        layers: app.layers.clone(),
    };
    let saved = podman_saved(&fixture, format);
    let answer = upload(&engine, &reduced(&saved, &base.diff_ids, omission));
    assert!(accepted(&answer), "{flavor}: {answer:?}");
    // podman writes the config anew: the id is the digest of the saved one, named
    // `<digest>.json` in manifest.json.
    let config = saved_manifest(&saved)[0]["Config"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = engine.assert_has(&app.reference);
    assert_eq!(format!("{}.json", bare_id(&id)), config);
    assert_eq!(root_fs(&engine, &app.reference), app.diff_ids);
    assert!(
        listed(&engine, &app.reference),
        "{:?}",
        engine.list_images()
    );
    let (status, size) = export(&engine, &app.reference);
    assert!(
        status == 200 && size > app.layers.iter().map(Vec::len).sum(),
        "{status} {size}"
    );
}

fn podman_saved_docker_archive_with_held_layers_empty_loads_as_whole(flavor: Flavor) {
    podman_saved_loads_as_whole(flavor, "docker-archive", Omission::Empty);
}

fn podman_saved_docker_archive_with_held_layers_dropped_loads_as_whole(flavor: Flavor) {
    podman_saved_loads_as_whole(flavor, "docker-archive", Omission::Dropped);
}

on_engines! {
    podman_saved_docker_archive_with_held_layers_empty_loads_as_whole:
        docker20 Docker20, docker26 Docker26, podman43 Podman43, podman54 Podman54;
    podman_saved_docker_archive_with_held_layers_dropped_loads_as_whole:
        docker20 Docker20, docker26 Docker26;
}

/// `podman save --format oci-archive` gzips the layers: their blobs are not named by diffID,
/// so a podman or containerd store that holds the layers from plain tars does not hold them.
#[test]
fn podman_save_writes_oci_archives_with_gzip_layers() {
    let (_, app) = base_and_app();
    let full = full_name(&app.reference);
    let fixture = Fixture {
        reference: full.clone(),
        tar: Image::new(&full, app.layers.clone()).archive(
            Layout::DockerArchive,
            &[],
            Omission::Whole,
        ),
        id: app.config_digest.clone(),
        manifest_id: String::new(),
        layers: app.layers.clone(),
    };
    let saved = podman_saved(&fixture, "oci-archive");
    let mut archive = tar::Archive::new(&saved[..]);
    let mut layer_types = Vec::new();
    for entry in archive.entries().expect("read saved archive") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("entry data");
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&data) else {
            continue;
        };
        if let Some(layers) = manifest["layers"].as_array() {
            layer_types.extend(layers.iter().map(|l| l["mediaType"].to_string()));
        }
    }
    let gzip = "\"application/vnd.oci.image.layer.v1.tar+gzip\"";
    assert_eq!(layer_types, vec![gzip; app.layers.len()]);
}

/// Without the OCI layout the loader appends, the containerd store resolves manifest.json's
/// layer files itself: a left-out one is refused...
fn plain_docker_archive_with_held_layers_dropped_is_refused_as_layer_not_found(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::DockerArchivePlusOci);
    let answer = upload(
        &engine,
        &app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Dropped),
    );
    let says = format!(
        "failed to resolve layers: layer \\\"{}/layer.tar\\\" not found",
        base.diff_ids[0]
    );
    assert!(answer.1.contains(&says), "{answer:?} lacks {says}");
    engine.assert_has_not(&app.reference);
}

/// ...and an empty one becomes the layer in the manifest it makes up: the image loads (its
/// snapshots exist) and is listed, under another id, but exports empty layers.
fn plain_docker_archive_with_held_layers_empty_loads_naming_the_empty_blob(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app();
    hold(&engine, &base, Layout::DockerArchivePlusOci);
    let answer = upload(
        &engine,
        &app.archive(Layout::DockerArchive, &base.diff_ids, Omission::Empty),
    );
    assert!(accepted(&answer), "{answer:?}");
    let id = engine.assert_has(&app.reference);
    assert_ne!(
        bare_id(&id),
        app.id_on(flavor, Layout::DockerArchivePlusOci)
    );
    assert!(
        listed(&engine, &app.reference),
        "{:?}",
        engine.list_images()
    );
    // A whole image exports more bytes than its layers hold.
    let (status, size) = export(&engine, &app.reference);
    let layers: usize = app.layers.iter().map(Vec::len).sum();
    assert!(
        status == 200 && size < layers,
        "{status} {size} for {layers}"
    );
}

on_engines! {
    plain_docker_archive_with_held_layers_dropped_is_refused_as_layer_not_found:
        docker26_containerd Docker26Containerd;
    plain_docker_archive_with_held_layers_empty_loads_naming_the_empty_blob:
        docker26_containerd Docker26Containerd;
}

/// An update whose reduced upload is refused because the base went away meanwhile: the image
/// the name was on before (`old`), and the id the name is on after the refusal.
fn update_with_the_base_gone(engine: &Engine) -> (Image, String, String) {
    let flavor = engine.flavor();
    let (layout, omission) = match flavor.family() {
        Kind::Podman => (Layout::DockerArchive, Omission::Empty),
        Kind::Docker if flavor.containerd_store() => {
            (Layout::DockerArchivePlusOci, Omission::Dropped)
        }
        Kind::Docker => (Layout::DockerArchive, Omission::Dropped),
    };
    let (base, app) = base_and_app();
    let old = Image::new(&app.reference, vec![layer("old", 5000)]);
    hold(engine, &old, layout);
    let old_id = engine.assert_has(&app.reference);
    hold(engine, &base, layout);
    engine.remove(&base.reference);
    let answer = upload(engine, &app.archive(layout, &base.diff_ids, omission));
    assert!(!accepted(&answer), "{flavor}: {answer:?}");
    let now = engine.assert_has(&app.reference);
    assert_ne!(bare_id(&old_id), app.id_on(flavor, layout));
    (app, old_id, now)
}

/// Podman and classic docker name an image only once it is loaded: a refused update leaves the
/// name on the old image.
fn gone_base_during_an_update_leaves_the_name_on_the_old_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, old_id, now) = update_with_the_base_gone(&engine);
    assert_eq!(now, old_id);
}

/// The containerd store names the image before it unpacks it: after a refused update the name
/// is on the image that could not be unpacked, and the old image is gone from the listing.
fn gone_base_during_an_update_moves_the_name_to_the_image_it_could_not_unpack(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (app, old_id, now) = update_with_the_base_gone(&engine);
    assert_eq!(
        bare_id(&now),
        app.id_on(flavor, Layout::DockerArchivePlusOci)
    );
    let (status, body) = http_get(engine.socket_path(), "/images/json?all=1").expect("listing");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(bare_id(&old_id)), "{body}");
}

on_engines! {
    gone_base_during_an_update_leaves_the_name_on_the_old_image:
        docker20 Docker20, docker26 Docker26, podman43 Podman43, podman54 Podman54;
    gone_base_during_an_update_moves_the_name_to_the_image_it_could_not_unpack:
        docker26_containerd Docker26Containerd;
}
