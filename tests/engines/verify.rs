//! What the loader checks and fixes beyond "the engine has a name": `--verify` compares the
//! engine's image with the archive's, `--replace-differing` reloads it, and a load whose
//! archive does not carry the listed reference gets that name through the engine API.
//! All on real engines.

use crate::common::*;
use serde_json::Value;

on_every_engine! {
    verify_skips_an_image_that_is_the_archives;
    verify_reports_an_image_that_differs_and_keeps_it;
    replace_differing_loads_the_archive_over_the_engines_image;
    verify_without_the_archive_keeps_a_present_image;
    verify_fails_an_entry_whose_archive_is_corrupt;
    status_verify_shows_differs_with_both_ids;
    verify_takes_the_archives_config_under_gzip_layers_as_its_image;
    replace_differing_leaves_the_archives_config_under_gzip_layers_alone;
    status_verify_shows_the_archives_config_under_gzip_layers_present;
    archive_tagged_otherwise_is_tagged_as_listed;
    untagged_archive_is_tagged_as_listed;
    tagless_reference_is_tagged_latest;
    short_name_given_by_tag_is_found_on_the_next_run;
    load_checks_the_listed_name_is_the_archives_image;
    oci_archive_saved_without_a_name_is_tagged_as_listed;
}

/// `fixture`'s archive in `pkg` as `name`, listed as `reference`.
fn listed(pkg: &Package, name: &str, fixture: &Fixture, reference: &str) {
    pkg.add_archive(name, &fixture.compressed(Codec::Zstd));
    pkg.write_list(&[&format!("{name} {reference}")]);
}

/// An image the engine has under `reference` that is not `fixture`'s.
fn other_image_as(engine: &Engine, reference: &str) -> String {
    let other = Fixture::new(reference);
    engine.preload(&other);
    engine.assert_has(reference)
}

/// `status --verify` of `pkg`'s list on `engine`: as `--json`, and as the table.
fn status_verify(engine: &Engine, pkg: &Package) -> (Output, Output) {
    let sock = engine.socket_path().display().to_string();
    let list = pkg.list_arg();
    let json = run_loader(
        &["status", "--verify", "--json", "-H", &sock, "-l", &list],
        &[],
    );
    let table = run_loader(&["status", "--verify", "-H", &sock, "-l", &list], &[]);
    (json, table)
}

fn verify_skips_an_image_that_is_the_archives(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/verify/same:1");
    listed(&pkg, "same.tar.zst", &fixture, &fixture.reference);
    engine.preload(&fixture);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "example.org/verify/same:1: present, skipped (verified: sha256:",
                &fixture.id_on(flavor)[..12],
                "as in same.tar.zst",
            ],
        )
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
}

fn verify_reports_an_image_that_differs_and_keeps_it(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/verify/differs:1");
    listed(&pkg, "d.tar.zst", &fixture, &fixture.reference);
    let runtime_id = other_image_as(&engine, &fixture.reference);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "example.org/verify/differs:1: differs: the engine has sha256:",
                &bare_id(&runtime_id)[..12],
                "d.tar.zst holds sha256:",
                &fixture.id_on(flavor)[..12],
                "kept (--replace-differing loads the archive)",
            ],
        )
        .assert_summary("0 loaded, 0 present, 1 differ, 0 failed");
    assert_eq!(engine.assert_has(&fixture.reference), runtime_id);
}

fn replace_differing_loads_the_archive_over_the_engines_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/verify/replace:1");
    listed(&pkg, "r.tar.zst", &fixture, &fixture.reference);
    other_image_as(&engine, &fixture.reference);

    let out = load_package(&engine, &pkg, &["--verify", "--replace-differing"]);

    out.assert_code(0)
        .assert_entry(&pkg.list, 1, &["differs", "; loading the archive"])
        .assert_entry(&pkg.list, 1, &["example.org/verify/replace:1: loaded from"])
        .assert_summary("1 loaded, 0 present, 0 differ, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has(&fixture.reference)),
        fixture.id_on(flavor)
    );
    load_package(&engine, &pkg, &["--verify"])
        .assert_code(0)
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
}

