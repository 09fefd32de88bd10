//! What differs between engines and their image stores, behind one interface: which of an
//! archive's digests becomes the image's id, which archive layout it reads, where an upload is
//! copied before it is imported, and which layers it lets an upload leave out ([`Delta`]).
//! One file per store; [`detect`] picks one from the engine's own answers, so supporting the
//! next store is one new file and one line there (and a field of [`Info`] if it reads one
//! docker or podman does not yet).
//!
//! The HTTP routes are not here: they follow the engine's API (docker's or podman's), which
//! both docker stores share ([`super::api`]).

mod containerd;
mod content;
mod docker;
mod info;
mod podman;

use std::fmt;
use std::path::PathBuf;

use super::Kind;
use crate::image::describe::Image;

pub(crate) use containerd::ContainerdStore;
pub use content::ContentError;
pub(crate) use docker::ClassicStore;
pub use info::Info;
pub(crate) use podman::PodmanStore;

pub trait Store: Send + Sync {
    /// How `status` and the logs name the store.
    fn name(&self) -> &'static str;

    /// The id this store gives `image` once loaded: the digest the loader compares with the
    /// engine's `Id` and tags by.
    fn image_id<'a>(&self, image: &'a Image) -> Option<&'a str>;

    /// The digest of the config of the engine's image `id`: what `--verify` compares, since
    /// two images with one config have the same layers' content (its diffIDs) whatever their
    /// manifests say of how layers are stored. The id itself where the store names images by
    /// their config.
    fn config_of(&self, id: &str, _info: &Info) -> Result<String, StoreError> {
        Ok(id.to_owned())
    }

    /// Which archive layout it reads, so what is written into an archive on its way.
    fn reads(&self) -> Reads;

    /// The directory (in the engine's view) that holds the whole upload while it is
    /// imported, from the engine's `info` answer; why not, when it cannot be told.
    fn upload_dir(&self, info: &Info) -> Result<PathBuf, StoreError>;

    /// How the store takes an archive that leaves out layers it already holds; `None` when it
    /// is sent whole, as for a store whose readers have not been shown to accept less.
    fn delta(&self) -> Option<Delta> {
        None
    }

    /// Whether it unpacks layers compressed with zstd, given the engine's version (its
    /// `Server` header).
    fn zstd_layers(&self, _version: Option<&str>) -> ZstdLayers {
        ZstdLayers::Read
    }

    /// Whether an image exists only by its names: once its last name moves to another
    /// image, it is gone, and cannot be named again by its id. A load that may have to be
    /// undone gives such an image a name of its own first (src/commands/load/names.rs).
    fn names_hold_images(&self) -> bool {
        false
    }
}

/// What a store holds of an archive's layers, and how an upload leaves one out, by the layout
/// the store reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub holds: Holds,
    /// In a docker-archive (manifest.json), what stands for a layer file left out.
    pub docker_archive: Omit,
    /// In an OCI layout the store reads as it is, what stands for a layer blob left out.
    pub oci_layout: Omit,
    /// Whether a reduced load the store accepts may still leave an image it cannot use, which
    /// its listing then leaves out: the loader checks the listing, and sends the archive whole
    /// when the image is not there.
    pub check_listed: bool,
}

/// How the store tells that it holds an archive's layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// By the chain of diffIDs up to it (OCI image-spec's ChainID): a layer is held as the
    /// top of a stack of exactly those layers below it, which is how classic docker's layer
    /// store files them and looks them up on a load.
    Chains,
    /// By its diffID alone, wherever it sits in the stack: containers/storage finds a layer by
    /// its uncompressed digest and copies it into the new stack.
    DiffIds,
}

impl Holds {
    /// The keys a store that holds layers so tells a stack of them by, given bottom up by
    /// their diffIDs.
    pub fn keys(self, diff_ids: Vec<String>) -> Vec<String> {
        match self {
            Holds::Chains => super::chains(&diff_ids),
            Holds::DiffIds => diff_ids,
        }
    }
}

/// What an upload carries in place of a layer file the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omit {
    /// Nothing: the file's entry is left out of the tar (header, data and padding).
    Drop,
    /// The file's header with a size of 0, and no data: for a reader that checks that every
    /// file the manifest names is there before it looks at what the store holds.
    Empty,
}

/// The store behind an engine of `kind`. Only docker has two, told apart by its `GET /info`,
/// which `info` fetches (~15 ms on docker 26, so it is asked only when a store's answer is
/// needed, never on a boot where every image is present).
pub(crate) fn detect<'a, E>(
    kind: Kind,
    info: impl FnOnce() -> Result<&'a Info, E>,
) -> Result<Box<dyn Store>, E> {
    Ok(match kind {
        Kind::Podman => Box::new(PodmanStore),
        Kind::Docker if ContainerdStore::runs(info()?) => Box::new(ContainerdStore),
        Kind::Docker => Box::new(ClassicStore),
    })
}

/// What a store could not tell from the engine's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// docker's info answer named no usable `DockerRootDir`, under which both its stores
    /// keep what they import.
    NoDockerRoot,
    /// containerd's content store does not say which config an id names.
    Content(ContentError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoDockerRoot => f.write_str("docker's GET /info names no DockerRootDir"),
            StoreError::Content(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {}

/// docker's `DockerRootDir`, which both docker stores keep.
fn docker_root(info: &Info) -> Result<&PathBuf, StoreError> {
    info.docker_root.as_ref().ok_or(StoreError::NoDockerRoot)
}

/// Whether an image store unpacks layers compressed with zstd
/// (`application/vnd.oci.image.layer.v1.tar+zstd`, as `skopeo --dest-compress-format zstd`
/// writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZstdLayers {
    Read,
    /// Not by this engine, of this version (classic docker before 23.0): such layers of an OCI
    /// archive are sent decoded (src/rewrite/inflate.rs), and an archive whose zstd layers
    /// cannot be so sent fails before the end of its upload.
    Unread {
        version: String,
    },
    /// Not before a version the engine did not say.
    Unknown,
}

/// Which archive layout an image store reads, and so what is written into an archive for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Classic docker: `manifest.json` only; an OCI archive gets one.
    DockerArchive,
    /// docker's containerd image store: an OCI layout as it is, while for a docker-archive it
    /// makes a manifest up, describing a plain layer by a compressed copy it may already hold
    /// (measured: after an OCI archive with the same layers gzipped), so the image's id cannot
    /// be told beforehand. A docker-archive gets the OCI layout instead (`oci-layout`, the
    /// manifest the loader computes as [`crate::image::describe::Image::target`], `index.json`), which
    /// containerd then reads as it is: the id is that manifest's digest.
    OciLayout,
    /// podman: either.
    Either,
}
