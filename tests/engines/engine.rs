//! Finding and reaching the engine: -H forms, environment variables, engine kinds,
//! auto-detection, an engine that is not there, and one that comes up late.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use crate::common::fake_engine::FakeEngine;
use crate::common::proxy::{Fault, Proxy};
use crate::common::*;

on_every_engine! {
    explicit_engine_kind_loads;
    engine_kind_is_detected_automatically;
    explicit_auto_engine_loads;
    host_as_unix_url_is_accepted;
    host_as_plain_path_is_accepted;
    container_host_is_used_without_host_option;
    docker_host_is_used_without_host_option;
    container_host_wins_over_docker_host;
    host_option_wins_over_environment;
    late_socket_is_waited_for;
    status_and_verbose_name_the_engine_its_version_and_its_store;
    present_images_cost_one_request_the_listing_that_finds_the_engine;
    the_listing_that_finds_the_engine_tells_which_engine_it_is;
}

/// `engine: docker 26.1.5+dfsg1, containerd image store at SOCKET`, and the like.
fn status_and_verbose_name_the_engine_its_version_and_its_store(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, _) = one_image("named");
    let (family, version, store) = match flavor {
        Flavor::Docker20 => ("docker", "20.10.", "classic image store"),
        Flavor::Docker26 => ("docker", "26.1.", "classic image store"),
        Flavor::Docker26Containerd => ("docker", "26.1.", "containerd image store"),
        Flavor::Podman43 => ("podman", "4.3.", "containers-storage"),
        Flavor::Podman54 => ("podman", "5.4.", "containers-storage"),
    };
    let host = engine.socket_path().display().to_string();
    let named = |out: &Output| {
        let line = out
            .stderr_lines()
            .into_iter()
            .find(|l| l.starts_with("engine: "))
            .unwrap_or_else(|| panic!("no engine line\n{out:?}"))
            .to_owned();
        assert!(
            line.starts_with(&format!("engine: {family} {version}"))
                && line.ends_with(&format!(", {store} at {host}")),
            "{line}"
        );
    };

    named(&run_loader(
        &["status", "-H", &host, "-l", &pkg.list_arg()],
        &[],
    ));
    named(&load_package(&engine, &pkg, &["--verbose"]));
}

/// A package with one zstd image that the engine does not have yet.
fn one_image(tag: &str) -> (Package, Fixture) {
    let pkg = Package::new();
    let fixture = Fixture::new(&format!("example.org/engine/{tag}:1"));
    let line = pkg.add(&format!("{tag}.tar.zst"), &fixture, Codec::Zstd);
    pkg.write_list(&[&line]);
    (pkg, fixture)
}

/// A package of `count` zstd images, `example.org/engine/{tag}{i}:1`.
fn images(tag: &str, count: usize) -> (Package, Vec<Fixture>) {
    Package::of_images(&format!("engine/{tag}"), count)
}

/// Runs the loader on `pkg` through `proxy`, the engine's kind left to be found.
fn load_through(proxy: &Proxy, pkg: &Package) -> Output {
    let mut args = proxy.host_args();
    args.extend(["-l".into(), pkg.list_arg()]);
    run_loader(&args, &[])
}

/// The run loaded the package's one image into `engine`.
fn assert_loaded(engine: &Engine, pkg: &Package, fixture: &Fixture, out: &Output) {
    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: loaded from ", fixture.reference)],
        )
        .assert_summary("1 loaded, 0 present, 0 failed");
    engine.assert_has(&fixture.reference);
}

/// A socket path in a fresh directory where nothing listens (and no file exists).
fn nowhere() -> (TempDir, String) {
    let dir = TempDir::new("nowhere");
    let path = dir.join("absent.sock").display().to_string();
    (dir, path)
}

