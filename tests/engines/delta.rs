//! Delta loads: an engine whose store already holds some of an archive's layers gets an upload
//! without those layer files, and still the archive's image, with the archive's id. Bytes sent
//! are counted by a proxy in front of the real engine; what the loader left out, by its
//! verbose line.

use crate::common::proxy::{Fault, Proxy};
use crate::common::*;

/// Bytes of text in each base layer: large next to everything else an upload carries.
const BASE_LAYER: usize = 2 << 20;
/// Bytes of text in each layer an image adds on its base.
const OWN_LAYER: usize = 64 << 10;

// Left out: layers the engine holds.
on_every_engine! {
    an_image_on_a_base_the_engine_has_is_sent_without_the_base_layers;
    an_update_that_changes_one_layer_sends_that_layer_only;
    an_oci_archive_on_a_base_the_engine_has_is_sent_without_the_base_blobs;
    a_docker_archive_podman_saved_is_sent_without_the_base_layers_its_symlinks_name;
    a_compressed_archive_named_by_diff_ids_is_sent_without_the_base_as_it_streams;
    an_upload_refused_without_a_base_deleted_meanwhile_is_sent_whole_again;
}

// Not loaded: the integrity guard holds with a delta plan too.
on_every_engine! {
    an_archive_whose_checksum_fails_on_a_base_the_engine_has_loads_nothing_and_is_sent_once;
}

// Sent whole, at once or after a reduced upload did not do.
on_every_engine! {
    an_engine_that_holds_nothing_gets_the_whole_archive;
    a_compressed_archive_whose_bottom_layer_the_engine_lacks_is_read_no_further_than_it;
    an_upload_that_left_out_a_file_misnamed_for_a_held_layer_stops_and_goes_whole;
}
/// docker's containerd store may hold a layer as a snapshot of another blob than the one the
/// archive's manifest names: a load without it is accepted, and leaves an image whose content
/// is incomplete, which docker does not list.
mod a_load_that_leaves_an_image_the_engine_does_not_list_is_sent_whole_again {
    #[test]
    fn docker26_containerd() {
        super::a_load_that_leaves_an_image_the_engine_does_not_list_is_sent_whole_again(
            crate::common::Flavor::Docker26Containerd,
        )
    }
}

/// The same with a second, unrelated image in the archive: the engine lists that one, which
/// does not make the first whole.
mod a_two_image_load_whose_image_on_the_base_is_not_listed_is_sent_whole_again {
    #[test]
    fn docker26_containerd() {
        super::a_two_image_load_whose_image_on_the_base_is_not_listed_is_sent_whole_again(
            crate::common::Flavor::Docker26Containerd,
        )
    }
}

/// Loads `base` as podman saves it, an OCI archive with gzip layer blobs: docker's containerd
/// store then holds the base layers as snapshots, and its content under their compressed
/// digests only.
fn load_base_as_podman_saves_it(engine: &Engine, base: &Fixture) {
    let saved = podman_saved(base, "oci-archive");
    let (status, body) = http_post(engine.socket_path(), "/images/load?quiet=1", &saved)
        .expect("the engine answers a load");
    assert!(
        status == 200 && !body.contains("\"error"),
        "{status} {body}"
    );
}

/// The engine's listing shows a name containing `part`.
fn assert_listed(engine: &Engine, part: &str) {
    let names = engine.list_images();
    assert!(
        names.iter().any(|n| n.contains(part)),
        "not listed: {names:?}"
    );
}

/// A base of two large layers, and an image tagged `reference` with one small layer on it.
fn base_and_app(reference: &str) -> (Fixture, Fixture) {
    let base = Fixture::build(&["example.org/delta/base:1"], 0);
    let base = Fixture::on_base(&base, "example.org/delta/base:1", 2, BASE_LAYER);
    let app = Fixture::on_base(&base, reference, 1, OWN_LAYER);
    (base, app)
}

/// Runs the loader through `proxy` on `pkg`'s list, verbose.
fn load_through(proxy: &Proxy, pkg: &Package) -> Output {
    load_through_with(proxy, pkg, &[])
}

