//! What the stores read of the engine's `GET /info` (podman's `GET /libpod/info`), taken once
//! from its answer and bounded: a directory only if absolute and no longer than Linux's
//! `PATH_MAX` (they are quoted in the space check's messages, which a hostile engine must not
//! fill with megabytes), a driver's word only if short.

use std::path::PathBuf;

use serde_json::Value;

/// Longest directory taken from an info answer (Linux's `PATH_MAX`).
const DIR_MAX: usize = 4096;
/// Longest `driver-type` taken: the values docker gives are some 30 bytes.
const DRIVER_TYPE_MAX: usize = 128;

/// The engine's info answer, as far as a store reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// docker's `DockerRootDir`, which both docker stores keep their data under.
    pub docker_root: Option<PathBuf>,
    /// docker's `driver-type` pair of `DriverStatus`: which kind of driver keeps images
    /// (`io.containerd.snapshotter.v1` for the containerd image store; graph drivers say none).
    pub driver_type: Option<String>,
    /// podman's `store.imageCopyTmpDir` (podman >= 4.4 says; older does not).
    pub image_copy_tmp_dir: Option<PathBuf>,
}

impl Info {
    /// What a store reads of an info answer; what is missing or out of bounds is `None`.
    pub(crate) fn read(info: &Value) -> Info {
        let driver_type = info["DriverStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|pair| pair[0] == "driver-type")
            .and_then(|pair| pair[1].as_str())
            .filter(|t| t.len() <= DRIVER_TYPE_MAX)
            .map(str::to_owned);
        Info {
            docker_root: dir(&info["DockerRootDir"]),
            driver_type,
            image_copy_tmp_dir: dir(&info["store"]["imageCopyTmpDir"]),
        }
    }
}

/// An absolute directory named by a string field of an info answer.
fn dir(v: &Value) -> Option<PathBuf> {
    v.as_str()
        .filter(|p| p.starts_with('/') && p.len() <= DIR_MAX)
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn takes_only_an_absolute_directory_no_longer_than_path_max() {
        assert_eq!(
            dir(&Value::from("/var/lib/docker")),
            Some("/var/lib/docker".into())
        );
        assert_eq!(dir(&Value::from("var/lib/docker")), None);
        assert_eq!(dir(&Value::from(format!("/{}", "a".repeat(DIR_MAX)))), None);
        assert_eq!(dir(&Value::from(1)), None);
    }

    #[test]
    fn reads_dockers_root_and_driver_type() {
        let info = Info::read(&json!({
            "Driver": "overlayfs",
            "DockerRootDir": "/var/lib/docker",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["driver-type", "io.containerd.snapshotter.v1"]]
        }));
        assert_eq!(info.docker_root, Some("/var/lib/docker".into()));
        assert_eq!(
            info.driver_type.as_deref(),
            Some("io.containerd.snapshotter.v1")
        );
        assert_eq!(info.image_copy_tmp_dir, None);
    }

    #[test]
    fn reads_podmans_image_copy_directory() {
        let info = Info::read(&json!({"store": {"imageCopyTmpDir": "/var/tmp"}}));
        assert_eq!(info.image_copy_tmp_dir, Some("/var/tmp".into()));
        assert_eq!(Info::read(&json!({})), Info::default());
    }
}
