//! OCI archives on every engine. Classic docker reads only docker-archives: the loader writes
//! the manifest.json it needs on the way. Where an archive offers an image for several
//! platforms (behind one image index, or one name on several manifests side by side), every
//! engine gets the device's; an archive without it fails before any engine loads it.

use serde_json::{json, Value};

use crate::common::*;

/// The platform the loader runs on, in the engines' names.
fn device_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        "arm" => "linux/arm/v7",
        other => panic!("no OCI platform name known for {other}"),
    }
}

/// The config digest (`<hex>`) of the one image an OCI archive's index.json names.
fn config_digest(oci: &[u8]) -> String {
    let file = |path: &str| -> Vec<u8> {
        let mut archive = tar::Archive::new(oci);
        let mut entry = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some(path))
            .unwrap_or_else(|| panic!("{path} in the archive"));
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        data
    };
    let blob = |digest: &Value| -> Value {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&file(&format!("blobs/sha256/{hex}"))).unwrap()
    };
    let index: Value = serde_json::from_slice(&file("index.json")).unwrap();
    let manifest = blob(&index["manifests"][0]["digest"]);
    let config = manifest["config"]["digest"].as_str().unwrap();
    config.strip_prefix("sha256:").unwrap().to_owned()
}

/// A hand-built OCI archive holding `name` for each of `platforms` (`os/arch[/variant]`)
/// behind one image index, as `docker buildx` and skopeo `--all` write them: the archive,
/// and each platform's config digest (`<hex>`, the id classic docker and podman give the
/// image). The index's digest is the id on docker's containerd store: [`top_digest`].
fn multi_platform_archive(name: &str, platforms: &[&str]) -> (Vec<u8>, Vec<(String, String)>) {
    platform_archive(name, platforms, true)
}

/// The same with the manifests side by side in index.json, each carrying `name`.
fn side_by_side_archive(name: &str, platforms: &[&str]) -> (Vec<u8>, Vec<(String, String)>) {
    platform_archive(name, platforms, false)
}

fn platform_archive(
    name: &str,
    platforms: &[&str],
    nested: bool,
) -> (Vec<u8>, Vec<(String, String)>) {
    let mut layout = Layout::default();
    let mut manifests = Vec::new();
    let mut configs = Vec::new();
    for platform in platforms {
        let (manifest, config) = layout.image(name, platform);
        manifests.push(manifest);
        configs.push((platform.to_string(), config));
    }
    let index = match nested {
        true => vec![named(layout.index(manifests), name)],
        false => manifests.into_iter().map(|m| named(m, name)).collect(),
    };
    (layout.tar(index), configs)
}

/// `descriptor` annotated with the OCI ref.name `name`.
fn named(mut descriptor: Value, name: &str) -> Value {
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    descriptor
}

/// An OCI layout being built: its blobs, then `oci-layout` and `index.json`.
#[derive(Default)]
struct Layout {
    blobs: Vec<(String, Vec<u8>)>,
}

impl Layout {
    /// Adds a blob: its digest and size.
    fn add(&mut self, data: Vec<u8>) -> (String, usize) {
        let hex = sha256_hex(&data);
        let size = data.len();
        self.blobs.push((format!("blobs/sha256/{hex}"), data));
        (format!("sha256:{hex}"), size)
    }

    /// An image of `name` for `platform` (`os/arch[/variant]`) with a layer of its own: its
    /// manifest's descriptor, which names the platform, and its config digest (`<hex>`).
    fn image(&mut self, name: &str, platform: &str) -> (Value, String) {
        let mut parts = platform.split('/');
        let (os, arch, variant) = (parts.next().unwrap(), parts.next().unwrap(), parts.next());
        let mut layer = tar::Builder::new(Vec::new());
        let content = format!("{name} for {platform} ({})\n", fresh_seed());
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        layer
            .append_data(&mut header, "platform.txt", content.as_bytes())
            .unwrap();
        let (layer, layer_size) = self.add(layer.into_inner().unwrap());
        let config = json!({"architecture": arch, "os": os, "variant": variant, "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer]}});
        let (config, config_size) = self.add(config.to_string().into_bytes());
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer, "size": layer_size}]});
        let (digest, size) = self.add(manifest.to_string().into_bytes());
        let descriptor = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": os, "variant": variant}});
        (descriptor, config[7..].to_owned())
    }

    /// An image index of `manifests`: its descriptor.
    fn index(&mut self, manifests: Vec<Value>) -> Value {
        let list = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let (digest, size) = self.add(list.to_string().into_bytes());
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
            "size": size})
    }

    /// The tar: the blobs, `oci-layout`, then `index.json` naming `manifests`.
    fn tar(mut self, manifests: Vec<Value>) -> Vec<u8> {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
        self.blobs.push(("oci-layout".into(), layout));
        self.blobs
            .push(("index.json".into(), index.to_string().into_bytes()));
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in &self.blobs {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, &data[..]).unwrap();
        }
        tar.into_inner().unwrap()
    }
}