/// The same, with `extra` options.
fn load_through_with(proxy: &Proxy, pkg: &Package, extra: &[&str]) -> Output {
    let mut args = proxy.host_args();
    args.extend(["--verbose".into(), "-l".into(), pkg.list_arg()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    run_loader(&args, &[])
}

/// The size of `fixture`'s layers from `from` on, as tar entries of its archive.
fn layer_bytes(fixture: &Fixture, from: usize) -> u64 {
    fixture.layers[from..]
        .iter()
        .map(|l| 512 + l.len().div_ceil(512) as u64 * 512)
        .sum()
}

/// An engine holding a base, and an image on it shipped as `name` in the archive `archive`
/// makes of it (with the bytes of tar the archive holds), loaded through a proxy: the base's
/// layer files are left out, in one upload, and the image gets the archive's id. The run's
/// output, for more.
fn loads_without_the_base(
    flavor: Flavor,
    name: &str,
    archive: impl Fn(&Fixture) -> (Vec<u8>, u64),
) -> Output {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app("example.org/delta/app:1");
    engine.preload(&base);
    let (archive, whole) = archive(&app);
    let pkg = Package::new();
    let path = pkg.add_archive(name, &archive);
    pkg.write_list(&[&format!("{name} {}", app.reference)]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("left out 2 layer files the engine holds");
    assert_eq!(proxy.uploads(), 1, "{:?}", proxy.request_lines());
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), archive_id_on(flavor, &path));
    let sent = proxy.upload_bytes();
    assert!(
        sent < whole - layer_bytes(&base, 0) + (64 << 10),
        "sent {sent} bytes of a {whole}-byte tar whose base layers are {} bytes",
        layer_bytes(&base, 0)
    );
    out
}

/// A tar, as an archive of itself.
fn plain(tar: Vec<u8>) -> (Vec<u8>, u64) {
    let whole = tar.len() as u64;
    (tar, whole)
}

fn an_image_on_a_base_the_engine_has_is_sent_without_the_base_layers(flavor: Flavor) {
    loads_without_the_base(flavor, "app.tar", |app| plain(app.tar.clone()));
}

/// The shipped archive of an image the engine has under the same name changes its top layer:
/// `--verify --replace-differing` loads it, sending that layer only.
fn an_update_that_changes_one_layer_sends_that_layer_only(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, v1) = base_and_app("example.org/delta/app:1");
    engine.preload(&v1);
    let v2 = v1.with_new_top("example.org/delta/app:1");
    let pkg = Package::new();
    pkg.write_list(&[&pkg.add("app.tar.zst", &v2, Codec::Zstd)]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through_with(&proxy, &pkg, &["--verify", "--replace-differing"]);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 differ, 0 failed")
        .assert_stderr_contains("left out 2 layer files the engine holds");
    let id = engine.assert_has(&v2.reference);
    assert_eq!(bare_id(&id), v2.id_on(flavor));
    assert_ne!(v1.id, v2.id);
    let sent = proxy.upload_bytes();
    let top = layer_bytes(&v2, v2.layers.len() - 1);
    assert!(
        sent < top + (64 << 10),
        "sent {sent} bytes for an update whose new layer is {top} bytes"
    );
}

/// The OCI archive of `fixture`'s image, its layers as uncompressed blobs: the config and the
/// layers of its docker-archive, a manifest and an index.json naming it by its reference.
fn oci_archive_of(fixture: &Fixture) -> Vec<u8> {
    let config = tar::Archive::new(&fixture.tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some(&format!("{}.json", fixture.id)))
        .map(|mut e| {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            data
        })
        .expect("the fixture's config");
    let descriptor = |media: &str, data: &[u8]| {
        serde_json::json!({"mediaType": media, "digest": format!("sha256:{}", sha256_hex(data)),
            "size": data.len()})
    };
    let layer = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": fixture.layers.iter().map(|l| descriptor(layer, l)).collect::<Vec<_>>()})
    .to_string();
    let mut named = descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        manifest.as_bytes(),
    );
    named["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": fixture.reference});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [named]}).to_string();
    let mut blobs: Vec<&[u8]> = fixture.layers.iter().map(Vec::as_slice).collect();
    blobs.push(&config);
    blobs.push(manifest.as_bytes());
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    for blob in blobs {
        add(&format!("blobs/sha256/{}", sha256_hex(blob)), blob);
    }
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index.as_bytes());
    b.into_inner().unwrap()
}

/// An OCI archive of uncompressed layer blobs: classic docker reads it through the
/// manifest.json the loader writes, podman as it is.
fn an_oci_archive_on_a_base_the_engine_has_is_sent_without_the_base_blobs(flavor: Flavor) {
    loads_without_the_base(flavor, "app-oci.tar", |app| plain(oci_archive_of(app)));
}

/// `podman save` writes each layer as `<diffID>.tar`, and a `<v1 id>/layer.tar` symlink to it.
fn a_docker_archive_podman_saved_is_sent_without_the_base_layers_its_symlinks_name(flavor: Flavor) {
    loads_without_the_base(flavor, "app-saved.tar", |app| {
        plain(podman_saved(app, "docker-archive"))
    });
}

