//! What happens when things break during a load: the engine or the loader killed halfway, the
//! connection cut or stalled, the engine's storage full, damaged archives, two loaders at once,
//! a decompression bomb, hostile lists. Every case checks the loader's exit code and message,
//! the engine's images through its API, and the archives on disk.
//!
//! Cases already covered elsewhere are not repeated here (see docs/operations.md, "What can go wrong, and
//! what happens"): corrupt middles, bad checksums and 60 % truncations, --memory-limit,
//! absolute/`..`/symlinked archive names, 10 MB lines, directory and FIFO archives are in
//! tests/engines/refuses.rs; a fake engine that never answers is in tests/engines/engine.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::common::fake_engine::FakeEngine;
use crate::common::proxy::{docker_refusal, podman_refusal, Fault, Proxy};
use crate::common::*;

on_every_engine! {
    engine_killed_mid_load_then_restarted_loads_on_rerun;
    loader_killed_mid_load_leaves_no_image_and_no_lock;
    connection_cut_at_any_offset_fails_the_entry_and_keeps_the_archive;
    engine_stalled_mid_upload_fails_after_timeout;
    engine_refusing_mid_upload_is_quoted_not_a_broken_pipe;
    full_engine_storage_fails_the_entry_and_later_entries_still_load;
    second_loader_waits_for_the_lock_and_loads_nothing_twice;
    killed_between_load_and_recheck_keeps_the_archive;
}

/// Longest any faulted run may take: the faults below must never hang a boot.
const BOUNDED: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A one-layer docker-archive whose layer holds `len` random bytes: big enough that a load
/// takes a while and can be interrupted halfway.
fn big_fixture(reference: &str, len: usize) -> Fixture {
    let seed = fresh_seed();
    Fixture::one_file_layer(
        reference,
        &format!("big-{seed:x}.bin"),
        &random_bytes(seed, len),
    )
}

/// A private directory for the loaders' lock files, so tests never share a lock.
fn run_dir() -> TempDir {
    TempDir::new("lock")
}

/// Runs the loader on `pkg` through `host` (`-H` args), with a private lock dir.
fn run_on(host: &[String], pkg: &Package, locks: &TempDir, extra: &[&str]) -> Output {
    run_loader(&args_on(host, pkg, locks, extra), &[])
}

