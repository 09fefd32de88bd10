//! Standard output that cannot be written: a reader that went away (`inspect ... | head`) ends
//! the run quietly with the exit status it would have had; any other write error (`status >
//! /dev/full`) is one line on stderr and exit 1. Never a panic.

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;

use std::fs::OpenOptions;
use std::process::{Output, Stdio};

use common::*;

/// The loader run with `args` and its stdout going to `stdout`.
fn run_into(args: &[&str], stdout: Stdio) -> Output {
    let mut cmd = loader_command();
    cmd.args(args)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    cmd.output().expect("run the loader")
}

/// A pipe whose reading end is already closed: every write gets EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

fn dev_full() -> Stdio {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

/// A package whose archive `inspect` reads, and whose empty list `status` reads.
fn package() -> (Package, String) {
    let pkg = Package::new();
    let path = pkg.add_archive("app.tar", &Fixture::new("example.org/out/app:1").tar);
    (pkg, path.display().to_string())
}

#[test]
fn inspect_into_a_closed_pipe_ends_quietly_with_its_usual_exit() {
    let (_pkg, archive) = package();
    for json in [false, true] {
        let mut args = vec!["inspect"];
        if json {
            args.push("--json");
        }
        args.extend([archive.as_str(), archive.as_str()]);
        let out = run_into(&args, closed_pipe());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        args.push("/nonexistent/archive.tar");
        let out = run_into(&args, closed_pipe());
        assert_eq!(
            out.status.code(),
            Some(1),
            "a missing archive still fails: {out:?}"
        );
    }
}

#[test]
fn inspect_into_a_full_file_exits_1_with_one_line() {
    let (_pkg, archive) = package();
    let out = run_into(&["inspect", &archive], dev_full());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cannot write to standard output: No space left on device (os error 28)\n"
    );
}

#[test]
fn status_into_a_closed_pipe_or_a_full_file_never_panics() {
    let (pkg, _) = package();
    let list = pkg.list_arg();
    for json in [false, true] {
        let mut args = vec!["status", "-l", list.as_str()];
        if json {
            args.push("--json");
        }
        let out = run_into(&args, closed_pipe());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        let out = run_into(&args, dev_full());
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("cannot write to standard output: "));
    }
}

#[test]
fn help_and_version_into_a_closed_pipe_or_a_full_file_never_panic() {
    for flag in ["--help", "--version"] {
        let out = run_into(&[flag], closed_pipe());
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        assert!(out.stderr.is_empty());
        let out = run_into(&[flag], dev_full());
        assert_eq!(out.status.code(), Some(1), "{flag}: {out:?}");
    }
}
