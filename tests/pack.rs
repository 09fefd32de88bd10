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

/// Debian's Python, whose `python3-zstandard` make test installs (a `python3` earlier on PATH,
/// such as a pyenv one, may not have the module).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

#[test]
fn python_zstandard_decodes_a_packed_archive_to_the_tar_byte_for_byte() {
    let fixture = image();
    let archive = packed(&fixture.tar);
    // Across frames: by default python-zstandard's reader stops at the end of the first.
    let script = "import sys, zstandard\n\
        r = zstandard.ZstdDecompressor().stream_reader(sys.stdin.buffer, read_across_frames=True)\n\
        while chunk := r.read(1 << 20):\n    sys.stdout.buffer.write(chunk)\n";
    assert!(pipe(DEBIAN_PYTHON, &["-c", script], &archive) == fixture.tar);
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

/// The packed archive of a one-layer image whose layer (1 MiB that does not compress: raw
/// blocks) has a byte of its frame's last block flipped, stored in `pkg`: every zstd reader
/// that decodes it finds its checksum wrong.
fn with_a_damaged_layer_frame(pkg: &Package) -> (Fixture, std::path::PathBuf) {
    let fixture = Fixture::one_file_layer(
        "example.org/pack/damaged:1",
        "random.bin",
        &random_bytes(fresh_seed(), 1 << 20),
    );
    let mut framed = Framed::parse(&packed(&fixture.tar));
    let k = framed.last_frame_of(&format!("{}/layer.tar", sha256_hex(&fixture.layers[0])));
    let last_block = framed.frame(k).end - 64;
    flip(&mut framed.data, last_block);
    let path = pkg.add_archive("damaged.tar.zst", &framed.to_bytes());
    let test = Command::new("zstd").arg("-qt").arg(&path).output().unwrap();
    assert!(!test.status.success(), "fixture error: zstd -t passes it");
    (fixture, path)
}

#[test]
fn inspect_of_a_packed_archive_decodes_no_layer() {
    let pkg = Package::new();
    let (fixture, path) = with_a_damaged_layer_frame(&pkg);

    let out = run_loader(&["inspect", "--json", &path.display().to_string()], &[]);

    out.assert_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["images"][0]["id"], format!("sha256:{}", fixture.id));
}

#[test]
fn scan_of_a_packed_archive_decodes_no_layer() {
    let pkg = Package::new();
    let (fixture, _) = with_a_damaged_layer_frame(&pkg);
    let images = pkg.images.display().to_string();

    run_loader(&["scan", &images, "-o", &pkg.list_arg()], &[]).assert_code(0);

    assert_eq!(
        std::fs::read_to_string(&pkg.list).unwrap(),
        format!("damaged.tar.zst {}\n", fixture.reference)
    );
}
