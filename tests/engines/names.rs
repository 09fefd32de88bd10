//! A name means one image: what the loader reports (its lines, markers, status.json, the
//! exit status) is what the engine's names stand for after the run's last load, and a load
//! that fails leaves every name where it was. On the five engines.

use crate::common::*;

on_every_engine! {
    a_later_line_is_verified_against_the_names_an_earlier_load_moved;
    a_load_that_moves_an_earlier_lines_name_records_that_line_again;
    a_refused_replace_differing_load_leaves_the_engines_image_named;
    a_refused_load_of_an_archive_with_several_names_moves_none_of_them;
    the_marker_follows_the_last_line_for_a_reference;
}

/// docker's containerd store keeps an image about to lose a name by a keeper name of the
/// loader's for the length of a load; one a killed loader left is removed by the next load.
mod a_keeper_name_a_load_that_did_not_end_left_is_removed_by_the_next_load {
    #[test]
    fn docker26_containerd() {
        super::a_keeper_name_a_load_that_did_not_end_left_is_removed_by_the_next_load(
            crate::common::Flavor::Docker26Containerd,
        )
    }
}

/// Two images: `a` under `example.org/names/app:1` and `app:shared`, `b` under `app:shared`
/// alone, each in its own archive of `pkg`.
fn sharing_a_name(pkg: &Package) -> (Fixture, Fixture) {
    let a = Fixture::build(
        &["example.org/names/app:1", "example.org/names/app:shared"],
        1,
    );
    let b = Fixture::new("example.org/names/app:shared");
    pkg.add("a.tar.zst", &a, Codec::Zstd);
    pkg.add("b.tar.zst", &b, Codec::Zstd);
    (a, b)
}

fn load_into(engine: &Engine, pkg: &Package, run: &TempDir, extra: &[&str]) -> Output {
    let run = run.path().display().to_string();
    let mut args = vec!["--run-dir", run.as_str()];
    args.extend_from_slice(extra);
    load_package(engine, pkg, &args)
}

/// Row `row` of status.json and app:shared's marker give `now`'s id, the row `archive`'s as the
/// archive's (`--verify`).
fn assert_recorded_on(run: &TempDir, row: usize, now: &Fixture, archive: &Fixture, flavor: Flavor) {
    let rows = status_rows(run.path());
    assert_eq!(rows[row]["image_id"], id_of(now, flavor), "{rows:?}");
    assert_eq!(rows[row]["archive_id"], id_of(archive, flavor), "{rows:?}");
    assert_eq!(
        marker_id(run.path(), "example.org/names/app:shared"),
        Some(id_of(now, flavor))
    );
}

fn id_of(fixture: &Fixture, flavor: Flavor) -> String {
    format!("sha256:{}", fixture.id_on(flavor))
}

fn a_later_line_is_verified_against_the_names_an_earlier_load_moved(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, run) = (Package::new(), TempDir::new("run"));
    let (a, b) = sharing_a_name(&pkg);
    engine.preload(&b);
    pkg.write_list(&[
        "a.tar.zst example.org/names/app:1",
        "b.tar.zst example.org/names/app:shared",
    ]);

    // Loading a.tar moves app:shared from B to A: line 2 must see A, not the listing's B.
    let out = load_into(&engine, &pkg, &run, &["--verify"]);

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            2,
            &[
                "app:shared: differs: the engine has sha256:",
                &a.id_on(flavor)[..12],
            ],
        )
        .assert_summary("1 loaded, 0 present, 1 differ, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has("example.org/names/app:shared")),
        a.id_on(flavor)
    );
    assert_recorded_on(&run, 1, &a, &b, flavor);
}

fn a_load_that_moves_an_earlier_lines_name_records_that_line_again(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, run) = (Package::new(), TempDir::new("run"));
    let (a, b) = sharing_a_name(&pkg);
    pkg.write_list(&[
        "b.tar.zst example.org/names/app:shared",
        "a.tar.zst example.org/names/app:1",
    ]);

    let out = load_into(&engine, &pkg, &run, &["--verify"]);

    // Line 1 loaded B, then line 2's archive took its name: line 1 now differs.
    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "app:shared: now sha256:",
                &a.id_on(flavor)[..12],
                "a.tar.zst",
            ],
        )
        .assert_summary("2 loaded, 0 present, 1 differ, 0 failed");
    assert_eq!(status_rows(run.path())[0]["state"], "differs");
    assert_recorded_on(&run, 0, &a, &b, flavor);
}

fn a_refused_replace_differing_load_leaves_the_engines_image_named(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, run) = (Package::new(), TempDir::new("run"));
    let good = Fixture::new("example.org/names/good:1");
    engine.preload(&good);
    let broken = Fixture::new("example.org/names/good:1");
    pkg.add_archive(
        "broken.tar.zst",
        &Codec::Zstd.compress(&broken.with_a_layer_not_its_diff_id()),
    );
    pkg.write_list(&["broken.tar.zst example.org/names/good:1"]);

    let out = load_into(&engine, &pkg, &run, &["--verify", "--replace-differing"]);

    out.assert_code(1)
        .assert_summary("0 loaded, 0 present, 0 differ, 1 failed");
    assert_eq!(
        bare_id(&engine.assert_has(&good.reference)),
        good.id_on(flavor)
    );
    assert_eq!(
        marker_id(run.path(), &good.reference),
        Some(id_of(&good, flavor))
    );
    // The next run finds the good image, which is not the archive's: it differs.
    load_into(&engine, &pkg, &run, &["--verify"])
        .assert_code(1)
        .assert_summary("0 loaded, 0 present, 1 differ, 0 failed");
}

