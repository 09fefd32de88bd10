//! Command-line parsing and output conventions that need no engine.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use common::*;

const OPTIONS: &[&str] = &[
    "--list",
    "--images-dir",
    "--engine",
    "--host",
    "--delete-after-load",
    "--wait",
    "--timeout",
    "--memory-limit",
    "--dry-run",
    "--quiet",
    "--verbose",
    "--help",
    "--version",
];

/// A socket path in a fresh directory where nothing listens, so that no test here can
/// reach a real engine by accident.
fn nowhere() -> (TempDir, String) {
    let dir = TempDir::new("nowhere");
    let path = dir.join("absent.sock").display().to_string();
    (dir, path)
}

fn assert_help(out: &Output) {
    out.assert_code(0);
    for option in OPTIONS {
        assert!(
            out.stdout.contains(option),
            "--help should list {option}\n{out:?}"
        );
    }
    assert!(
        out.stdout.contains("status"),
        "--help should list the status command\n{out:?}"
    );
}

#[test]
fn help_lists_every_option_on_stdout() {
    assert_help(&run_loader(&["--help"], &[]));
}

#[test]
fn short_help_lists_every_option_on_stdout() {
    assert_help(&run_loader(&["-h"], &[]));
}

fn assert_version(out: &Output) {
    out.assert_code(0);
    assert!(
        out.stdout.contains("container-loader") && out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "version output should name the program and {}\n{out:?}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn version_prints_name_and_version() {
    assert_version(&run_loader(&["--version"], &[]));
}

#[test]
fn short_version_prints_name_and_version() {
    assert_version(&run_loader(&["-V"], &[]));
}

/// `args` is a usage error: exit 2 with something said on stderr.
fn assert_usage_error(args: &[&str]) {
    let (_dir, sock) = nowhere();
    let mut all = vec!["-H", sock.as_str(), "--wait", "0"];
    all.extend_from_slice(args);
    let out = run_loader(&all, &[]);
    out.assert_code(2);
    assert!(
        !out.stderr.trim().is_empty(),
        "a usage error explains itself\n{out:?}"
    );
}

#[test]
fn unknown_option_exits_2() {
    assert_usage_error(&["--no-such-option"]);
}

#[test]
fn unknown_command_exits_2() {
    assert_usage_error(&["frobnicate"]);
}

#[test]
fn option_without_its_value_exits_2() {
    assert_usage_error(&["-l"]);
}

#[test]
fn memory_limit_that_is_not_a_size_exits_2() {
    assert_usage_error(&["--memory-limit", "abc"]);
}

#[test]
fn unknown_engine_kind_exits_2() {
    assert_usage_error(&["--engine", "lxc"]);
}

#[test]
fn wait_that_is_not_a_number_exits_2() {
    assert_usage_error(&["--wait", "soon"]);
}

#[test]
fn timeout_that_is_not_a_number_exits_2() {
    assert_usage_error(&["--timeout", "forever"]);
}

#[test]
fn journal_stream_marks_error_lines() {
    // Under systemd (JOURNAL_STREAM set) every stderr line carries a priority; the
    // unreadable list is an error, <3>.
    let (dir, sock) = nowhere();
    let missing = dir.join("missing.list").display().to_string();

    let out = run_loader(
        &["-H", &sock, "--wait", "1", "-l", &missing],
        &[("JOURNAL_STREAM", "8:12345")],
    );

    assert_ne!(out.code, 0, "{out:?}");
    let expected = format!("<3>{missing}: cannot read image list");
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&expected)),
        "expected a line starting with {expected:?}\n{out:?}"
    );
    for l in out.stderr.lines() {
        assert!(
            l.starts_with("<3>") || l.starts_with("<4>") || l.starts_with("<6>"),
            "every stderr line has a priority prefix: {l:?}\n{out:?}"
        );
    }
}

