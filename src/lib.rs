//! container-loader: loads the container images a root filesystem ships into docker or
//! podman at boot. The binary (`main.rs`) parses the command line and runs one of the commands
//! here; the modules are public so that the fuzz targets can drive the parsers.
//!
//! Data flows one way: [`list`] -> [`reference`] -> [`engine`] (present?) -> [`archive`] ->
//! [`space`] (fits?) -> [`decode`] -> [`docker_manifest`] (classic docker) -> [`engine`] (load)
//! -> [`engine`] (present!), driven by [`load`].
#![forbid(unsafe_code)]

pub mod archive;
pub mod cli;
pub mod decode;
pub mod docker_manifest;
pub mod engine;
pub mod inspect;
pub mod list;
pub mod load;
pub mod lock;
pub mod log;
pub mod manifest;
pub mod notify;
pub mod platform;
pub mod progress;
pub mod ready;
pub mod reference;
pub mod scan;
pub mod space;
pub mod status;
pub mod units;
