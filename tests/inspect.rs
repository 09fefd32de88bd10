//! `container-loader inspect`: what an archive holds, read without an engine and without
//! unpacking anything.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use common::*;
use serde_json::{json, Value};

fn inspect(args: &[&str]) -> Output {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    run_loader(&all, &[])
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn names_the_reference_id_layers_and_platform_of_a_docker_archive() {
    let pkg = Package::new();
    let fixture = Fixture::build(
        &[
            "example.org/inspect/app:1",
            "example.org/inspect/app:latest",
        ],
        2,
    );
    let path = pkg.add_archive("app.tar.zst", &fixture.compressed(Codec::Zstd));

    let out = inspect(&["--json", &path.display().to_string()]);

    out.assert_code(0);
    let v = json_of(&out);
    let archive = &v[0];
    assert_eq!(archive["format"], "zstd");
    assert_eq!(archive["layout"], "docker-archive");
    assert_eq!(archive["uncompressed_size"], fixture.tar.len() as u64);
    assert_eq!(
        archive["compressed_size"],
        std::fs::metadata(&path).unwrap().len()
    );
    let image = &archive["images"][0];
    assert_eq!(
        image["references"],
        serde_json::json!([
            "example.org/inspect/app:1",
            "example.org/inspect/app:latest"
        ])
    );
    assert_eq!(image["id"], format!("sha256:{}", fixture.id));
    assert_eq!(image["layers"], 2);
    assert_eq!(image["os"], "linux");
}

#[test]
fn reads_the_ref_name_of_an_oci_archive_from_podman_save() {
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/inspect/oci:2");
    let oci = podman_saved(&fixture, "oci-archive");
    let path = pkg.add_archive("oci.tar.gz", &Codec::Gzip.compress(&oci));

    let out = inspect(&["--json", &path.display().to_string()]);

    out.assert_code(0);
    let image = &json_of(&out)[0]["images"][0];
    assert_eq!(json_of(&out)[0]["layout"], "oci-archive");
    assert_eq!(
        image["references"],
        serde_json::json!(["example.org/inspect/oci:2"])
    );
    assert_eq!(image["id"], format!("sha256:{}", fixture.id));
}

#[test]
fn prints_one_block_per_archive_as_text() {
    let pkg = Package::new();
    let a = Fixture::new("example.org/inspect/a:1");
    let b = Fixture::new("example.org/inspect/b:1");
    let pa = pkg.add_archive("a.tar.xz", &a.compressed(Codec::Xz));
    let pb = pkg.add_archive("b.tar", &b.compressed(Codec::Tar));

    let out = inspect(&[&pa.display().to_string(), &pb.display().to_string()]);

    out.assert_code(0);
    assert!(
        out.stdout.contains("a.tar.xz (docker-archive, xz, "),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("b.tar (docker-archive, tar, "),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!("id sha256:{}", a.id)),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("  example.org/inspect/b:1\n"),
        "{out:?}"
    );
}

#[test]
fn reports_a_corrupt_archive_and_still_inspects_the_others() {
    let pkg = Package::new();
    let good = Fixture::new("example.org/inspect/good:1");
    let mut bad = Fixture::new("example.org/inspect/bad:1").compressed(Codec::Zstd);
    let at = bad.len() / 2;
    flip(&mut bad, at);
    let pbad = pkg.add_archive("bad.tar.zst", &bad);
    let pgood = pkg.add_archive("good.tar.zst", &good.compressed(Codec::Zstd));

    let out = inspect(&[&pbad.display().to_string(), &pgood.display().to_string()]);

    out.assert_code(1)
        .assert_stderr_contains("bad.tar.zst: corrupt or truncated zstd data");
    assert!(out.stdout.contains("example.org/inspect/good:1"), "{out:?}");
}

#[test]
fn reads_a_bzip2_archive_of_several_streams_whole() {
    // Two streams, as `cat a.bz2 b.bz2` or pbzip2 make them, split inside the tar.
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/inspect/bzip2:1");
    let split = fixture.tar.len() / 2 + 7;
    let mut bz = pipe("bzip2", &["-c"], &fixture.tar[..split]);
    bz.extend(pipe("bzip2", &["-c"], &fixture.tar[split..]));
    let path = pkg.add_archive("app.tar.bz2", &bz);

    let out = inspect(&["--json", &path.display().to_string()]);

    out.assert_code(0);
    let archive = &json_of(&out)[0];
    assert_eq!(archive["format"], "bzip2");
    assert_eq!(archive["uncompressed_size"], fixture.tar.len() as u64);
    assert_eq!(archive["images"][0]["id"], format!("sha256:{}", fixture.id));
}

