//! Classic docker: images in its own graph-driver store (overlay2, vfs), the default up to
//! docker 28. Its image id is the config digest; it loads docker-archives only, and unpacks
//! an upload under its data root before importing it.

use std::path::PathBuf;

use serde_json::Value;

use super::Store;
use crate::manifest::Image;
use crate::oci::Reads;

/// docker unpacks an upload into a directory here, under its data root, unless
/// `DOCKER_TMPDIR` moves it.
const UPLOAD_SUBDIR: &str = "tmp";

pub struct ClassicStore;

impl Store for ClassicStore {
    fn name(&self) -> &'static str {
        "classic image store"
    }

    fn image_id<'a>(&self, image: &'a Image) -> Option<&'a str> {
        image.id.as_deref()
    }

    /// It reads manifest.json and nothing else: `open .../blobs/json: no such file` for an
    /// OCI archive (docker 20.10 and 26, measured).
    fn reads(&self) -> Reads {
        Reads::DockerArchive
    }

    fn upload_dir(&self, info: &Value) -> Result<PathBuf, String> {
        let root = super::docker_root(info)?;
        let tmp = root.join(UPLOAD_SUBDIR);
        Ok(if tmp.is_dir() { tmp } else { root })
    }
}
