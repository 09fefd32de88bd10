//! Endurance: the loader runs at every boot, so what it leaves behind adds up.
//!
//! Each run is a new process, so a leak inside the loader dies with it; what can add up
//! across runs is on the engine's side (connections the loader leaves open, requests that
//! make the engine hold memory). So: 1,000 runs against one engine with every image present,
//! each must exit 0, and the engine's open file descriptors and resident memory (from
//! /proc/<engine pid>) must not grow beyond a margin. Inside one run, the loader's own file
//! descriptors and memory must not grow with the number of entries: one run over a list of
//! 20,000 entries is sampled from /proc/<loader pid> while it works.
//!
//! A run costs ~20 ms on either engine, so 1,000 runs each take ~20 s. (That relies on the
//! loader telling podman by the `Libpod-Api-Version` header of its first answer: podman answers
//! `GET /version` only after 0.45-0.65 s, which made each podman run cost ~0.5 s.)

use std::thread;
use std::time::Duration;

use crate::common::*;

/// Two small images, preloaded, and a list naming both.
fn present_images(engine: &Engine) -> (Package, Vec<Fixture>) {
    let pkg = Package::new();
    let fixtures = vec![
        Fixture::new("example.org/endurance/a:1"),
        Fixture::new("example.org/endurance/b:1"),
    ];
    let mut lines = Vec::new();
    for (i, f) in fixtures.iter().enumerate() {
        engine.preload(f);
        lines.push(pkg.add(&format!("img{i}.tar.zst"), f, Codec::Zstd));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    (pkg, fixtures)
}

/// The engine's open fds and resident memory (KiB), after its idle connections have had
/// time to close.
fn engine_usage(pid: u32) -> (usize, u64) {
    thread::sleep(Duration::from_millis(500));
    (
        fd_count(pid).expect("engine fds"),
        proc_status_kib(pid, "VmRSS:").expect("engine VmRSS"),
    )
}

#[test]
fn a_thousand_runs_with_everything_present_exit_0_and_leak_nothing_in_dockerd() {
    runs_with_everything_present(Kind::Docker, 1_000);
}

#[test]
fn a_thousand_runs_with_everything_present_exit_0_and_leak_nothing_in_podman() {
    runs_with_everything_present(Kind::Podman, 1_000);
}

fn runs_with_everything_present(kind: Kind, runs: usize) {
    let engine = Engine::start(kind);
    let (pkg, _fixtures) = present_images(&engine);
    let locks = TempDir::new("lock");
    let list = pkg.list_arg();
    let lock_dir = locks.path().display().to_string();
    let mut args = engine.host_args();
    args.extend(["-l".into(), list, "--run-dir".into(), lock_dir]);
    let pid = engine.pid();
    let warm_up = runs / 20;
    let mut before = None;
    let mut times = Vec::with_capacity(runs);

    for run in 1..=runs {
        let out = run_loader(&args, &[]);
        assert_eq!(out.code, 0, "run {run}\n{out:?}");
        assert_eq!(
            out.summary(),
            "0 loaded, 2 present, 0 failed",
            "run {run}\n{out:?}"
        );
        times.push(out.elapsed);
        if run == warm_up {
            before = Some(engine_usage(pid));
        }
    }
    let (fds_before, rss_before) = before.unwrap();
    let (fds_after, rss_after) = engine_usage(pid);

    times.sort();
    let total: Duration = times.iter().sum();
    eprintln!(
        "{} {runs} runs: total {total:.1?}, min {:.1?}, median {:.1?}, p99 {:.1?}, \
         max {:.1?}; engine fds {fds_before} -> {fds_after}, VmRSS {rss_before} -> \
         {rss_after} KiB (after run {warm_up} -> after run {runs})",
        kind.name(),
        times[0],
        times[runs / 2],
        times[runs * 99 / 100],
        times[runs - 1]
    );
    assert!(
        fds_after <= fds_before + 5,
        "the engine's open fds grew from {fds_before} to {fds_after} over {runs} runs"
    );
    // Go's heap breathes; a leak per run (a connection, a goroutine with its buffers) of
    // even 16 KiB would add ~15 MiB over 950 runs.
    assert!(
        rss_after <= rss_before + (24 << 10),
        "the engine's VmRSS grew from {rss_before} KiB to {rss_after} KiB over {runs} runs"
    );
}

#[test]
fn one_run_over_20000_entries_keeps_its_fds_and_memory_flat() {
    let engine = Engine::podman();
    let (pkg, fixtures) = present_images(&engine);
    let entries = 20_000;
    let lines: Vec<String> = (0..entries)
        .map(|i| format!("img{}.tar.zst {}", i % 2, fixtures[i % 2].reference))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    let locks = TempDir::new("lock");
    let mut args = engine.host_args();
    args.extend([
        "-l".into(),
        pkg.list_arg(),
        "--run-dir".into(),
        locks.path().display().to_string(),
    ]);

    let running = spawn_loader(&args, &[]);
    let pid = running.pid();
    // (fds, VmRSS KiB, VmHWM KiB) every millisecond while the loader works.
    let sampler = thread::spawn(move || {
        let mut samples = Vec::new();
        loop {
            let sample = (
                fd_count(pid),
                proc_status_kib(pid, "VmRSS:"),
                peak_rss_kib(pid),
            );
            match sample {
                (Some(fds), Some(rss), Some(hwm)) => samples.push((fds, rss, hwm)),
                _ => break,
            }
            thread::sleep(Duration::from_millis(1));
        }
        samples
    });
    let out = running.wait();
    let samples = sampler.join().unwrap();

    out.assert_code(0)
        .assert_summary(&format!("0 loaded, {entries} present, 0 failed"));
    // The entries are checked from one image listing, then recorded in status.json: each
    // row built, written and dropped in turn. The steady phase: from the first sample that
    // holds the most fds (recording, an archive open) to the last twentieth (exit).
    let most = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let start = samples.iter().position(|s| s.0 == most).unwrap_or(0);
    let end = samples.len() - samples.len() / 20 - 1;
    assert!(
        end > start + 5,
        "too few samples ({} of {}, from {start}) in {:?}",
        end.saturating_sub(start),
        samples.len(),
        out.elapsed
    );
    let steady = &samples[start..end];
    let fds: Vec<usize> = steady.iter().map(|s| s.0).collect();
    let (first_rss, last_rss) = (steady[0].1, steady[steady.len() - 1].1);
    let peak = samples.iter().map(|s| s.2).max().unwrap();
    eprintln!(
        "{entries} entries in {:.1?}: {} samples, loader fds {:?}..{:?}, VmRSS {first_rss} -> \
         {last_rss} KiB, VmHWM {peak} KiB",
        out.elapsed,
        samples.len(),
        fds.iter().min().unwrap(),
        fds.iter().max().unwrap()
    );
    // What the loader opens itself: the run directory and its images/ (markers), the images
    // directory the archives are looked up in (one per list's directory), the engine
    // connection and its lock, for the whole run; one at a time, the archive whose state it
    // records; while status.json is rewritten, its lock, the file and the new copy. A
    // descriptor kept per entry would pass that bound within a few entries.
    let inherited = samples.iter().map(|s| s.0).min().unwrap();
    assert!(
        most <= inherited + 8,
        "the loader held {most} fds, {inherited} of them from its start: {fds:?}"
    );
    assert!(
        last_rss <= first_rss + 512,
        "the loader's VmRSS grew from {first_rss} to {last_rss} KiB over the entries"
    );
    assert!(peak < 16 << 10, "peak RSS {peak} KiB");
}

/// What recording each entry as it ends costs (status.json rewritten after every entry that
/// asked the engine, docs/operations.md "Starting what needs the images"): 1,000 entries, each asked on
/// its own (none is in the listing), against the same run with --dry-run, which records
/// nothing. Median of 5 runs each.
#[test]
fn recording_1000_entries_one_by_one_costs_little() {
    let engine = Engine::podman();
    let pkg = Package::new();
    let entries = 1_000;
    let lines: Vec<String> = (0..entries)
        .map(|i| format!("gone{i}.tar.zst example.org/endurance/gone{i}:1"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    pkg.write_list(&lines);
    // On a tmpfs, as /run is on a device (the test's temp dir may be on a disk).
    let run = ShmDir::new();
    let run_dir = run.0.display().to_string();
    let median = |extra: &[&str]| {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let mut args = vec!["-q", "--run-dir", run_dir.as_str()];
                args.extend_from_slice(extra);
                let out = load_package(&engine, &pkg, &args);
                out.assert_code(1);
                out.elapsed
            })
            .collect();
        times.sort();
        times[2]
    };

    let dry = median(&["--dry-run"]);
    let recorded = median(&[]);

    let text = std::fs::read_to_string(run.0.join("status.json")).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.len(), entries);
    let cost = recorded.saturating_sub(dry);
    eprintln!(
        "{entries} entries: {recorded:.1?} recorded one by one, {dry:.1?} with --dry-run; \
         recording costs {cost:.1?} ({:.0} us an entry), status.json {} KiB",
        cost.as_secs_f64() * 1e6 / entries as f64,
        text.len() / 1024
    );
    assert!(
        cost < Duration::from_secs(1),
        "recording {entries} entries one by one cost {cost:?}"
    );
}

/// A directory on /dev/shm (a tmpfs), removed on drop.
struct ShmDir(std::path::PathBuf);

impl ShmDir {
    fn new() -> ShmDir {
        let path =
            std::path::PathBuf::from(format!("/dev/shm/clt-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).unwrap();
        ShmDir(path)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