/// The digest (`<hex>`) of the descriptor index.json names for `platform` (`None`: the first).
fn top_digest(oci: &[u8], platform: Option<&str>) -> String {
    let mut archive = tar::Archive::new(oci);
    let entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("index.json"))
        .expect("index.json");
    let index: Value = serde_json::from_reader(entry).unwrap();
    let descriptors = index["manifests"].as_array().unwrap();
    let descriptor = match platform {
        None => &descriptors[0],
        Some(p) => descriptors
            .iter()
            .find(|d| {
                p.starts_with(&format!(
                    "{}/{}",
                    d["platform"]["os"].as_str().unwrap(),
                    d["platform"]["architecture"].as_str().unwrap()
                ))
            })
            .expect("the platform's descriptor"),
    };
    descriptor["digest"].as_str().unwrap()[7..].to_owned()
}

/// The id an engine gives the device's image: its config digest, or on docker's containerd
/// image store the digest index.json names it by.
fn device_id(flavor: Flavor, oci: &[u8], configs: &[(String, String)], nested: bool) -> String {
    let device = device_platform();
    match (flavor.containerd_store(), nested) {
        (true, true) => top_digest(oci, None),
        (true, false) => top_digest(oci, Some(device)),
        (false, _) => configs
            .iter()
            .find(|(p, _)| p.starts_with(device))
            .expect("the archive has the device's platform")
            .1
            .clone(),
    }
}

/// The architecture (and variant) the engine records for `reference`.
fn engine_platform(engine: &Engine, reference: &str) -> String {
    let path = match engine.kind() {
        Kind::Docker => format!("/images/{reference}/json"),
        Kind::Podman => format!("/v4.0.0/libpod/images/{reference}/json"),
    };
    let (status, body) = http_get(engine.socket_path(), &path).expect("engine answers");
    assert_eq!(status, 200, "GET {path}: {body}");
    let image: Value = serde_json::from_str(&body).unwrap();
    let mut platform = format!("{}/{}", image["Os"], image["Architecture"]).replace('"', "");
    if let Some(variant) = image["Variant"].as_str().filter(|v| !v.is_empty()) {
        platform = format!("{platform}/{variant}");
    }
    platform
}

#[test]
fn podman_saved_oci_archive_loads_into_docker_as_its_image_and_is_skipped_next_time() {
    let engine = Engine::docker();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/oci/docker:1");
    let oci = podman_saved(&fixture, "oci-archive");
    pkg.add_archive("oci.tar.zst", &Codec::Zstd.compress(&oci));
    pkg.write_list(&["oci.tar.zst example.org/oci/docker:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/oci/docker:1: loaded from oci.tar.zst (zstd, "],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    let id = engine.assert_has("example.org/oci/docker:1");
    assert_eq!(
        bare_id(&id),
        config_digest(&oci),
        "the archive's config digest"
    );

    let again = load_package(&engine, &pkg, &[]);

    again
        .assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/oci/docker:1: present, skipped"],
        )
        .assert_summary("0 loaded, 1 present, 0 failed");
}

