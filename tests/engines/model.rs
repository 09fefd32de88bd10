//! The loader's promise, checked against the engine itself over random sequences of runs: after
//! every run, each image a marker or a `present` row of status.json names is present, whole (the
//! engine can save it), and has the id the marker and the row give; with `--verify`, that id is
//! the archive's. Between runs the engine changes as devices see it change: images removed,
//! replaced at runtime, a base deleted. The archives share names and layers, one is damaged.
//!
//! Seeded: a failure prints its seed, and `CONTAINER_LOADER_MODEL_SEED=N cargo test --test
//! model` replays that sequence of choices. Bounded: [`STEPS`] steps or [`TIME`], whichever
//! ends first.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// Steps per engine: each a run of the loader or a change to the engine.
const STEPS: usize = 24;
/// The most one engine's sequence may take; the steps left are not taken (and said so).
const TIME: Duration = Duration::from_secs(90);

on_every_engine! {
    every_marker_and_present_row_is_true_after_every_run;
}

/// An archive of the model: its file, its image, and the names a list line may give it.
struct Archive {
    file: &'static str,
    fixture: Fixture,
    /// The archive's bytes as shipped (a damaged one is not its fixture's).
    bytes: Vec<u8>,
    refs: Vec<&'static str>,
}

const BASE: &str = "example.org/model/base:1";
const APP1: &str = "example.org/model/app:1";
const APP2: &str = "example.org/model/app:2";
const APP3: &str = "example.org/model/app:3";
const SHARED: &str = "example.org/model/shared:1";
const BAD: &str = "example.org/model/bad:1";

/// Archives that share names (app:1 and shared:1 on two or three of them) and layers (two on
/// one base), one damaged, one that does not carry the name its line gives it.
fn archives() -> Vec<Archive> {
    let base = Fixture::build(&[BASE], 2);
    let app1 = Fixture::on_base(&base, APP1, 1, 4096);
    let app1 = with_names(&app1, &[APP1, SHARED]);
    let app2 = Fixture::on_base(&base, APP2, 1, 4096);
    let shared = Fixture::new(SHARED);
    let bad = Fixture::build(&[APP1, BAD], 1);
    let other = Fixture::new("example.org/model/other:1");
    let plain = |f: &Fixture, codec: Codec| f.compressed(codec);
    vec![
        archive("base.tar.zst", &base, plain(&base, Codec::Zstd), &[BASE]),
        archive(
            "app1.tar.zst",
            &app1,
            plain(&app1, Codec::Zstd),
            &[APP1, SHARED],
        ),
        archive("app2.tar.gz", &app2, plain(&app2, Codec::Gzip), &[APP2]),
        archive(
            "shared.tar.xz",
            &shared,
            plain(&shared, Codec::Xz),
            &[SHARED],
        ),
        archive(
            "bad.tar.zst",
            &bad,
            Codec::Zstd.compress(&bad.with_a_layer_not_its_diff_id()),
            &[APP1, BAD],
        ),
        archive("other.tar.zst", &other, plain(&other, Codec::Zstd), &[APP3]),
    ]
}

fn archive(file: &'static str, f: &Fixture, bytes: Vec<u8>, refs: &[&'static str]) -> Archive {
    Archive {
        file,
        fixture: f.clone(),
        bytes,
        refs: refs.to_vec(),
    }
}

/// `fixture`'s image under `names` instead of its own.
fn with_names(fixture: &Fixture, names: &[&str]) -> Fixture {
    let renamed = Fixture::from_layers(names, fixture.layers.clone());
    assert_eq!(renamed.id, fixture.id, "the same image");
    renamed
}

