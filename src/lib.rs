//! container-loader: loads the container images a root filesystem ships into docker or
//! podman at boot. The binary (`main.rs`) parses the command line ([`cli`]) and runs one of the
//! [`commands`]; what the fuzz targets and the bench drive is public too, and nothing else.
//!
//! The folders are layers, top to bottom; each imports only from the ones below it
//! (tests/import_cycles.rs checks both that and that no import leads back):
//!
//! - [`commands`]: `load`, `status`, `inspect`, `scan`, one folder or file each, never
//!   importing another;
//! - [`cli`]: the flag table that drives parsing and `--help`, and each command's options;
//! - `plan`: what a load will send and whether it fits: the layers the engine holds
//!   (`plan::delta`), the space check (`plan::space`), the archive's image id
//!   (`plan::verify`);
//! - [`state`]: the run on the device: lists read, the engine connected, the run directory, its
//!   lock, markers and status.json's rows;
//! - [`report`]: the journal, progress, sd_notify, stdout and the exit status;
//! - [`rewrite`]: the archive made loadable by the engine at hand, on its way to it;
//! - [`engine`]: docker's and libpod's HTTP API over the unix socket, and what differs between
//!   image stores ([`engine::store`]);
//! - [`image`]: what an archive describes: the tar walk, image descriptions, digests, platforms;
//! - [`decode`]: zstd, gzip, xz and bzip2, streamed with bounded memory, and layer-framed zstd
//!   archives read from any member on;
//! - [`input`]: what comes from outside: lists, references, archive files and their formats,
//!   bounded reads, sizes.
//!
//! A load's data flows one way: list -> reference -> engine (present?) -> archive -> delta
//! (layers the engine holds?) -> space (fits?) -> decode -> rewrite (the device's platform;
//! manifest.json for classic docker; layers left out) -> engine (load) -> engine (present!),
//! driven by [`commands::load`], and `pack` (build hosts only) writes layer-framed archives
//! that [`decode`] reads by their seek table.
//!
//! These docs are for whoever works on the loader: `make doc` builds them with the private
//! items, which the public ones link to freely.
#![forbid(unsafe_code)]
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod commands;
pub mod decode;
pub mod engine;
pub mod image;
pub mod input;
pub(crate) mod plan;
pub mod report;
pub mod rewrite;
pub mod state;