fn args_on(host: &[String], pkg: &Package, locks: &TempDir, extra: &[&str]) -> Vec<String> {
    let mut args = host.to_vec();
    args.extend(["-l".into(), pkg.list_arg()]);
    args.extend(["--run-dir".into(), locks.path().display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The engine has `fixture` under its reference, with the fixture's id as the engine's store
/// makes it (config digest, or manifest digest on docker's containerd store).
fn assert_loaded_intact(engine: &Engine, fixture: &Fixture) {
    let id = engine.assert_has(&fixture.reference);
    assert_eq!(
        bare_id(&id),
        fixture.id_on(engine.flavor()),
        "{}: image id must be the archive's",
        fixture.reference
    );
}

/// The archive at `path` is still there, byte for byte.
fn assert_archive_kept(path: &Path, data: &[u8]) {
    let now = fs::read(path).unwrap_or_else(|e| panic!("{} must be kept: {e}", path.display()));
    assert!(
        now == data,
        "{} changed on disk ({} bytes, was {})",
        path.display(),
        now.len(),
        data.len()
    );
}

/// The engine has no image under `reference`, or (if the engine finished the import
/// before the fault) the complete, correct one.
fn assert_absent_or_intact(engine: &Engine, fixture: &Fixture) {
    if let Some(id) = engine.image_id(&fixture.reference) {
        assert_eq!(
            bare_id(&id),
            fixture.id_on(engine.flavor()),
            "{} is present after the fault but is not the archive's image",
            fixture.reference
        );
    }
}

/// The single lock file in `locks` can be taken at once (nobody holds it).
fn assert_lock_free(locks: &TempDir) {
    let files: Vec<PathBuf> = fs::read_dir(locks.path())
        .expect("lock dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "one lock file per engine: {files:?}");
    let status = Command::new("flock")
        .args(["-n", "-E", "99"])
        .arg(&files[0])
        .arg("true")
        .status()
        .expect("run flock");
    assert_eq!(
        status.code(),
        Some(0),
        "lock {} is still held after the loader died",
        files[0].display()
    );
}

// ---------------------------------------------------------------------------------------
// Engine killed, loader killed
// ---------------------------------------------------------------------------------------

fn engine_killed_mid_load_then_restarted_loads_on_rerun(flavor: Flavor) {
    let mut engine = Engine::start(flavor);
    let pkg = Package::new();
    let locks = run_dir();
    let big = big_fixture("example.org/fault/engine-killed:1", 24 << 20);
    let data = big.compressed(Codec::Zstd);
    let archive = pkg.add_archive("big.tar.zst", &data);
    pkg.write_list(&[&format!("big.tar.zst {}", big.reference)]);
    // The proxy holds the upload after 4 MiB, so the kill lands mid-upload every time.
    let proxy = Proxy::start(
        &pkg.dir().join("p.sock"),
        engine.socket_path(),
        Fault::Stall { after: 4 << 20 },
    );
    let running = spawn_loader(
        &args_on(&proxy.host_args(), &pkg, &locks, &["--delete-after-load"]),
        &[],
    );
    proxy.wait_fired(BOUNDED);
    engine.kill9();
    proxy.release();

    let out = running.wait();

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: failed: loading big.tar.zst: ", big.reference)],
        )
        .assert_entry_lacks(&pkg.list, 1, "deleted")
        .assert_summary("0 loaded, 0 present, 1 failed");
    assert!(out.elapsed < BOUNDED, "{out:?}");
    assert_archive_kept(&archive, &data);
    drop(proxy);

    engine.restart();
    engine.assert_has_not(&big.reference);
    let out = run_on(&engine.host_args(), &pkg, &locks, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: loaded from big.tar.zst", big.reference)],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert_loaded_intact(&engine, &big);
    assert_archive_kept(&archive, &data);
}

fn loader_killed_mid_load_leaves_no_image_and_no_lock(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let locks = run_dir();
    let big = big_fixture("example.org/fault/loader-killed:1", 24 << 20);
    let data = big.compressed(Codec::Zstd);
    let archive = pkg.add_archive("big.tar.zst", &data);
    pkg.write_list(&[&format!("big.tar.zst {}", big.reference)]);
    let socket = pkg.dir().join("p.sock");
    let proxy = Proxy::start(
        &socket,
        engine.socket_path(),
        Fault::Stall { after: 4 << 20 },
    );
    let running = spawn_loader(
        &args_on(&proxy.host_args(), &pkg, &locks, &["--delete-after-load"]),
        &[],
    );
    proxy.wait_fired(BOUNDED);
    assert!(
        proxy.upload_bytes() >= 4 << 20,
        "the engine got part of the upload"
    );

    let stderr = running.kill9();
    // The engine sees the upload end without its last chunk.
    drop(proxy);

    assert!(
        !stderr.contains("loaded from") && !stderr.contains("deleted"),
        "{stderr}"
    );
    assert_archive_kept(&archive, &data);
    assert_absent_or_intact(&engine, &big);
    assert_lock_free(&locks);

    // Next boot: the same socket path (so the same lock file), a healthy connection.
    let proxy = Proxy::start(&socket, engine.socket_path(), Fault::None);
    let out = run_on(&proxy.host_args(), &pkg, &locks, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: loaded from big.tar.zst", big.reference)],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert!(
        !out.stderr.contains("waiting for"),
        "stale lock waited for\n{out:?}"
    );
    assert!(out.elapsed < BOUNDED, "{out:?}");
    assert_loaded_intact(&engine, &big);
    assert_archive_kept(&archive, &data);
}

// ---------------------------------------------------------------------------------------
// Connection cut, engine stalled, engine refusing mid-upload
// ---------------------------------------------------------------------------------------

/// Line 1: a ~1 MiB archive the fault hits (the proxy faults only the first upload);
/// line 2: a small archive that must still load.
struct Faulted {
    pkg: Package,
    big: Fixture,
    data: Vec<u8>,
    archive: PathBuf,
    after: Fixture,
}

impl Faulted {
    fn new(tag: &str) -> Faulted {
        let pkg = Package::new();
        let big = big_fixture(&format!("example.org/{tag}/big:1"), 1 << 20);
        let data = big.compressed(Codec::Zstd);
        let archive = pkg.add_archive("big.tar.zst", &data);
        let after = Fixture::new(&format!("example.org/{tag}/after:1"));
        let line2 = pkg.add("after.tar.gz", &after, Codec::Gzip);
        pkg.write_list(&[&format!("big.tar.zst {}", big.reference), &line2]);
        Faulted {
            pkg,
            big,
            data,
            archive,
            after,
        }
    }

    /// Line 1 failed with `parts` in its message, its image is absent and its archive kept
    /// despite --delete-after-load; line 2 loaded.
    fn assert_failed_and_next_loaded(&self, engine: &Engine, out: &Output, parts: &[&str]) {
        let mut want = vec![format!("{}: failed: ", self.big.reference)];
        want.extend(parts.iter().map(|p| p.to_string()));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        out.assert_code(1)
            .assert_entry(&self.pkg.list, 1, &want)
            .assert_entry_lacks(&self.pkg.list, 1, "deleted")
            .assert_entry(
                &self.pkg.list,
                2,
                &[&format!(
                    "{}: loaded from after.tar.gz",
                    self.after.reference
                )],
            )
            .assert_summary("1 loaded, 0 present, 1 failed");
        assert!(out.elapsed < BOUNDED, "took too long\n{out:?}");
        engine.assert_has_not(&self.big.reference);
        assert_archive_kept(&self.archive, &self.data);
        engine.assert_has(&self.after.reference);
    }
}

fn connection_cut_at_any_offset_fails_the_entry_and_keeps_the_archive(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let probe = Faulted::new("cut-probe");
    let upload_len = probe.big.tar.len() as u64;
    // In the request line, in the headers, at the first body byte, inside the first
    // chunk, halfway, and in the held-back tail (the last 64 KiB of the tar).
    let offsets = [
        0,
        20,
        150,
        400,
        64 << 10,
        upload_len / 2,
        upload_len - (16 << 10),
    ];
    drop(probe);
    for (i, after) in offsets.into_iter().enumerate() {
        let f = Faulted::new(&format!("cut{i}"));
        let locks = run_dir();
        let proxy = Proxy::start(
            &f.pkg.dir().join("p.sock"),
            engine.socket_path(),
            Fault::Cut { after },
        );

        let out = run_on(&proxy.host_args(), &f.pkg, &locks, &["--delete-after-load"]);

        assert!(proxy.fired(), "cut at {after} never happened\n{out:?}");
        f.assert_failed_and_next_loaded(&engine, &out, &["loading big.tar.zst: uploading: "]);
    }
}

fn engine_stalled_mid_upload_fails_after_timeout(flavor: Flavor) {
    let engine = Engine::start(flavor);
    // Early: the loader's writes block on full socket buffers. Late: the whole body fits in
    // the buffers and the loader waits for an answer that never comes.
    for (i, after) in [64u64 << 10, (1 << 20) - (100 << 10)]
        .into_iter()
        .enumerate()
    {
        let f = Faulted::new(&format!("stall{i}"));
        let locks = run_dir();
        let proxy = Proxy::start(
            &f.pkg.dir().join("p.sock"),
            engine.socket_path(),
            Fault::Stall { after },
        );

        let out = run_on(
            &proxy.host_args(),
            &f.pkg,
            &locks,
            &["--delete-after-load", "--timeout", "2"],
        );

        assert!(proxy.fired(), "stall at {after} never happened\n{out:?}");
        f.assert_failed_and_next_loaded(&engine, &out, &["loading big.tar.zst: ", "timeout"]);
        assert!(
            out.elapsed >= Duration::from_millis(1500),
            "--timeout 2 cannot have passed\n{out:?}"
        );
        drop(proxy);
    }
}

fn engine_refusing_mid_upload_is_quoted_not_a_broken_pipe(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let f = Faulted::new("refuse");
    let locks = run_dir();
    let message = "write /var/lib/x/tmp/upload: no space left on device";
    let answer = match flavor.family() {
        Kind::Docker => docker_refusal(message),
        Kind::Podman => podman_refusal(message),
    };
    let proxy = Proxy::start(
        &f.pkg.dir().join("p.sock"),
        engine.socket_path(),
        Fault::Refuse {
            after: 256 << 10,
            answer,
        },
    );

    let out = run_on(&proxy.host_args(), &f.pkg, &locks, &["--delete-after-load"]);

    assert!(proxy.fired(), "{out:?}");
    f.assert_failed_and_next_loaded(
        &engine,
        &out,
        &["engine refused big.tar.zst: ", "no space left on device"],
    );
    out.assert_entry_lacks(&f.pkg.list, 1, "roken pipe");
}

// ---------------------------------------------------------------------------------------
// Storage full
// ---------------------------------------------------------------------------------------

fn full_engine_storage_fails_the_entry_and_later_entries_still_load(flavor: Flavor) {
    // The engine's whole directory (docker: data-root and exec-root; podman: root, runroot,
    // and TMPDIR, where it first copies every upload) on a 48 MiB tmpfs; a 64 MiB archive.
    // The TempDir behind the engine unmounts it when the test ends. --no-space-check: this is
    // the engine's own error (the check's is in tests/engines/space.rs).
    let mut engine = Engine::unstarted(flavor);
    let dir = engine.dir().to_owned();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount");
    assert!(status.success(), "mount tmpfs on {}", dir.display());
    engine.launch();
    let pkg = Package::new();
    let locks = run_dir();
    let big = big_fixture("example.org/full/big:1", 64 << 20);
    let data = big.compressed(Codec::Zstd);
    let archive = pkg.add_archive("big.tar.zst", &data);
    let after = Fixture::new("example.org/full/after:1");
    let line2 = pkg.add("after.tar.gz", &after, Codec::Gzip);
    pkg.write_list(&[&format!("big.tar.zst {}", big.reference), &line2]);

    let out = run_on(
        &engine.host_args(),
        &pkg,
        &locks,
        &["--delete-after-load", "--no-space-check"],
    );

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[
                &format!("{}: failed: ", big.reference),
                "engine refused big.tar.zst: ",
                "no space left on device",
            ],
        )
        .assert_entry_lacks(&pkg.list, 1, "deleted");
    assert!(out.elapsed < BOUNDED, "{out:?}");
    engine.assert_has_not(&big.reference);
    assert_archive_kept(&archive, &data);
    if flavor.containerd_store() {
        // containerd keeps what the failed upload wrote in its content store, so the disk is
        // still full for the next one: it is tried, and fails for that reason, in its turn.
        out.assert_entry(
            &pkg.list,
            2,
            &[
                &format!("{}: failed: ", after.reference),
                "no space left on device",
            ],
        )
        .assert_summary("0 loaded, 0 present, 2 failed");
        return;
    }
    out.assert_entry(
        &pkg.list,
        2,
        &[&format!("{}: loaded from after.tar.gz", after.reference)],
    )
    .assert_summary("1 loaded, 0 present, 1 failed");
    engine.assert_has(&after.reference);
}

// ---------------------------------------------------------------------------------------
// Two loaders at once
// ---------------------------------------------------------------------------------------

fn second_loader_waits_for_the_lock_and_loads_nothing_twice(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let locks = run_dir();
    let big = big_fixture("example.org/twice/big:1", 4 << 20);
    let line1 = pkg.add("big.tar.zst", &big, Codec::Zstd);
    let small = Fixture::new("example.org/twice/small:1");
    let line2 = pkg.add("small.tar.gz", &small, Codec::Gzip);
    pkg.write_list(&[&line1, &line2]);
    // Both loaders use the same socket (so the same lock); the first one's upload is held
    // halfway until the second has had time to reach the lock.
    let proxy = Proxy::start(
        &pkg.dir().join("p.sock"),
        engine.socket_path(),
        Fault::Stall { after: 1 << 20 },
    );
    let args = args_on(&proxy.host_args(), &pkg, &locks, &[]);
    let first = spawn_loader(&args, &[]);
    proxy.wait_fired(BOUNDED);
    let mut second = spawn_loader(&args, &[]);
    thread::sleep(Duration::from_millis(1500));
    assert!(second.is_running(), "the second loader must wait");
    assert_eq!(
        proxy.uploads(),
        1,
        "only the first loader uploads while it holds the lock"
    );
    proxy.release();

    let (first, second) = (first.wait(), second.wait());

    first
        .assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed");
    second
        .assert_code(0)
        .assert_stderr_contains("another container-loader is using this engine; waiting for")
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: present, skipped", big.reference)],
        )
        .assert_entry(
            &pkg.list,
            2,
            &[&format!("{}: present, skipped", small.reference)],
        )
        .assert_summary("0 loaded, 2 present, 0 failed");
    assert_eq!(proxy.uploads(), 2, "each image uploaded exactly once");
    assert_loaded_intact(&engine, &big);
    assert_loaded_intact(&engine, &small);
}

// ---------------------------------------------------------------------------------------
// --delete-after-load and a kill right after the load
// ---------------------------------------------------------------------------------------

fn killed_between_load_and_recheck_keeps_the_archive(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let locks = run_dir();
    let fixture = Fixture::new("example.org/recheck/killed:1");
    let data = fixture.compressed(Codec::Zstd);
    let archive = pkg.add_archive("img.tar.zst", &data);
    pkg.write_list(&[&format!("img.tar.zst {}", fixture.reference)]);
    let socket = pkg.dir().join("p.sock");
    // The engine takes the whole upload and answers; the loader's next request (the
    // presence re-check) is held, and the loader is killed there.
    let proxy = Proxy::start(&socket, engine.socket_path(), Fault::StallAfterUpload);
    let running = spawn_loader(
        &args_on(&proxy.host_args(), &pkg, &locks, &["--delete-after-load"]),
        &[],
    );
    proxy.wait_fired(BOUNDED);
    let stderr = running.kill9();
    drop(proxy);

    assert!(!stderr.contains("deleted"), "{stderr}");
    assert_archive_kept(&archive, &data);
    assert_loaded_intact(&engine, &fixture);
    assert_lock_free(&locks);

    // Next boot: the image is there, so the entry is skipped; the archive is not deleted
    // (only a run that loads and verifies an image deletes its archive).
    let out = run_on(&engine.host_args(), &pkg, &locks, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: present, skipped", fixture.reference)],
        )
        .assert_summary("0 loaded, 1 present, 0 failed");
    assert_archive_kept(&archive, &data);
}

// ---------------------------------------------------------------------------------------
// Damaged archives: every region, several truncation points, empty, unreadable
// ---------------------------------------------------------------------------------------

on_every_engine! {
    damage_in_any_region_is_reported_and_nothing_is_loaded;
}

/// One damaged copy of an archive: its file name, and what was done to it.
struct Damaged {
    name: String,
    data: Vec<u8>,
}

fn damaged_copies(fixture: &Fixture) -> Vec<Damaged> {
    let mut out = Vec::new();
    let mut add = |name: String, data: Vec<u8>| out.push(Damaged { name, data });
    for codec in [Codec::Zstd, Codec::Gzip, Codec::Xz, Codec::Tar] {
        let good = fixture.compressed(codec);
        let ext = codec.extension();
        // The compressed header: the frame header descriptor (zstd), the flags byte (gzip),
        // the stream flags (xz, covered by the header CRC32), a tar header's name field.
        let header_byte = match codec {
            Codec::Zstd => 4,
            Codec::Gzip => 3,
            Codec::Xz => 7,
            _ => 100,
        };
        let mut d = good.clone();
        flip(&mut d, header_byte);
        add(format!("header.{ext}"), d);
        // The first compressed block, right after the header.
        let first_block = match codec {
            Codec::Zstd => 8,
            Codec::Gzip => 12,
            Codec::Xz => 14,
            _ => 600,
        };
        let mut d = good.clone();
        for i in first_block..first_block + 4 {
            flip(&mut d, i);
        }
        add(format!("block.{ext}"), d);
        // Cut: inside the magic, inside the header, early, halfway, near and at the very end
        // (in the checksum trailer, or the tar's end-of-archive blocks).
        let n = good.len();
        for cut in [1, 3, 11, 40, n / 4, n / 2, n - 9, n - 1] {
            add(format!("cut{cut}.{ext}"), good[..cut].to_vec());
        }
    }
    add("empty.tar.zst".into(), Vec::new());
    out
}

fn damage_in_any_region_is_reported_and_nothing_is_loaded(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/damaged/img:1");
    let copies = damaged_copies(&fixture);
    let mut lines = Vec::new();
    for c in &copies {
        pkg.add_archive(&c.name, &c.data);
        lines.push(format!("{} {}", c.name, fixture.reference));
    }
    let good = Fixture::new("example.org/damaged/good:1");
    lines.push(pkg.add("good.tar.zst", &good, Codec::Zstd));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    for (i, c) in copies.iter().enumerate() {
        // The decoders catch damage in compressed archives; for plain tar only the engine
        // can tell (its tar reader, or the layer digests).
        let line = i + 1;
        let entry = out.entry(&pkg.list, line);
        let why = entry.iter().find(|l| l.contains(": failed: "));
        let why = why.unwrap_or_else(|| panic!("line {line} ({}) must fail\n{out:?}", c.name));
        // Too short to hold its magic bytes: not recognised at all.
        let (magic_len, damaged) = match c.name.rsplit('.').next() {
            Some("zst") => (4, "corrupt"),
            Some("gz") => (2, "corrupt"),
            Some("xz") => (6, "corrupt"),
            _ => (263, "engine refused"),
        };
        let expected = if c.data.len() < magic_len {
            "is not zstd, gzip, xz, bzip2 or tar"
        } else {
            damaged
        };
        assert!(
            why.contains(expected),
            "line {line} ({}) should say {expected:?}\n{out:?}",
            c.name
        );
        assert_archive_kept(&pkg.archive(&c.name), &c.data);
    }
    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            copies.len() + 1,
            &["example.org/damaged/good:1: loaded from good.tar.zst"],
        )
        .assert_summary(&format!("1 loaded, 0 present, {} failed", copies.len()));
    engine.assert_has_not(&fixture.reference);
    assert_eq!(engine.list_images(), vec![good.reference.clone()]);
    assert_eq!(engine.image_count(), 1, "nothing else was created\n{out:?}");
}

/// Runs the loader without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: root that has to obey
/// file modes, as under a unit with a reduced CapabilityBoundingSet=.
fn run_without_dac_override(args: &[String]) -> Output {
    let mut setpriv = Command::new("setpriv");
    setpriv.args([
        "--inh-caps=-all",
        "--bounding-set=-dac_override,-dac_read_search",
    ]);
    spawn_loader_behind(setpriv, args).wait()
}

/// A package whose line 1 is a mode-000 archive and line 2 a readable one.
fn mode_000_package(tag: &str) -> (Package, Fixture, PathBuf, Vec<u8>, Fixture) {
    let pkg = Package::new();
    let locked = Fixture::new(&format!("example.org/{tag}/locked:1"));
    let data = locked.compressed(Codec::Zstd);
    let path = pkg.add_archive("locked.tar.zst", &data);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let after = Fixture::new(&format!("example.org/{tag}/after:1"));
    let line2 = pkg.add("after.tar.gz", &after, Codec::Gzip);
    pkg.write_list(&[&format!("locked.tar.zst {}", locked.reference), &line2]);
    (pkg, locked, path, data, after)
}

#[test]
fn mode_000_archive_is_read_by_root_and_loads() {
    // Root with its usual capabilities reads a mode-000 file (CAP_DAC_OVERRIDE): the mode
    // does not make an archive unreadable for the loader, and the archive is fine.
    // File access is the loader's own, so one engine is enough.
    let engine = Engine::podman();
    let (pkg, locked, _, _, after) = mode_000_package("mode000root");

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed");
    assert_loaded_intact(&engine, &locked);
    engine.assert_has(&after.reference);
}

#[test]
fn unreadable_archive_is_reported_kept_and_the_next_still_loads() {
    // Without CAP_DAC_OVERRIDE, opening the mode-000 archive fails with EACCES.
    let engine = Engine::podman();
    let (pkg, locked, path, data, after) = mode_000_package("unreadable");
    let locks = run_dir();

    let out = run_without_dac_override(&args_on(
        &engine.host_args(),
        &pkg,
        &locks,
        &["--delete-after-load"],
    ));

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[
                &format!("{}: failed: ", locked.reference),
                "cannot read archive locked.tar.zst: Permission denied",
            ],
        )
        .assert_entry(
            &pkg.list,
            2,
            &[&format!("{}: loaded from after.tar.gz", after.reference)],
        )
        .assert_summary("1 loaded, 0 present, 1 failed");
    engine.assert_has_not(&locked.reference);
    engine.assert_has(&after.reference);
    assert_archive_kept(&path, &data);
}