fn verify_without_the_archive_keeps_a_present_image(flavor: Flavor) {
    // With --delete-after-load the archive is gone once loaded: nothing to compare with.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/verify/gone:1");
    pkg.write_list(&["gone.tar.zst example.org/verify/gone:1"]);
    engine.preload(&fixture);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["present, skipped (not verified: gone.tar.zst is gone)"],
        )
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
}

fn verify_fails_an_entry_whose_archive_is_corrupt(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/verify/corrupt:1");
    let mut data = fixture.compressed(Codec::Zstd);
    let n = data.len();
    data.truncate(n / 2);
    pkg.add_archive("c.tar.zst", &data);
    pkg.write_list(&["c.tar.zst example.org/verify/corrupt:1"]);
    engine.preload(&fixture);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &["failed: cannot verify against c.tar.zst", "corrupt"],
        )
        .assert_summary("0 loaded, 0 present, 0 differ, 1 failed");
    assert_eq!(
        bare_id(&engine.assert_has(&fixture.reference)),
        fixture.id_on(flavor)
    );
}

fn status_verify_shows_differs_with_both_ids(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let same = Fixture::new("example.org/verify/st-same:1");
    let other = Fixture::new("example.org/verify/st-other:1");
    let ls = pkg.add("s.tar.zst", &same, Codec::Zstd);
    let lo = pkg.add("o.tar.gz", &other, Codec::Gzip);
    pkg.write_list(&[&ls, &lo]);
    engine.preload(&same);
    let runtime = Fixture::new(&other.reference);
    engine.preload(&runtime);
    let runtime_id = engine.assert_has(&other.reference);

    let (json, table) = status_verify(&engine, &pkg);

    json.assert_code(1);
    let rows: Vec<Value> = serde_json::from_str(&json.stdout).expect("status JSON");
    assert_eq!(rows[0]["state"], "present", "{}", json.stdout);
    assert_eq!(
        rows[0]["archive_id"],
        format!("sha256:{}", same.id_on(flavor))
    );
    assert_eq!(rows[1]["state"], "differs", "{}", json.stdout);
    assert_eq!(rows[1]["image_present"], true);
    let runtime_id = format!("sha256:{}", bare_id(&runtime_id));
    assert_eq!(rows[1]["image_id"], runtime_id.as_str());
    assert_eq!(
        rows[1]["archive_id"],
        format!("sha256:{}", other.id_on(flavor))
    );
    table.assert_code(1);
    let line = table
        .stdout
        .lines()
        .find(|l| l.contains("example.org/verify/st-other:1") && l.contains("differs"))
        .unwrap_or_else(|| panic!("no differs row\n{table:?}"));
    assert!(line.contains("o.tar.gz"), "{line}");
    // The containerd store names images by manifest: both configs are read and shown.
    let said = match flavor.containerd_store() {
        true => format!(
            "the engine has {runtime_id} (config sha256:{}), o.tar.gz holds sha256:{} (config sha256:{})",
            runtime.id,
            other.manifest_id,
            other.id
        ),
        false => format!(
            "the engine has {runtime_id}, o.tar.gz holds sha256:{}",
            other.id
        ),
    };
    assert!(table.stdout.contains(&said), "{said}\n{table:?}");
}

/// The engine has `fixture`'s image from its docker-archive, and the package lists the same
/// image as an OCI archive with gzip layers: one config, another manifest (so another id on
/// docker's containerd store, the same on the others).
fn the_image_listed_with_gzip_layers(engine: &Engine, fixture: &Fixture) -> Package {
    engine.preload(fixture);
    let pkg = Package::new();
    pkg.add_archive("gz-layers.tar", &fixture.oci_with_gzip_layers());
    pkg.write_list(&[&format!("gz-layers.tar {}", fixture.reference)]);
    pkg
}