#[test]
fn names_a_bzip2_archive_whose_stream_crc_does_not_match() {
    let pkg = Package::new();
    let mut bad = Fixture::new("example.org/inspect/bad:1").compressed(Codec::Bzip2);
    // The stream's combined CRC, just before the last byte's padding.
    let at = bad.len() - 2;
    flip(&mut bad, at);
    let path = pkg.add_archive("bad.tar.bz2", &bad);

    inspect(&[&path.display().to_string()])
        .assert_code(1)
        .assert_stderr_contains(
        "bad.tar.bz2: corrupt or truncated bzip2 data: invalid data or a CRC that does not match",
    );
}

#[test]
fn says_when_a_tar_is_not_an_image() {
    let pkg = Package::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_cksum();
    b.append_data(&mut h, "etc/hostname", &b"x\n"[..]).unwrap();
    let path = pkg.add_archive("rootfs.tar", &b.into_inner().unwrap());

    inspect(&[&path.display().to_string()])
        .assert_code(1)
        .assert_stderr_contains("neither a docker-archive (manifest.json) nor an OCI archive");
}

#[test]
fn names_a_compression_it_does_not_read_by_its_first_bytes() {
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/inspect/lz4:1");
    let path = pkg.add_archive("app.tar.lz4", &pipe("lz4", &["-q", "-c"], &fixture.tar));

    inspect(&[&path.display().to_string()])
        .assert_code(1)
        .assert_stderr_contains("app.tar.lz4: lz4-compressed (by its first bytes), which the loader does not read: recompress it with zstd (or gzip, xz)");
}

#[test]
fn says_what_an_archive_is_not_when_its_first_bytes_name_nothing() {
    let pkg = Package::new();
    let path = pkg.add_archive("app.zip", b"PK\x03\x04 not an image archive");

    inspect(&[&path.display().to_string()])
        .assert_code(1)
        .assert_stderr_contains("app.zip: not zstd, gzip, xz, bzip2 or tar (by its first bytes)");
}

/// An OCI archive whose index.json gives `name` to an image index holding one image for each
/// of `platforms` (`os/arch`), as `docker buildx` writes them.
fn index_archive(name: &str, platforms: &[&str]) -> Vec<u8> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |data: Vec<u8>| {
        let hex = sha256_hex(&data);
        let descriptor = json!({"digest": format!("sha256:{hex}"), "size": data.len()});
        blobs.push((format!("blobs/sha256/{hex}"), data));
        descriptor
    };
    let mut manifests = Vec::new();
    for platform in platforms {
        let (os, arch) = platform.split_once('/').unwrap();
        let layer = container_loader_testkit::tar_of(&[("platform.txt", platform.as_bytes())]);
        let diff_id = format!("sha256:{}", sha256_hex(&layer));
        let layer = add(layer);
        let config = json!({"architecture": arch, "os": os, "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
        let config = add(config.to_string().into_bytes());
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": [layer]});
        let mut descriptor = add(manifest.to_string().into_bytes());
        descriptor["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        descriptor["platform"] = json!({"architecture": arch, "os": os});
        manifests.push(descriptor);
    }
    let index = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let mut top = add(index.to_string().into_bytes());
    top["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    top["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    let index_json = json!({"schemaVersion": 2, "manifests": [top]}).to_string();
    let mut files: Vec<(&str, &[u8])> = blobs
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    files.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
    files.push(("index.json", index_json.as_bytes()));
    container_loader_testkit::tar_of(&files)
}

#[test]
fn lists_the_platforms_of_an_index_that_holds_no_image_for_the_device() {
    let pkg = Package::new();
    let name = "example.org/inspect/foreign:1";
    let archive = index_archive(name, &["linux/s390x", "linux/ppc64le"]);
    let path = pkg.add_archive("foreign.tar", &archive);
    let path = path.display().to_string();

    let out = inspect(&[&path]);

    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            "  {name}\n    no image for this device's platform {}, only for linux/s390x, linux/ppc64le; ship an archive that holds the {} image\n",
            device_platform(),
            device_platform()
        )),
        "{out:?}"
    );
    assert!(!out.stdout.contains("unknown platform"), "{out:?}");
    let v = json_of(&inspect(&["--json", &path]));
    assert_eq!(
        v[0]["images"][0]["other_platforms"],
        json!(["linux/s390x", "linux/ppc64le"])
    );
}

#[test]
fn json_leaves_out_other_platforms_for_an_image_the_device_can_run() {
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/inspect/own:1");
    let path = pkg.add_archive("own.tar", &fixture.tar);

    let v = json_of(&inspect(&["--json", &path.display().to_string()]));

    assert!(v[0]["images"][0].get("other_platforms").is_none(), "{v}");
}

/// The platform the loader runs on, in the engines' names.
fn device_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no OCI platform name known for {other}"),
    }
}
