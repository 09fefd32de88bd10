//! What a load leaves for the units that need the images: `status.json` in the run directory
//! (what `status --json` prints) and a marker per image present, on real engines.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;
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

    let recorded = status_rows(run.path());
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
    let recorded = status_rows(run.path());
    assert_eq!(
        recorded[0]["archive_present"], false,
        "deleted after the load"
    );
    assert_eq!(recorded[0]["state"], "present");
    // A factory reset empties the engine; the archive was deleted after the first load.
    engine.remove(&fixture.reference);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(1);

    assert!(!marker.exists(), "marker of a missing image left behind");
    assert_eq!(status_rows(run.path())[0]["state"], "missing");
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

    let recorded = status_rows(run.path());
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
    let recorded = status_rows(run.path());
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

    let recorded = status_rows(run.path());
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

// ---------------------------------------------------------------------------------------
// The run directory: nothing followed out of it, nothing that blocks the run
// ---------------------------------------------------------------------------------------

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A package with one image that loads, for the run-directory cases.
fn one_image(tag: &str) -> (Package, Fixture) {
    let pkg = Package::new();
    let fixture = Fixture::new(&format!("example.org/rundir/{tag}:1"));
    let line = pkg.add("i.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    (pkg, fixture)
}

#[test]
fn a_run_directory_that_is_a_symlink_is_refused_and_nothing_is_written_through_it() {
    let engine = Engine::podman();
    let tmp = TempDir::new("run");
    fs::create_dir(tmp.join("target")).unwrap();
    std::os::unix::fs::symlink("target", tmp.join("run")).unwrap();
    let (pkg, fixture) = one_image("symlinked");

    let out = load_into(&engine, &pkg, &tmp.join("run"), &[]);

    out.assert_code(1)
        .assert_stderr_contains("/run: is not a directory (a symlink or a file is in its place)")
        .assert_stderr_contains("remove it");
    engine.assert_has(&fixture.reference);
    assert_eq!(fs::read_dir(tmp.join("target")).unwrap().count(), 0);
}

#[test]
fn a_run_directory_owned_by_another_user_is_refused() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    std::os::unix::fs::chown(run.path(), Some(65534), None).unwrap();
    let (pkg, fixture) = one_image("owned");

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(1)
        .assert_stderr_contains("is owned by uid 65534, not by the user the loader runs as");
    engine.assert_has(&fixture.reference);
    assert!(!run.join("status.json").exists());
}

#[test]
fn markers_directory_planted_as_a_symlink_is_refused_and_its_target_untouched() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let victim = TempDir::new("victim");
    fs::write(victim.join("example.org-rundir-gone:1"), "keep").unwrap();
    std::os::unix::fs::symlink(victim.path(), run.join("images")).unwrap();
    let pkg = Package::new();
    // Missing (its archive too): a marker of that name would be removed.
    pkg.write_list(&["gone.tar.zst example.org/rundir/gone:1"]);

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(1)
        .assert_stderr_contains("/images: is not a directory");
    assert_eq!(
        fs::read_to_string(victim.join("example.org-rundir-gone:1")).unwrap(),
        "keep"
    );
    assert_eq!(
        status_rows(run.path()).len(),
        1,
        "status.json still written"
    );
}

#[test]
fn a_planted_status_partial_symlink_is_not_followed() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let victim = TempDir::new("victim");
    fs::write(victim.join("file"), "keep").unwrap();
    std::os::unix::fs::symlink(victim.join("file"), run.join("status.json.partial")).unwrap();
    let (pkg, _) = one_image("partial");

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    assert_eq!(fs::read_to_string(victim.join("file")).unwrap(), "keep");
    assert_eq!(status_rows(run.path())[0]["state"], "present");
    assert!(!run.join("status.json.partial").exists());
}

#[test]
fn a_status_json_that_is_a_fifo_neither_hangs_the_run_nor_stays() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    mkfifo(&run.join("status.json"));
    let (pkg, _) = one_image("fifo");

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(0);
    assert!(out.elapsed < std::time::Duration::from_secs(30), "{out:?}");
    assert!(fs::metadata(run.join("status.json")).unwrap().is_file());
    assert_eq!(status_rows(run.path())[0]["state"], "present");
}

/// A `status.json` of a gibibyte (sparse: no disk) is not read into memory: the run records
/// its rows in a new one.
#[test]
fn a_status_json_of_a_gibibyte_is_written_anew_in_bounded_memory() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let huge = fs::File::create(run.join("status.json")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    let (pkg, _) = one_image("huge");
    let run_dir = run.path().display().to_string();
    let mut args = engine.host_args();
    args.extend(["-l".into(), pkg.list_arg(), "--run-dir".into(), run_dir]);

    let (out, peak_kib) = wait_sampling_peak_rss(spawn_loader(&args, &[]));

    out.assert_code(0);
    assert!(peak_kib < 32 << 10, "peak RSS {peak_kib} KiB");
    assert!(fs::metadata(run.join("status.json")).unwrap().len() < 1 << 20);
    assert_eq!(status_rows(run.path())[0]["state"], "present");
}