// ---------------------------------------------------------------------------------------
// Decompression bomb
// ---------------------------------------------------------------------------------------

/// A zstd archive of `gib` GiB of zeros (about 33 KiB per GiB), made by the zstd CLI.
fn zero_bomb(pkg: &Package, name: &str, gib: u64) -> (PathBuf, Vec<u8>) {
    require_program("zstd");
    let path = pkg.archive(name);
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {} /dev/zero | zstd -q -c -T2 > '{}'",
            gib << 30,
            path.display()
        ))
        .status()
        .expect("make the bomb");
    assert!(status.success(), "zstd bomb");
    let data = fs::read(&path).unwrap();
    assert!(
        data.len() < 1 << 20,
        "the bomb is small: {} bytes",
        data.len()
    );
    (path, data)
}

/// Peak RSS the loader may reach while streaming gigabytes: the decoders, the decoder thread's
/// four 256 KiB buffers, the upload's 256 KiB chunk buffer and ureq's buffers are fixed-size.
const BOMB_RSS_LIMIT_KIB: u64 = 32 << 10;

#[test]
fn decompression_bomb_streams_in_bounded_memory_and_fails_cleanly_on_docker() {
    // 4 GiB of zeros in ~130 KiB. For docker's tar reader the first two zero blocks are the
    // end of the archive: no manifest, so it refuses the load, but it reads the body to its
    // end first, so all 4 GiB are decoded and streamed. Docker only: podman copies every
    // upload to a temporary file first (4 GiB on disk); see the podman case below. The zstd
    // frames say 4 GiB, which docker reads but never writes: --no-space-check, so the test
    // does not depend on the free space of the machine.
    let engine = Engine::docker();

    let out = bomb_run(
        &engine,
        4,
        &["example.org/bomb/bomb:1: failed: engine refused bomb.tar.zst: "],
    );

    assert!(out.elapsed < Duration::from_secs(90), "{out:?}");
    assert_eq!(engine.image_count(), 1, "{out:?}");
}

