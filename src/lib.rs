//! container-loader: loads the container images a root filesystem ships into docker or
//! podman at boot. The binary (`main.rs`) parses the command line ([`cli`]) and runs one of the
//! commands here; the modules are public so that the fuzz targets can drive the parsers.
//!
//! Three layers, each importing only from the ones below it (tests/import_cycles.rs checks
//! that no import leads back):
//!
//! - commands, one file each, never importing another: [`load`], [`status`], [`inspect`],
//!   [`scan`];
//! - what several commands share: [`exit`] (the exit status), [`entries`] (the lists read),
//!   [`connect`], [`row`] (an entry's state and row, status.json's format), [`verify`] (the
//!   archive's image id), [`contents`] (what an archive holds), [`ready`] (status.json and the
//!   markers, with [`marker`], [`rundir`] and [`lock`]), and the reporting: [`log`],
//!   [`progress`], [`notify`], [`stdout`];
//! - the core: [`list`], [`bounded`] (a whole file read within a bound), [`reference`](mod@reference), [`archive`], [`space`], [`decode`], [`manifest`],
//!   [`platform`], [`oci`], [`engine`], [`delta`] (what an upload can leave out), [`units`].
//!
//! A load's data flows one way: [`list`] -> [`reference`](mod@reference) -> [`engine`] (present?) ->
//! [`archive`] -> [`delta`] (layers the engine holds?) -> [`space`] (fits?) -> [`decode`] ->
//! [`oci`] (the device's platform; manifest.json for classic docker; layers left out) ->
//! [`engine`] (load) -> [`engine`] (present!), driven by
//! [`load`]. What differs between engines and their image stores is in [`engine::store`]; what
//! differs between archive formats is in [`decode`].
#![forbid(unsafe_code)]

pub mod archive;
pub mod bounded;
pub mod cli;
pub mod connect;
pub mod contents;
pub mod decode;
pub mod delta;
pub mod engine;
pub mod entries;
pub mod exit;
pub mod inspect;
pub mod list;
pub mod load;
pub mod lock;
pub mod log;
pub mod manifest;
pub mod marker;
pub mod names;
pub mod notify;
pub mod oci;
pub mod platform;
pub mod progress;
pub mod ready;
pub mod reference;
pub mod row;
pub mod rundir;
pub mod scan;
pub mod space;
pub mod status;
pub mod stdout;
pub mod units;
pub mod verify;