#[test]
fn no_priority_prefix_without_journal_stream() {
    let (dir, sock) = nowhere();
    let missing = dir.join("missing.list").display().to_string();

    let out = run_loader(&["-H", &sock, "--wait", "1", "-l", &missing], &[]);

    assert_ne!(out.code, 0, "{out:?}");
    let expected = format!("{missing}: cannot read image list");
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&expected)),
        "expected a line starting with {expected:?}\n{out:?}"
    );
}

#[test]
fn inspect_refuses_an_option_of_load_naming_itself_and_exits_2() {
    let out = run_loader(
        &["inspect", "--delete-after-load", "--verify", "a.tar"],
        &[],
    );

    out.assert_code(2);
    assert_eq!(
        out.stderr,
        "container-loader inspect: --delete-after-load is not an option of inspect; see container-loader inspect --help\n"
    );
}

#[test]
fn scan_refuses_json_and_exits_2() {
    let dir = TempDir::new("scan");
    let out = run_loader(&["scan", &dir.path().display().to_string(), "--json"], &[]);

    out.assert_code(2)
        .assert_stderr_contains("container-loader scan: --json is not an option of scan");
}

#[test]
fn status_refuses_dry_run_and_exits_2() {
    let (_dir, sock) = nowhere();
    let out = run_loader(&["status", "-H", &sock, "--wait", "0", "--dry-run"], &[]);

    out.assert_code(2)
        .assert_stderr_contains("container-loader status: --dry-run is not an option of status");
}

#[test]
fn inspect_refuses_quiet_and_verbose() {
    for flag in ["-q", "--quiet", "-v", "--verbose"] {
        run_loader(&["inspect", flag, "a.tar"], &[])
            .assert_code(2)
            .assert_stderr_contains(&format!("{flag} is not an option of inspect"));
    }
}

#[test]
fn each_command_help_prints_its_own_usage_on_stdout() {
    for (command, own, foreign) in [
        ("load", "--delete-after-load", "--json"),
        ("status", "--json", "--dry-run"),
        ("inspect", "--json", "--list"),
        ("scan", "--ref", "--verify"),
    ] {
        let out = run_loader(&[command, "--help"], &[]);
        out.assert_code(0);
        assert!(
            out.stdout.contains(&format!("container-loader {command}"))
                || out.stdout.contains("container-loader [load]"),
            "{out:?}"
        );
        assert!(
            out.stdout.contains(own),
            "{command} --help lists {own}\n{out:?}"
        );
        assert!(
            !out.stdout.contains(foreign),
            "{command} --help does not list {foreign}\n{out:?}"
        );
    }
}

#[test]
fn help_without_a_command_points_to_each_commands_help() {
    let out = run_loader(&["--help"], &[]);

    out.assert_code(0);
    assert!(
        out.stdout.contains("container-loader COMMAND --help"),
        "{out:?}"
    );
    for command in ["status", "inspect", "scan"] {
        assert!(
            out.stdout.contains(&format!("container-loader {command}")),
            "{out:?}"
        );
    }
}

#[test]
fn scan_says_how_many_lines_it_wrote_unless_quiet() {
    let pkg = Package::new();
    pkg.add_archive("a.tar", &Fixture::new("example.org/cli/scan:1").tar);
    let dir = pkg.images.display().to_string();
    let list = pkg.list_arg();

    run_loader(&["scan", &dir, "-o", &list], &[])
        .assert_code(0)
        .assert_stderr_contains(&format!("1 line for 1 file written to {list}"));
    let quiet = run_loader(&["scan", &dir, "-o", &list, "-q"], &[]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "", "{quiet:?}");
}

#[test]
fn scan_verbose_says_what_each_archive_holds() {
    let pkg = Package::new();
    pkg.add_archive("a.tar", &Fixture::new("example.org/cli/scan-v:1").tar);
    let dir = pkg.images.display().to_string();

    run_loader(&["scan", &dir, "-v"], &[])
        .assert_code(0)
        .assert_stderr_contains("a.tar: tar, docker-archive, 1 image: example.org/cli/scan-v:1");
}