#[test]
fn a_lock_file_that_is_a_fifo_does_not_hang_the_run() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let lock = engine
        .socket_path()
        .to_string_lossy()
        .trim_start_matches('/')
        .replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
            "_",
        );
    mkfifo(&run.join(format!("{lock}.lock")));
    mkfifo(&run.join("status.lock"));
    let (pkg, fixture) = one_image("lockfifo");

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(1)
        .assert_stderr_contains("running without the lock")
        .assert_stderr_contains("not a regular file");
    engine.assert_has(&fixture.reference);
}

// ---------------------------------------------------------------------------------------
// Markers: one flat file per reference, never colliding, always fitting
// ---------------------------------------------------------------------------------------

#[test]
fn a_repository_and_its_subpath_both_get_markers() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let app = Fixture::new("registry.example.com/app:latest");
    let worker = Fixture::new("registry.example.com/app/worker:1");
    let later = Fixture::new("registry.example.com/later:1");
    engine.preload(&app);
    engine.preload(&worker);
    let ll = pkg.add("later.tar.zst", &later, Codec::Zstd);
    pkg.write_list(&[
        "app.tar.zst registry.example.com/app",
        "worker.tar.zst registry.example.com/app/worker:1",
        &ll,
    ]);

    load_into(&engine, &pkg, run.path(), &[])
        .assert_code(0)
        .assert_summary("1 loaded, 2 present, 0 failed");

    for (name, fixture) in [
        ("registry.example.com-app", &app),
        ("registry.example.com-app-worker:1", &worker),
        ("registry.example.com-later:1", &later),
    ] {
        let held = fs::read_to_string(run.join("images").join(name)).expect(name);
        assert_eq!(held, format!("sha256:{}\n", fixture.id));
    }
    assert_eq!(status_rows(run.path()).len(), 3);
    assert!(!run.join("status.json.partial").exists());
}

#[test]
fn markers_are_named_as_systemd_escape_prints_the_reference() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/my-org/app_x:1.0-rc");
    let line = pkg.add("a.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let escaped = std::process::Command::new("systemd-escape")
        .arg(&fixture.reference)
        .output()
        .expect("systemd-escape");
    let name = String::from_utf8(escaped.stdout).unwrap();
    assert_eq!(name.trim(), "example.org-my\\x2dorg-app_x:1.0\\x2drc");

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    assert!(run.join("images").join(name.trim()).is_file());
}

#[test]
fn a_reference_too_long_for_a_file_name_gets_a_hashed_marker() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let name = format!(
        "example.org/{}/{}/{}",
        "a".repeat(60),
        "b".repeat(60),
        "c".repeat(66)
    );
    assert_eq!(name.len(), 200);
    let reference = format!("{name}:{}", "t".repeat(100));
    let fixture = Fixture::new(&reference);
    let line = pkg.add("long.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    let escaped = reference.replace('/', "-");
    let marker = format!("{}~{}", &escaped[..190], sha256_hex(reference.as_bytes()));
    assert_eq!(marker.len(), 255);
    let held = fs::read_to_string(run.join("images").join(&marker)).expect("hashed marker");
    assert_eq!(held, format!("sha256:{}\n", fixture.id));
    assert_eq!(status_rows(run.path())[0]["state"], "present");
}

#[test]
fn a_marker_that_cannot_be_written_is_reported_and_the_others_still_are() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let pkg = Package::new();
    let blocked = Fixture::new("example.org/ready/blocked:1");
    let fine = Fixture::new("example.org/ready/fine:1");
    let lb = pkg.add("b.tar.zst", &blocked, Codec::Zstd);
    let lf = pkg.add("f.tar.zst", &fine, Codec::Zstd);
    pkg.write_list(&[&lb, &lf]);
    // A directory where the first marker goes: it cannot be replaced by a file.
    fs::create_dir_all(run.join("images/example.org-ready-blocked:1/x")).unwrap();

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(1)
        .assert_summary("2 loaded, 0 present, 0 failed")
        .assert_entry(&pkg.list, 1, &["cannot record its marker", "blocked:1"]);
    assert!(run.join("images/example.org-ready-fine:1").is_file());
    let recorded = status_rows(run.path());
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(!run.join("status.json.partial").exists());
}

// ---------------------------------------------------------------------------------------
// What is already right is not written again
// ---------------------------------------------------------------------------------------

/// Which file `path` is (device, inode): a file written again is a new one, renamed into place.
fn file_identity(path: &Path) -> (u64, u64) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.dev(), meta.ino())
}

/// Two images present under their references, listed in one package.
fn two_present(engine: &Engine, tag: &str) -> (Package, [Fixture; 2]) {
    let pkg = Package::new();
    let fixtures = [1, 2].map(|i| Fixture::new(&format!("example.org/again/{tag}{i}:1")));
    let lines: Vec<String> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| pkg.add(&format!("{i}.tar.zst"), f, Codec::Zstd))
        .collect();
    pkg.write_list(&[&lines[0], &lines[1]]);
    for fixture in &fixtures {
        engine.preload(fixture);
    }
    (pkg, fixtures)
}

