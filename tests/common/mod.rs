//! Shared harness for the integration tests: real engines on private sockets, fixture
//! archives built in memory, and a runner for the loader binary. One file a concern:
//! `system` (root, programs, temporary directories, /proc), `http` (asking an engine
//! directly), `engines` (starting, killing and restarting real engines), `fake_engine` and
//! `proxy` (a recording fake and a fault-injecting proxy), `fixtures` and `package` (archives
//! built in memory, image packages), `run` (the loader under test).
//!
//! Nothing here is skipped: the suite needs root, `dockerd`, `podman`, `zstd`, `gzip`
//! and `xz`, and it fails loudly when one of them is missing (CI installs all of them).

pub mod engines;
pub mod fake_engine;
pub mod fixtures;
pub mod http;
pub mod package;
pub mod proxy;
pub mod run;
pub mod system;

pub use container_loader_testkit::{append_file, image_config, sha256_hex};
pub use engines::*;
pub use fixtures::*;
pub use http::*;
pub use package::*;
pub use run::*;
pub use system::*;

/// Declares, for each behaviour `fn(Flavor)`, a module of the same name with one `#[test]` per
/// engine: `docker20`, `podman43`, `docker26`, `docker26_containerd`, `podman54` (so
/// `cargo test docker26_containerd` picks an engine, `cargo test behaviour::` a behaviour).
/// `on_every_engine! { behaviour; ... }` (test files use `#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! on_every_engine {
    ($($behaviour:ident;)*) => {
        $(
            mod $behaviour {
                #[test]
                fn docker20() {
                    super::$behaviour($crate::common::Flavor::Docker20)
                }
                #[test]
                fn podman43() {
                    super::$behaviour($crate::common::Flavor::Podman43)
                }
                #[test]
                fn docker26() {
                    super::$behaviour($crate::common::Flavor::Docker26)
                }
                #[test]
                fn docker26_containerd() {
                    super::$behaviour($crate::common::Flavor::Docker26Containerd)
                }
                #[test]
                fn podman54() {
                    super::$behaviour($crate::common::Flavor::Podman54)
                }
            }
        )*
    };
}