/// `fixture`'s docker-archive with its layer files at the top, bottom first, each named
/// `<name>.tar` by `names`: as containers/image (skopeo, ISAR's fetcher) names them when
/// `names` are the diffIDs' hex.
fn layers_named(fixture: &Fixture, names: &[String]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, layer) in names.iter().zip(&fixture.layers) {
        append_file(&mut b, &format!("{name}.tar"), layer, 0o644);
    }
    let mut archive = tar::Archive::new(&fixture.tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path == "manifest.json" {
            let mut manifest = String::from_utf8(data).unwrap();
            for (name, layer) in names.iter().zip(&fixture.layers) {
                let old = format!("\"{}/layer.tar\"", sha256_hex(layer));
                manifest = manifest.replacen(&old, &format!("\"{name}.tar\""), 1);
            }
            data = manifest.into_bytes();
        }
        if path.ends_with(".json") {
            append_file(&mut b, &path, &data, 0o644);
        }
    }
    b.into_inner().unwrap()
}

/// The diffIDs' hex of `fixture`'s layers, bottom up.
fn diff_id_names(fixture: &Fixture) -> Vec<String> {
    fixture.layers.iter().map(|l| sha256_hex(l)).collect()
}

/// Its first layer file, named by a diffID the engine holds, tells the loader to leave out
/// the held layers as their files stream by: the archive is decoded once.
fn a_compressed_archive_named_by_diff_ids_is_sent_without_the_base_as_it_streams(flavor: Flavor) {
    let out = loads_without_the_base(flavor, "app.tar.zst", |app| {
        let (tar, whole) = plain(layers_named(app, &diff_id_names(app)));
        (Codec::Zstd.compress(&tar), whole)
    });

    out.assert_stderr_contains("leaving out the layer files the engine holds by their names");
}

/// An image on a base the engine lacks, whose bottom layer file is named by the diffID of a
/// layer the engine holds: left out by its name, found needed once the archive's description
/// passed, so the upload stops before the tar's end (the engine loads nothing) and the archive
/// goes whole, loaded under its own id.
fn an_upload_that_left_out_a_file_misnamed_for_a_held_layer_stops_and_goes_whole(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, _) = base_and_app("example.org/delta/base-only:1");
    engine.preload(&base);
    let app = Fixture::build(&["example.org/delta/misnamed:1"], 2);
    let mut names = diff_id_names(&app);
    names[0] = sha256_hex(&base.layers[0]);
    let archive = Codec::Zstd.compress(&layers_named(&app, &names));
    let pkg = Package::new();
    let path = pkg.add_archive("misnamed.tar.zst", &archive);
    pkg.write_list(&["misnamed.tar.zst example.org/delta/misnamed:1"]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains(&format!(
            "the upload stopped before its end: a layer file left out is needed: {}.tar is not a layer the engine holds",
            names[0]
        ))
        .assert_stderr_contains("; sending misnamed.tar.zst whole");
    assert_eq!(proxy.uploads(), 2, "{:?}", proxy.request_lines());
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), archive_id_on(flavor, &path));
}

fn an_upload_refused_without_a_base_deleted_meanwhile_is_sent_whole_again(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app("example.org/delta/app:1");
    engine.preload(&base);
    let pkg = Package::new();
    pkg.write_list(&[&pkg.add("app.tar.gz", &app, Codec::Gzip)]);
    let proxy = Proxy::start(
        &pkg.dir().join("p.sock"),
        engine.socket_path(),
        Fault::DeleteFirst {
            path: format!("/images/{}?force=1", base.reference),
        },
    );

    let out = load_through(&proxy, &pkg);

    assert!(proxy.fired(), "the base was not deleted before the upload");
    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("the engine refused the upload without the layers it held (")
        .assert_stderr_contains("; sending app.tar.gz whole");
    assert_eq!(proxy.uploads(), 2, "{:?}", proxy.request_lines());
    assert!(!engine.has_image(&base.reference));
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), app.id_on(flavor));
}

/// Whichever pass finds the checksum wrong (the first pass reads to it), the upload aborts
/// before its end, the archive is kept, and no whole upload follows.
fn an_archive_whose_checksum_fails_on_a_base_the_engine_has_loads_nothing_and_is_sent_once(
    flavor: Flavor,
) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app("example.org/delta/app:1");
    engine.preload(&base);
    let pkg = Package::new();
    let mut zst = app.compressed(Codec::Zstd);
    // zstd's content checksum: the frame's last four bytes.
    let last = zst.len() - 2;
    flip(&mut zst, last);
    pkg.add_archive("app.tar.zst", &zst);
    pkg.write_list(&["app.tar.zst example.org/delta/app:1"]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(1)
        .assert_entry(&pkg.list, 1, &["failed: app.tar.zst: corrupt"]);
    assert_eq!(proxy.uploads(), 1, "{:?}", proxy.request_lines());
    engine.assert_has_not(&app.reference);
    assert!(pkg.archive("app.tar.zst").exists());
}

