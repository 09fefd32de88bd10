//! `container-loader pack`: a layer-framed archive is still plain zstd to every reader, and the
//! loader reads it as it reads the tar inside. Built only with `--features pack`.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn image() -> Fixture {
    Fixture::build(&["example.org/pack/app:1"], 3)
}

#[test]
fn zstd_decodes_a_packed_archive_to_the_tar_byte_for_byte() {
    let fixture = image();
    let archive = packed(&fixture.tar);
    assert!(pipe("zstd", &["-q", "-d", "-c"], &archive) == fixture.tar);
}

#[test]
fn pzstd_decodes_a_packed_archive_to_the_tar_byte_for_byte() {
    let fixture = image();
    let archive = packed(&fixture.tar);
    assert!(pipe("pzstd", &["-q", "-d", "-c"], &archive) == fixture.tar);
}

#[test]
fn zstd_lists_a_packed_archive_with_its_frames_and_checksums() {
    let pkg = Package::new();
    let path = pkg.add_archive("app.tar.zst", &packed(&image().tar));
    let out = Command::new("zstd").arg("-lv").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Skippable Frames: 2"), "{text}");
    assert!(text.contains("Check: XXH64"), "{text}");
}

/// `inspect --json` of `path`, without what depends on the compression.
fn inspected(path: &std::path::Path) -> Value {
    let out = run_loader(&["inspect", "--json", &path.display().to_string()], &[]);
    out.assert_code(0);
    let mut v: Value = serde_json::from_str(&out.stdout).unwrap();
    let archive = v[0].as_object_mut().unwrap();
    for varies in ["archive", "compressed_size", "format"] {
        archive.remove(varies);
    }
    v
}

#[test]
fn inspect_reads_a_packed_archive_as_it_reads_the_plain_tar() {
    let fixture = image();
    let pkg = Package::new();
    let plain = pkg.add_archive("app.tar", &fixture.tar);
    let packed = pkg.add_archive("app.tar.zst", &packed(&fixture.tar));
    assert_eq!(inspected(&packed), inspected(&plain));
}

#[test]
fn packing_a_gzip_archive_packs_the_tar_inside() {
    let fixture = image();
    let archive = packed(&Codec::Gzip.compress(&fixture.tar));
    assert!(pipe("zstd", &["-q", "-d", "-c"], &archive) == fixture.tar);
}

#[test]
fn packing_an_xz_archive_packs_the_tar_inside() {
    let fixture = image();
    let archive = packed(&Codec::Xz.compress(&fixture.tar));
    assert!(pipe("zstd", &["-q", "-d", "-c"], &archive) == fixture.tar);
}
