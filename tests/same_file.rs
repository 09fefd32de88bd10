//! An archive is checked and used as the same file: names in the images directory swapped
//! while the loader works (a symlink flipped between a file inside and one outside, a FIFO
//! swapped in, the images directory itself replaced by a symlink) never make it read, load or
//! delete anything outside the images directory, and never block it.
//!
//! Each case flips names in a loop on a thread for as long as the loader runs, many times, so
//! that the swaps land between every pair of the loader's steps.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Longest a flipping thread runs, whatever the test does.
const FLIP_LIMIT: Duration = Duration::from_secs(120);

/// Replaces `at` again and again with a symlink to each of `targets` in turn (atomically, by
/// renaming a fresh link over it), until dropped.
struct Flipper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Flipper {
    fn start(at: &Path, targets: &[PathBuf]) -> Flipper {
        let stop = Arc::new(AtomicBool::new(false));
        let (at, targets, flag) = (at.to_owned(), targets.to_vec(), stop.clone());
        let tmp = at.with_extension("flip");
        // The link is there before the run starts: what flips is its target, not its being.
        symlink(&targets[0], &tmp).unwrap();
        fs::rename(&tmp, &at).unwrap();
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut flips = 0;
            while !flag.load(Ordering::SeqCst) && started.elapsed() < FLIP_LIMIT {
                // The first target is in place already.
                let target = &targets[(flips + 1) % targets.len()];
                let _ = fs::remove_file(&tmp);
                symlink(target, &tmp).unwrap();
                fs::rename(&tmp, &at).unwrap();
                flips += 1;
            }
            flips
        });
        Flipper {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Flipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `status --json` for `pkg` with no engine to ask: only the archive columns, from the files.
fn status_without_engine(pkg: &Package) -> Vec<Value> {
    let nobody = pkg.dir().join("nobody.sock").display().to_string();
    let out = run_loader(
        &[
            "status",
            "--json",
            "-H",
            &nobody,
            "--wait",
            "0",
            "-l",
            &pkg.list_arg(),
        ],
        &[],
    );
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn status_never_reports_a_file_outside_while_a_symlink_flips() {
    let pkg = Package::new();
    // Inside: a tar of 10 KiB; outside: a tar of 20 KiB, told apart by size.
    let mut inside = vec![0u8; 10240];
    inside[257..262].copy_from_slice(b"ustar");
    let mut outside = vec![0u8; 20480];
    outside[257..262].copy_from_slice(b"ustar");
    pkg.add_archive("real.tar", &inside);
    fs::write(pkg.dir().join("secret.tar"), &outside).unwrap();
    pkg.write_list(&["link.tar example.org/same/status:1"]);
    let flipper = Flipper::start(
        &pkg.archive("link.tar"),
        &["real.tar".into(), pkg.dir().join("secret.tar")],
    );

    let mut sizes = Vec::new();
    for _ in 0..300 {
        sizes.push(status_without_engine(&pkg)[0]["size"].clone());
    }
    let flips = flipper.stop();

    assert!(flips > 300, "only {flips} flips");
    assert!(
        sizes.iter().all(|s| *s == Value::Null || *s == 10240),
        "a size other than the inside file's was reported: {sizes:?}"
    );
    assert!(
        sizes.contains(&Value::from(10240)),
        "never read the inside file"
    );
}

#[test]
fn a_fifo_swapped_in_never_blocks_a_run() {
    let pkg = Package::new();
    let mut inside = vec![0u8; 10240];
    inside[257..262].copy_from_slice(b"ustar");
    pkg.add_archive("real.tar", &inside);
    mkfifo(&pkg.archive("fifo.tar"));
    pkg.write_list(&["link.tar example.org/same/fifo:1"]);
    let flipper = Flipper::start(
        &pkg.archive("link.tar"),
        &["real.tar".into(), "fifo.tar".into()],
    );

    for _ in 0..300 {
        let started = Instant::now();
        let row = &status_without_engine(&pkg)[0];
        assert!(started.elapsed() < Duration::from_secs(10), "{row}");
        let error = row["error"].as_str().unwrap_or_default();
        assert!(
            row["size"] == 10240 || error.contains("not a regular file"),
            "{row}"
        );
    }
    flipper.stop();
}

#[test]
fn loads_never_take_the_file_outside_while_a_symlink_flips() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let inside = Fixture::new("example.org/same/inside:1");
    let outside = Fixture::new("example.org/same/outside:1");
    pkg.add_archive("real.tar.zst", &inside.compressed(Codec::Zstd));
    let secret = pkg.dir().join("secret.tar.zst");
    fs::write(&secret, outside.compressed(Codec::Zstd)).unwrap();
    mkfifo(&pkg.archive("fifo.tar.zst"));
    pkg.write_list(&["link.tar.zst example.org/same/inside:1"]);
    let flipper = Flipper::start(
        &pkg.archive("link.tar.zst"),
        &["real.tar.zst".into(), secret.clone(), "fifo.tar.zst".into()],
    );

    for _ in 0..10 {
        let out = load_package(&engine, &pkg, &["--delete-after-load"]);
        assert!(out.elapsed < Duration::from_secs(60), "{out:?}");
        engine.assert_has_not(&outside.reference);
        if engine.has_image(&inside.reference) {
            let id = engine.image_id(&inside.reference).unwrap();
            assert_eq!(bare_id(&id), inside.id, "{out:?}");
            engine.remove(&inside.reference);
        }
        if !pkg.archive("real.tar.zst").exists() {
            pkg.add_archive("real.tar.zst", &inside.compressed(Codec::Zstd));
        }
        assert!(secret.exists(), "the file outside was deleted\n{out:?}");
    }
    flipper.stop();
}

#[test]
fn images_dir_swapped_for_a_symlink_during_loads_never_deletes_outside() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/same/dir:1");
    // images/ becomes a symlink flipping between the real directory and a victim's.
    let real = pkg.dir().join("images.real");
    let victim = pkg.dir().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::remove_dir(&pkg.images).unwrap();
    fs::create_dir(&real).unwrap();
    let archive = fixture.compressed(Codec::Zstd);
    fs::write(real.join("a.tar.zst"), &archive).unwrap();
    fs::write(victim.join("a.tar.zst"), b"victim: not an archive").unwrap();
    pkg.write_list(&["a.tar.zst example.org/same/dir:1"]);
    let flipper = Flipper::start(&pkg.images, &[real.clone(), victim.clone()]);

    let mut loaded = 0;
    for _ in 0..10 {
        let out = load_package(&engine, &pkg, &["--delete-after-load"]);
        assert_eq!(
            fs::read(victim.join("a.tar.zst")).unwrap(),
            b"victim: not an archive",
            "{out:?}"
        );
        if engine.has_image(&fixture.reference) {
            loaded += 1;
            engine.remove(&fixture.reference);
        }
        if !real.join("a.tar.zst").exists() {
            fs::write(real.join("a.tar.zst"), &archive).unwrap();
        }
    }
    flipper.stop();
    assert!(loaded > 0, "no run found the real directory");
}
