//! `container-loader scan DIR`: the image.list a build writes from the archives themselves.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use std::fs;
use std::process::Command;

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
fn lists_a_bzip2_archive_like_the_others() {
    let pkg = Package::new();
    let named = Fixture::new("example.org/scan/named:1");
    let bzip2 = Fixture::new("example.org/scan/bzip2:1");
    pkg.add_archive("named.tar.zst", &named.compressed(Codec::Zstd));
    pkg.add_archive("old.tar.bz2", &bzip2.compressed(Codec::Bzip2));

    scan(&pkg, &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "named.tar.zst example.org/scan/named:1\nold.tar.bz2 example.org/scan/bzip2:1\n"
    );
}

#[test]
fn refuses_an_lz4_archive_naming_its_compression() {
    let pkg = Package::new();
    let named = Fixture::new("example.org/scan/named:1");
    let lz4 = Fixture::new("example.org/scan/lz4:1");
    pkg.add_archive("named.tar.zst", &named.compressed(Codec::Zstd));
    pkg.add_archive("old.tar.lz4", &pipe("lz4", &["-q", "-c"], &lz4.tar));

    scan(&pkg, &[])
        .assert_code(1)
        .assert_stderr_contains("old.tar.lz4: lz4-compressed (by its first bytes), which the loader does not read: recompress it with zstd (or gzip, xz)");
    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "named.tar.zst example.org/scan/named:1\n"
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

#[test]
fn writes_one_line_per_reference_of_an_image_tagged_twice() {
    let pkg = Package::new();
    let twice = Fixture::build(&["example.org/scan/twice:1", "example.org/scan/twice:2"], 1);
    pkg.add_archive("twice.tar.zst", &twice.compressed(Codec::Zstd));

    scan(&pkg, &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "twice.tar.zst example.org/scan/twice:1\ntwice.tar.zst example.org/scan/twice:2\n"
    );
}

#[test]
fn writes_one_line_per_image_of_an_archive_holding_two() {
    let pkg = Package::new();
    let a = Fixture::new("example.org/scan/first:1");
    let b = Fixture::new("example.org/scan/second:1");
    pkg.add_archive("two.tar", &two_image_archive(&a, &b));

    scan(&pkg, &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&pkg.list).unwrap(),
        "two.tar example.org/scan/first:1\ntwo.tar example.org/scan/second:1\n"
    );
}

#[test]
fn a_list_naming_one_archive_twice_loads_it_once_and_skips_the_second_line() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let a = Fixture::new("example.org/scan/once-a:1");
    let b = Fixture::new("example.org/scan/once-b:1");
    pkg.add_archive(
        "two.tar.zst",
        &Codec::Zstd.compress(&two_image_archive(&a, &b)),
    );
    scan(&pkg, &[]).assert_code(0);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_summary("1 loaded, 1 present, 0 failed")
        .assert_stderr_contains("example.org/scan/once-b:1: present, skipped");
    engine.assert_has(&a.reference);
    engine.assert_has(&b.reference);
}

#[test]
fn delete_after_load_deletes_an_archive_named_twice_once_both_lines_are_present() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let a = Fixture::new("example.org/scan/del-a:1");
    let b = Fixture::new("example.org/scan/del-b:1");
    let path = pkg.add_archive(
        "two.tar.zst",
        &Codec::Zstd.compress(&two_image_archive(&a, &b)),
    );
    scan(&pkg, &[]).assert_code(0);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_summary("1 loaded, 1 present, 0 failed")
        .assert_stderr_contains("deleted two.tar.zst");
    assert!(!path.exists(), "{out:?}");
    engine.assert_has(&a.reference);
    engine.assert_has(&b.reference);
}

#[test]
fn delete_after_load_keeps_an_archive_whose_later_line_failed() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let a = Fixture::new("example.org/scan/keep-a:1");
    let b = Fixture::new("example.org/scan/keep-b:1");
    let path = pkg.add_archive(
        "two.tar.zst",
        &Codec::Zstd.compress(&two_image_archive(&a, &b)),
    );
    // The second line names an image the archive does not hold: it fails, and the archive
    // stays for the next run.
    pkg.write_list(&[
        "two.tar.zst example.org/scan/keep-a:1",
        "two.tar.zst example.org/scan/keep-missing:1",
    ]);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(1)
        .assert_summary("1 loaded, 0 present, 1 failed")
        .assert_stderr_contains("kept two.tar.zst: a line naming it failed");
    assert!(path.exists(), "{out:?}");
    engine.assert_has(&a.reference);
}

#[test]
fn delete_after_load_deletes_an_image_tagged_twice_after_its_second_line() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let twice = Fixture::build(&["example.org/scan/tags:1", "example.org/scan/tags:2"], 1);
    let path = pkg.add_archive("twice.tar.zst", &twice.compressed(Codec::Zstd));
    scan(&pkg, &[]).assert_code(0);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_summary("1 loaded, 1 present, 0 failed")
        .assert_stderr_contains("image.list:2: example.org/scan/tags:2: deleted twice.tar.zst");
    assert!(!path.exists(), "{out:?}");
    engine.assert_has("example.org/scan/tags:1");
    engine.assert_has("example.org/scan/tags:2");
}

#[test]
fn refuses_to_write_through_a_link_planted_at_its_temporary_name() {
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/scan/link:1");
    pkg.add_archive("link.tar.zst", &fixture.compressed(Codec::Zstd));
    let target = pkg.dir().join("target");
    fs::write(&target, "not the list\n").unwrap();
    // The temporary name is LIST.PID.tmp: the shell plants the link at the name of its own
    // process ID, then becomes the loader, which keeps it.
    let mut plant = Command::new("sh");
    plant
        .args(["-c", r#"ln -s "$TARGET" "$LIST.$$.tmp" && exec "$@""#, "sh"])
        .env("TARGET", &target)
        .env("LIST", &pkg.list);
    let images = pkg.images.display().to_string();
    let list = pkg.list_arg();

    let out = spawn_loader_behind(plant, &["scan", &images, "-o", &list]).wait();

    let link = fs::read_dir(pkg.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tmp"))
        .expect("the planted link is gone");
    out.assert_code(2).assert_stderr_contains(&format!(
        "writing the list: {}: exists already, and is left as it is",
        link.display()
    ));
    assert_eq!(fs::read_link(&link).unwrap(), target, "{out:?}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "not the list\n");
    assert_eq!(fs::read_to_string(&pkg.list).unwrap(), "", "{out:?}");
}
