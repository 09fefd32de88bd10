//! The checks behind the fuzz targets in `fuzz_targets/`. They live in `checks.rs`, which
//! `tests/fuzz_regressions.rs` in the root package includes as well, so `cargo test` replays the
//! seed corpus and every saved crash input through exactly the code the fuzzer runs.

pub mod checks;
