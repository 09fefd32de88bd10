//! Archives built to exhaust the loader: a manifest naming one large config thousands of
//! times, configs of a million tiny values, a million tar entries, thousands of long PAX
//! paths, description files held twice. Each goes through `inspect`, `status --verify` and a
//! load into a real podman, and each run stays under 32 MiB peak RSS and finishes in seconds;
//! an archive beyond what the loader reads is refused with a message naming it and the limit,
//! and podman is left without any image from it. (Before: 4 GB and an abort, 2 GB, 242 s of
//! CPU, 206 MB, 427 MB; see docs/operations.md, "What can go wrong".) A description file held
//! twice under two spellings of its name is refused on every engine.

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use container_loader_testkit::{tar_of, tar_of_files};

/// Peak RSS every run must stay under.
const RSS_LIMIT_KIB: u64 = 32 << 10;
/// Time every run must finish in (the debug build included).
const TIME_LIMIT: Duration = Duration::from_secs(10);
const REFERENCE: &str = "example.org/hostile/app:1";

/// Runs the loader with `args` under GNU time, which reports its peak RSS (KiB): sampling
/// /proc misses runs of a few milliseconds, and wait4 from this process would count the
/// memory of this process, which the loader's spawn starts out sharing.
fn measured(args: &[String]) -> (Output, u64) {
    require_program("time");
    let dir = TempDir::new("rss");
    let rss = dir.join("rss");
    let started = Instant::now();
    let mut command = Command::new("/usr/bin/time");
    command.args(["-f", "%M", "-o"]).arg(&rss).arg(loader_bin());
    // Only load takes a run directory.
    if !matches!(args.first().map(String::as_str), Some("inspect" | "status")) {
        command.arg("--run-dir").arg(dir.join("run"));
    }
    let out = command
        .args(args)
        .env_remove("CONTAINER_HOST")
        .env_remove("DOCKER_HOST")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .output()
        .expect("run the loader under /usr/bin/time");
    let text = std::fs::read_to_string(&rss).unwrap_or_default();
    let peak = text.lines().last().and_then(|l| l.trim().parse().ok());
    let out = Output {
        code: out.status.code().expect("the loader ended by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
        args: args.to_vec(),
    };
    let peak = peak.unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {text:?}\n{out:?}"));
    (out, peak)
}

/// `zstd -q -c` of the tar `write` writes, streamed: the tar itself may be gigabytes.
fn zstd_of(write: impl FnOnce(&mut tar::Builder<&mut dyn Write>) + Send + 'static) -> Vec<u8> {
    require_program("zstd");
    let mut child = Command::new("zstd")
        .args(["-q", "-c", "-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd");
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let mut out = std::io::BufWriter::new(&mut stdin);
        let mut b = tar::Builder::new(&mut out as &mut dyn Write);
        write(&mut b);
        b.finish().unwrap();
    });
    let out = child.wait_with_output().expect("zstd");
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A docker-archive whose manifest.json has `count` items naming one `config`.
fn one_config_named(count: usize, config: &[u8]) -> Vec<u8> {
    let item = r#"{"Config":"c.json"}"#;
    let manifest = format!("[{}]", vec![item; count].join(","));
    tar_of(&[("c.json", config), ("manifest.json", manifest.as_bytes())])
}

/// What the three runs over one archive showed.
struct Runs {
    inspect: Output,
    verify: Output,
    load: Output,
}

/// Puts `archive` in a package as `name` for [`REFERENCE`], and runs `inspect`, `status
/// --verify` and a load into `podman` over it, each within the memory and time limits.
fn run_everywhere(podman: &Engine, name: &str, archive: &[u8]) -> Runs {
    let pkg = Package::new();
    let path = pkg.add_archive(name, archive).display().to_string();
    pkg.write_list(&[&format!("{name} {REFERENCE}")]);
    let list = pkg.list_arg();
    let images_before = podman.image_count();
    let host = podman.host_args();
    let mut runs = Vec::new();
    for command in [
        vec!["inspect".to_owned(), path.clone()],
        [
            &["status".to_owned(), "--verify".to_owned()][..],
            &host,
            &["-l".to_owned(), list.clone()],
        ]
        .concat(),
        [&host[..], &["-l".to_owned(), list.clone()]].concat(),
    ] {
        let (out, peak) = measured(&command);
        eprintln!(
            "{name}: {:?}: exit {}, {:.2} s, peak RSS {peak} KiB",
            command[0],
            out.code,
            out.elapsed.as_secs_f64()
        );
        assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB\n{out:?}");
        assert!(out.elapsed < TIME_LIMIT, "took {:?}\n{out:?}", out.elapsed);
        runs.push(out);
    }
    let [inspect, verify, load] = <[Output; 3]>::try_from(runs).ok().unwrap();
    if load.code != 0 {
        assert_eq!(
            podman.image_count(),
            images_before,
            "podman loaded something\n{load:?}"
        );
    }
    Runs {
        inspect,
        verify,
        load,
    }
}

/// Asserts that every run refused the archive `name` with a reason starting `reason`.
fn assert_refused_everywhere(runs: &Runs, name: &str, reason: &str) {
    runs.inspect.assert_code(1).assert_stderr_contains(reason);
    runs.inspect
        .assert_stderr_contains(&format!("{name}: {reason}"));
    runs.verify.assert_code(1);
    assert!(
        runs.verify
            .stdout
            .contains(&format!("cannot verify against {name}: {reason}")),
        "{:?}",
        runs.verify
    );
    runs.load
        .assert_code(1)
        .assert_stderr_contains(&format!("{REFERENCE}: failed: {name}: {reason}"))
        .assert_stderr_contains("nothing was loaded, the archive is kept");
}

#[test]
fn manifest_naming_one_config_50000_times_is_refused_in_bounded_memory() {
    require_root();
    let podman = Engine::podman();
    // Was 58,000 times: 4 GB, then an abort. The manifest stays under 1 MiB.
    let config = format!(r#"{{"os":"linux","architecture":"{}"}}"#, "a".repeat(60));
    let archive = Codec::Zstd.compress(&one_config_named(50_000, config.as_bytes()));
    let runs = run_everywhere(&podman, "many.tar.zst", &archive);
    // Its 150,000 JSON values stop it before its images are counted.
    assert_refused_everywhere(
        &runs,
        "many.tar.zst",
        "describes more than 65536 JSON values in its description files",
    );
}

#[test]
fn archive_of_more_than_1000_images_is_refused_naming_the_limit() {
    require_root();
    let podman = Engine::podman();
    let config = br#"{"os":"linux","architecture":"amd64"}"#;
    let archive = Codec::Zstd.compress(&one_config_named(1001, config));
    let runs = run_everywhere(&podman, "1001.tar.zst", &archive);
    assert_refused_everywhere(&runs, "1001.tar.zst", "describes more than 1000 images");
}

#[test]
fn manifest_naming_one_large_config_1000_times_reads_it_once() {
    require_root();
    let podman = Engine::podman();
    // Was 2 GB in inspect and 1 GB in status --verify: the 1 MiB config copied per image.
    let filler = "a".repeat(1_000_000);
    let config = format!(r#"{{"architecture":"amd64","os":"linux","x":"{filler}"}}"#);
    let archive = Codec::Zstd.compress(&one_config_named(1000, config.as_bytes()));
    let runs = run_everywhere(&podman, "large.tar.zst", &archive);
    runs.inspect.assert_code(0);
    assert_eq!(runs.inspect.stdout.matches("(no reference)").count(), 1000);
    assert!(runs
        .verify
        .stdout
        .contains("it holds 1000 images, none named example.org/hostile/app:1"));
    runs.load.assert_code(1);
}

#[test]
fn config_of_short_strings_named_1000_times_is_refused_before_parsing() {
    require_root();
    let podman = Engine::podman();
    // Was 242 s of CPU: a million tiny JSON values parsed 1,000 times.
    let strings = vec![r#""a""#; 250_000].join(",");
    let config = format!(r#"{{"os":"linux","x":[{strings}]}}"#);
    let archive = Codec::Zstd.compress(&one_config_named(1000, config.as_bytes()));
    let runs = run_everywhere(&podman, "tiny.tar.zst", &archive);
    assert_refused_everywhere(
        &runs,
        "tiny.tar.zst",
        "describes more than 65536 JSON values in its description files",
    );
}

#[test]
fn a_million_empty_tar_entries_are_refused_in_bounded_memory() {
    require_root();
    let podman = Engine::podman();
    // Was 206 MB in inspect and during a load: one map entry per tar entry.
    let archive = zstd_of(|b| {
        for i in 0..1_000_000 {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("e/{i}"), &[][..]).unwrap();
        }
    });
    let runs = run_everywhere(&podman, "entries.tar.zst", &archive);
    assert_refused_everywhere(
        &runs,
        "entries.tar.zst",
        "describes more than 16384 files and links",
    );
}

#[test]
fn five_thousand_long_pax_paths_are_refused_in_bounded_memory() {
    require_root();
    let podman = Engine::podman();
    // Was 427 MB: every 60 KB path kept.
    let archive = zstd_of(|b| {
        for i in 0..5000 {
            let body = format!(" path={i}/{}\n", "p".repeat(60_000));
            // The record's length counts its own five digits.
            let record = format!("{}{body}", body.len() + 5);
            assert_eq!(record.len(), body.len() + 5);
            let mut x = tar::Header::new_ustar();
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_size(record.len() as u64);
            x.set_path(format!("PaxHeaders/{i}")).unwrap();
            x.set_cksum();
            b.append(&x, record.as_bytes()).unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_path(format!("short{i}")).unwrap();
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
    });
    let runs = run_everywhere(&podman, "pax.tar.zst", &archive);
    assert_refused_everywhere(
        &runs,
        "pax.tar.zst",
        "has a file name longer than 256 bytes",
    );
}

/// The files of a fixture's docker-archive, in order.
fn files_of(fixture: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(&fixture.tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (path, data)
        })
        .filter(|(path, _)| !path.ends_with('/'))
        .collect()
}

#[test]
fn archive_with_two_manifest_json_is_refused_and_podman_loads_neither_image() {
    require_root();
    let podman = Engine::podman();
    // podman loads the first manifest.json, the loader read the last: failed on every boot.
    let first = Fixture::new("example.org/hostile/first:1");
    let last = Fixture::new(REFERENCE);
    let mut files = files_of(&first);
    files.extend(files_of(&last));
    let archive = tar_of_files(&files);
    let runs = run_everywhere(&podman, "twice.tar", &archive);
    assert_refused_everywhere(&runs, "twice.tar", "holds manifest.json twice");
    podman.assert_has_not(&first.reference);
    podman.assert_has_not(REFERENCE);
}

#[test]
fn archive_with_one_config_twice_is_refused_and_podman_loads_nothing() {
    require_root();
    let podman = Engine::podman();
    let fixture = Fixture::new(REFERENCE);
    let mut files = files_of(&fixture);
    let config = format!("{}.json", fixture.id);
    let again = files.iter().find(|(p, _)| *p == config).unwrap().clone();
    files.insert(
        0,
        (
            again.0,
            br#"{"os":"linux","architecture":"amd64"}"#.to_vec(),
        ),
    );
    let runs = run_everywhere(&podman, "config.tar", &tar_of_files(&files));
    assert_refused_everywhere(&runs, "config.tar", &format!("holds {config} twice"));
    podman.assert_has_not(REFERENCE);
}

on_every_engine! {
    manifest_json_twice_under_another_spelling_is_refused_and_nothing_of_it_loaded;
}

fn manifest_json_twice_under_another_spelling_is_refused_and_nothing_of_it_loaded(flavor: Flavor) {
    // Was: inspect (and the loader) read the first manifest.json, docker the second.
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let mut lines = Vec::new();
    let spellings = ["x/../manifest.json", "./manifest.json", ".//manifest.json"];
    for (i, spelling) in spellings.iter().enumerate() {
        let first = Fixture::new(&format!("example.org/hostile/first{i}:1"));
        let second = Fixture::new(&format!("example.org/hostile/second{i}:1"));
        let mut files = files_of(&first);
        for (path, data) in files_of(&second) {
            let path = match path.as_str() {
                "manifest.json" => spelling.to_string(),
                _ => path,
            };
            files.push((path, data));
        }
        let name = format!("spelled{i}.tar");
        pkg.add_archive(&name, &tar_of_files(&files));
        lines.push(format!("{name} {}", first.reference));
    }
    let after = Fixture::new("example.org/hostile/after:1");
    lines.push(pkg.add("after.tar", &after, Codec::Tar));
    pkg.write_list(&lines.iter().map(String::as_str).collect::<Vec<_>>());

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1)
        .assert_summary("1 loaded, 0 present, 3 failed");
    for i in 0..spellings.len() {
        out.assert_entry(
            &pkg.list,
            i + 1,
            &[&format!(
                "failed: spelled{i}.tar: holds manifest.json twice, and engines differ in which one they read"
            )],
        );
    }
    engine.assert_has(&after.reference);
    assert_eq!(
        engine.image_count(),
        1,
        "nothing of the spelled archives\n{out:?}"
    );
    for i in 0..spellings.len() {
        let path = pkg
            .archive(&format!("spelled{i}.tar"))
            .display()
            .to_string();
        run_loader(&["inspect", &path], &[])
            .assert_code(1)
            .assert_stderr_contains(&format!("spelled{i}.tar: holds manifest.json twice"));
    }
}