fn verify_takes_the_archives_config_under_gzip_layers_as_its_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let fixture = Fixture::new("example.org/verify/gz-layers:1");
    let pkg = the_image_listed_with_gzip_layers(&engine, &fixture);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "example.org/verify/gz-layers:1: present, skipped (verified: sha256:",
                &fixture.id_on(flavor)[..12],
            ],
        )
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
    if flavor.containerd_store() {
        out.assert_entry(
            &pkg.list,
            1,
            &[
                "has the config sha256:",
                &fixture.id[..12],
                "of gz-layers.tar's image, under another manifest than the archive's",
            ],
        );
    }
}

fn replace_differing_leaves_the_archives_config_under_gzip_layers_alone(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let fixture = Fixture::new("example.org/verify/gz-keep:1");
    let pkg = the_image_listed_with_gzip_layers(&engine, &fixture);

    let out = load_package(&engine, &pkg, &["--verify", "--replace-differing"]);

    out.assert_code(0)
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has(&fixture.reference)),
        fixture.id_on(flavor)
    );
}

fn status_verify_shows_the_archives_config_under_gzip_layers_present(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let fixture = Fixture::new("example.org/verify/gz-status:1");
    let pkg = the_image_listed_with_gzip_layers(&engine, &fixture);

    let (json, table) = status_verify(&engine, &pkg);

    json.assert_code(0);
    let rows: Vec<Value> = serde_json::from_str(&json.stdout).expect("status JSON");
    assert_eq!(rows[0]["state"], "present", "{}", json.stdout);
    let engine_id = format!("sha256:{}", fixture.id_on(flavor));
    assert_eq!(rows[0]["image_id"], engine_id.as_str());
    table.assert_code(0);
    // On the containerd store the archive's image gets its own manifest's digest.
    let other_manifest = rows[0]["archive_id"] != engine_id.as_str();
    assert_eq!(other_manifest, flavor.containerd_store(), "{}", json.stdout);
    let said = table.stdout.contains(&format!(
        "the engine's {engine_id} has the config sha256:{} of gz-layers.tar's image",
        fixture.id
    ));
    assert_eq!(said, flavor.containerd_store(), "{table:?}");
}

fn archive_tagged_otherwise_is_tagged_as_listed(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/tag/actual:1");
    listed(&pkg, "t.tar.zst", &fixture, "example.org/tag/listed:2");

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "example.org/tag/listed:2: tagged sha256:",
                &fixture.id_on(flavor)[..12],
                "as example.org/tag/listed:2 (t.tar.zst carries example.org/tag/actual:1)",
            ],
        )
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/tag/listed:2: loaded from t.tar.zst"],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has("example.org/tag/listed:2")),
        fixture.id_on(flavor)
    );
    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("0 loaded, 1 present, 0 failed");
}

fn untagged_archive_is_tagged_as_listed(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(&[], 1);
    listed(&pkg, "u.tar.zst", &fixture, "example.org/tag/untagged:1");

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["tagged sha256:", "(u.tar.zst carries no name)"],
        )
        .assert_entry(&pkg.list, 1, &["deleted u.tar.zst"])
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has("example.org/tag/untagged:1")),
        fixture.id_on(flavor)
    );
}

fn tagless_reference_is_tagged_latest(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/tag/versioned:3");
    listed(&pkg, "v.tar.zst", &fixture, "example.org/tag/plain");

    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["as example.org/tag/plain ("]);

    assert_eq!(
        bare_id(&engine.assert_has("example.org/tag/plain:latest")),
        fixture.id_on(flavor)
    );
}

fn short_name_given_by_tag_is_found_on_the_next_run(flavor: Flavor) {
    // podman files a short name under localhost/, docker under docker.io/library/: either way
    // the next boot must find it under the name the list writes.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/tag/long-name:1");
    listed(&pkg, "s.tar.zst", &fixture, "tagshort:1");
    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["tagged sha256:", "as tagshort:1"]);

    let out = load_package(&engine, &pkg, &["--verify"]);

    out.assert_code(0)
        .assert_entry(&pkg.list, 1, &["tagshort:1: present, skipped (verified"])
        .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
}

