//! What a load leaves for the units that need the images: `status.json` in the run directory
//! (what `status --json` prints) and a marker per image present, on real engines.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

on_every_engine! {
    load_records_every_entry_in_status_json;
    markers_name_each_present_image_and_hold_its_id;
}

/// Loads `pkg` into `engine` with the run directory `run`.
fn load_into(engine: &Engine, pkg: &Package, run: &Path, extra: &[&str]) -> Output {
    let run = run.display().to_string();
    let mut args = vec!["--run-dir", run.as_str()];
    args.extend_from_slice(extra);
    load_package(engine, pkg, &args)
}

fn status_file(run: &Path) -> Vec<Value> {
    let text = fs::read_to_string(run.join("status.json")).expect("status.json written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status.json is not JSON ({e}): {text}"))
}

fn load_records_every_entry_in_status_json(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let run = TempDir::new("run");
    let pkg = Package::new();
    let loaded = Fixture::new("example.org/ready/loaded:1");
    let present = Fixture::new("example.org/ready/present:1");
    let ll = pkg.add("l.tar.zst", &loaded, Codec::Zstd);
    let lp = pkg.add("p.tar.gz", &present, Codec::Gzip);
    pkg.write_list(&[&ll, &lp, "gone.tar.zst example.org/ready/gone:1"]);
    engine.preload(&present);
    let sock = engine.socket_path().display().to_string();

    load_into(&engine, &pkg, run.path(), &[]).assert_code(1);
    let status = run_loader(
        &["status", "--json", "-H", &sock, "-l", &pkg.list_arg()],
        &[],
    );

    let recorded = status_file(run.path());
    let printed: Vec<Value> = serde_json::from_str(&status.stdout).expect("status --json");
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert_eq!(recorded[..2], printed[..2], "as status --json prints them");
    assert_eq!(recorded[0]["state"], "present");
    assert_eq!(
        recorded[0]["image_id"],
        format!("sha256:{}", loaded.id_on(flavor))
    );
    assert_eq!(
        recorded[1]["image_id"],
        format!("sha256:{}", present.id_on(flavor))
    );
    assert_eq!(recorded[2]["state"], "missing");
    assert_eq!(recorded[2]["line"], 3);
    let error = recorded[2]["error"].as_str().unwrap_or_default();
    assert!(error.contains("gone.tar.zst not found in"), "{error}");
}

fn markers_name_each_present_image_and_hold_its_id(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/ready/marked:1");
    let line = pkg.add("m.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line, "gone.tar.zst example.org/ready/unmarked:1"]);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(1);

    let marker = run.join("images/example.org-ready-marked:1");
    let id = fs::read_to_string(&marker).expect("marker for the loaded image");
    assert_eq!(id, format!("sha256:{}\n", fixture.id_on(flavor)));
    assert!(!run.join("images/example.org-ready-unmarked:1").exists());
}

#[test]
fn a_marker_goes_away_when_its_image_is_missing_again() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/ready/reset:1");
    let line = pkg.add("r.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    load_into(&engine, &pkg, run.path(), &["--delete-after-load"]).assert_code(0);
    let marker = run.join("images/example.org-ready-reset:1");
    assert!(marker.exists());
    let recorded = status_file(run.path());
    assert_eq!(
        recorded[0]["archive_present"], false,
        "deleted after the load"
    );
    assert_eq!(recorded[0]["state"], "present");
    // A factory reset empties the engine; the archive was deleted after the first load.
    engine.remove(&fixture.reference);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(1);

    assert!(!marker.exists(), "marker of a missing image left behind");
    assert_eq!(status_file(run.path())[0]["state"], "missing");
}

#[test]
fn each_list_keeps_its_own_entries_in_a_shared_status_json() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let first = Package::new();
    let second = Package::new();
    let a = Fixture::new("example.org/ready/first:1");
    let b = Fixture::new("example.org/ready/second:1");
    let la = first.add("a.tar.zst", &a, Codec::Zstd);
    let lb = second.add("b.tar.zst", &b, Codec::Zstd);
    first.write_list(&[&la]);
    second.write_list(&[&lb]);

    load_into(&engine, &first, run.path(), &[]).assert_code(0);
    load_into(&engine, &second, run.path(), &[]).assert_code(0);
    load_into(&engine, &first, run.path(), &[]).assert_code(0);

    let recorded = status_file(run.path());
    let lists: Vec<&str> = recorded.iter().filter_map(|e| e["list"].as_str()).collect();
    assert_eq!(lists.len(), 2, "one entry per list line: {recorded:?}");
    assert!(lists.contains(&first.list_arg().as_str()), "{lists:?}");
    assert!(lists.contains(&second.list_arg().as_str()), "{lists:?}");
}

#[test]
fn a_dry_run_records_nothing() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/ready/dry:1");
    let line = pkg.add("d.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    load_into(&engine, &pkg, run.path(), &["--dry-run"]).assert_code(0);

    assert!(!run.join("status.json").exists());
    assert!(!run.join("images").exists());
}

#[test]
fn an_unreachable_engine_is_recorded_as_unknown_and_keeps_markers() {
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/ready/unknown:1");
    let line = pkg.add("u.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let marker = run.join("images/example.org-ready-unknown:1");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    fs::write(&marker, "sha256:earlier\n").unwrap();
    let nobody = run.join("nobody.sock").display().to_string();
    let run_arg = run.path().display().to_string();

    let out = run_loader(
        &[
            "-H",
            &nobody,
            "--wait",
            "0",
            "--run-dir",
            &run_arg,
            "-l",
            &pkg.list_arg(),
        ],
        &[],
    );

    out.assert_code(3);
    let recorded = status_file(run.path());
    assert_eq!(recorded[0]["state"], "unknown", "{recorded:?}");
    assert_eq!(recorded[0]["image_present"], Value::Null);
    let error = recorded[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("not reachable"), "{error}");
    assert_eq!(fs::read_to_string(&marker).unwrap(), "sha256:earlier\n");
}

#[test]
fn a_differing_image_is_recorded_with_both_ids_and_keeps_its_marker() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/ready/differs:1");
    let line = pkg.add("d.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let runtime = Fixture::new("example.org/ready/differs:1");
    engine.preload(&runtime);

    load_into(&engine, &pkg, run.path(), &["--verify"]).assert_code(1);

    let recorded = status_file(run.path());
    assert_eq!(recorded[0]["state"], "differs", "{recorded:?}");
    assert_eq!(recorded[0]["image_id"], format!("sha256:{}", runtime.id));
    assert_eq!(recorded[0]["archive_id"], format!("sha256:{}", fixture.id));
    let marker = run.join("images/example.org-ready-differs:1");
    assert_eq!(
        fs::read_to_string(marker).unwrap(),
        format!("sha256:{}\n", runtime.id),
        "the name is there, as the engine's image"
    );
}
