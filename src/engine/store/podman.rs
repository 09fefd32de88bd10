//! podman (4 and 5): containers/storage. Its image id is the config digest; it loads
//! docker-archives and OCI archives, and its API service copies an upload to a temporary file
//! before importing it.

use std::path::PathBuf;

use serde_json::Value;

use super::Store;
use crate::manifest::Image;
use crate::oci::Reads;

/// Where podman's API service copies an upload when the engine does not say: podman sets its
/// `TMPDIR` to this unless containers.conf's `image_copy_tmp_dir` or the environment says else.
const UPLOAD_DIR: &str = "/var/tmp";

pub struct PodmanStore;

impl Store for PodmanStore {
    fn name(&self) -> &'static str {
        "containers-storage"
    }

    fn image_id<'a>(&self, image: &'a Image) -> Option<&'a str> {
        image.id.as_deref()
    }

    fn reads(&self) -> Reads {
        Reads::Either
    }

    /// `store.imageCopyTmpDir` of `GET /libpod/info` (podman >= 4.4 says; older does not).
    fn upload_dir(&self, info: &Value) -> Result<PathBuf, String> {
        Ok(super::dir(&info["store"]["imageCopyTmpDir"]).unwrap_or_else(|| UPLOAD_DIR.into()))
    }
}
