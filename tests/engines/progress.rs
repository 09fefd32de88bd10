//! Progress during a load: a line every `--progress-interval` when stderr is not a terminal,
//! one redrawn line when it is, and `STATUS=loading N/M REF NN%` for systemd.
//!
//! A long load is made by a proxy that passes the upload on at a few MiB a second, in front of
//! a real engine, so a load of a 12 MiB archive lasts at least four seconds on any machine.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::proxy::{Fault, Proxy};
use crate::common::*;

on_every_engine! {
    a_long_load_logs_its_progress_every_interval;
    a_short_load_logs_no_progress_with_the_default_interval;
}

/// The slow archive: incompressible, so the bytes read from it keep pace with the upload.
const SLOW_LEN: usize = 12 << 20;
/// What the proxy passes on per second: the slow load takes at least four seconds.
const SLOW_RATE: u64 = 3 << 20;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A one-layer docker-archive whose layer holds `len` random bytes.
fn random_fixture(reference: &str, len: usize) -> Fixture {
    let seed = fresh_seed();
    Fixture::one_file_layer(
        reference,
        &format!("random-{seed:x}.bin"),
        &random_bytes(seed, len),
    )
}

/// A package with one random archive, and a proxy that uploads it slowly to a real engine.
struct SlowLoad {
    engine: Engine,
    pkg: Package,
    proxy: Proxy,
    fixture: Fixture,
    locks: TempDir,
}

