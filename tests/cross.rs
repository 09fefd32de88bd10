//! A device build for another architecture, run under qemu-user against a real podman: the
//! binary that ships to boards is the one built for its target, loads every compression and
//! skips what is present.
//!
//! `make test` runs this file once per such build, with CONTAINER_LOADER_BIN naming the binary,
//! CONTAINER_LOADER_BIN_TARGET the rust target it must have been built for and
//! CONTAINER_LOADER_RUNNER the qemu-user that runs it: dist/container-loader-aarch64-linux-musl
//! under qemu-aarch64-static, dist/container-loader-armv7-linux-musleabihf under qemu-arm-static.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use common::*;

/// The rust target CONTAINER_LOADER_BIN must have been built for. Not CONTAINER_LOADER_TARGET:
/// build.rs sets that one for `--version`, and cargo test hands it to the tests too, as the
/// host's target.
fn expected_target() -> String {
    std::env::var("CONTAINER_LOADER_BIN_TARGET")
        .ok()
        .filter(|t| !t.is_empty())
        .expect("CONTAINER_LOADER_BIN_TARGET must name the rust target of CONTAINER_LOADER_BIN")
}

#[test]
#[ignore = "needs a foreign build, its target and its qemu-user: `make test` runs it"]
fn version_names_the_expected_target() {
    let target = expected_target();
    let out = loader_command().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--version failed: {out:?}");
    // A whole word: aarch64-unknown-linux-musl must not pass for ...-musleabihf or the reverse.
    let named = version
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|word| word == target);
    assert!(
        named,
        "CONTAINER_LOADER_BIN must be the {target} build, its version is {version:?}"
    );
}

#[test]
#[ignore = "needs a foreign build, its target and its qemu-user: `make test` runs it"]
fn loads_zstd_gzip_and_xz_into_podman_then_skips_them() {
    let target = expected_target();
    let arch = target.split('-').next().unwrap();
    let engine = Engine::podman();
    let pkg = Package::new();
    let fixtures: Vec<(Fixture, Codec)> = [Codec::Zstd, Codec::Gzip, Codec::Xz]
        .into_iter()
        .map(|codec| {
            let reference = format!("example.org/{arch}/{}:1", codec.format());
            (Fixture::new(&reference), codec)
        })
        .collect();
    let lines: Vec<String> = fixtures
        .iter()
        .map(|(f, codec)| pkg.add(&format!("{arch}.{}", codec.extension()), f, *codec))
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
