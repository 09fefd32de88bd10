//! Bad input gets a clear error naming its list line, the image is not loaded, nothing is
//! lost (archives are kept), and the valid entries around it still load.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::common::fake_engine::FakeEngine;
use crate::common::*;

on_every_engine! {
    missing_archive_is_reported_and_others_still_load;
    zstd_with_flipped_bytes_is_corrupt;
    gzip_with_flipped_bytes_is_corrupt;
    truncated_zstd_is_corrupt;
    truncated_gzip_is_corrupt;
    truncated_xz_is_corrupt;
    zstd_with_bad_checksum_is_corrupt;
    gzip_with_bad_crc_is_corrupt;
    gzip_second_member_with_bad_crc_is_corrupt;
    xz_with_bad_block_check_is_corrupt;
    bzip2_with_bad_stream_crc_is_corrupt;
    zstd_window_above_memory_limit_is_refused;
    zstd_window_loads_with_raised_memory_limit;
    xz_dictionary_above_memory_limit_is_refused;
    xz_dictionary_loads_with_raised_memory_limit;
    absolute_archive_path_is_refused;
    parent_dir_archive_path_is_refused;
    archive_in_subdirectory_is_refused;
    symlink_out_of_images_dir_is_refused;
    line_with_one_field_is_invalid;
    line_with_three_fields_is_invalid;
    line_with_nul_byte_is_refused;
    non_utf8_line_is_refused;
    ten_megabyte_line_is_refused;
    uppercase_reference_is_invalid;
    path_traversal_reference_is_invalid;
    reference_with_space_is_refused;
    reference_with_empty_tag_is_invalid;
    list_that_is_a_directory_exits_2;
    missing_list_exits_2_naming_it;
    archive_that_is_a_directory_is_not_a_regular_file;
    archive_that_is_a_fifo_is_not_a_regular_file;
    archive_without_the_listed_tag_has_no_ref;
    tar_that_is_not_an_image_is_refused_by_the_engine;
    layer_not_matching_its_diff_id_is_refused_by_the_engine;
}

/// A list of three entries: a valid image on line 1, `bad_line` (whatever it is) on
/// line 2, another valid image on line 3. Returns the package and the two valid refs.
struct Sandwich {
    pkg: Package,
    before: Fixture,
    after: Fixture,
}

impl Sandwich {
    fn new(tag: &str) -> Sandwich {
        let pkg = Package::new();
        let before = Fixture::new(&format!("example.org/{tag}/before:1"));
        let after = Fixture::new(&format!("example.org/{tag}/after:1"));
        pkg.add_archive("before.tar.zst", &before.compressed(Codec::Zstd));
        pkg.add_archive("after.tar.gz", &after.compressed(Codec::Gzip));
        Sandwich { pkg, before, after }
    }

    fn write(&self, bad_line: &[u8]) {
        let mut list = format!("before.tar.zst {}\n", self.before.reference).into_bytes();
        list.extend_from_slice(bad_line);
        list.extend_from_slice(format!("\nafter.tar.gz {}\n", self.after.reference).as_bytes());
        self.pkg.write_list_bytes(&list);
    }

    /// Both valid entries were loaded (with their own line numbers), the run failed with
    /// exit 1, and the engine holds exactly those two images.
    fn assert_valid_lines_loaded(&self, engine: &Engine, out: &Output) {
        let list = &self.pkg.list;
        out.assert_code(1)
            .assert_entry(
                list,
                1,
                &[&format!(
                    "{}: loaded from before.tar.zst",
                    self.before.reference
                )],
            )
            .assert_entry(
                list,
                3,
                &[&format!(
                    "{}: loaded from after.tar.gz",
                    self.after.reference
                )],
            )
            .assert_summary("2 loaded, 0 present, 1 failed");
        let mut expected = vec![self.before.reference.clone(), self.after.reference.clone()];
        expected.sort();
        assert_eq!(
            engine.list_images(),
            expected,
            "only the valid entries were loaded"
        );
        assert_eq!(
            engine.image_count(),
            2,
            "no other image was created\n{out:?}"
        );
    }
}