fn load_checks_the_listed_name_is_the_archives_image(flavor: Flavor) {
    // The listed name is in the archive: after the load it must be that image, and no tag
    // is added. An image that had the name before is replaced by the load itself.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(&["example.org/tag/both:1", "example.org/tag/both:2"], 1);
    listed(&pkg, "b.tar.zst", &fixture, "example.org/tag/both:2");

    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_entry_lacks(&pkg.list, 1, "tagged")
        .assert_summary("1 loaded, 0 present, 0 failed");

    assert_eq!(
        bare_id(&engine.assert_has("example.org/tag/both:2")),
        fixture.id_on(flavor)
    );
}

/// An image saved by id carries no name: loaded, then given the listed one.
fn oci_archive_saved_without_a_name_is_tagged_as_listed(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/tag/oci-unnamed:1");
    let archive = podman_saved_as(&fixture, "oci-archive", &fixture.id);
    let path = pkg.add_archive("oci.tar.zst", &Codec::Zstd.compress(&archive));
    pkg.write_list(&["oci.tar.zst example.org/tag/oci-named:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["tagged sha256:", "(oci.tar.zst carries no name)"],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert_eq!(
        bare_id(&engine.assert_has("example.org/tag/oci-named:1")),
        archive_id_on(flavor, &path)
    );
}

#[test]
fn docker_digest_reference_is_never_tagged() {
    // A digest names content, not a tag; a loaded archive has no registry digest to match.
    let engine = Engine::docker();
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/tag/digest:1");
    let reference = format!("example.org/tag/digest@sha256:{}", fixture.id);
    listed(&pkg, "g.tar.zst", &fixture, &reference);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1)
        .assert_entry(
            &pkg.list,
            1,
            &["failed: loaded g.tar.zst but the engine has no"],
        )
        .assert_entry_lacks(&pkg.list, 1, "tagged");
    // A failed entry leaves the engine's names as they were: the archive's own goes too.
    engine.assert_has_not(&fixture.reference);
}

/// Archives written by `container-loader pack`, whose description is read by their seek
/// table: verified as the plain archive of the same image is.
#[cfg(feature = "pack")]
mod packed {
    use super::*;

    on_every_engine! {
        verify_skips_an_image_that_is_its_packed_archives;
        status_verify_shows_the_image_of_a_packed_archive_present;
    }

    /// The engine holds `fixture`'s image, and `pkg` lists its packed archive.
    fn the_image_listed_packed(engine: &Engine, fixture: &Fixture) -> Package {
        engine.preload(fixture);
        let pkg = Package::new();
        pkg.add_archive("packed.tar.zst", &packed(&fixture.tar));
        pkg.write_list(&[&format!("packed.tar.zst {}", fixture.reference)]);
        pkg
    }

    fn verify_skips_an_image_that_is_its_packed_archives(flavor: Flavor) {
        let engine = Engine::start(flavor);
        let fixture = Fixture::build(&["example.org/verify/packed:1"], 2);
        let pkg = the_image_listed_packed(&engine, &fixture);

        let out = load_package(&engine, &pkg, &["--verify"]);

        out.assert_code(0)
            .assert_entry(
                &pkg.list,
                1,
                &[
                    "example.org/verify/packed:1: present, skipped (verified: sha256:",
                    &fixture.id_on(flavor)[..12],
                    "as in packed.tar.zst",
                ],
            )
            .assert_summary("0 loaded, 1 present, 0 differ, 0 failed");
    }

    fn status_verify_shows_the_image_of_a_packed_archive_present(flavor: Flavor) {
        let engine = Engine::start(flavor);
        let fixture = Fixture::build(&["example.org/verify/packed-status:1"], 2);
        let pkg = the_image_listed_packed(&engine, &fixture);

        let (json, table) = status_verify(&engine, &pkg);

        json.assert_code(0);
        let rows: Vec<Value> = serde_json::from_str(&json.stdout).expect("status JSON");
        assert_eq!(rows[0]["state"], "present", "{}", json.stdout);
        let id = format!("sha256:{}", fixture.id_on(flavor));
        assert_eq!(rows[0]["image_id"], id.as_str(), "{}", json.stdout);
        assert_eq!(rows[0]["archive_id"], id.as_str(), "{}", json.stdout);
        table.assert_code(0);
    }
}