#[test]
fn podman_saved_oci_archive_is_deleted_after_loading_into_docker() {
    let engine = Engine::docker();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/oci/deleted:1");
    let oci = podman_saved(&fixture, "oci-archive");
    let path = pkg.add_archive("oci.tar.zst", &Codec::Zstd.compress(&oci));
    pkg.write_list(&["oci.tar.zst example.org/oci/deleted:1"]);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["example.org/oci/deleted:1: deleted oci.tar.zst"],
    );
    engine.assert_has("example.org/oci/deleted:1");
    assert!(!path.exists(), "archive deleted");
}

on_every_engine! {
    loads_the_devices_image_from_an_index_for_several_platforms;
    loads_the_devices_image_where_one_name_is_offered_for_several_platforms;
    loads_the_devices_image_where_one_name_is_on_an_index_and_on_a_manifest_beside_it;
    loads_the_devices_image_where_a_docker_archive_gives_one_name_to_several_platforms;
    an_archive_without_the_devices_platform_fails_and_the_other_entries_still_load;
    a_docker_archive_giving_one_name_only_to_other_platforms_fails_and_loads_nothing;
}

/// Two architectures other than the device's.
fn foreign_archs() -> [&'static str; 2] {
    match device_platform() {
        "linux/arm64" => ["amd64", "s390x"],
        _ => ["arm64", "s390x"],
    }
}

/// Four platforms, the device's third: an engine that took the first would show.
fn four_platforms() -> Vec<&'static str> {
    let mut platforms = vec![
        "linux/s390x",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/amd64",
    ];
    platforms.retain(|p| !p.starts_with(device_platform()));
    platforms.insert(2, device_platform());
    platforms
}

/// Loads `archive` as `name` into a fresh engine: the device's image (`wanted`, the id the
/// engine gives it), and only that one; `inspect` names the same id.
fn loads_the_devices_image(flavor: Flavor, name: &str, archive: &[u8], wanted: &str) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let path = pkg.add_archive("multi.tar.gz", &Codec::Gzip.compress(archive));
    pkg.write_list(&[&format!("multi.tar.gz {name}")]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &[&format!("{name}: loaded from multi.tar.gz")],
    );
    assert_eq!(bare_id(&engine.assert_has(name)), wanted);
    // docker 20.10 keeps no variant; the architecture is what tells.
    let arch = device_platform().split('/').nth(1).unwrap();
    assert!(
        engine_platform(&engine, name).starts_with(&format!("linux/{arch}")),
        "{}",
        engine_platform(&engine, name)
    );
    assert_eq!(engine.image_count(), 1, "only the device's image");
    assert_eq!(archive_id_on(flavor, &path), wanted, "what inspect names");
    load_package(&engine, &pkg, &["--verify"])
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["present, skipped (verified"]);
}

fn loads_the_devices_image_from_an_index_for_several_platforms(flavor: Flavor) {
    let name = "example.org/oci/multi:1";
    let (oci, configs) = multi_platform_archive(name, &four_platforms());
    let wanted = device_id(flavor, &oci, &configs, true);
    loads_the_devices_image(flavor, name, &oci, &wanted);
}

fn loads_the_devices_image_where_one_name_is_offered_for_several_platforms(flavor: Flavor) {
    let name = "example.org/oci/side-by-side:1";
    let (oci, configs) = side_by_side_archive(name, &four_platforms());
    let wanted = device_id(flavor, &oci, &configs, false);
    loads_the_devices_image(flavor, name, &oci, &wanted);
}

fn an_archive_without_the_devices_platform_fails_and_the_other_entries_still_load(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let before = Fixture::new("example.org/oci/before:1");
    let after = Fixture::new("example.org/oci/after:1");
    let name = "example.org/oci/foreign:1";
    let (oci, _) = multi_platform_archive(name, &["linux/s390x", "linux/ppc64le"]);
    let path = pkg.add_archive("foreign.tar.zst", &Codec::Zstd.compress(&oci));
    let lines = [
        pkg.add("before.tar.zst", &before, Codec::Zstd),
        format!("foreign.tar.zst {name}"),
        pkg.add("after.tar", &after, Codec::Tar),
    ];
    pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    let device = device_platform();
    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            2,
            &[&format!(
                "{name}: failed: foreign.tar.zst: no image of {name} for this device's platform \
                 {device}, only for linux/s390x, linux/ppc64le; ship an archive that holds the \
                 {device} image; nothing was loaded, the archive is kept"
            )],
        )
        .assert_summary("2 loaded, 0 present, 1 failed");
    engine.assert_has(&before.reference);
    engine.assert_has(&after.reference);
    engine.assert_has_not(name);
    assert_eq!(
        engine.image_count(),
        2,
        "nothing of the foreign archive\n{out:?}"
    );
    assert!(path.exists(), "archive kept");
}