impl SlowLoad {
    fn new(flavor: impl Into<Flavor>, reference: &str) -> SlowLoad {
        let engine = Engine::start(flavor);
        let pkg = Package::new();
        let fixture = random_fixture(reference, SLOW_LEN);
        let line = pkg.add("slow.tar.zst", &fixture, Codec::Zstd);
        pkg.write_list(&[&line]);
        let proxy = Proxy::start(
            &pkg.dir().join("p.sock"),
            engine.socket_path(),
            Fault::Throttle {
                per_second: SLOW_RATE,
            },
        );
        SlowLoad {
            engine,
            pkg,
            proxy,
            fixture,
            locks: TempDir::new("lock"),
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = self.proxy.host_args();
        args.extend(["-l".into(), self.pkg.list_arg()]);
        args.extend(["--run-dir".into(), self.locks.path().display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let out = run_loader(&self.args(extra), env);
        assert!(
            self.proxy.fired(),
            "the upload went through the proxy\n{out:?}"
        );
        out
    }

    fn assert_loaded(&self, out: &Output) {
        out.assert_code(0)
            .assert_entry(
                &self.pkg.list,
                1,
                &[&format!(
                    "{}: loaded from slow.tar.zst",
                    self.fixture.reference
                )],
            )
            .assert_summary("1 loaded, 0 present, 0 failed");
        self.engine.assert_has(&self.fixture.reference);
    }
}

/// The percent in `text` right after `before`, as in `REF: loading, 45% (`.
fn percent_after(text: &str, before: &str) -> Option<u64> {
    let rest = &text[text.find(before)? + before.len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    match rest[digits..].starts_with('%') {
        true => rest[..digits].parse().ok(),
        false => None,
    }
}

/// Asserts that `percents` are within 0..=100, never go down, and went up.
fn assert_rising(percents: &[u64], context: &dyn std::fmt::Debug) {
    assert!(
        percents.iter().all(|p| *p <= 100),
        "percentages above 100: {percents:?}\n{context:?}"
    );
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "percentages went down: {percents:?}\n{context:?}"
    );
    assert!(
        percents.first() < percents.last(),
        "percentages did not rise: {percents:?}\n{context:?}"
    );
}

/// Runs `args` under a pseudo-terminal (`script`, util-linux): the loader's stdout and
/// stderr both go to the terminal, whose output comes back here. Returns the exit code and
/// what the terminal showed.
fn on_a_terminal(args: &[String]) -> (i32, String) {
    require_program("script");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut words = Vec::new();
    if let Some(runner) = std::env::var_os("CONTAINER_LOADER_RUNNER").filter(|r| !r.is_empty()) {
        words.push(quote(&runner.to_string_lossy()));
    }
    words.push(quote(&loader_bin().display().to_string()));
    words.extend(args.iter().map(|a| quote(a)));
    let out = Command::new("script")
        .args(["-qec", &words.join(" "), "/dev/null"])
        .env_remove("CONTAINER_HOST")
        .env_remove("DOCKER_HOST")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run script");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().expect("script exited"), shown)
}

// ---------------------------------------------------------------------------------------
// Without a terminal: a line every --progress-interval
// ---------------------------------------------------------------------------------------

fn a_long_load_logs_its_progress_every_interval(flavor: Flavor) {
    let slow = SlowLoad::new(flavor, "example.org/progress/journal:1");

    let out = slow.run(&["--progress-interval", "1"], &[]);

    slow.assert_loaded(&out);
    let lines = out.entry(&slow.pkg.list, 1);
    let loading = format!("{}: loading, ", slow.fixture.reference);
    let progress: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(&loading))
        .collect();
    assert!(
        progress.len() >= 2,
        "a load of at least 4 s logs a line every second\n{out:?}"
    );
    let percents: Vec<u64> = progress
        .iter()
        .map(|l| percent_after(l, &loading).unwrap_or_else(|| panic!("no percent in {l:?}")))
        .collect();
    assert_rising(&percents, &out);
    for l in &progress {
        assert!(
            l.contains(" of 12.0 MiB)"),
            "a progress line gives the archive's size: {l:?}\n{out:?}"
        );
    }
    assert!(
        lines.last().unwrap().contains("loaded from slow.tar.zst"),
        "progress lines come before the entry's result\n{out:?}"
    );
}

fn a_short_load_logs_no_progress_with_the_default_interval(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let pkg = Package::new();
    let fixture = Fixture::new("example.org/progress/short:1");
    let line = pkg.add("short.tar.gz", &fixture, Codec::Gzip);
    pkg.write_list(&[&line]);

    let out = load_package(&engine, &pkg, &[]);

    out.assert_code(0)
        .assert_entry(
            &pkg.list,
            1,
            &[&format!("{}: loaded from short.tar.gz", fixture.reference)],
        )
        .assert_entry_lacks(&pkg.list, 1, "loading")
        .assert_summary("1 loaded, 0 present, 0 failed");
    assert!(
        !out.stderr.contains('%') && !out.stderr.contains('\r'),
        "nothing about progress for a load shorter than 10 s\n{out:?}"
    );
}

#[test]
fn progress_interval_zero_logs_no_progress() {
    let slow = SlowLoad::new(Kind::Podman, "example.org/progress/off:1");

    let out = slow.run(&["--progress-interval", "0"], &[]);

    slow.assert_loaded(&out);
    assert!(
        !out.stderr.contains("loading") && !out.stderr.contains('%'),
        "--progress-interval 0 turns the lines off\n{out:?}"
    );
}

#[test]
fn no_line_is_drawn_when_stderr_is_not_a_terminal() {
    let slow = SlowLoad::new(Kind::Podman, "example.org/progress/pipe:1");

    let out = slow.run(&[], &[]);

    slow.assert_loaded(&out);
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('%'),
        "no redrawn line on a pipe, and no log line before the 10 s interval\n{out:?}"
    );
}

#[test]
fn progress_interval_that_is_not_a_number_exits_2() {
    let dir = TempDir::new("nowhere");
    let sock = dir.join("absent.sock").display().to_string();

    let out = run_loader(&["-H", &sock, "--progress-interval", "often"], &[]);

    out.assert_code(2)
        .assert_stderr_contains("--progress-interval takes whole seconds");
}

#[test]
fn help_documents_the_progress_interval() {
    let out = run_loader(&["--help"], &[]);

    out.assert_code(0);
    assert!(out.stdout.contains("--progress-interval"), "{out:?}");
}

// ---------------------------------------------------------------------------------------
// On a terminal: one redrawn line
// ---------------------------------------------------------------------------------------

#[test]
fn a_terminal_shows_one_redrawn_line_cleared_before_the_result() {
    let slow = SlowLoad::new(Kind::Podman, "example.org/progress/tty:1");
    let reference = &slow.fixture.reference;

    let (code, shown) = on_a_terminal(&slow.args(&[]));

    assert_eq!(code, 0, "{shown:?}");
    slow.engine.assert_has(reference);
    let redraw = format!("\r{reference}: ");
    let percents: Vec<u64> = shown
        .match_indices(&redraw)
        .map(|(at, _)| {
            percent_after(&shown[at..], &redraw)
                .unwrap_or_else(|| panic!("no percent after a redraw in {shown:?}"))
        })
        .collect();
    assert!(
        percents.len() >= 2,
        "a load of at least 4 s redraws its line\n{shown:?}"
    );
    assert_rising(&percents, &shown);
    let result = format!(
        "{}:1: {reference}: loaded from slow.tar.zst",
        slow.pkg.list.display()
    );
    let at = shown
        .find(&result)
        .unwrap_or_else(|| panic!("no result line in {shown:?}"));
    assert!(
        shown[..at].ends_with("\r\x1b[K"),
        "the progress line is erased before the result line\n{shown:?}"
    );
    assert!(
        !shown[at..].contains(&redraw),
        "nothing is drawn after the load\n{shown:?}"
    );
}

#[test]
fn quiet_draws_no_line_on_a_terminal() {
    let slow = SlowLoad::new(Kind::Podman, "example.org/progress/quiet:1");

    let (code, shown) = on_a_terminal(&slow.args(&["--quiet"]));

    assert_eq!(code, 0, "{shown:?}");
    slow.engine.assert_has(&slow.fixture.reference);
    assert!(
        !shown.contains(&format!("\r{}", slow.fixture.reference)) && !shown.contains('%'),
        "--quiet draws nothing\n{shown:?}"
    );
}

// ---------------------------------------------------------------------------------------
// systemd: STATUS=
// ---------------------------------------------------------------------------------------

#[test]
fn systemd_status_follows_the_load_in_percent() {
    let slow = SlowLoad::new(Kind::Podman, "example.org/progress/notify:1");
    let reference = slow.fixture.reference.clone();
    let path = slow.pkg.dir().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Read while the loader runs, as systemd does: a datagram queue holds only a few.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let reader = thread::spawn(move || {
        let mut messages = Vec::new();
        let mut buf = [0u8; 1024];
        while !stopped.load(Ordering::SeqCst) {
            if let Ok(n) = socket.recv(&mut buf) {
                messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        while let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        messages
    });

    let out = slow.run(&[], &[("NOTIFY_SOCKET", &path.display().to_string())]);
    stop.store(true, Ordering::SeqCst);
    let messages = reader.join().unwrap();

    slow.assert_loaded(&out);
    let context = (&messages, &out);
    assert_eq!(
        messages.first().map(String::as_str),
        Some(format!("STATUS=loading 1/1 {reference}").as_str()),
        "{context:?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("STATUS=1 loaded, 0 present, 0 failed"),
        "{context:?}"
    );
    let during = format!("STATUS=loading 1/1 {reference} ");
    let percents: Vec<u64> = messages[1..messages.len() - 1]
        .iter()
        .map(|m| {
            assert!(m.starts_with(&during), "unexpected {m:?}\n{context:?}");
            percent_after(m, &during).unwrap_or_else(|| panic!("no percent in {m:?}"))
        })
        .collect();
    assert!(
        percents.len() >= 2,
        "a load of at least 4 s updates its status every second\n{context:?}"
    );
    assert_rising(&percents, &context);
}
