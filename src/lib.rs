//! container-loader: loads the container images a root filesystem ships into docker or
//! podman at boot. The binary (`main.rs`) parses the command line and runs one of the commands
//! here; the modules are public so that the fuzz targets can drive the parsers.
//!
//! Data flows one way: [`list`] -> [`reference`] -> [`engine`] (present?) -> [`archive`] ->
//! [`space`] (fits?) -> [`decode`] -> [`oci`] (the device's platform; manifest.json for
//! classic docker) -> [`engine`] (load) -> [`engine`] (present!), driven by [`load`]. What
//! differs between engines and their image stores is in [`engine::store`].
#![forbid(unsafe_code)]

pub mod archive;
pub mod cli;
pub mod connect;
pub mod contents;
pub mod decode;
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