#[test]
fn decompression_bomb_fills_podmans_temp_space_and_fails_cleanly() {
    // podman copies an upload to its TMPDIR before looking at it; with that (and its store)
    // on a 128 MiB tmpfs, a bomb ends in "no space left on device" after ~128 MiB,
    // through the late-answer path (podman answers while the loader is still sending).
    // --no-space-check: the space check would stop the bomb before the engine does.
    let mut engine = Engine::unstarted(Kind::Podman);
    let dir = engine.dir().to_owned();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount");
    assert!(status.success(), "mount tmpfs on {}", dir.display());
    engine.launch();

    // 1 GiB is plenty: podman gives up after the first 128 MiB.
    let out = bomb_run(
        &engine,
        1,
        &[
            "example.org/bomb/bomb:1: failed: engine refused bomb.tar.zst: ",
            "no space left on device",
        ],
    );

    assert!(out.elapsed < BOUNDED, "{out:?}");
}

/// Loads a zero bomb of `gib` GiB, then a small image, into `engine` past the space check
/// (the engine is what stops a bomb), and asserts what either engine must come to: the bomb
/// fails with `refusal` while the loader stays in bounded memory, the next entry loads, the
/// engine has no bomb and the archive is kept despite --delete-after-load.
fn bomb_run(engine: &Engine, gib: u64, refusal: &[&str]) -> Output {
    let pkg = Package::new();
    let locks = run_dir();
    let (path, data) = zero_bomb(&pkg, "bomb.tar.zst", gib);
    let after = Fixture::new("example.org/bomb/after:1");
    let line2 = pkg.add("after.tar.gz", &after, Codec::Gzip);
    pkg.write_list(&["bomb.tar.zst example.org/bomb/bomb:1", &line2]);

    let running = spawn_loader(
        &args_on(
            &engine.host_args(),
            &pkg,
            &locks,
            &["--delete-after-load", "--no-space-check"],
        ),
        &[],
    );
    let (out, peak) = wait_sampling_peak_rss(running);

    eprintln!(
        "bomb ({}): peak RSS {peak} KiB, {:.1?}",
        engine.kind().name(),
        out.elapsed
    );
    out.assert_code(1)
        .assert_entry(&pkg.list, 1, refusal)
        .assert_entry(
            &pkg.list,
            2,
            &[&format!("{}: loaded from after.tar.gz", after.reference)],
        )
        .assert_summary("1 loaded, 0 present, 1 failed");
    assert!(
        peak > 0 && peak < BOMB_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB while streaming {gib} GiB\n{out:?}"
    );
    engine.assert_has_not("example.org/bomb/bomb:1");
    assert_archive_kept(&path, &data);
    out
}

