//! `container-loader inspect`: what an archive holds, read without an engine and without
//! unpacking anything.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use common::*;
use serde_json::Value;

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
        .assert_stderr_contains("app.zip: not zstd, gzip, xz or tar (by its first bytes)");
}
