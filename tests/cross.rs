//! The arm64 build, run under qemu-user against a real podman: the binary that ships to boards
//! loads every compression and skips what is present.
//!
//! `make test` builds dist/container-loader-aarch64-linux-musl and runs this file with
//! CONTAINER_LOADER_BIN pointing at it and CONTAINER_LOADER_RUNNER=qemu-aarch64-static.

mod common;

use common::*;

#[test]
#[ignore = "needs the arm64 build and qemu-aarch64-static: `make test` runs it"]
fn arm64_binary_loads_zstd_gzip_and_xz_then_skips_them() {
    let version = loader_command().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("aarch64-unknown-linux-musl"),
        "CONTAINER_LOADER_BIN must be the arm64 build, got {version:?}"
    );
    let engine = Engine::podman();
    let pkg = Package::new();
    let fixtures: Vec<(Fixture, Codec)> = [Codec::Zstd, Codec::Gzip, Codec::Xz]
        .into_iter()
        .map(|codec| {
            let reference = format!("example.org/arm64/{}:1", codec.format());
            (Fixture::new(&reference), codec)
        })
        .collect();
    let lines: Vec<String> = fixtures
        .iter()
        .map(|(f, codec)| pkg.add(&format!("arm64.{}", codec.extension()), f, *codec))
        .collect();
    pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());

    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("3 loaded, 0 present, 0 failed");
    for (f, _) in &fixtures {
        engine.assert_has(&f.reference);
    }
    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("0 loaded, 3 present, 0 failed");
}