// ---------------------------------------------------------------------------------------
// Hostile lists (the rest is in tests/engines/refuses.rs)
// ---------------------------------------------------------------------------------------

#[test]
fn list_of_100000_lines_reports_each_and_keeps_line_numbers() {
    // 99,999 invalid lines, then one valid entry: every bad line is reported, the last
    // line still loads under its own number, and the run stays quick. The engine is only
    // asked about the one valid entry, so one engine is enough.
    let engine = Engine::podman();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/long/last:1");
    let last = pkg.add("last.tar.zst", &fixture, Codec::Zstd);
    let mut text = "just-one-field\n".repeat(99_999);
    text.push_str(&last);
    text.push('\n');
    pkg.write_list_bytes(text.as_bytes());

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            100_000,
            &["example.org/long/last:1: loaded from last.tar.zst"],
        )
        .assert_entry(&pkg.list, 99_999, &["invalid line: 1 field(s)"])
        .assert_summary("1 loaded, 0 present, 99999 failed");
    let invalid = out
        .stderr
        .lines()
        .filter(|l| l.contains(": invalid line: "))
        .count();
    assert_eq!(invalid, 99_999);
    assert!(
        out.elapsed < BOUNDED,
        "100,000 lines took {:?}",
        out.elapsed
    );
    assert_loaded_intact(&engine, &fixture);
}

