//! Images that should end up loaded (or, for --dry-run and status, deliberately not),
//! on both engines.

use std::fs;
use std::os::unix::fs::symlink;

use crate::common::*;

on_every_engine! {
    harness_tells_present_from_absent_images;
    loads_zstd_archive;
    loads_gzip_archive;
    loads_multi_member_gzip_archive;
    loads_xz_archive;
    loads_multi_block_xz_archive;
    loads_bzip2_archive;
    loads_plain_tar_archive;
    loads_multi_layer_archive;
    loads_docker_archive_from_podman_save;
    loads_listed_tag_of_archive_with_several_tags;
    reports_sizes_and_time_of_a_load;
    load_writes_nothing_to_stdout;
    explicit_load_command_loads;
    long_option_names_work;
    short_name_is_found_again_after_loading;
    docker_io_repotag_is_found_by_short_name;
    second_run_skips_present_images;
    present_image_needs_no_archive;
    several_lists_load_in_one_run;
    list_path_is_reported_as_given;
    default_images_dir_is_beside_the_list;
    images_dir_option_overrides_the_default;
    archive_name_with_colon_loads;
    symlink_inside_images_dir_is_followed;
    delete_after_load_deletes_only_loaded_archives;
    dry_run_loads_nothing;
    dry_run_reports_archive_size;
    status_json_reports_every_field;
    status_prints_entries_on_stdout_and_loads_nothing;
    journal_stream_marks_loaded_lines_as_info;
    loads_oci_archive_from_podman_save;
}

