//! podman (4 and 5): containers/storage. Its image id is the config digest; it loads
//! docker-archives and OCI archives, and its API service copies an upload to a temporary file
//! before importing it.
//!
//! Its copy (containers/image, podman 4.3 and 5.4 alike) asks the store for each layer by its
//! uncompressed digest before it reads the layer's blob, and takes the stored one where there
//! is one, wherever it sat in another image: so a layer whose diffID it holds need not be sent.
//! The docker-archive reader first checks that every layer file manifest.json names is in the
//! tar ("Some layer tarfiles are missing in the tarball"), so there the file stays, empty; the
//! OCI reader opens a blob only when it copies it, so there the blob is left out (measured on
//! podman 4.3 and 5.4). An empty file changes the manifest podman makes up for a docker-archive
//! (`Digest`), not the image's id.

use std::path::PathBuf;

use super::{Delta, Holds, Info, Omit, Reads, Store, StoreError};
use crate::image::describe::Image;

/// Where podman's API service copies an upload when the engine does not say: podman sets its
/// `TMPDIR` to this unless containers.conf's `image_copy_tmp_dir` or the environment says else.
const UPLOAD_DIR: &str = "/var/tmp";

pub(crate) struct PodmanStore;

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
    fn upload_dir(&self, info: &Info) -> Result<PathBuf, StoreError> {
        Ok(info
            .image_copy_tmp_dir
            .clone()
            .unwrap_or_else(|| UPLOAD_DIR.into()))
    }

    fn delta(&self) -> Option<Delta> {
        Some(Delta {
            holds: Holds::DiffIds,
            docker_archive: Omit::Empty,
            oci_layout: Omit::Drop,
            check_listed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_an_upload_where_podman_says_or_else_to_var_tmp() {
        let said = Info {
            image_copy_tmp_dir: Some("/srv/tmp".into()),
            ..Info::default()
        };
        assert_eq!(PodmanStore.upload_dir(&said), Ok("/srv/tmp".into()));
        assert_eq!(
            PodmanStore.upload_dir(&Info::default()),
            Ok(UPLOAD_DIR.into())
        );
    }
}
