//! Replays the fuzz inputs kept in the tree through the checks the fuzz targets run: the seed
//! corpus (`fuzz/corpus/<target>/`) and every input a fuzz run found failing
//! (`fuzz/regressions/<target>/`). The checks are `fuzz/src/checks.rs` itself, so a fix is
//! tested against exactly what the fuzzer asserts. `make fuzz-smoke` runs the fuzzer.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/checks.rs"]
mod checks;

/// A fuzz target's check: it panics on an input that breaks what the target asserts.
type Check = fn(&[u8]);

/// Each fuzz target and its check.
const TARGETS: [(&str, Check); 8] = [
    ("list_parser", checks::list_parser),
    ("reference", checks::reference),
    ("decoders", checks::decoders),
    ("answer_stream", checks::answer_stream),
    ("manifest_walk", checks::manifest_walk),
    ("description_files", checks::description_files),
    ("marker_name", checks::marker_name),
    ("framed", checks::framed),
];

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("listing a fuzz input directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn replays_the_seed_corpus_and_the_saved_crash_inputs() {
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        let seeds = inputs("corpus", target);
        assert!(
            !seeds.is_empty(),
            "no seed inputs in fuzz/corpus/{target}/: the replay would test nothing"
        );
        for file in seeds.iter().chain(&inputs("regressions", target)) {
            let data = fs::read(file).expect("reading a fuzz input");
            if panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(format!("{target}: {}", file.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz inputs that fail their check (the panic messages are above):\n  {}",
        failed.join("\n  ")
    );
}