#[test]
fn a_run_that_finds_everything_as_recorded_rewrites_neither_status_json_nor_markers() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, _) = two_present(&engine, "same");
    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);
    let files = [
        run.join("status.json"),
        run.join("images/example.org-again-same1:1"),
        run.join("images/example.org-again-same2:1"),
    ];
    let before: Vec<_> = files.iter().map(|f| file_identity(f)).collect();
    let recorded = status_rows(run.path());

    load_into(&engine, &pkg, run.path(), &[])
        .assert_code(0)
        .assert_summary("0 loaded, 2 present, 0 failed");

    let after: Vec<_> = files.iter().map(|f| file_identity(f)).collect();
    assert_eq!(before, after, "written again: {files:?}");
    assert_eq!(status_rows(run.path()), recorded);
}

#[test]
fn a_marker_removed_since_the_last_run_is_put_down_again() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, [_, second]) = two_present(&engine, "removed");
    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);
    let marker = run.join("images/example.org-again-removed2:1");
    fs::remove_file(&marker).unwrap();

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!("sha256:{}\n", second.id)
    );
}

#[test]
fn a_marker_that_cannot_be_written_fails_every_run() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, _) = two_present(&engine, "blocked");
    // A directory where the first marker goes: it cannot be replaced by a file.
    fs::create_dir_all(run.join("images/example.org-again-blocked1:1/x")).unwrap();
    load_into(&engine, &pkg, run.path(), &[]).assert_code(1);

    let out = load_into(&engine, &pkg, run.path(), &[]);

    out.assert_code(1)
        .assert_entry(&pkg.list, 1, &["cannot record its marker", "blocked1:1"]);
}

#[test]
fn a_marker_and_its_row_are_written_again_when_the_image_under_the_reference_changes() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, [first, _]) = two_present(&engine, "changed");
    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);
    let marker = run.join("images/example.org-again-changed1:1");
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!("sha256:{}\n", first.id)
    );
    // Another image under the same reference, as an update by other means leaves it.
    engine.remove(&first.reference);
    let replacement = Fixture::new(&first.reference);
    engine.preload(&replacement);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        format!("sha256:{}\n", replacement.id)
    );
    assert_eq!(
        status_rows(run.path())[0]["image_id"],
        format!("sha256:{}", replacement.id)
    );
}

#[test]
fn a_row_is_written_again_when_its_archive_is_gone() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, _) = two_present(&engine, "archive");
    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);
    assert_eq!(status_rows(run.path())[1]["archive_present"], true);
    fs::remove_file(pkg.archive("1.tar.zst")).unwrap();

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    let recorded = status_rows(run.path());
    assert_eq!(recorded[1]["archive_present"], false, "{recorded:?}");
    assert_eq!(recorded[1]["format"], Value::Null);
    assert_eq!(recorded[0]["archive_present"], true);
}

#[test]
fn the_rows_of_lines_taken_out_of_the_list_go_away() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let (pkg, [kept, _]) = two_present(&engine, "shorter");
    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);
    assert_eq!(status_rows(run.path()).len(), 2);
    pkg.write_list(&[&format!("0.tar.zst {}", kept.reference)]);

    load_into(&engine, &pkg, run.path(), &[]).assert_code(0);

    let recorded = status_rows(run.path());
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["ref"], kept.reference);
}

#[test]
fn sigterm_mid_run_leaves_status_json_and_markers_for_the_finished_entries() {
    let engine = Engine::podman();
    let run = TempDir::new("run");
    let proxy_dir = TempDir::new("proxy");
    let proxy = proxy::Proxy::start(
        &proxy_dir.join("p.sock"),
        engine.socket_path(),
        proxy::Fault::Stall { after: 4096 },
    );
    let pkg = Package::new();
    let present = Fixture::new("example.org/term/present:1");
    let stalled = Fixture::new("example.org/term/stalled:1");
    engine.preload(&present);
    let lp = pkg.add("p.tar.zst", &present, Codec::Zstd);
    let ls = pkg.add("s.tar", &stalled, Codec::Tar);
    pkg.write_list(&[&lp, "gone.tar.zst example.org/term/gone:1", &ls]);
    let mut args = proxy.host_args();
    args.extend([
        "--run-dir".to_string(),
        run.path().display().to_string(),
        "-l".to_string(),
        pkg.list_arg(),
    ]);
    let running = spawn_loader(&args, &[]);

    proxy.wait_fired(std::time::Duration::from_secs(60));
    let pid = running.pid().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let stderr = running.kill9();
    proxy.release();

    let recorded = status_rows(run.path());
    assert_eq!(
        recorded.len(),
        2,
        "the two entries done: {recorded:?}\n{stderr}"
    );
    assert_eq!(recorded[0]["state"], "present");
    assert_eq!(recorded[1]["state"], "missing");
    assert_eq!(
        fs::read_to_string(run.join("images/example.org-term-present:1")).unwrap(),
        format!("sha256:{}\n", present.id)
    );
    assert!(!run.join("images/example.org-term-stalled:1").exists());
}