fn missing_archive_is_reported_and_others_still_load(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("missing");
    s.write(b"nowhere.tar.zst example.org/missing/nowhere:1");

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/missing/nowhere:1: failed: ", "not found in"],
    );
    s.assert_valid_lines_loaded(&engine, &out);
}

/// A corrupted archive on line 2 (with --delete-after-load): reported "corrupt", its
/// image absent, the archive byte-for-byte kept; lines 1 and 3 load and are deleted.
fn assert_corrupt(flavor: Flavor, codec: Codec, damage: impl FnOnce(&mut Vec<u8>)) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("corrupt");
    let broken = Fixture::new("example.org/corrupt/broken:1");
    let mut data = broken.compressed(codec);
    damage(&mut data);
    let name = format!("broken.{}", codec.extension());
    let path = s.pkg.add_archive(&name, &data);
    s.write(format!("{name} {}", broken.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &["--delete-after-load"]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/corrupt/broken:1: failed: ", "corrupt"],
    )
    .assert_entry_lacks(&s.pkg.list, 2, "deleted");
    engine.assert_has_not(&broken.reference);
    assert_eq!(
        fs::read(&path).ok(),
        Some(data),
        "the corrupt archive is kept as it was"
    );
    s.assert_valid_lines_loaded(&engine, &out);
    assert!(
        !s.pkg.archive("before.tar.zst").exists(),
        "loaded archive deleted"
    );
    assert!(
        !s.pkg.archive("after.tar.gz").exists(),
        "loaded archive deleted"
    );
}

fn zstd_with_flipped_bytes_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::Zstd, |d| {
        let mid = d.len() / 2;
        for i in mid..mid + 8 {
            flip(d, i);
        }
    });
}

fn gzip_with_flipped_bytes_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::Gzip, |d| {
        let mid = d.len() / 2;
        for i in mid..mid + 8 {
            flip(d, i);
        }
    });
}

fn truncated_zstd_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::Zstd, |d| d.truncate(d.len() * 6 / 10));
}

fn truncated_gzip_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::Gzip, |d| d.truncate(d.len() * 6 / 10));
}

fn truncated_xz_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::Xz, |d| d.truncate(d.len() * 6 / 10));
}

fn zstd_with_bad_checksum_is_corrupt(flavor: Flavor) {
    // The zstd CLI ends each frame with a 4-byte XXH64 content checksum: every byte of
    // the tar decodes fine, only the very end disagrees.
    assert_corrupt(flavor, Codec::Zstd, |d| {
        let last = d.len() - 1;
        flip(d, last);
    });
}

fn gzip_with_bad_crc_is_corrupt(flavor: Flavor) {
    // gzip trailer: CRC32 (4 bytes) then ISIZE (4 bytes).
    assert_corrupt(flavor, Codec::Gzip, |d| {
        let crc = d.len() - 8;
        flip(d, crc);
    });
}

fn gzip_second_member_with_bad_crc_is_corrupt(flavor: Flavor) {
    assert_corrupt(flavor, Codec::GzipMultiMember, |d| {
        let crc = d.len() - 8;
        flip(d, crc);
    });
}

fn xz_with_bad_block_check_is_corrupt(flavor: Flavor) {
    // The block's CRC64 sits between the compressed data and the index at the end.
    assert_corrupt(flavor, Codec::Xz, |d| {
        let check = xz_last_block_check_offset(d);
        flip(d, check);
    });
}

fn bzip2_with_bad_stream_crc_is_corrupt(flavor: Flavor) {
    // The stream's combined CRC is the last 4 bytes but for the padding of the last byte:
    // every block decodes and passes its own CRC, only the very end disagrees.
    assert_corrupt(flavor, Codec::Bzip2, |d| {
        let crc = d.len() - 2;
        flip(d, crc);
    });
}

/// `codec`'s archive needs more decoder memory than the default 128M limit.
fn assert_above_memory_limit(flavor: Flavor, codec: Codec, says: &str) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("memory");
    let big = Fixture::new("example.org/memory/big-window:1");
    let name = format!("big.{}", codec.extension());
    let path = s.pkg.add_archive(&name, &big.compressed(codec));
    s.write(format!("{name} {}", big.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &["--delete-after-load"]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/memory/big-window:1: failed: ", says],
    );
    engine.assert_has_not(&big.reference);
    assert!(path.exists(), "archive kept");
    s.assert_valid_lines_loaded(&engine, &out);
}