fn a_refused_load_of_an_archive_with_several_names_moves_none_of_them(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let good = Fixture::new("example.org/names/two:b");
    engine.preload(&good);
    let broken = Fixture::build(&["example.org/names/two:a", "example.org/names/two:b"], 1);
    pkg.add_archive(
        "two.tar.zst",
        &Codec::Zstd.compress(&broken.with_a_layer_not_its_diff_id()),
    );
    // One line per name, as `scan` writes them.
    pkg.write_list(&[
        "two.tar.zst example.org/names/two:a",
        "two.tar.zst example.org/names/two:b",
    ]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1)
        .assert_summary("0 loaded, 1 present, 1 failed");
    engine.assert_has_not("example.org/names/two:a");
    assert_eq!(
        bare_id(&engine.assert_has(&good.reference)),
        good.id_on(flavor)
    );
}

fn the_marker_follows_the_last_line_for_a_reference(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, run) = (Package::new(), TempDir::new("run"));
    let fixture = Fixture::new("example.org/names/twice:1");
    pkg.add("twice.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[
        "gone.tar.zst example.org/names/twice:1",
        "twice.tar.zst example.org/names/twice:1",
    ]);

    load_into(&engine, &pkg, &run, &[])
        .assert_code(1)
        .assert_summary("1 loaded, 0 present, 1 failed");

    let rows = status_rows(run.path());
    assert_eq!(rows[1]["state"], "present", "{rows:?}");
    assert_eq!(
        marker_id(run.path(), &fixture.reference),
        Some(id_of(&fixture, flavor))
    );
}

fn a_keeper_name_a_load_that_did_not_end_left_is_removed_by_the_next_load(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let kept = Fixture::new("example.org/names/kept:1");
    engine.preload(&kept);
    let keeper = format!("localhost/container-loader-keep:{}", kept.id_on(flavor));
    let path = format!(
        "/images/{}/tag?repo=localhost/container-loader-keep&tag={}",
        kept.reference,
        kept.id_on(flavor)
    );
    let (status, body) = http_post(engine.socket_path(), &path, b"").expect("tag answered");
    assert_eq!(status, 201, "{body}");
    engine.assert_has(&keeper);
    let fixture = Fixture::new("example.org/names/next:1");
    pkg.write_list(&[&pkg.add("next.tar.zst", &fixture, Codec::Zstd)]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0).assert_stderr_contains(&format!(
        "removed {keeper}, left by a load that did not end"
    ));
    engine.assert_has_not(&keeper);
    engine.assert_has(&kept.reference);
}

/// An OCI archive whose ref.name is a bare tag (`v1`, as `skopeo copy oci-archive:X:v1` writes
/// it) names no image: the load tags REF. podman turns such a tag into a name of its own
/// (`localhost/v1:latest`), which the loader did not ask for and removes; classic docker makes
/// none.
mod a_bare_tag_ref_name_leaves_no_name_but_the_reference {
    use crate::common::Flavor;

    #[test]
    fn podman54() {
        super::a_bare_tag_ref_name_leaves_no_name_but_the_reference(Flavor::Podman54)
    }
    #[test]
    fn docker26() {
        super::a_bare_tag_ref_name_leaves_no_name_but_the_reference(Flavor::Docker26)
    }
}

/// docker's containerd store keeps the bare tag as an image name its API cannot reach: the
/// loader says why it stays.
mod a_bare_tag_ref_name_the_engine_keeps_is_reported {
    #[test]
    fn docker26_containerd() {
        super::a_bare_tag_ref_name_the_engine_keeps_is_reported(
            crate::common::Flavor::Docker26Containerd,
        )
    }
}

/// `pkg` with one line, REF `example.org/names/bare-tag:1` for an OCI archive whose ref.name
/// is `v1`; loaded into `engine`.
fn load_bare_tag(engine: &Engine) -> (Package, Fixture, Output) {
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/names/bare-tag:1");
    pkg.add_archive("bare.tar", &fixture.oci_named("v1"));
    pkg.write_list(&["bare.tar example.org/names/bare-tag:1"]);
    let out = load_package(engine, &pkg, &[]);
    (pkg, fixture, out)
}

fn a_bare_tag_ref_name_leaves_no_name_but_the_reference(flavor: Flavor) {
    let engine = Engine::start(flavor);

    let (pkg, fixture, out) = load_bare_tag(&engine);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["tagged sha256:", "(bare.tar carries no name)"],
    );
    if flavor == Flavor::Podman54 {
        out.assert_entry(
            &pkg.list,
            1,
            &["localhost/v1:latest: removed: the engine gave it to the loaded image, and neither the list nor the archive names it"],
        );
    }
    engine.assert_has(&fixture.reference);
    assert_eq!(engine.list_images(), vec![fixture.reference.clone()]);
}

fn a_bare_tag_ref_name_the_engine_keeps_is_reported(flavor: Flavor) {
    let engine = Engine::start(flavor);

    let (pkg, fixture, out) = load_bare_tag(&engine);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["v1:latest: the engine says it loaded it but finds no image by that name; kept"],
    );
    engine.assert_has(&fixture.reference);
    assert!(engine.list_images().contains(&"v1".to_owned()));
}
