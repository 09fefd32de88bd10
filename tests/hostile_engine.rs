//! Engines that do not behave: a socket that accepts and never answers, answers that drip
//! one header line a second, a listener that never accepts, listings and answers of
//! megabytes, ids that are not digests, a `Libpod-Api-Version` that is not a version.
//! Whatever the engine does, the loader is done within `--wait` (finding the engine) or
//! its request limits, and under 32 MiB of memory.
//!
//! The engines here are scripted ([`Scripted`]); where a real engine is involved (a silent
//! socket beside a real one under `--engine auto`), it is one of the harness's. Every run is
//! bounded by the test itself ([`run_within`]), so a regression fails in seconds instead of
//! hanging CI.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;

/// The bound of the issue: whatever the engine answers, the loader stays below this.
const RSS_LIMIT_KIB: u64 = 32 << 10;
/// How long a run against a misbehaving engine may take at most before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// A digest the scripted engine gives its images.
const ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

// ---------------------------------------------------------------------------------------
// A scripted engine
// ---------------------------------------------------------------------------------------

/// What the scripted engine does with one request.
enum Reply {
    /// An HTTP answer: status line text, extra header lines, body.
    Answer(&'static str, Vec<String>, Vec<u8>),
    /// Nothing, ever: the connection stays open and silent.
    Silent,
    /// `HTTP/1.1 200 OK`, then one header line a second, never the end of the headers.
    Drip,
}

type Script = dyn Fn(&str) -> Reply + Send + Sync;

/// An engine on a unix socket that answers each request by its script (given the request
/// line), records request lines and the peak memory of the loader at each request (read
/// from `/proc/PID/status` of the peer, so no peak between two requests is missed).
struct Scripted {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    peer_peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Scripted {
    fn start(script: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Scripted {
        let dir = TempDir::new("hostile");
        let socket = dir.join("engine.sock");
        let listener = UnixListener::bind(&socket).expect("bind the scripted engine");
        listener.set_nonblocking(true).expect("nonblocking");
        let script: Arc<Script> = Arc::new(script);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let peer_peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (req, peak, st, hd) = (
            requests.clone(),
            peer_peak_kib.clone(),
            stop.clone(),
            held.clone(),
        );
        let thread = thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        hd.lock().unwrap().push(stream.try_clone().unwrap());
                        let (script, req, peak, st) =
                            (script.clone(), req.clone(), peak.clone(), st.clone());
                        thread::spawn(move || serve(stream, &*script, &req, &peak, &st));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Scripted {
            socket,
            requests,
            peer_peak_kib,
            stop,
            held,
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        self.socket.display().to_string()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn peer_peak_kib(&self) -> u64 {
        self.peer_peak_kib.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.held.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection until it closes or the engine stops.
fn serve(
    stream: UnixStream,
    script: &Script,
    requests: &Mutex<Vec<String>>,
    peak: &AtomicU64,
    stop: &AtomicBool,
) {
    let pid = rustix::net::sockopt::socket_peercred(&stream)
        .map(|c| c.pid.as_raw_pid() as u32)
        .ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            return;
        }
        let line = line.trim_end().to_owned();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if !matches!(reader.read_line(&mut h), Ok(n) if n > 0) {
                return;
            }
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            chunked |= h.starts_with("transfer-encoding:") && h.contains("chunked");
        }
        if chunked {
            if skip_chunked(&mut reader).is_err() {
                return;
            }
        } else if std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())
            .is_err()
        {
            return;
        }
        if let Some(pid) = pid {
            note_peak(pid, peak);
        }
        requests.lock().unwrap().push(line.clone());
        match script(&line) {
            Reply::Answer(status, headers, body) => {
                let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
                for h in headers {
                    head.push_str(&h);
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                    return;
                }
            }
            Reply::Silent => {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Reply::Drip => {
                if writer.write_all(b"HTTP/1.1 200 OK\r\n").is_err() {
                    return;
                }
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    thread::sleep(Duration::from_secs(1));
                    if writer
                        .write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads a chunked request body to its end.
fn skip_chunked(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        std::io::copy(&mut reader.take(size as u64 + 2), &mut std::io::sink())?;
        if size == 0 {
            return Ok(());
        }
    }
}

fn note_peak(pid: u32, peak: &AtomicU64) {
    if let Some(kib) = peak_rss_kib(pid) {
        peak.fetch_max(kib, Ordering::SeqCst);
    }
}

/// docker's answer to `GET /_ping`.
fn docker_pong() -> Reply {
    Reply::Answer(
        "200 OK",
        vec![
            "Server: Docker/26.1.5 (linux)".into(),
            "Api-Version: 1.45".into(),
        ],
        b"OK".to_vec(),
    )
}

fn json(status: &'static str, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Answer(
        status,
        vec!["Content-Type: application/json".into()],
        body.into(),
    )
}

/// docker's answer for an image it does not have.
fn no_such_image() -> Reply {
    json("404 Not Found", r#"{"message":"No such image"}"#)
}

fn path_of(request_line: &str) -> &str {
    request_line.split_whitespace().nth(1).unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Running the loader within a bound
// ---------------------------------------------------------------------------------------

/// Runs the loader with `args`, killing it and failing the test after `limit`, and samples
/// its peak memory until it exits. Returns the output and the peak (KiB).
fn run_within(args: &[String], limit: Duration) -> (Output, u64) {
    wait_within(spawn_loader(args, &[]), limit)
}

/// Waits for `running`, killing it after `limit` and failing the test; with its peak RSS.
fn wait_within(mut running: Running, limit: Duration) -> (Output, u64) {
    let pid = running.pid();
    let started = Instant::now();
    let mut peak = 0;
    while running.is_running() {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if started.elapsed() > limit {
            let stderr = running.kill9();
            panic!("container-loader ran longer than {limit:?} and was killed; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    (running.wait(), peak)
}

/// A package of `n` zstd images the engine is asked about.
fn images(n: usize) -> (Package, Vec<Fixture>) {
    Package::of_images("hostile/app", n)
}

fn args(host: &str, pkg: &Package, extra: &[&str]) -> Vec<String> {
    let mut all = vec![
        "-H".to_owned(),
        host.to_owned(),
        "-l".into(),
        pkg.list_arg(),
    ];
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

fn assert_small(out: &Output, peak_kib: u64, engine: &Scripted) {
    let peak = peak_kib.max(engine.peer_peak_kib());
    assert!(
        peak > 0 && peak < RSS_LIMIT_KIB,
        "peak RSS {peak} KiB, limit {RSS_LIMIT_KIB} KiB\n{out:?}"
    );
    eprintln!("peak RSS {peak} KiB, {:.2?}", out.elapsed);
}

fn assert_short_lines(out: &Output) {
    for line in out.stderr_lines() {
        assert!(line.len() < 2000, "a {}-byte line:\n{out:?}", line.len());
    }
}

// ---------------------------------------------------------------------------------------
// Bounded time
// ---------------------------------------------------------------------------------------

#[test]
fn socket_that_accepts_and_never_answers_is_given_up_after_wait_not_timeout() {
    let engine = Scripted::start(|_| Reply::Silent);
    let (pkg, _) = images(1);

    let (out, _) = run_within(
        &args(&engine.host(), &pkg, &["--wait", "2", "--timeout", "600"]),
        RUN_LIMIT,
    );

    out.assert_code(3)
        .assert_stderr_contains("no answer to GET /_ping in time")
        .assert_stderr_contains("after waiting 2.");
    assert!(
        out.elapsed >= Duration::from_millis(1800) && out.elapsed < Duration::from_secs(6),
        "--wait 2 should give up after about 2 s\n{out:?}"
    );
}

#[test]
fn ping_that_drips_header_lines_is_given_up_after_wait() {
    let engine = Scripted::start(|_| Reply::Drip);
    let (pkg, _) = images(1);

    let (out, _) = run_within(
        &args(&engine.host(), &pkg, &["--wait", "2", "--timeout", "5"]),
        RUN_LIMIT,
    );

    out.assert_code(3)
        .assert_stderr_contains("after waiting 2.");
    assert!(
        out.elapsed < Duration::from_secs(6),
        "--wait 2 should give up after about 2 s\n{out:?}"
    );
}

/// Real engines answer with heads under 1 KiB; the loader reads answers through 16 KiB.
#[test]
fn answer_head_over_eight_kib_is_refused_by_name_within_wait() {
    let engine = Scripted::start(|_| {
        Reply::Answer(
            "200 OK",
            vec![format!("X-Padding: {}", "p".repeat(9 << 10))],
            b"OK".to_vec(),
        )
    });
    let (pkg, _) = images(1);

    let (out, peak_kib) = run_within(&args(&engine.host(), &pkg, &["--wait", "2"]), RUN_LIMIT);

    out.assert_code(3)
        .assert_stderr_contains("response header is too big");
    assert!(out.elapsed < Duration::from_secs(6), "{out:?}");
    assert_small(&out, peak_kib, &engine);
}

#[test]
fn listener_that_never_accepts_is_given_up_after_wait() {
    // A hung engine whose backlog is full: connect(2) itself would block until it accepts.
    let dir = TempDir::new("backlog");
    let socket = dir.join("full.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    rustix::net::listen(&listener, 0).expect("listen with no backlog");
    let mut queued = Vec::new();
    loop {
        let fd = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let addr = rustix::net::SocketAddrUnix::new(socket.as_path()).unwrap();
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => queued.push(fd),
            Err(e) if e == rustix::io::Errno::AGAIN => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 64, "the backlog does not fill up");
    }
    let (pkg, _) = images(1);

    let (out, _) = run_within(
        &args(&socket.display().to_string(), &pkg, &["--wait", "2"]),
        RUN_LIMIT,
    );

    out.assert_code(3).assert_stderr_contains("not reachable");
    assert!(
        out.elapsed < Duration::from_secs(6),
        "--wait 2 should give up after about 2 s\n{out:?}"
    );
    drop(listener);
}

#[test]
fn presence_answer_that_drips_fails_the_entry_within_timeout() {
    let engine = Scripted::start(|line| match path_of(line) {
        "/_ping" => docker_pong(),
        _ => Reply::Drip,
    });
    let (pkg, fixtures) = images(1);

    let (out, _) = run_within(&args(&engine.host(), &pkg, &["--timeout", "3"]), RUN_LIMIT);

    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[
            &format!("{}: failed: inspecting ", fixtures[0].reference),
            "timeout",
        ],
    );
    assert!(
        out.elapsed >= Duration::from_millis(2500) && out.elapsed < Duration::from_secs(8),
        "the check should fail about --timeout 3 s after it was asked\n{out:?}"
    );
}

/// Runs the loader under `--engine auto` with the usual sockets of both engines replaced
/// (in a mount namespace of its own) by `docker` and `podman`.
fn run_with_usual_sockets(docker: &Path, podman: &Path, pkg: &Package) -> Output {
    let script = r#"mount -t tmpfs tmpfs /run && mkdir /run/podman &&
        touch /run/docker.sock /run/podman/podman.sock &&
        mount --bind "$1" /run/docker.sock && mount --bind "$2" /run/podman/podman.sock &&
        shift 2 && exec "$@""#;
    let mut unshare = in_private_mounts(script);
    unshare.arg(docker).arg(podman);
    let list = pkg.list_arg();
    let args = ["--engine", "auto", "--wait", "30", "-l", &list];
    wait_within(spawn_loader_behind(unshare, &args), RUN_LIMIT).0
}

#[test]
fn silent_docker_socket_does_not_hold_up_podman_under_engine_auto() {
    require_root();
    let engine = Engine::podman();
    let silent = Scripted::start(|_| Reply::Silent);
    let (pkg, fixtures) = images(1);

    let out = run_with_usual_sockets(&silent.socket, engine.socket_path(), &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has(&fixtures[0].reference);
    assert!(
        out.elapsed < Duration::from_secs(10),
        "podman answers at once; the silent docker socket must not hold it up\n{out:?}"
    );
}

#[test]
fn engine_auto_takes_the_first_usual_socket_when_both_answer_though_the_other_is_quicker() {
    // A device with docker and podman both up: the same engine every boot, docker (the first
    // usual socket), even when podman answers first.
    require_root();
    let podman = Engine::podman();
    let docker = Scripted::start(|line| match path_of(line) {
        "/_ping" => {
            std::thread::sleep(Duration::from_millis(200));
            docker_pong()
        }
        _ => json("404 Not Found", r#"{"message":"No such image"}"#),
    });
    let (pkg, fixtures) = images(1);

    let out = run_with_usual_sockets(&docker.socket, podman.socket_path(), &pkg);

    let asked = docker.requests();
    assert!(
        asked.iter().any(|r| r.contains("/images/load")),
        "the upload went to docker: {asked:?}\n{out:?}"
    );
    podman.assert_has_not(&fixtures[0].reference);
}

#[test]
fn silent_podman_socket_does_not_hold_up_docker_under_engine_auto() {
    require_root();
    let engine = Engine::docker();
    let silent = Scripted::start(|_| Reply::Silent);
    let (pkg, fixtures) = images(1);

    let out = run_with_usual_sockets(engine.socket_path(), &silent.socket, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has(&fixtures[0].reference);
    assert!(
        out.elapsed < Duration::from_secs(10),
        "docker answers at once; the silent podman socket must not hold it up\n{out:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Bounded memory
// ---------------------------------------------------------------------------------------

/// A scripted docker whose listing is `listing`, and which has no image by name.
fn docker_listing(listing: Vec<u8>) -> Scripted {
    let listing = Arc::new(listing);
    Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        "/images/json" => json("200 OK", listing.to_vec()),
        _ => no_such_image(),
    })
}

/// `[{"Id": ID, "RepoTags": [names...]}]`.
fn listing_of(id: &str, names: impl Iterator<Item = String>) -> Vec<u8> {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    format!(r#"[{{"Id":"{id}","RepoTags":[{}]}}]"#, names.join(",")).into_bytes()
}

#[test]
fn listing_with_a_megabyte_id_and_2000_names_keeps_the_loader_small() {
    let id = "a".repeat(1 << 20);
    let engine = docker_listing(listing_of(&id, (0..2000).map(|i| format!("n{i}:1"))));
    let (pkg, _) = images(2);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &["--dry-run"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed");
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

#[test]
fn listing_of_a_million_names_keeps_the_loader_small_and_still_answers() {
    // ~8 MiB, just under the answer cap; the entries' names come first, within the names
    // kept, so the listing still says they are present.
    let (pkg, fixtures) = images(2);
    let entries = fixtures.iter().map(|f| f.reference.clone());
    let filler = (0..1_300_000).map(|i| format!("{:x}", i % 4096));
    let listing = listing_of(ID, entries.chain(filler));
    assert!(listing.len() > 7 << 20 && listing.len() < 8 << 20);
    let engine = docker_listing(listing);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &["-v"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("0 loaded, 2 present, 0 failed")
        .assert_stderr_contains("the engine's listing: 1290002 names not kept");
    assert_small(&out, peak, &engine);
    assert!(
        !engine
            .requests()
            .iter()
            .any(|r| r.contains("/images/example.org")),
        "the listing answered for both entries: {:?}",
        engine.requests()
    );
}

#[test]
fn listing_over_the_answer_cap_is_ignored_and_each_entry_asked() {
    let engine = docker_listing(listing_of(ID, (0..1_500_000).map(|i| format!("name{i}"))));
    let (pkg, _) = images(2);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &["--dry-run"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed");
    assert_small(&out, peak, &engine);
    let asked = engine.requests();
    assert_eq!(
        asked
            .iter()
            .filter(|r| r.contains("/images/example.org"))
            .count(),
        2,
        "{asked:?}"
    );
}

#[test]
fn listing_that_fails_leaves_the_engine_to_its_ping_and_each_entry_asked_once() {
    let engine = Scripted::start(|line| match path_of(line) {
        "/_ping" => docker_pong(),
        "/images/json" => json(
            "500 Internal Server Error",
            r#"{"message":"listing broke"}"#,
        ),
        _ => no_such_image(),
    });
    let (pkg, _) = images(2);

    let (out, _) = run_within(&args(&engine.host(), &pkg, &["--dry-run"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed");
    let asked: Vec<String> = engine
        .requests()
        .iter()
        .map(|r| path_of(r).to_owned())
        .collect();
    assert_eq!(asked[..2], ["/images/json", "/_ping"], "{asked:?}");
    assert_eq!(
        asked
            .iter()
            .filter(|p| p.starts_with("/images/example.org"))
            .count(),
        2,
        "{asked:?}"
    );
    assert_eq!(
        asked.iter().filter(|p| *p == "/images/json").count(),
        1,
        "the listing is not asked again: {asked:?}"
    );
}

#[test]
fn listing_that_never_answers_holds_the_run_no_longer_than_the_wait() {
    let engine = Scripted::start(|line| match path_of(line) {
        "/_ping" => docker_pong(),
        "/images/json" => Reply::Silent,
        _ => no_such_image(),
    });
    let (pkg, _) = images(2);

    let (out, _) = run_within(
        &args(&engine.host(), &pkg, &["--dry-run", "--wait", "2"]),
        RUN_LIMIT,
    );

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed");
    assert!(
        out.elapsed >= Duration::from_millis(1500) && out.elapsed < Duration::from_secs(6),
        "the listing is given the 2 s of --wait, then the ping finds the engine\n{out:?}"
    );
}

#[test]
fn listing_of_an_id_that_is_not_a_digest_names_nothing_present() {
    let (pkg, fixtures) = images(2);
    let names = fixtures.iter().map(|f| f.reference.clone());
    let engine = docker_listing(listing_of("sha256:../../etc", names));

    let (out, _) = run_within(&args(&engine.host(), &pkg, &["--dry-run"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed");
}

#[test]
fn error_answer_of_six_mebibytes_is_quoted_short_in_bounded_memory() {
    let message = format!(
        r#"{{"message":"{}: no space left on device"}}"#,
        "x ".repeat(3 << 20)
    );
    let engine = Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        _ => json("500 Internal Server Error", message.clone()),
    });
    let (pkg, fixtures) = images(1);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &[]), RUN_LIMIT);

    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[
            &format!("{}: failed: inspecting ", fixtures[0].reference),
            "x x … x x",
            "no space left on device",
        ],
    );
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

#[test]
fn error_answer_of_millions_of_values_is_refused_in_bounded_memory() {
    // 7 MB, within the answer cap: 3.5 million values, 112 MB as a tree of JSON values.
    let values = format!("[{}0]", "0,".repeat(3_500_000));
    let engine = Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        _ => json("404 Not Found", values.clone()),
    });
    let (pkg, _) = images(1);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &[]), RUN_LIMIT);

    // Not one of the engine's error objects: an unknown route, not a missing image.
    out.assert_code(1)
        .assert_entry(&pkg.list, 1, &["failed: inspecting "]);
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

#[test]
fn status_of_an_image_whose_id_is_a_megabyte_says_so_briefly() {
    let answer = format!(r#"{{"Id":"sha256:{}"}}"#, "a".repeat(1 << 20));
    let engine = Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        _ => json("200 OK", answer.clone()),
    });
    let (pkg, _) = images(1);

    let mut all = vec!["status".to_owned()];
    all.extend(args(&engine.host(), &pkg, &["--json"]));
    let (out, peak) = run_within(&all, RUN_LIMIT);

    assert!(
        out.stdout
            .contains("not sha256: and 64 hex digits: sha256:aaaa"),
        "{out:?}"
    );
    assert!(
        out.stdout.len() < 2000,
        "{} bytes of status",
        out.stdout.len()
    );
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

#[test]
fn info_answer_naming_a_megabyte_directory_skips_the_space_check_briefly() {
    let info = format!(r#"{{"DockerRootDir":"/{}"}}"#, "a".repeat(1 << 20));
    let engine = Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        "/info" => json("200 OK", info.clone()),
        _ => no_such_image(),
    });
    let (pkg, _) = images(1);

    let (out, peak) = run_within(&args(&engine.host(), &pkg, &["--dry-run", "-v"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_stderr_contains("space check skipped: docker's GET /info names no DockerRootDir");
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

/// A scripted classic docker (its `GET /info` names no containerd store) whose listing is
/// `listing` and whose every image, asked by id, has `inspect` for its description; no image
/// is present by name, and every load is answered as done.
fn docker_holding(listing: String, inspect: String) -> Scripted {
    Scripted::start(move |line| match path_of(line) {
        "/_ping" => docker_pong(),
        "/info" => json(
            "200 OK",
            r#"{"Driver":"vfs","DriverStatus":[],"DockerRootDir":"/nonexistent"}"#,
        ),
        "/images/json" => json("200 OK", listing.clone()),
        p if p.starts_with("/images/sha256:") => json("200 OK", inspect.clone()),
        p if p.starts_with("/images/load") => json("200 OK", r#"{"stream":"Loaded image: x:1\n"}"#),
        _ => no_such_image(),
    })
}

#[test]
fn an_engine_of_more_images_than_are_asked_about_gets_whole_archives_and_is_asked_once() {
    let ids: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"Id":"sha256:{i:064x}","RepoTags":[]}}"#))
        .collect();
    let engine = docker_holding(format!("[{}]", ids.join(",")), "{}".into());
    let (pkg, _) = images(2);

    let (out, peak) = run_within(
        &args(&engine.host(), &pkg, &["--no-space-check", "-v"]),
        RUN_LIMIT,
    );

    out.assert_entry(
        &pkg.list,
        1,
        &[
            "sending the archive whole: what the engine holds is not known: listing the engine's images",
            "1001 images, more than the 1000 whose layers are asked about",
        ],
    )
    .assert_entry(
        &pkg.list,
        2,
        &["sending the archive whole: what the engine holds could not be asked earlier in this run"],
    );
    let requests = engine.requests();
    assert!(
        !requests.iter().any(|r| r.contains("/images/sha256:")),
        "asked about an image's layers: {requests:?}"
    );
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

#[test]
fn an_image_of_more_layers_than_any_real_one_is_not_taken_as_held() {
    let layers: Vec<String> = (0..1000).map(|i| format!(r#""sha256:{i:064x}""#)).collect();
    let listing = format!(r#"[{{"Id":"{ID}","RepoTags":["held:1"]}}]"#);
    let inspect = format!(
        r#"{{"Id":"{ID}","RootFS":{{"Type":"layers","Layers":[{}]}}}}"#,
        layers.join(",")
    );
    let engine = docker_holding(listing, inspect);
    let (pkg, _) = images(1);

    let (out, peak) = run_within(
        &args(&engine.host(), &pkg, &["--no-space-check", "-v"]),
        RUN_LIMIT,
    );

    out.assert_entry(
        &pkg.list,
        1,
        &["sending the archive whole: the engine holds no layer"],
    );
    assert_small(&out, peak, &engine);
}

#[test]
fn an_engine_of_1000_images_of_512_layers_each_keeps_the_loader_small() {
    // 1,000 images as asked about, each of as many layers as one is taken with: their lists
    // count against the layers kept in all (16,384), so no more than 32 images are asked about.
    let ids: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"Id":"sha256:{i:064x}","RepoTags":[]}}"#))
        .collect();
    let layers: Vec<String> = (0..512).map(|i| format!(r#""sha256:{i:064x}""#)).collect();
    let inspect = format!(
        r#"{{"RootFS":{{"Type":"layers","Layers":[{}]}}}}"#,
        layers.join(",")
    );
    let engine = docker_holding(format!("[{}]", ids.join(",")), inspect);
    let (pkg, _) = images(1);

    let (out, peak) = run_within(
        &args(&engine.host(), &pkg, &["--no-space-check", "-v"]),
        RUN_LIMIT,
    );

    assert_small(&out, peak, &engine);
    let asked = engine.requests();
    let images_asked = asked
        .iter()
        .filter(|r| r.contains("/images/sha256:"))
        .count();
    assert!(
        images_asked <= 16_384 / 512,
        "asked about {images_asked} images\n{out:?}"
    );
}

#[test]
fn load_answer_naming_two_million_images_keeps_the_loader_small() {
    let names: Vec<String> = (0..2_000_000)
        .map(|i| format!("\"{:x}\"", i % 4096))
        .collect();
    let answer = format!(r#"{{"Names":[{}]}}"#, names.join(","));
    drop(names);
    let engine = Scripted::start(move |line| match path_of(line) {
        "/_ping" => Reply::Answer(
            "200 OK",
            vec![
                "Libpod-Api-Version: 5.4.2".into(),
                "Server: Libpod/5.4.2 (linux)".into(),
            ],
            b"OK".to_vec(),
        ),
        p if p.ends_with("/images/load") => json("200 OK", answer.clone()),
        _ => json(
            "404 Not Found",
            r#"{"cause":"","message":"","response":404}"#,
        ),
    });
    let (pkg, fixtures) = images(1);

    let (out, peak) = run_within(
        &args(&engine.host(), &pkg, &["--no-space-check", "-v"]),
        RUN_LIMIT,
    );

    // The engine claims a load, but has no such image after it.
    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[&format!("{}: failed", fixtures[0].reference)],
    );
    assert_small(&out, peak, &engine);
    assert_short_lines(&out);
}

// ---------------------------------------------------------------------------------------
// What goes into URLs
// ---------------------------------------------------------------------------------------

#[test]
fn libpod_api_version_that_is_not_a_version_is_not_put_in_urls() {
    let engine = Scripted::start(|line| match path_of(line) {
        "/_ping" => Reply::Answer(
            "200 OK",
            vec![
                "Libpod-Api-Version: 4#frag".into(),
                "Server: Libpod/5.4.2 (linux)".into(),
            ],
            b"OK".to_vec(),
        ),
        _ => json(
            "404 Not Found",
            r#"{"cause":"","message":"","response":404}"#,
        ),
    });
    let (pkg, _) = images(2);

    let (out, _) = run_within(&args(&engine.host(), &pkg, &["--dry-run", "-v"]), RUN_LIMIT);

    out.assert_code(0)
        .assert_summary("2 would load, 0 present, 0 failed")
        .assert_stderr_contains("ignored the engine's Libpod-Api-Version \"4#frag\"");
    // The knock (the listing, then `/_ping`) carries no version; every request after it does.
    let asked: Vec<String> = engine
        .requests()
        .into_iter()
        .filter(|r| !matches!(path_of(r), "/_ping" | "/images/json"))
        .collect();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|r| path_of(r).starts_with("/v4.0.0/libpod/")),
        "every request under the fallback version: {asked:?}"
    );
}