on_every_engine! {
    list_with_crlf_line_ends_loads;
}

fn list_with_crlf_line_ends_loads(flavor: Flavor) {
    // A list edited on Windows: every line ends in CR LF, including comments and blanks.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let a = Fixture::new("example.org/crlf/a:1");
    // Line 4's REF has no tag: the CR must not end up in it as a tag or name.
    let b = Fixture::new("example.org/crlf/b:latest");
    let line_a = pkg.add("a.tar.zst", &a, Codec::Zstd);
    pkg.add("b.tar.gz", &b, Codec::Gzip);
    let line_b = "b.tar.gz example.org/crlf/b";
    pkg.write_list_bytes(format!("# images\r\n{line_a}\r\n\r\n{line_b}\r\n").as_bytes());

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            2,
            &["example.org/crlf/a:1: loaded from a.tar.zst ("],
        )
        .assert_entry(
            &pkg.list,
            4,
            &["example.org/crlf/b: loaded from b.tar.gz ("],
        )
        .assert_summary("2 loaded, 0 present, 0 failed");
    assert!(!out.stderr.contains('\r'), "{out:?}");
    assert_loaded_intact(&engine, &a);
    assert_loaded_intact(&engine, &b);
}

#[test]
fn list_that_is_a_fifo_exits_2_without_blocking() {
    // Nobody ever writes to the FIFO: opening it to read would block the boot forever.
    // The list is refused before any engine is needed.
    let pkg = Package::new();
    fs::remove_file(&pkg.list).unwrap();
    let status = Command::new("mkfifo")
        .arg(&pkg.list)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let (_dir, sock) = {
        let dir = TempDir::new("nowhere");
        let sock = dir.join("none.sock").display().to_string();
        (dir, sock)
    };

    let out = run_loader(&["-H", &sock, "-l", &pkg.list_arg(), "--wait", "1"], &[]);

    out.assert_code(2).assert_stderr_contains(&format!(
        "{}: cannot read image list: not a regular file",
        pkg.list.display()
    ));
    assert!(out.elapsed < Duration::from_secs(10), "{out:?}");
}

