//! Classic docker: images in its own graph-driver store (overlay2, vfs), the default up to
//! docker 28. Its image id is the config digest; it loads docker-archives only, and unpacks
//! an upload under its data root before importing it.
//!
//! Its load (moby's image/tarexport/load.go, docker 20.10 to 28) unpacks the whole upload,
//! then reads manifest.json and walks each image's layers bottom up: where its layer store
//! already has the chain of diffIDs up to a layer, it takes that layer and never opens the
//! layer's file. So an upload may leave such files out (measured on docker 20.10 and 26).

use std::path::PathBuf;

use super::{Delta, Holds, Info, Omit, Reads, Store, StoreError, ZstdLayers};
use crate::image::describe::Image;

/// docker unpacks an upload into a directory here, under its data root, unless
/// `DOCKER_TMPDIR` moves it.
const UPLOAD_SUBDIR: &str = "tmp";

/// The first docker release whose classic store unpacks zstd layers.
const ZSTD_SINCE: u32 = 23;

pub(crate) struct ClassicStore;

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

    fn upload_dir(&self, info: &Info) -> Result<PathBuf, StoreError> {
        let root = super::docker_root(info)?;
        let tmp = root.join(UPLOAD_SUBDIR);
        Ok(if tmp.is_dir() { tmp } else { root.clone() })
    }

    /// docker 23.0 taught its layer unpacking zstd; docker 20.10 fails such a layer with
    /// `ApplyLayer exit status 1 stdout: stderr: archive/tar: invalid tar header` (measured;
    /// docker 26 loads it), and loads it sent decoded, which it checks against the diffID.
    fn zstd_layers(&self, version: Option<&str>) -> ZstdLayers {
        let major = version.and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        match major {
            None => ZstdLayers::Unknown,
            Some(major) if major < ZSTD_SINCE => ZstdLayers::Unread {
                version: version.unwrap_or_default().to_owned(),
            },
            Some(_) => ZstdLayers::Read,
        }
    }

    fn delta(&self) -> Option<Delta> {
        // An OCI archive is read through the manifest.json written into it: a docker-archive.
        Some(Delta {
            holds: Holds::Chains,
            docker_archive: Omit::Drop,
            oci_layout: Omit::Drop,
            check_listed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zstd_layers_from_docker_23_on() {
        let store = ClassicStore;
        assert_eq!(
            store.zstd_layers(Some("20.10.24+dfsg1")),
            ZstdLayers::Unread {
                version: "20.10.24+dfsg1".to_owned()
            }
        );
        assert_eq!(store.zstd_layers(Some("26.1.5+dfsg1")), ZstdLayers::Read);
        assert_eq!(store.zstd_layers(Some("23.0.0")), ZstdLayers::Read);
        assert_eq!(store.zstd_layers(None), ZstdLayers::Unknown);
        assert_eq!(store.zstd_layers(Some("dev")), ZstdLayers::Unknown);
    }

    #[test]
    fn cannot_tell_the_upload_directory_without_dockers_root() {
        let e = ClassicStore.upload_dir(&Info::default()).unwrap_err();
        assert_eq!(e.to_string(), "docker's GET /info names no DockerRootDir");
    }

    #[test]
    fn copies_an_upload_under_dockers_root_when_its_tmp_is_not_there() {
        let info = Info {
            docker_root: Some("/nonexistent/docker".into()),
            ..Info::default()
        };
        let dir = ClassicStore.upload_dir(&info).unwrap();
        assert_eq!(dir, PathBuf::from("/nonexistent/docker"));
    }
}