fn explicit_engine_kind_loads(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("explicit");

    let out = load_package(&engine, &pkg, &["--engine", flavor.family().name()]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn engine_kind_is_detected_automatically(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("detected");

    let out = load_package(&engine, &pkg, &[]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn explicit_auto_engine_loads(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("auto");

    let out = load_package(&engine, &pkg, &["-e", "auto"]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn host_as_unix_url_is_accepted(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("url");
    let host = format!("unix://{}", engine.socket_path().display());

    let out = run_loader(&["-H", &host, "-l", &pkg.list_arg()], &[]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn host_as_plain_path_is_accepted(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("path");
    let host = engine.socket_path().display().to_string();

    let out = run_loader(&["-H", &host, "-l", &pkg.list_arg()], &[]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn container_host_is_used_without_host_option(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("containerhost");
    let host = format!("unix://{}", engine.socket_path().display());

    let out = run_loader(&["-l", &pkg.list_arg()], &[("CONTAINER_HOST", &host)]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn docker_host_is_used_without_host_option(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("dockerhost");
    let host = format!("unix://{}", engine.socket_path().display());

    let out = run_loader(&["-l", &pkg.list_arg()], &[("DOCKER_HOST", &host)]);

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn container_host_wins_over_docker_host(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("precedence");
    let host = format!("unix://{}", engine.socket_path().display());
    let (_dir, wrong) = nowhere();
    let wrong = format!("unix://{wrong}");

    let out = run_loader(
        &["-l", &pkg.list_arg(), "--wait", "3"],
        &[("CONTAINER_HOST", &host), ("DOCKER_HOST", &wrong)],
    );

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn host_option_wins_over_environment(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixture) = one_image("optionwins");
    let host = engine.socket_path().display().to_string();
    let (_dir, wrong) = nowhere();
    let wrong = format!("unix://{wrong}");

    let out = run_loader(
        &["-H", &host, "-l", &pkg.list_arg(), "--wait", "3"],
        &[("CONTAINER_HOST", &wrong), ("DOCKER_HOST", &wrong)],
    );

    assert_loaded(&engine, &pkg, &fixture, &out);
}

fn late_socket_is_waited_for(flavor: Flavor) {
    // The loader starts first (as at boot, racing the engine's own start); the engine
    // comes up 2 s later on the socket the loader was told to use.
    let mut engine = Engine::unstarted(flavor);
    let (pkg, fixture) = one_image("late");
    let host = engine.socket_path().display().to_string();
    let running = spawn_loader(&["-H", &host, "-l", &pkg.list_arg(), "--wait", "30"], &[]);
    thread::sleep(Duration::from_secs(2));
    engine.launch();

    let out = running.wait();

    assert_loaded(&engine, &pkg, &fixture, &out);
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "the loader cannot have finished before the engine existed\n{out:?}"
    );
}

#[test]
fn unreachable_engine_exits_3_after_wait() {
    let (pkg, _) = one_image("unreachable");
    let (_dir, sock) = nowhere();

    let out = run_loader(&["-H", &sock, "-l", &pkg.list_arg(), "--wait", "1"], &[]);

    out.assert_code(3).assert_stderr_contains("not reachable");
    assert!(
        out.elapsed >= Duration::from_millis(500),
        "the loader should keep trying for most of --wait 1 before giving up\n{out:?}"
    );
    assert!(
        out.elapsed < Duration::from_secs(6),
        "--wait 1 should give up after about 1 s\n{out:?}"
    );
}

#[test]
fn socket_without_listener_exits_3() {
    // A stale socket file (engine died): connect() is refused rather than not found.
    let (pkg, _) = one_image("stale");
    let dir = TempDir::new("stale");
    let sock = dir.join("stale.sock");
    drop(UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists(), "stale socket file left behind");
    let sock = sock.display().to_string();

    let out = run_loader(&["-H", &sock, "-l", &pkg.list_arg(), "--wait", "1"], &[]);

    out.assert_code(3).assert_stderr_contains("not reachable");
    assert!(
        out.elapsed < Duration::from_secs(6),
        "--wait 1 should give up after about 1 s\n{out:?}"
    );
}

#[test]
fn silent_engine_fails_the_load_after_timeout() {
    // The engine takes the upload and never answers: --timeout bounds the silence, the
    // entry fails instead of hanging the boot.
    let fake = FakeEngine::start_stalling_loads();
    let (pkg, fixture) = one_image("silent");
    let mut args = fake.host_args();
    args.extend(["-l".into(), pkg.list_arg(), "--timeout".into(), "2".into()]);

    let out = run_loader(&args, &[]);

    out.assert_code(1)
        .assert_entry(&pkg.list, 1, &[&format!("{}: failed: ", fixture.reference)]);
    assert!(
        out.elapsed >= Duration::from_millis(1500) && out.elapsed < Duration::from_secs(15),
        "the entry should fail about --timeout 2 s after the engine fell silent\n{out:?}"
    );
}

/// The boot of a device whose images are all there: the listing is the only request, the
/// knock that finds the engine as well as the answer for every entry.
fn present_images_cost_one_request_the_listing_that_finds_the_engine(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixtures) = images("listed", 2);
    for fixture in &fixtures {
        engine.preload(fixture);
    }
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("0 loaded, 2 present, 0 failed");
    assert_eq!(proxy.request_lines(), ["GET /images/json HTTP/1.1"]);
}

/// The listing's answer carries the engine's headers: podman is told by its
/// `Libpod-Api-Version`, and the upload goes to its own API at that version.
fn the_listing_that_finds_the_engine_tells_which_engine_it_is(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (pkg, fixtures) = images("told", 2);
    engine.preload(&fixtures[0]);
    let proxy = Proxy::start(&pkg.dir().join("p.sock"), engine.socket_path(), Fault::None);

    let out = load_through(&proxy, &pkg);

    out.assert_code(0)
        .assert_summary("1 loaded, 1 present, 0 failed");
    engine.assert_has(&fixtures[1].reference);
    let asked = proxy.request_lines();
    assert_eq!(asked[0], "GET /images/json HTTP/1.1", "{asked:?}");
    assert!(!asked.iter().any(|r| r.contains("/_ping")), "{asked:?}");
    let upload = asked
        .iter()
        .find(|r| r.starts_with("POST ") && r.contains("/images/load"))
        .unwrap_or_else(|| panic!("no upload: {asked:?}"));
    let version = match flavor {
        Flavor::Podman43 => Some("4.3."),
        Flavor::Podman54 => Some("5.4."),
        _ => None,
    };
    match version {
        Some(v) => assert!(
            upload.starts_with(&format!("POST /v{v}")) && upload.contains("/libpod/images/load"),
            "{upload}"
        ),
        None => assert!(upload.starts_with("POST /images/load"), "{upload}"),
    }
}

/// The lines of the images the listing answered go out in one write (on a journal stream, one
/// wake-up of journald instead of one per image), in their order, before the summary. stderr is
/// a datagram socket here, so that each write arrives as one datagram.
#[test]
fn present_images_lines_go_out_in_one_write() {
    let engine = Engine::docker();
    let (pkg, fixtures) = images("quiet", 3);
    for fixture in &fixtures {
        engine.preload(fixture);
    }
    let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
    let mut cmd = loader_command();
    cmd.args(["-H", &engine.socket_path().display().to_string()])
        .args(["-l", &pkg.list_arg()])
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(OwnedFd::from(theirs)));

    let status = cmd.status().expect("run the loader");

    assert!(status.success(), "{status}");
    drop(cmd);
    ours.set_nonblocking(true).unwrap();
    let mut writes = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while let Ok(n) = ours.recv(&mut buf) {
        writes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let expected: String = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "{}:{}: {}: present, skipped\n",
                pkg.list.display(),
                i + 1,
                f.reference
            )
        })
        .collect();
    assert_eq!(
        writes,
        [expected, "0 loaded, 3 present, 0 failed\n".to_owned()]
    );
}

/// A line held with the present images' goes out before a failure that follows it: the order
/// of the log is the order of the entries.
#[test]
fn held_lines_go_out_before_a_failure_after_them() {
    let engine = Engine::docker();
    let pkg = Package::new();
    let present = Fixture::new("example.org/engine/first:1");
    engine.preload(&present);
    let first = pkg.add("first.tar.zst", &present, Codec::Zstd);
    pkg.add_archive("second.tar.zst", b"not an archive");
    pkg.write_list(&[&first, "second.tar.zst example.org/engine/second:1"]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(1);
    let lines = out.stderr_lines();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}\n{out:?}"))
    };
    assert!(
        at("first:1: present, skipped") < at("second:1: failed"),
        "{out:?}"
    );
}