/// The same archive loads once the limit is raised.
fn assert_loads_with_memory_limit(flavor: Flavor, codec: Codec, limit: &str) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let big = Fixture::new("example.org/memory/raised:1");
    let line = pkg.add(&format!("big.{}", codec.extension()), &big, codec);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &["--memory-limit", limit]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/memory/raised:1: loaded from big."],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has(&big.reference);
}

fn zstd_window_above_memory_limit_is_refused(flavor: Flavor) {
    // `zstd --long=30` from a pipe: the frame header asks for a 1 GiB window.
    assert_above_memory_limit(
        flavor,
        Codec::ZstdLong30,
        "needs 1.00 GiB, more than --memory-limit 128.0 MiB; rerun with a larger --memory-limit, e.g. 1G",
    );
}

fn zstd_window_loads_with_raised_memory_limit(flavor: Flavor) {
    assert_loads_with_memory_limit(flavor, Codec::ZstdLong30, "2G");
}

fn xz_dictionary_above_memory_limit_is_refused(flavor: Flavor) {
    // `xz --lzma2=dict=256MiB` keeps the 256 MiB dictionary even for a small input.
    assert_above_memory_limit(
        flavor,
        Codec::XzBigDictionary,
        "xz dictionary needs 256.0 MiB, more than --memory-limit 128.0 MiB; rerun with a larger --memory-limit, e.g. 257M",
    );
}

fn xz_dictionary_loads_with_raised_memory_limit(flavor: Flavor) {
    assert_loads_with_memory_limit(flavor, Codec::XzBigDictionary, "512M");
}

/// A valid archive stored outside the images dir (beside the list), and its fixture.
fn outside_archive(pkg: &Package, tag: &str) -> (Fixture, std::path::PathBuf) {
    let outside = Fixture::new(&format!("example.org/outside/{tag}:1"));
    let path = pkg.dir().join("outside.tar.zst");
    fs::write(&path, outside.compressed(Codec::Zstd)).unwrap();
    (outside, path)
}