fn loads_the_devices_image_where_one_name_is_on_an_index_and_on_a_manifest_beside_it(
    flavor: Flavor,
) {
    // Was: the containerd store named the manifest beside the index, podman refused both.
    let name = "example.org/oci/index-and-beside:1";
    let foreign = format!("linux/{}", foreign_archs()[0]);
    let mut layout = Layout::default();
    let (own, own_config) = layout.image(name, device_platform());
    let (other, _) = layout.image(name, &foreign);
    let index = layout.index(vec![own, other]);
    let (beside, _) = layout.image(name, &foreign);
    let oci = layout.tar(vec![named(index, name), named(beside, name)]);
    let wanted = match flavor.containerd_store() {
        true => top_digest(&oci, None),
        false => own_config,
    };
    loads_the_devices_image(flavor, name, &oci, &wanted);
}

fn loads_the_devices_image_where_a_docker_archive_gives_one_name_to_several_platforms(
    flavor: Flavor,
) {
    // Was: docker 20.10 named the last item, another platform's image than the loader's.
    let name = "example.org/oci/docker-multi:1";
    let own = Fixture::new(name);
    let other = Fixture::for_arch(name, foreign_archs()[0]);
    let archive = two_image_archive(&own, &other);
    loads_the_devices_image(flavor, name, &archive, own.id_on(flavor));
}

fn a_docker_archive_giving_one_name_only_to_other_platforms_fails_and_loads_nothing(
    flavor: Flavor,
) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let name = "example.org/oci/docker-foreign:1";
    let [a, b] = foreign_archs();
    let archive = two_image_archive(&Fixture::for_arch(name, a), &Fixture::for_arch(name, b));
    pkg.add_archive("foreign.tar", &archive);
    let after = Fixture::new("example.org/oci/docker-after:1");
    let lines = [
        format!("foreign.tar {name}"),
        pkg.add("after.tar", &after, Codec::Tar),
    ];
    pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());

    let out = load_package(&engine, &pkg, &[]);

    let device = device_platform();
    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!(
                "{name}: failed: foreign.tar: no image of {name} for this device's platform \
                 {device}, only for linux/{a}, linux/{b}; ship an archive that holds the \
                 {device} image; nothing was loaded, the archive is kept"
            )],
        )
        .assert_summary("1 loaded, 0 present, 1 failed");
    engine.assert_has_not(name);
    assert_eq!(engine.image_count(), 1, "nothing of foreign.tar\n{out:?}");
}

/// Classic docker before 23 unpacks no zstd layer (docker 20.10: `ApplyLayer exit status 1
/// ... unexpected EOF`): the loader sends it each zstd layer decoded; docker 23 and later get
/// the archive as it is.
mod zstd_layers_on_classic_docker {
    use crate::common::Flavor;

    #[test]
    fn docker20() {
        super::oci_archive_with_zstd_layers_loads(Flavor::Docker20)
    }
    #[test]
    fn docker26() {
        super::oci_archive_with_zstd_layers_loads(Flavor::Docker26)
    }
}

/// An OCI archive with zstd layers, itself compressed with zstd: docker 20.10 gets the layers
/// decoded, their sizes learnt by a second decoder of the archive.
mod zstd_layers_in_a_compressed_archive_on_classic_docker {
    use crate::common::Flavor;

    #[test]
    fn docker20() {
        super::compressed_oci_archive_with_zstd_layers_loads(Flavor::Docker20)
    }
    #[test]
    fn docker26() {
        super::compressed_oci_archive_with_zstd_layers_loads(Flavor::Docker26)
    }
}

