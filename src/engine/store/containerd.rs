//! docker with the containerd image store (opt-in in docker 24-28, the default of fresh docker
//! 29 installs). Images live in containerd's content store, and an image's id is the digest of
//! its target descriptor, the manifest or index: for an OCI archive the descriptor in its
//! index.json, for a docker-archive the manifest containerd makes up (see
//! [`Image::target`], which the loader writes into a docker-archive as an OCI layout on its
//! way). `GET /images/<config digest>/json` and tagging by it answer 404 here.
//! An upload streams into containerd's content store, not under docker's data root.
//!
//! Its import (containerd 1.7 `ImportIndex`, then moby's unpack) ingests every file of the
//! upload under its digest and checks none is missing; the unpack then skips a layer whose
//! chain it has as a snapshot and reads any other from the content store by the digest the
//! manifest names, wherever it came from. So a layer file may be left out when the content
//! store has that digest: a layer of a listed image, known by its diffID, is, when that image
//! came uncompressed (as every docker-archive the loader loads does). When it came compressed
//! the snapshot may still be there and the load accepted, leaving an image whose content is
//! incomplete, which docker leaves out of its listing: hence [`Delta::check_listed`]. A load
//! refused for a blob not found leaves the name behind, which the loader removes (measured on
//! docker 26.1 with containerd 1.7).

use std::path::PathBuf;

use super::{content, Delta, Holds, Info, Omit, Reads, Store, StoreError};
use crate::image::describe::Image;
use crate::image::platform::Platform;

/// What `GET /info` says in `DriverStatus` when images are kept by a containerd snapshotter.
const DRIVER_TYPE: &str = "io.containerd.snapshotter.v1";
/// Where a containerd that dockerd starts itself keeps its content, under docker's data root.
const MANAGED_CONTAINERD_SUBDIR: &str = "containerd/daemon";
/// containerd's own root as Debian's containerd.service runs it (`root` in config.toml), which
/// dockerd uses when one runs; docker's API does not name it.
const CONTAINERD_ROOT: &str = "/var/lib/containerd";

pub(crate) struct ContainerdStore;

impl ContainerdStore {
    /// Whether a docker `GET /info` answer shows the containerd image store.
    pub(crate) fn runs(info: &Info) -> bool {
        info.driver_type.as_deref() == Some(DRIVER_TYPE)
    }
}

impl Store for ContainerdStore {
    fn name(&self) -> &'static str {
        "containerd image store"
    }

    fn image_id<'a>(&self, image: &'a Image) -> Option<&'a str> {
        image.target.as_deref()
    }

    /// An OCI layout as it is; a docker-archive is given one, since the manifest containerd
    /// would make up for it depends on what else its content store holds (see [`Reads`]).
    fn reads(&self) -> Reads {
        Reads::OciLayout
    }

    /// containerd's root: an upload is ingested into its content store.
    fn upload_dir(&self, info: &Info) -> Result<PathBuf, StoreError> {
        containerd_root(info)
    }

    /// Read from containerd's content store: the id names a manifest (or index), and docker's
    /// API gives no config digest on this store (src/engine/store/content.rs).
    fn config_of(&self, id: &str, info: &Info) -> Result<String, StoreError> {
        let root = containerd_root(info)?;
        content::config_of(&root, id, &Platform::device()).map_err(StoreError::Content)
    }

    fn delta(&self) -> Option<Delta> {
        Some(Delta {
            holds: Holds::DiffIds,
            docker_archive: Omit::Drop,
            oci_layout: Omit::Drop,
            check_listed: true,
        })
    }

    /// An image in containerd is a name record pointing at a manifest: moving its last name
    /// deletes the record, and `POST /images/{id}/tag` then answers 404 (measured on docker
    /// 26.1 when a refused load had moved a name; tests/engines/names.rs).
    fn names_hold_images(&self) -> bool {
        true
    }
}

/// The root of the containerd docker uses: the one it starts itself if there is one, else
/// the system's.
fn containerd_root(info: &Info) -> Result<PathBuf, StoreError> {
    let managed = super::docker_root(info)?.join(MANAGED_CONTAINERD_SUBDIR);
    Ok(match managed.is_dir() {
        true => managed,
        false => PathBuf::from(CONTAINERD_ROOT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_containerd_store_from_a_graph_driver_by_driver_status() {
        let containerd = serde_json::json!({
            "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]
        });
        let classic = serde_json::json!({
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]
        });
        assert!(ContainerdStore::runs(&Info::read(&containerd)));
        assert!(!ContainerdStore::runs(&Info::read(&classic)));
        assert!(!ContainerdStore::runs(&Info::default()));
    }
}
