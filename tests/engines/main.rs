//! The suites that start real engines (dockerd and podman, Debian 12's and 13's) through the
//! harness in `tests/common/`, in one test binary so that the harness is compiled once for all
//! of them. One module per suite; a test's path starts with its suite's name, so
//! `cargo test --test engines names::` runs one suite, and `cargo test --test engines --
//! docker26` one engine (that filter also picks `docker26_containerd`).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod delta;
mod endurance;
mod engine;
mod engine_archives;
mod engine_omissions;
mod faults;
#[cfg(feature = "pack")]
mod framed;
mod hostile_archives;
mod loads;
mod model;
mod names;
mod oci;
mod progress;
mod ready;
mod refuses;
mod space;
mod verify;
