//! Archives the real engines write load into every engine: `podman save` as docker-archive
//! and as OCI archive, and `docker save` from docker 26 with each image store (an OCI layout
//! plus manifest.json). On each of the five engines, one boot loads an archive under its own
//! name and under a second name (tagged after the load), writes the markers, the next boot
//! verifies both, and after a factory reset a load deletes the archive.
//!
//! Each saved archive is made once per test process, by a source engine started for it, and
//! then read by every target engine's test.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::common::*;

/// An engine and the way it saves an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    PodmanDockerArchive,
    PodmanOciArchive,
    Docker26Save,
    Docker26ContainerdSave,
}

impl Source {
    fn engine(self) -> Flavor {
        match self {
            Source::PodmanDockerArchive | Source::PodmanOciArchive => Flavor::Podman54,
            Source::Docker26Save => Flavor::Docker26,
            Source::Docker26ContainerdSave => Flavor::Docker26Containerd,
        }
    }

    /// The name the archive carries.
    fn reference(self) -> String {
        let tag = match self {
            Source::PodmanDockerArchive => "podman-docker-archive",
            Source::PodmanOciArchive => "podman-oci-archive",
            Source::Docker26Save => "docker26-save",
            Source::Docker26ContainerdSave => "docker26-containerd-save",
        };
        format!("example.org/saved/{tag}:1")
    }

    /// The save request: docker's `GET /images/get`, podman's `GET /libpod/images/{name}/get`.
    fn path(self) -> String {
        let name = self.reference();
        match self {
            Source::PodmanDockerArchive => {
                format!("/v4.0.0/libpod/images/{name}/get?format=docker-archive")
            }
            Source::PodmanOciArchive => {
                format!("/v4.0.0/libpod/images/{name}/get?format=oci-archive")
            }
            Source::Docker26Save | Source::Docker26ContainerdSave => {
                format!("/images/get?names={name}")
            }
        }
    }
}

/// The archive `source` saves, made on first use in this test process.
fn saved(source: Source) -> Vec<u8> {
    static SAVED: OnceLock<Mutex<HashMap<Source, Vec<u8>>>> = OnceLock::new();
    let cache = SAVED.get_or_init(Default::default);
    // Held while the source engine runs: the tests that want it wait instead of each
    // starting an engine of their own.
    let mut saved = cache.lock().unwrap_or_else(|e| e.into_inner());
    saved
        .entry(source)
        .or_insert_with(|| {
            let engine = Engine::start(source.engine());
            engine.preload(&Fixture::build(&[&source.reference()], 2));
            let archive = get_bytes(engine.socket_path(), &source.path());
            assert!(
                archive.len() > 1024,
                "{source:?}: saved {} bytes",
                archive.len()
            );
            archive
        })
        .clone()
}

/// `GET path` as HTTP/1.0, so the engine sends the body unchunked and closes.
fn get_bytes(socket: &Path, path: &str) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).expect("connect to the engine");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: d\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "GET {path}: {head}"
    );
    answer.split_off(split + 4)
}

fn loads_verifies_tags_marks_and_deletes(source: Source, flavor: Flavor) {
    let archive = saved(source);
    let engine = Engine::start(flavor);
    let run = TempDir::new("run");
    let run_arg = run.path().display().to_string();
    let pkg = Package::new();
    let path = pkg.add_archive("saved.tar.zst", &Codec::Zstd.compress(&archive));
    let named = source.reference();
    let renamed = "example.org/renamed/image:2";
    pkg.write_list(&[
        &format!("saved.tar.zst {named}"),
        &format!("saved.tar.zst {renamed}"),
    ]);

    // First boot: the archive's own name, then a second name given by tagging.
    let out = load_package(&engine, &pkg, &["--run-dir", &run_arg]);
    out.assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed")
        .assert_entry(&pkg.list, 2, &["tagged", renamed]);
    let id = engine.assert_has(&named);
    assert_eq!(engine.image_id(renamed).as_deref(), Some(id.as_str()));
    let expected = archive_id_on(flavor, &path);
    assert_eq!(
        bare_id(&id),
        bare_id(&expected),
        "the engine's id for {named}"
    );
    for reference in [named.as_str(), renamed] {
        // The marker's name is the reference as systemd-escape spells it.
        let name = reference.replace('-', "\\x2d").replace('/', "-");
        let marker = run.join(format!("images/{name}"));
        let held = fs::read_to_string(&marker).expect("a marker for each image");
        assert_eq!(bare_id(held.trim()), bare_id(&expected));
    }

    // Next boot: both present, and the archive's image.
    load_package(&engine, &pkg, &["--run-dir", &run_arg, "--verify"])
        .assert_code(0)
        .assert_summary("0 loaded, 2 present, 0 differ, 0 failed")
        .assert_entry(&pkg.list, 1, &["verified"])
        .assert_entry(&pkg.list, 2, &["verified"]);

    // A factory reset empties the engine; the archive is loaded again, then deleted.
    engine.remove(&named);
    engine.remove(renamed);
    pkg.write_list(&[&format!("saved.tar.zst {named}")]);
    load_package(
        &engine,
        &pkg,
        &["--run-dir", &run_arg, "--delete-after-load"],
    )
    .assert_code(0)
    .assert_summary("1 loaded, 0 present, 0 failed")
    .assert_entry(&pkg.list, 1, &["deleted saved.tar.zst"]);
    assert!(
        !path.exists(),
        "the archive is deleted once its image is there"
    );
    engine.assert_has(&named);
}

fn podman_docker_archive(flavor: Flavor) {
    loads_verifies_tags_marks_and_deletes(Source::PodmanDockerArchive, flavor)
}

fn podman_oci_archive(flavor: Flavor) {
    loads_verifies_tags_marks_and_deletes(Source::PodmanOciArchive, flavor)
}

fn docker26_save(flavor: Flavor) {
    loads_verifies_tags_marks_and_deletes(Source::Docker26Save, flavor)
}

fn docker26_containerd_save(flavor: Flavor) {
    loads_verifies_tags_marks_and_deletes(Source::Docker26ContainerdSave, flavor)
}

on_every_engine! {
    podman_docker_archive;
    podman_oci_archive;
    docker26_save;
    docker26_containerd_save;
    docker_archive_after_an_oci_archive_of_its_layers_has_its_own_id;
}

/// The containerd store could describe a docker-archive's plain layer by a compressed blob it
/// already holds for it (containerd's importer looks for one); the id must still be the one
/// computed from the archive. podman's OCI archives hold gzip layers.
fn docker_archive_after_an_oci_archive_of_its_layers_has_its_own_id(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(&["example.org/shared/docker-archive:1"], 2);
    // Saved by id: the OCI archive carries no name, so the docker-archive's is still missing.
    let oci = podman_saved_as(&fixture, "oci-archive", &fixture.id);
    pkg.add_archive("oci.tar.zst", &Codec::Zstd.compress(&oci));
    let line = pkg.add("docker.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&["oci.tar.zst example.org/shared/oci:1", &line]);

    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed");

    let id = engine.assert_has(&fixture.reference);
    assert_eq!(bare_id(&id), fixture.id_on(flavor));
}