fn compressed_oci_archive_with_zstd_layers_loads(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(&["example.org/oci/zstd-in-zstd:1"], 3);
    let archive = Codec::Zstd.compress(&fixture.oci_with_zstd_layers());
    pkg.add_archive("zstd.tar.zst", &archive);
    pkg.write_list(&["zstd.tar.zst example.org/oci/zstd-in-zstd:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0);
    assert_eq!(bare_id(&engine.assert_has(&fixture.reference)), fixture.id);
    let files = saved_layer_files(&engine, &fixture.reference);
    let want: Vec<_> = fixture.layers.iter().flat_map(|l| tar_files(l)).collect();
    assert!(
        files == want,
        "the image's files are not the fixture's\n{out:?}"
    );
}

/// A zstd layer that decodes to bytes other than its diffID's: docker refuses it before it
/// names anything, whether the loader decoded it (docker 20.10) or docker did (26).
mod zstd_layer_not_its_diff_id_on_classic_docker {
    use crate::common::Flavor;

    #[test]
    fn docker20() {
        super::zstd_layer_not_its_diff_id_is_refused_naming_nothing(Flavor::Docker20)
    }
    #[test]
    fn docker26() {
        super::zstd_layer_not_its_diff_id_is_refused_naming_nothing(Flavor::Docker26)
    }
}

/// The files of a tar, by path, in order.
fn tar_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().unwrap().map(Result::unwrap);
    entries
        .filter(|e| e.header().entry_type().is_file())
        .map(|mut e| {
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (path, data)
        })
        .collect()
}

/// The files of the layers of `reference` as the engine saves it (`GET /images/.../get`).
fn saved_layer_files(engine: &Engine, reference: &str) -> Vec<(String, Vec<u8>)> {
    let (status, body) = http_get(engine.socket_path(), &format!("/images/{reference}/get"))
        .expect("the engine answers a save");
    assert_eq!(status, 200, "{reference} cannot be saved");
    // The fixtures' layers hold text: the saved tar passes through a String unchanged.
    let saved = tar_files(body.as_bytes());
    let file = |name: &str| saved.iter().find(|(path, _)| path == name).map(|(_, d)| d);
    let manifest: Value = serde_json::from_slice(file("manifest.json").unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    layers
        .iter()
        .flat_map(|layer| tar_files(file(layer.as_str().unwrap()).unwrap()))
        .collect()
}

/// `fixture`'s OCI archive with zstd layers, its first layer's blob replaced by the zstd of
/// that layer with one byte of its file changed: the same decoded size, another digest.
fn oci_with_a_zstd_layer_not_its_diff_id(fixture: &Fixture) -> Vec<u8> {
    let mut damaged = fixture.layers[0].clone();
    damaged[512 + 16] ^= 0x01;
    let first = Codec::Zstd.compress(&fixture.layers[0]);
    let mut b = tar::Builder::new(Vec::new());
    let mut replaced = false;
    for (path, data) in tar_files(&fixture.oci_with_zstd_layers()) {
        let data = match data == first {
            true => {
                replaced = true;
                Codec::Zstd.compress(&damaged)
            }
            false => data,
        };
        append_file(&mut b, &path, &data, 0o644);
    }
    assert!(replaced, "fixture error: the zstd layer is not found");
    b.into_inner().unwrap()
}

fn zstd_layer_not_its_diff_id_is_refused_naming_nothing(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/oci/zstd-damaged:1");
    pkg.add_archive("zstd.tar", &oci_with_a_zstd_layer_not_its_diff_id(&fixture));
    pkg.write_list(&["zstd.tar example.org/oci/zstd-damaged:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &["example.org/oci/zstd-damaged:1: failed: ", "invalid diffID"],
    );
    engine.assert_has_not(&fixture.reference);
    assert_eq!(engine.image_count(), 0, "nothing loaded\n{out:?}");
}

fn oci_archive_with_zstd_layers_loads(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/oci/zstd-layers:1");
    pkg.add_archive("zstd.tar", &fixture.oci_with_zstd_layers());
    pkg.write_list(&["zstd.tar example.org/oci/zstd-layers:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0);
    assert_eq!(bare_id(&engine.assert_has(&fixture.reference)), fixture.id);
    let files = saved_layer_files(&engine, &fixture.reference);
    assert!(
        files == tar_files(&fixture.layers[0]),
        "the image's files are not the fixture's\n{out:?}"
    );
}