fn absolute_archive_path_is_refused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("absolute");
    let (outside, path) = outside_archive(&s.pkg, "absolute");
    s.write(format!("{} {}", path.display(), outside.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(&s.pkg.list, 2, &["must be a plain file name"]);
    engine.assert_has_not(&outside.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

fn parent_dir_archive_path_is_refused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("parent");
    let (outside, _) = outside_archive(&s.pkg, "parent");
    s.write(format!("../outside.tar.zst {}", outside.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(&s.pkg.list, 2, &["must be a plain file name"]);
    engine.assert_has_not(&outside.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

fn archive_in_subdirectory_is_refused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("subdir");
    let nested = Fixture::new("example.org/subdir/nested:1");
    fs::create_dir(s.pkg.images.join("sub")).unwrap();
    s.pkg
        .add_archive("sub/nested.tar.zst", &nested.compressed(Codec::Zstd));
    s.write(format!("sub/nested.tar.zst {}", nested.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(&s.pkg.list, 2, &["must be a plain file name"]);
    engine.assert_has_not(&nested.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

fn symlink_out_of_images_dir_is_refused(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("symlink");
    let (outside, path) = outside_archive(&s.pkg, "symlink");
    symlink(&path, s.pkg.archive("link.tar.zst")).unwrap();
    s.write(format!("link.tar.zst {}", outside.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &[
            "example.org/outside/symlink:1: failed: ",
            "resolves outside",
        ],
    );
    engine.assert_has_not(&outside.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

fn line_with_one_field_is_invalid(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("onefield");
    s.write(b"before.tar.zst");

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["invalid line: ", "; expected \"ARCHIVE REF\""],
    );
    s.assert_valid_lines_loaded(&engine, &out);
}

fn line_with_three_fields_is_invalid(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("threefields");
    let third = Fixture::new("example.org/threefields/third:1");
    s.pkg
        .add_archive("third.tar.zst", &third.compressed(Codec::Zstd));
    s.write(format!("third.tar.zst {} extra", third.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["invalid line: ", "; expected \"ARCHIVE REF\""],
    );
    engine.assert_has_not(&third.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

/// Line 2 is hostile bytes: whatever the reason given, it must be reported against
/// `LIST:2:` as invalid or failed, and lines 1 and 3 must load.
fn assert_hostile_line(flavor: Flavor, tag: &str, line: &[u8]) -> Output {
    let engine = Engine::start(flavor);
    let s = Sandwich::new(tag);
    s.write(line);

    let out = load_package(&engine, &s.pkg, &[]);

    let entry = out.entry(&s.pkg.list, 2);
    assert!(
        entry
            .iter()
            .any(|l| l.contains("invalid") || l.contains("failed")),
        "line 2 should be reported as invalid or failed\n{out:?}"
    );
    s.assert_valid_lines_loaded(&engine, &out);
    out
}

fn line_with_nul_byte_is_refused(flavor: Flavor) {
    let fixture_name = b"before.tar.zst\0.tar.zst example.org/nul/x:1";
    assert_hostile_line(flavor, "nul", fixture_name);
}

fn non_utf8_line_is_refused(flavor: Flavor) {
    assert_hostile_line(flavor, "utf8", b"caf\xe9\xff.tar.zst example.org/utf8/x:1");
}

fn ten_megabyte_line_is_refused(flavor: Flavor) {
    let mut line = vec![b'a'; 10 * 1024 * 1024];
    line.extend_from_slice(b".tar.zst example.org/huge/x:1");
    assert_hostile_line(flavor, "huge", &line);
}

/// Line 2 names a valid archive but an invalid REF: refused as an invalid image
/// reference (echoing REF) before the engine is asked about it.
fn assert_invalid_reference(flavor: Flavor, tag: &str, reference: &str) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new(tag);
    let other = Fixture::new(&format!("example.org/{tag}/other:1"));
    s.pkg
        .add_archive("other.tar.zst", &other.compressed(Codec::Zstd));
    s.write(format!("other.tar.zst {reference}").as_bytes());

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &[&format!("invalid image reference \"{reference}\": ")],
    );
    engine.assert_has_not(&other.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

fn uppercase_reference_is_invalid(flavor: Flavor) {
    assert_invalid_reference(flavor, "upper", "UPPER/case:tag");
}

fn path_traversal_reference_is_invalid(flavor: Flavor) {
    assert_invalid_reference(flavor, "traversal", "../../containers/json?all=1");
}

fn reference_with_empty_tag_is_invalid(flavor: Flavor) {
    assert_invalid_reference(flavor, "emptytag", "example.org/emptytag/name:");
}

fn reference_with_space_is_refused(flavor: Flavor) {
    // A space splits the line into more than two fields, so "invalid line" is as right
    // as "invalid image reference"; either way nothing from line 2 is loaded.
    let engine = Engine::start(flavor);
    let s = Sandwich::new("space");
    let other = Fixture::new("example.org/space/other:1");
    s.pkg
        .add_archive("other.tar.zst", &other.compressed(Codec::Zstd));
    s.write(b"other.tar.zst example.org/space/name:tag with space");

    let out = load_package(&engine, &s.pkg, &[]);

    let entry = out.entry(&s.pkg.list, 2);
    assert!(
        entry
            .iter()
            .any(|l| l.contains("invalid line: ") || l.contains("invalid image reference")),
        "line 2 should be an invalid line or reference\n{out:?}"
    );
    engine.assert_has_not(&other.reference);
    s.assert_valid_lines_loaded(&engine, &out);
}

#[test]
fn bad_references_are_never_sent_to_the_engine() {
    // A fake engine records every request: only /_ping and /version may be asked for
    // when every entry has an invalid reference.
    let fake = FakeEngine::start();
    let pkg = Package::new();
    let bad = [
        "UPPER/case:tag",
        "../../containers/json?all=1",
        "example.org/x/name:",
    ];
    let fixture = Fixture::new("example.org/fake/x:1");
    pkg.add_archive("x.tar.zst", &fixture.compressed(Codec::Zstd));
    let lines: Vec<String> = bad.iter().map(|r| format!("x.tar.zst {r}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    let mut args = fake.host_args();
    args.extend(["-l".into(), pkg.list_arg(), "--wait".into(), "5".into()]);

    let out = run_loader(&args, &[]);

    out.assert_code(1);
    for (i, r) in bad.iter().enumerate() {
        out.assert_entry(
            &pkg.list,
            i + 1,
            &[&format!("invalid image reference \"{r}\"")],
        );
    }
    for request in fake.requests() {
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let path = path.split('?').next().unwrap_or("");
        assert!(
            path.ends_with("/_ping") || path.ends_with("/version"),
            "request {request:?} should not have been sent\n{out:?}"
        );
    }
}

#[test]
fn references_the_engines_would_refuse_are_reported_and_never_sent() {
    // Each passed the grammar once, so the archive was uploaded on every boot, and failed.
    let fake = FakeEngine::start();
    let pkg = Package::new();
    let hex = "0123456789abcdef".repeat(4);
    let bad = [
        (
            format!("example.org/x@sha256:{}", &hex[..32]),
            "wrong length",
        ),
        (
            format!("example.org/x@sha256:{}", hex.to_uppercase()),
            "lower case",
        ),
        (
            format!("example.org/x@md5:{}", &hex[..32]),
            "unsupported digest algorithm",
        ),
        (
            "a".repeat(250),
            "longer than 255 characters as the engine spells it",
        ),
    ];
    let fixture = Fixture::new("example.org/fake/x:1");
    pkg.add_archive("x.tar.zst", &fixture.compressed(Codec::Zstd));
    let lines: Vec<String> = bad.iter().map(|(r, _)| format!("x.tar.zst {r}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    let mut args = fake.host_args();
    args.extend(["-l".into(), pkg.list_arg(), "--wait".into(), "5".into()]);

    let out = run_loader(&args, &[]);

    out.assert_code(1);
    for (i, (r, why)) in bad.iter().enumerate() {
        out.assert_entry(
            &pkg.list,
            i + 1,
            &[&format!("invalid image reference \"{r}\""), why],
        );
    }
    for request in fake.requests() {
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let path = path.split('?').next().unwrap_or("");
        assert!(
            path.ends_with("/_ping") || path.ends_with("/version"),
            "request {request:?} should not have been sent\n{out:?}"
        );
    }
}

fn list_that_is_a_directory_exits_2(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let dir = pkg.images.display().to_string();

    let out = load(&engine, &["-l", &dir]);

    out.assert_code(2)
        .assert_stderr_contains(&format!("{dir}: cannot read image list"));
}

fn missing_list_exits_2_naming_it(flavor: Flavor) {
    // The unreadable list is reported; the other list still runs first.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/lists/readable:1");
    let line = pkg.add("readable.tar.zst", &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    let missing = pkg.dir().join("no-such.list").display().to_string();

    let out = load(&engine, &["-l", &missing, "-l", &pkg.list_arg()]);

    out.assert_code(2)
        .assert_stderr_contains(&format!("{missing}: cannot read image list"))
        .assert_entry(
            &pkg.list,
            1,
            &["example.org/lists/readable:1: loaded from readable.tar.zst"],
        );
    engine.assert_has(&fixture.reference);
}

fn assert_not_regular_file(flavor: Flavor, make: impl FnOnce(&Path)) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("notfile");
    make(&s.pkg.archive("odd.tar.zst"));
    s.write(b"odd.tar.zst example.org/notfile/odd:1");

    let out = load_package(&engine, &s.pkg, &[]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/notfile/odd:1: failed: ", "not a regular file"],
    );
    s.assert_valid_lines_loaded(&engine, &out);
}

fn archive_that_is_a_directory_is_not_a_regular_file(flavor: Flavor) {
    assert_not_regular_file(flavor, |p| fs::create_dir(p).unwrap());
}

fn archive_that_is_a_fifo_is_not_a_regular_file(flavor: Flavor) {
    // Opening a fifo for reading blocks until a writer appears: the loader must check the
    // file type first (the harness kills it after 120 s otherwise).
    assert_not_regular_file(flavor, |p| {
        let status = Command::new("mkfifo").arg(p).status().expect("mkfifo");
        assert!(status.success());
    });
}

fn archive_without_the_listed_tag_has_no_ref(flavor: Flavor) {
    // The archive holds two images, neither under the listed name: which one the list means
    // cannot be told, so nothing is tagged, the entry fails and the archive is kept despite
    // --delete-after-load. (One image under another name is tagged: verify.rs.)
    let engine = Engine::start(flavor);
    let s = Sandwich::new("wrongtag");
    let a = Fixture::new("example.org/wrongtag/actual:1");
    let b = Fixture::new("example.org/wrongtag/other:1");
    let path = s.pkg.add_archive(
        "wrong.tar.zst",
        &Codec::Zstd.compress(&two_image_archive(&a, &b)),
    );
    s.write(b"wrong.tar.zst example.org/wrongtag/listed:1");

    let out = load_package(&engine, &s.pkg, &["--delete-after-load"]);

    out.assert_code(1)
        .assert_entry(
            &s.pkg.list,
            2,
            &[
                "example.org/wrongtag/listed:1: failed: ",
                "has no",
                "carries example.org/wrongtag/actual:1, example.org/wrongtag/other:1",
            ],
        )
        .assert_entry_lacks(&s.pkg.list, 2, "deleted")
        .assert_entry_lacks(&s.pkg.list, 2, "tagged")
        .assert_summary("2 loaded, 0 present, 1 failed");
    engine.assert_has_not("example.org/wrongtag/listed:1");
    assert!(path.exists(), "archive kept");
}

fn tar_that_is_not_an_image_is_refused_by_the_engine(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let s = Sandwich::new("notimage");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    let text = b"just a file, no manifest.json\n";
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "readme.txt", &text[..]).unwrap();
    let path = s.pkg.add_archive(
        "plain.tar.zst",
        &Codec::Zstd.compress(&b.into_inner().unwrap()),
    );
    s.write(b"plain.tar.zst example.org/notimage/x:1");

    let out = load_package(&engine, &s.pkg, &["--delete-after-load"]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/notimage/x:1: failed: ", "engine refused"],
    );
    assert!(path.exists(), "archive kept");
    s.assert_valid_lines_loaded(&engine, &out);
}

fn layer_not_matching_its_diff_id_is_refused_by_the_engine(flavor: Flavor) {
    // A flipped byte inside a layer's file content (uncompressed tar, so no decoder can
    // notice): the engines compare each layer with the config's diff_ids.
    let engine = Engine::start(flavor);
    let s = Sandwich::new("diffid");
    let broken = Fixture::new("example.org/diffid/broken:1");
    let mut data = broken.tar.clone();
    let marker = b"fixture ";
    let at = data
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("layer file content in the archive");
    data[at] = b'F';
    let path = s.pkg.add_archive("broken.tar", &data);
    s.write(format!("broken.tar {}", broken.reference).as_bytes());

    let out = load_package(&engine, &s.pkg, &["--delete-after-load"]);

    out.assert_entry(
        &s.pkg.list,
        2,
        &["example.org/diffid/broken:1: failed: ", "engine refused"],
    );
    engine.assert_has_not(&broken.reference);
    assert!(path.exists(), "archive kept");
    s.assert_valid_lines_loaded(&engine, &out);
}

/// podman 5 answers a refused load with the list of transports it tried, each with its own
/// error; only the docker-archive one says why this archive was refused.
mod podmans_refusal_is_quoted_where_it_names_the_cause {
    #[test]
    fn podman54() {
        super::podmans_refusal_is_quoted_where_it_names_the_cause(crate::common::Flavor::Podman54)
    }
}

fn podmans_refusal_is_quoted_where_it_names_the_cause(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let broken = Fixture::new("example.org/diffid/cause:1");
    pkg.add_archive("broken.tar", &broken.with_a_layer_not_its_diff_id());
    pkg.write_list(&[&format!("broken.tar {}", broken.reference)]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[
            "engine refused broken.tar: unable to load image: payload does not match",
            " … docker-archive: Digest did not match, expected sha256:",
        ],
    );
    engine.assert_has_not(&broken.reference);
}