/// Classic docker reads no OCI layout: the loader writes the manifest.json it needs.
fn loads_oci_archive_from_podman_save(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/saved/oci:1.0");
    let archive = podman_saved(&fixture, "oci-archive");
    let path = pkg.add_archive("oci.tar.zst", &Codec::Zstd.compress(&archive));
    pkg.write_list(&["oci.tar.zst example.org/saved/oci:1.0"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/saved/oci:1.0: loaded from oci.tar.zst (zstd, "],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    let id = engine.assert_has("example.org/saved/oci:1.0");
    assert_eq!(bare_id(&id), archive_id_on(flavor, &path));
}

/// The harness itself: an image loaded through the engine API is seen as present, with
/// its ID and name, and another one as absent (so `assert_has_not` can fail).
fn harness_tells_present_from_absent_images(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let present = Fixture::new("example.org/harness/present:1");
    let absent = Fixture::new("example.org/harness/absent:1");
    assert!(!engine.has_image(&present.reference));
    assert_eq!(engine.image_count(), 0);

    engine.preload(&present);

    assert!(engine.has_image(&present.reference));
    assert!(!engine.has_image(&absent.reference));
    assert_eq!(
        engine.image_id(&present.reference).as_deref().map(bare_id),
        Some(present.id_on(flavor))
    );
    assert_eq!(engine.image_id(&absent.reference), None);
    assert_eq!(engine.list_images(), vec![present.reference.clone()]);
    assert_eq!(engine.image_count(), 1);
}

/// Loads one fixture compressed with `codec` and checks the entry line and the engine.
fn loads_with(flavor: Flavor, codec: Codec) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/loads/app:1.0");
    let name = format!("app.{}", codec.extension());
    let line = pkg.add(&name, &fixture, codec);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[
                "example.org/loads/app:1.0: loaded from ",
                &name,
                &format!("({}, ", codec.format()),
            ],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    let id = engine.assert_has("example.org/loads/app:1.0");
    assert_eq!(
        bare_id(&id),
        fixture.id_on(flavor),
        "loaded image has the fixture's config digest"
    );
}

fn loads_zstd_archive(flavor: Flavor) {
    loads_with(flavor, Codec::Zstd);
}

fn loads_gzip_archive(flavor: Flavor) {
    loads_with(flavor, Codec::Gzip);
}

fn loads_multi_member_gzip_archive(flavor: Flavor) {
    loads_with(flavor, Codec::GzipMultiMember);
}

fn loads_xz_archive(flavor: Flavor) {
    loads_with(flavor, Codec::Xz);
}

fn loads_multi_block_xz_archive(flavor: Flavor) {
    loads_with(flavor, Codec::XzMultiBlock);
}

fn loads_bzip2_archive(flavor: Flavor) {
    loads_with(flavor, Codec::Bzip2);
}

fn loads_plain_tar_archive(flavor: Flavor) {
    loads_with(flavor, Codec::Tar);
}

fn loads_multi_layer_archive(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(&["example.org/loads/layered:3"], 3);
    let line = pkg.add("layered.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    let id = engine.assert_has("example.org/loads/layered:3");
    assert_eq!(bare_id(&id), fixture.id_on(flavor));
}

fn loads_docker_archive_from_podman_save(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/saved/docker:1.0");
    let archive = podman_saved(&fixture, "docker-archive");
    pkg.add_archive("saved.tar.zst", &Codec::Zstd.compress(&archive));
    pkg.write_list(&["saved.tar.zst example.org/saved/docker:1.0"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/saved/docker:1.0: loaded from saved.tar.zst"],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has("example.org/saved/docker:1.0");
}

fn loads_listed_tag_of_archive_with_several_tags(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::build(
        &["example.org/tags/first:1", "example.org/tags/second:2"],
        1,
    );
    pkg.add_archive("tags.tar.gz", &fixture.compressed(Codec::Gzip));
    pkg.write_list(&["tags.tar.gz example.org/tags/second:2"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/tags/second:2: loaded from tags.tar.gz"],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has("example.org/tags/second:2");
}

/// Reads a size as the loader prints it (`512 B`, `1.7 KiB`, `12.3 MiB`, `1.25 GiB`) and
/// returns it in bytes with the rounding error its last digit allows.
fn printed_size(text: &str) -> (f64, f64) {
    let (number, unit) = text
        .split_once(' ')
        .unwrap_or_else(|| panic!("no unit in size {text:?}"));
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("not a number in size {text:?}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unknown unit {other:?} in size {text:?}"),
    };
    let digits = number_decimals(text);
    (number * scale, scale * 0.5 * 10f64.powi(-digits) + 0.5)
}

fn number_decimals(text: &str) -> i32 {
    let number = text.split(' ').next().unwrap_or_default();
    number.split_once('.').map_or(0, |(_, d)| d.len() as i32)
}

fn assert_size(printed: &str, actual: u64, context: &str) {
    let (bytes, tolerance) = printed_size(printed);
    assert!(
        (bytes - actual as f64).abs() <= tolerance,
        "size {printed:?} should be {actual} bytes in {context:?}"
    );
}

fn reports_sizes_and_time_of_a_load(flavor: Flavor) {
    // `LIST:LINE: REF: loaded from ARCHIVE (FORMAT, SIZE -> SIZE, T s)`
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/loads/sizes:1");
    let line = pkg.add("sizes.tar.xz", &fixture, Codec::Xz);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0);
    let entry = out.entry(&pkg.list, 1);
    let loaded = entry
        .iter()
        .find(|l| l.contains("loaded from"))
        .unwrap_or_else(|| panic!("no loaded line\n{out:?}"));
    let inside = loaded
        .split_once("(xz, ")
        .and_then(|(_, rest)| rest.strip_suffix(" s)"))
        .unwrap_or_else(|| panic!("expected `(xz, SIZE -> SIZE, T s)` at the end of {loaded:?}"));
    let (sizes, seconds) = inside
        .rsplit_once(", ")
        .unwrap_or_else(|| panic!("no time in {loaded:?}"));
    let (from, to) = sizes
        .split_once(" -> ")
        .unwrap_or_else(|| panic!("no `SIZE -> SIZE` in {loaded:?}"));
    let seconds: f64 = seconds
        .parse()
        .unwrap_or_else(|_| panic!("T is not a number in {loaded:?}"));
    let compressed = fs::metadata(pkg.archive("sizes.tar.xz")).unwrap().len();
    assert_size(from, compressed, loaded);
    assert_size(to, fixture.tar.len() as u64, loaded);
    assert!(
        seconds >= 0.0 && seconds <= out.elapsed.as_secs_f64() + 0.1,
        "time in {loaded:?} should be within the run's {:?}",
        out.elapsed
    );
}

fn dry_run_reports_archive_size(flavor: Flavor) {
    // `LIST:LINE: REF: would load from ARCHIVE (FORMAT, SIZE)`
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/dry/size:1");
    let line = pkg.add("size.tar.gz", &fixture, Codec::Gzip);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &["--dry-run"]);

    let entry = out.entry(&pkg.list, 1);
    let would = entry
        .iter()
        .find(|l| l.contains("would load from"))
        .unwrap_or_else(|| panic!("no would-load line\n{out:?}"));
    let size = would
        .split_once("(gzip, ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("expected `(gzip, SIZE)` at the end of {would:?}"));
    let compressed = fs::metadata(pkg.archive("size.tar.gz")).unwrap().len();
    assert_size(size, compressed, would);
    engine.assert_has_not(&fixture.reference);
}

fn load_writes_nothing_to_stdout(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/loads/quiet-stdout:1");
    let line = pkg.add("a.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0);
    assert_eq!(out.stdout, "", "load reports on stderr only\n{out:?}");
}

fn explicit_load_command_loads(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/loads/explicit:1");
    let line = pkg.add("explicit.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let sock = engine.socket_path().display().to_string();

    let out = run_loader(&["load", "-H", &sock, "-l", &pkg.list_arg()], &[]);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has("example.org/loads/explicit:1");
}

fn long_option_names_work(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let elsewhere = Package::new();
    let fixture = Fixture::new("example.org/loads/long-options:1");
    let line = elsewhere.add("long.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let sock = engine.socket_path().display().to_string();
    let images = elsewhere.images.display().to_string();

    let out = run_loader(
        &[
            "--host",
            &sock,
            "--list",
            &pkg.list_arg(),
            "--images-dir",
            &images,
            "--engine",
            flavor.family().name(),
            "--wait",
            "30",
            "--timeout",
            "60",
            "--memory-limit",
            "64M",
        ],
        &[],
    );

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has("example.org/loads/long-options:1");
}

fn short_name_is_found_again_after_loading(flavor: Flavor) {
    // RepoTags "debian:bookworm": docker keeps it as is, podman stores it as
    // localhost/debian:bookworm; either way the short name must be found again.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("debian:bookworm");
    let line = pkg.add("debian.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    let first = load_package(&engine, &pkg, &[]);
    first.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["debian:bookworm: loaded from debian.tar.zst"],
    );
    engine.assert_has("debian:bookworm");

    let second = load_package(&engine, &pkg, &[]);
    second
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["debian:bookworm: present, skipped"])
        .assert_summary("0 loaded, 1 present, 0 failed");
}

fn docker_io_repotag_is_found_by_short_name(flavor: Flavor) {
    // Archives written with a normalized name (docker.io/library/...) and listed by the
    // short name: both engines resolve the short name to the docker.io image.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("docker.io/library/busybox:1.36");
    pkg.add_archive("busybox.tar.zst", &fixture.compressed(Codec::Zstd));
    pkg.write_list(&["busybox.tar.zst busybox:1.36"]);

    let first = load_package(&engine, &pkg, &[]);
    first
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["busybox:1.36: loaded from busybox.tar.zst"]);
    let second = load_package(&engine, &pkg, &[]);
    second
        .assert_code(0)
        .assert_entry(&pkg.list, 1, &["busybox:1.36: present, skipped"]);
}

fn second_run_skips_present_images(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let a = Fixture::new("example.org/again/a:1");
    let b = Fixture::new("example.org/again/b:1");
    let la = pkg.add("a.tar.zst", &a, Codec::Zstd);
    let lb = pkg.add("b.tar.gz", &b, Codec::Gzip);
    pkg.write_list(&[&la, &lb]);
    load_package(&engine, &pkg, &[])
        .assert_code(0)
        .assert_summary("2 loaded, 0 present, 0 failed");
    let ids = (
        engine.assert_has(&a.reference),
        engine.assert_has(&b.reference),
    );

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(&pkg.list, 1, &["example.org/again/a:1: present, skipped"])
        .assert_entry(&pkg.list, 2, &["example.org/again/b:1: present, skipped"])
        .assert_entry_lacks(&pkg.list, 1, "loaded from")
        .assert_entry_lacks(&pkg.list, 2, "loaded from")
        .assert_summary("0 loaded, 2 present, 0 failed");
    assert_eq!(
        (
            engine.assert_has(&a.reference),
            engine.assert_has(&b.reference)
        ),
        ids,
        "image IDs unchanged"
    );
}

fn present_image_needs_no_archive(flavor: Flavor) {
    // The boot after a --delete-after-load run: the archive is gone, the image is there.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/again/deleted:1");
    let line = pkg.add("deleted.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    load_package(&engine, &pkg, &["--delete-after-load"]).assert_code(0);
    assert!(
        !pkg.archive("deleted.tar.zst").exists(),
        "archive deleted by the first run"
    );

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/again/deleted:1: present, skipped"],
        )
        .assert_summary("0 loaded, 1 present, 0 failed");
}

fn several_lists_load_in_one_run(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let first = Package::new();
    let second = Package::new();
    let a = Fixture::new("example.org/lists/a:1");
    let b = Fixture::new("example.org/lists/b:1");
    let la = first.add("a.tar.zst", &a, Codec::Zstd);
    let lb = second.add("b.tar.xz", &b, Codec::Xz);
    first.write_list(&[&la]);
    second.write_list(&[&lb]);

    let out = load(
        &engine,
        &["-l", &first.list_arg(), "-l", &second.list_arg()],
    );

    out.assert_code(0)
        .assert_entry(
            &first.list,
            1,
            &["example.org/lists/a:1: loaded from a.tar.zst"],
        )
        .assert_entry(
            &second.list,
            1,
            &["example.org/lists/b:1: loaded from b.tar.xz"],
        )
        .assert_summary("2 loaded, 0 present, 0 failed");
    engine.assert_has(&a.reference);
    engine.assert_has(&b.reference);
}

fn default_images_dir_is_beside_the_list(flavor: Flavor) {
    // The working directory has its own images/ with a broken archive of the same name:
    // only images/ beside the list may be used.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let decoy = Package::new();
    let fixture = Fixture::new("example.org/dirs/beside:1");
    let line = pkg.add("beside.tar.zst", &fixture, Codec::Zstd);
    decoy.add_archive("beside.tar.zst", b"not an archive");
    pkg.write_list(&[&line]);
    let mut args = engine.host_args();
    args.extend(["-l".to_string(), pkg.list_arg()]);

    let out = spawn_loader_in(Some(decoy.dir()), &args, &[]).wait();

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["example.org/dirs/beside:1: loaded from beside.tar.zst"],
    );
    engine.assert_has(&fixture.reference);
}

fn list_path_is_reported_as_given(flavor: Flavor) {
    // A relative list path: entry lines start with it verbatim, and images/ is found
    // beside it.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/dirs/relative:1");
    let line = pkg.add("relative.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let mut args = engine.host_args();
    args.extend(["-l".to_string(), "./image.list".to_string()]);

    let out = spawn_loader_in(Some(pkg.dir()), &args, &[]).wait();

    out.assert_code(0).assert_entry(
        std::path::Path::new("./image.list"),
        1,
        &["example.org/dirs/relative:1: loaded from relative.tar.zst"],
    );
    engine.assert_has(&fixture.reference);
}

fn images_dir_option_overrides_the_default(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let other = Package::new();
    let fixture = Fixture::new("example.org/dirs/override:1");
    let line = other.add("override.tar.zst", &fixture, Codec::Zstd);
    pkg.add_archive(
        "override.tar.zst",
        b"decoy: the default images dir must not be used",
    );
    pkg.write_list(&[&line]);
    let images = other.images.display().to_string();

    let out = load_package(&engine, &pkg, &["-d", &images]);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["example.org/dirs/override:1: loaded from override.tar.zst"],
    );
    engine.assert_has(&fixture.reference);
}

fn archive_name_with_colon_loads(flavor: Flavor) {
    // The archive name an Isar image package gives docker://quay.io/libpod/alpine;tag=3.10.2.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("quay.io/libpod/alpine:3.10.2");
    let line = pkg.add("quay.io.libpod.alpine:3.10.2.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0).assert_entry(
        &pkg.list,
        1,
        &["quay.io/libpod/alpine:3.10.2: loaded from quay.io.libpod.alpine:3.10.2.zst"],
    );
    engine.assert_has("quay.io/libpod/alpine:3.10.2");
}

fn symlink_inside_images_dir_is_followed(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/links/inside:1");
    pkg.add_archive("real.tar.zst", &fixture.compressed(Codec::Zstd));
    symlink("real.tar.zst", pkg.archive("link.tar.zst")).unwrap();
    pkg.write_list(&["link.tar.zst example.org/links/inside:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has(&fixture.reference);
}

fn delete_after_load_deletes_only_loaded_archives(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let present = Fixture::new("example.org/delete/present:1");
    let missing = Fixture::new("example.org/delete/missing:1");
    let lp = pkg.add("present.tar.zst", &present, Codec::Zstd);
    let lm = pkg.add("missing.tar.gz", &missing, Codec::Gzip);
    pkg.write_list(&[&lp, &lm]);
    engine.preload(&present);

    let out = load_package(&engine, &pkg, &["--delete-after-load"]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/delete/present:1: present, skipped"],
        )
        .assert_entry_lacks(&pkg.list, 1, "deleted")
        .assert_entry(
            &pkg.list,
            2,
            &["example.org/delete/missing:1: loaded from missing.tar.gz"],
        )
        .assert_entry(
            &pkg.list,
            2,
            &["example.org/delete/missing:1: deleted ", "missing.tar.gz"],
        )
        .assert_summary("1 loaded, 1 present, 0 failed");
    engine.assert_has(&missing.reference);
    assert!(
        !pkg.archive("missing.tar.gz").exists(),
        "loaded archive deleted"
    );
    assert!(
        pkg.archive("present.tar.zst").exists(),
        "skipped archive kept"
    );
}

fn dry_run_loads_nothing(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let present = Fixture::new("example.org/dry/present:1");
    let absent = Fixture::new("example.org/dry/absent:1");
    let lp = pkg.add("present.tar.zst", &present, Codec::Zstd);
    let la = pkg.add("absent.tar.xz", &absent, Codec::Xz);
    pkg.write_list(&[&lp, &la]);
    engine.preload(&present);
    let before = engine.image_count();

    let out = load_package(&engine, &pkg, &["--dry-run", "--delete-after-load"]);

    // The contract gives no exit code for a dry run with work left; neither 2 nor 3.
    assert!(out.code == 0 || out.code == 1, "dry run exit code\n{out:?}");
    out.assert_entry(
        &pkg.list,
        1,
        &["example.org/dry/present:1: present, skipped"],
    )
    .assert_entry(
        &pkg.list,
        2,
        &["example.org/dry/absent:1: would load from absent.tar.xz (xz, "],
    )
    .assert_entry_lacks(&pkg.list, 2, "loaded from")
    .assert_summary("1 would load, 1 present, 0 failed");
    engine.assert_has_not(&absent.reference);
    assert_eq!(engine.image_count(), before, "no image added by a dry run");
    assert!(
        pkg.archive("absent.tar.xz").exists(),
        "dry run deletes nothing"
    );
}

fn status_json_reports_every_field(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let loaded = Fixture::new("example.org/status/loaded:1");
    let absent = Fixture::new("example.org/status/absent:1");
    let ll = pkg.add("loaded.tar.zst", &loaded, Codec::Zstd);
    let la = pkg.add("absent.tar.xz", &absent, Codec::Xz);
    pkg.write_list(&[&ll, &la, "gone.tar.gz example.org/status/gone:1"]);
    engine.preload(&loaded);
    let loaded_id = engine.assert_has(&loaded.reference);
    let sock = engine.socket_path().display().to_string();

    let out = run_loader(
        &["status", "--json", "-H", &sock, "-l", &pkg.list_arg()],
        &[],
    );

    assert!(out.code == 0 || out.code == 1, "status exit code\n{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{out:?}"));
    let entries = v
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array\n{out:?}"));
    assert_eq!(entries.len(), 3, "one object per entry\n{out:?}");
    let keys = [
        "list",
        "line",
        "archive",
        "archive_present",
        "format",
        "size",
        "ref",
        "image_present",
        "image_id",
        "error",
    ];
    for e in entries {
        for k in keys {
            assert!(e.get(k).is_some(), "key {k:?} missing in {e}");
        }
        assert_eq!(e["list"], pkg.list_arg().as_str(), "list as given: {e}");
    }
    let archive_is = |e: &serde_json::Value, name: &str| {
        let a = e["archive"]
            .as_str()
            .unwrap_or_else(|| panic!("archive not a string: {e}"));
        assert!(
            a == name || a.ends_with(&format!("/{name}")),
            "archive should name {name}: {e}"
        );
    };

    let e = &entries[0];
    archive_is(e, "loaded.tar.zst");
    assert_eq!(e["line"], 1, "{e}");
    assert_eq!(e["archive_present"], true, "{e}");
    assert_eq!(e["format"], "zstd", "{e}");
    assert_eq!(
        e["size"],
        fs::metadata(pkg.archive("loaded.tar.zst")).unwrap().len(),
        "compressed size: {e}"
    );
    assert_eq!(e["ref"], "example.org/status/loaded:1", "{e}");
    assert_eq!(e["image_present"], true, "{e}");
    let id = e["image_id"]
        .as_str()
        .unwrap_or_else(|| panic!("image_id: {e}"));
    assert_eq!(bare_id(id), bare_id(&loaded_id), "{e}");
    assert!(e["error"].is_null(), "{e}");

    let e = &entries[1];
    archive_is(e, "absent.tar.xz");
    assert_eq!(e["line"], 2, "{e}");
    assert_eq!(e["archive_present"], true, "{e}");
    assert_eq!(e["format"], "xz", "{e}");
    assert_eq!(
        e["size"],
        fs::metadata(pkg.archive("absent.tar.xz")).unwrap().len(),
        "{e}"
    );
    assert_eq!(e["ref"], "example.org/status/absent:1", "{e}");
    assert_eq!(e["image_present"], false, "{e}");
    assert!(e["image_id"].is_null(), "{e}");
    assert!(e["error"].is_null(), "{e}");

    let e = &entries[2];
    archive_is(e, "gone.tar.gz");
    assert_eq!(e["line"], 3, "{e}");
    assert_eq!(e["archive_present"], false, "{e}");
    assert!(e["format"].is_null(), "{e}");
    assert!(e["size"].is_null(), "{e}");
    assert_eq!(e["ref"], "example.org/status/gone:1", "{e}");
    assert_eq!(e["image_present"], false, "{e}");
    assert!(e["image_id"].is_null(), "{e}");

    engine.assert_has_not(&absent.reference);
}

fn status_prints_entries_on_stdout_and_loads_nothing(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let a = Fixture::new("example.org/status/text-a:1");
    let b = Fixture::new("example.org/status/text-b:1");
    let la = pkg.add("a.tar.zst", &a, Codec::Zstd);
    let lb = pkg.add("b.tar.gz", &b, Codec::Gzip);
    pkg.write_list(&[&la, &lb]);
    let sock = engine.socket_path().display().to_string();

    let out = run_loader(&["status", "-H", &sock, "-l", &pkg.list_arg()], &[]);

    assert!(out.code == 0 || out.code == 1, "status exit code\n{out:?}");
    assert!(
        out.stdout.contains(&a.reference) && out.stdout.contains(&b.reference),
        "status names every entry on stdout\n{out:?}"
    );
    engine.assert_has_not(&a.reference);
    engine.assert_has_not(&b.reference);
    assert_eq!(engine.image_count(), 0);
}

fn journal_stream_marks_loaded_lines_as_info(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/journal/ok:1");
    let line = pkg.add("ok.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let mut args = engine.host_args();
    args.extend(["-l".to_string(), pkg.list_arg()]);

    let out = run_loader(&args, &[("JOURNAL_STREAM", "8:12345")]);

    out.assert_code(0);
    let expected = format!(
        "<6>{}:1: example.org/journal/ok:1: loaded from ",
        pkg.list_arg()
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&expected)),
        "loaded line should start with {expected:?}\n{out:?}"
    );
    for l in out.stderr.lines() {
        assert!(
            l.starts_with("<3>") || l.starts_with("<4>") || l.starts_with("<6>"),
            "every stderr line has a priority prefix: {l:?}\n{out:?}"
        );
    }
    assert!(
        out.summary().starts_with("<6>"),
        "a clean summary is info\n{out:?}"
    );
}

/// Archives written by `container-loader pack`, which only a build with the `pack` feature
/// writes (the loader under test reads them whatever its build).
#[cfg(feature = "pack")]
mod packed {
    use crate::common::*;

    on_every_engine! {
        loads_a_packed_archive_as_a_plain_one;
        the_engines_own_load_of_a_packed_archive_decoded_by_pzstd_gives_its_image;
    }

    /// What upstream's shell loader does with any archive (`pzstd -c -d ARCHIVE | docker load`,
    /// the engine's own load endpoint): a packed archive gives the image a plain one gives.
    fn the_engines_own_load_of_a_packed_archive_decoded_by_pzstd_gives_its_image(flavor: Flavor) {
        let engine = Engine::start(flavor);
        let fixture = Fixture::build(&["example.org/loads/packed-by-pzstd:1"], 2);
        let decoded = pipe("pzstd", &["-q", "-c", "-d"], &packed(&fixture.tar));

        engine.preload(&Fixture {
            tar: decoded,
            ..fixture.clone()
        });

        let id = engine.assert_has(&fixture.reference);
        assert_eq!(bare_id(&id), fixture.id_on(flavor));
    }

    fn loads_a_packed_archive_as_a_plain_one(flavor: Flavor) {
        let engine = Engine::start(flavor);
        let pkg = Package::new();
        let fixture = Fixture::build(&["example.org/loads/packed:1"], 2);
        pkg.add_archive("packed.tar.zst", &packed(&fixture.tar));
        pkg.write_list(&["packed.tar.zst example.org/loads/packed:1"]);

        let out = load_package(&engine, &pkg, &[]);

        out.assert_code(0)
            .assert_summary("1 loaded, 0 present, 0 failed");
        let id = engine.assert_has("example.org/loads/packed:1");
        assert_eq!(bare_id(&id), fixture.id_on(flavor));
    }
}