#[test]
fn references_with_queries_or_escapes_never_reach_the_engine() {
    // REFs that would add a query, a fragment or an escaped path to the engine's URL are
    // refused by the reference grammar; the fake engine records every request, and only
    // the valid entry's own requests may appear.
    let fake = FakeEngine::start();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/query/valid:1");
    pkg.add_archive("x.tar.zst", &fixture.compressed(Codec::Zstd));
    let hostile = [
        "example.org/query/name:1?all=1",
        "example.org/query/name?force=1",
        "example.org/query/name:1#frag",
        "example.org/query/name:1&quiet=0",
        "example.org/query/name%2F..%2F..%2Fcontainers%2Fjson",
        "example.org/query/name:1;x=1",
        "example.org/query/name\\..\\version",
        "example.org/query/name/../../../../version",
    ];
    let mut lines: Vec<String> = hostile.iter().map(|r| format!("x.tar.zst {r}")).collect();
    lines.push(format!("x.tar.zst {}", fixture.reference));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    let mut args = fake.host_args();
    args.extend(["-l".into(), pkg.list_arg(), "--wait".into(), "5".into()]);

    let out = run_loader(&args, &[]);

    out.assert_code(1);
    for (i, r) in hostile.iter().enumerate() {
        out.assert_entry(
            &pkg.list,
            i + 1,
            &[&format!("invalid image reference \"{}\"", r.escape_debug())],
        );
    }
    // The valid entry: the fake engine does not have it and refuses the upload.
    out.assert_entry(
        &pkg.list,
        hostile.len() + 1,
        &["example.org/query/valid:1: failed: "],
    );
    let allowed = [
        "/_ping".to_owned(),
        "/version".to_owned(),
        format!("/images/{}/json", fixture.reference),
        // The space check asks where the engine stores images.
        "/info".to_owned(),
        "/images/load?quiet=1".to_owned(),
        // The listing: what the engine's names stand for before the upload (src/commands/load/names.rs).
        "/images/json".to_owned(),
    ];
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.contains("/images/load")),
        "{requests:?}"
    );
    for request in requests {
        let path = request.split_whitespace().nth(1).unwrap_or("");
        assert!(
            allowed.iter().any(|a| path.ends_with(a.as_str())),
            "request {request:?} should not have been sent\n{out:?}"
        );
    }
}