fn every_marker_and_present_row_is_true_after_every_run(flavor: Flavor) {
    let seed = std::env::var("CONTAINER_LOADER_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fresh_seed() ^ now_nanos());
    eprintln!("model seed {seed} on {flavor}: CONTAINER_LOADER_MODEL_SEED={seed} replays it");
    let engine = Engine::start(flavor);
    let (pkg, run) = (Package::new(), TempDir::new("run"));
    let archives = archives();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    for step in 0..STEPS {
        if started.elapsed() > TIME {
            eprintln!("model seed {seed} on {flavor}: {step} steps in {TIME:?}");
            break;
        }
        let what = match rng.below(10) {
            0..=5 => run_loader_once(&engine, &pkg, &run, &archives, &mut rng),
            _ => change_engine(&engine, &archives, &mut rng),
        };
        eprintln!("model seed {seed} on {flavor}, step {step}: {what}");
    }
}

/// Ships every archive again, writes a list of one to four lines and runs the loader with
/// a random choice of options; then checks what it reported against the engine.
fn run_loader_once(
    engine: &Engine,
    pkg: &Package,
    run: &TempDir,
    archives: &[Archive],
    rng: &mut Rng,
) -> String {
    for a in archives {
        pkg.add_archive(a.file, &a.bytes);
    }
    let lines: Vec<(&Archive, &str)> = (0..1 + rng.below(4))
        .map(|_| {
            let a = rng.pick(archives);
            (a, *rng.pick(&a.refs))
        })
        .collect();
    let text: Vec<String> = lines
        .iter()
        .map(|(a, r)| format!("{} {r}", a.file))
        .collect();
    pkg.write_list(&text.iter().map(String::as_str).collect::<Vec<_>>());
    const OPTIONS: [&[&str]; 4] = [
        &[],
        &["--verify"],
        &["--verify", "--replace-differing"],
        &["--delete-after-load"],
    ];
    let options = OPTIONS[rng.below(OPTIONS.len())];
    let dir = run.path().display().to_string();
    let mut args = vec!["--run-dir", dir.as_str()];
    args.extend_from_slice(options);
    let out = load_package(engine, pkg, &args);
    check(
        engine,
        run.path(),
        &lines,
        options.contains(&"--verify"),
        &out,
    );
    format!("load {text:?} {options:?}: {}", out.summary())
}

/// The invariant, for the references of the run's lines.
fn check(engine: &Engine, run: &Path, lines: &[(&Archive, &str)], verify: bool, out: &Output) {
    let keepers: Vec<String> = engine
        .list_images()
        .into_iter()
        .filter(|n| n.contains("container-loader-keep"))
        .collect();
    assert!(
        keepers.is_empty(),
        "keeper names left: {keepers:?}\n{out:?}"
    );
    let refs: HashSet<&str> = lines.iter().map(|(_, r)| *r).collect();
    for r in &refs {
        if let Some(marked) = marker_id(run, r) {
            assert_whole(engine, r, &marked, out);
        }
    }
    for (i, row) in status_rows(run).iter().enumerate() {
        let state = row["state"].as_str().unwrap_or_default();
        if state != "present" && state != "differs" {
            continue;
        }
        let r = row["ref"].as_str().unwrap_or_default();
        let id = row["image_id"].as_str().unwrap_or_default();
        assert_whole(engine, r, id, out);
        if let (true, "present", Some(archive_id)) = (verify, state, row["archive_id"].as_str()) {
            let (archive, _) = lines[i];
            assert_eq!(
                bare_id(archive_id),
                archive.fixture.id_on(engine.flavor()),
                "row {i}: verified as {} but {} holds another image\n{out:?}",
                archive_id,
                archive.file
            );
            assert_eq!(
                archive_id, id,
                "row {i}: present means the archive's\n{out:?}"
            );
        }
    }
}

/// `reference` is present as `id`, and the engine can save it (its content is all there).
fn assert_whole(engine: &Engine, reference: &str, id: &str, out: &Output) {
    let now = engine.image_id(reference);
    assert_eq!(
        now.as_deref().map(bare_id),
        Some(bare_id(id)),
        "{reference}: recorded as {id}, the engine has {now:?}\n{out:?}"
    );
    let (status, body) = http_get(engine.socket_path(), &format!("/images/{reference}/get"))
        .expect("the engine answers a save");
    let head: String = body.chars().take(300).collect();
    assert_eq!(status, 200, "{reference} cannot be saved: {head}\n{out:?}");
}

/// A change to the engine between runs, as a device sees it: an image removed, another one
/// loaded under a listed name (an update at runtime), the base's name deleted.
fn change_engine(engine: &Engine, archives: &[Archive], rng: &mut Rng) -> String {
    let names = engine.list_images();
    match rng.below(3) {
        0 => {
            let all: Vec<&str> = archives.iter().flat_map(|a| a.refs.clone()).collect();
            let r = *rng.pick(&all);
            if engine.has_image(r) {
                engine.remove(r);
            }
            format!("removed {r}")
        }
        1 => {
            let replaced = Fixture::new([APP1, SHARED, APP2][rng.below(3)]);
            engine.preload(&replaced);
            format!("replaced {} at runtime", replaced.reference)
        }
        _ => {
            if engine.has_image(BASE) {
                engine.remove(BASE);
            }
            format!("deleted the base (names were {names:?})")
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}