fn an_engine_that_holds_nothing_gets_the_whole_archive(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, app) = base_and_app("example.org/delta/app:1");
    let pkg = Package::new();
    pkg.write_list(&[&pkg.add("app.tar", &app, Codec::Tar)]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert!(!out.stderr.contains("left out"), "{}", out.stderr);
    let sent = proxy.upload_bytes();
    assert!(
        sent >= app.tar.len() as u64,
        "sent {sent} of {}",
        app.tar.len()
    );
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), app.id_on(flavor));
}

/// The engine holds another image; the archive (named as containers/image names layers, by
/// diffID, bottom first) is on a base it lacks: the first pass stops at its first layer file,
/// and the archive goes whole, loaded under its own id.
fn a_compressed_archive_whose_bottom_layer_the_engine_lacks_is_read_no_further_than_it(
    flavor: Flavor,
) {
    let engine = Engine::start(flavor);
    let (other, _) = base_and_app("example.org/delta/other:1");
    engine.preload(&other);
    let app = Fixture::build(&["example.org/delta/unrelated:1"], 2);
    let saved = podman_saved(&app, "docker-archive");
    let pkg = Package::new();
    let path = pkg.add_archive("unrelated.tar.zst", &Codec::Zstd.compress(&saved));
    pkg.write_list(&["unrelated.tar.zst example.org/delta/unrelated:1"]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("does not hold the first layer it names (read no further)");
    assert!(proxy.upload_bytes() >= saved.len() as u64);
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), archive_id_on(flavor, &path));
}

fn a_two_image_load_whose_image_on_the_base_is_not_listed_is_sent_whole_again(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app("example.org/delta/pair:1");
    let other = Fixture::new("example.org/delta/unrelated:1");
    load_base_as_podman_saves_it(&engine, &base);
    let pkg = Package::new();
    pkg.add_archive("pair.tar", &two_image_archive(&app, &other));
    pkg.write_list(&["pair.tar example.org/delta/pair:1"]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through_with(&proxy, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("sending pair.tar whole");
    assert_eq!(proxy.uploads(), 2, "{:?}", proxy.request_lines());
    assert_listed(&engine, "delta/pair:1");
    assert!(!pkg.archive("pair.tar").exists(), "deleted once whole");
}

fn a_load_that_leaves_an_image_the_engine_does_not_list_is_sent_whole_again(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = base_and_app("example.org/delta/app:1");
    load_base_as_podman_saves_it(&engine, &base);
    let pkg = Package::new();
    pkg.write_list(&[&pkg.add("app.tar", &app, Codec::Tar)]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("left out 2 layer files the engine holds")
        .assert_stderr_contains("the engine does not list the image loaded without the layers it held (its content is incomplete); sending app.tar whole");
    assert_eq!(proxy.uploads(), 2, "{:?}", proxy.request_lines());
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), app.id_on(flavor));
    assert_listed(&engine, "delta/app:1");
}

/// Archives written by `container-loader pack`: read by their seek table, the frames of the
/// layers left out stepped over.
#[cfg(feature = "pack")]
mod packed {
    use super::*;

    on_every_engine! {
        a_packed_archive_on_a_base_the_engine_has_is_sent_without_the_base_layers;
        a_packed_archive_is_sent_without_decoding_the_frames_of_the_layers_the_engine_holds;
    }

    fn a_packed_archive_on_a_base_the_engine_has_is_sent_without_the_base_layers(flavor: Flavor) {
        loads_without_the_base(flavor, "app.tar.zst", |app| {
            (packed(&app.tar), app.tar.len() as u64)
        });
    }

    /// A byte of each base layer's last block flipped: a decode would find the frame's
    /// checksum wrong, and the load goes through, as nothing decodes those blocks (the first
    /// pass reads a layer file's header, in its frame's first block, and the upload steps
    /// over the rest).
    fn a_packed_archive_is_sent_without_decoding_the_frames_of_the_layers_the_engine_holds(
        flavor: Flavor,
    ) {
        loads_without_the_base(flavor, "app.tar.zst", |app| {
            let mut framed = Framed::parse(&packed(&app.tar));
            for layer in &app.layers[..2] {
                let k = framed.last_frame_of(&format!("{}/layer.tar", sha256_hex(layer)));
                let last_block = framed.frame(k).end - 64;
                flip(&mut framed.data, last_block);
            }
            let damaged = framed.to_bytes();
            let (test, _, _) = pipe_status("zstd", &["-q", "-t"], &damaged);
            assert!(
                !test.success(),
                "fixture error: zstd -t passes the damaged archive"
            );
            (damaged, app.tar.len() as u64)
        });
    }
}
