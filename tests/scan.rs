//! `container-loader scan DIR`: the image.list a build writes from the archives themselves.

mod common;

use std::fs;

use common::*;

fn scan(pkg: &Package, extra: &[&str]) -> Output {
    let images = pkg.images.display().to_string();
    let list = pkg.list_arg();
    let mut args = vec!["scan", images.as_str(), "-o", list.as_str()];
    args.extend_from_slice(extra);
    run_loader(&args, &[])
}

#[test]
fn writes_a_list_from_the_references_inside_that_then_loads() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let docker = Fixture::new("example.org/scan/docker:1");
    let oci = Fixture::new("example.org/scan/oci:2");
    pkg.add_archive("a-docker.tar.zst", &docker.compressed(Codec::Zstd));
    pkg.add_archive(
        "b-oci.tar.gz",
        &Codec::Gzip.compress(&podman_saved(&oci, "oci-archive")),
    );

    scan(&pkg, &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "a-docker.tar.zst example.org/scan/docker:1\nb-oci.tar.gz example.org/scan/oci:2\n"
    );
    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed");
}

#[test]
fn refuses_an_archive_that_names_no_image_unless_given_a_reference() {
    let pkg = Package::new();
    let named = Fixture::new("example.org/scan/named:1");
    let unnamed = Fixture::build(&[], 1);
    pkg.add_archive("named.tar.zst", &named.compressed(Codec::Zstd));
    pkg.add_archive("unnamed.tar.zst", &unnamed.compressed(Codec::Zstd));

    scan(&pkg, &[])
        .assert_code(1)
        .assert_stderr_contains("unnamed.tar.zst: the archive names no image; give it one with --ref unnamed.tar.zst=NAME:TAG");
    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "named.tar.zst example.org/scan/named:1\n"
    );

    scan(&pkg, &["--ref", "unnamed.tar.zst=example.org/scan/given:3"]).assert_code(0);
    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "named.tar.zst example.org/scan/named:1\nunnamed.tar.zst example.org/scan/given:3\n"
    );
}

#[test]
fn refuses_a_given_reference_the_loader_would_refuse() {
    let pkg = Package::new();
    let unnamed = Fixture::build(&[], 1);
    pkg.add_archive("unnamed.tar.zst", &unnamed.compressed(Codec::Zstd));

    scan(
        &pkg,
        &["--ref", "unnamed.tar.zst=../../containers/json?all=1"],
    )
    .assert_code(1)
    .assert_stderr_contains("invalid image reference \"../../containers/json?all=1\"");
    assert_eq!(fs::read_to_string(&pkg.list).unwrap(), "");
}
