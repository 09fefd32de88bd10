//! What the commands ask of an engine, as one trait: the load decisions (presence, the retry
//! after a refused delta upload, failure classes, the transaction over names, deletions,
//! markers) take a `&dyn Requests`, so that they run against docker or podman in a run and
//! against an in-memory engine in unit tests (`fake.rs`). [`Engine`] implements it by its own
//! methods, which say what each request is on the wire.
//!
//! Connecting (which engine answers, the first listing, the lock named for its socket) stays
//! with the concrete [`Engine`]: it is not a decision about an entry.

use std::io::Read;
use std::path::PathBuf;

use super::store::{Holds, Reads, Store, ZstdLayers};
use super::{Engine, EngineError, Held, Listing, Untold};
use crate::image::describe::Image;
use crate::input::reference::Reference;

/// The requests a load makes of an engine. An expected answer is not an error: "no such
/// image" is `Ok(None)`.
pub(crate) trait Requests: Sync {
    /// Every name the engine lists with its image id; `None` if the listing cannot be had.
    fn listing(&self) -> Option<Listing>;

    /// The engine's id for `image` (`sha256:…`), `None` when it has no such image.
    fn image_id(&self, image: &Reference) -> Result<Option<String>, EngineError>;

    /// Gives the image `id` the name `repo:tag`, moving the name off any image that had it.
    fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError>;

    /// Removes the name `image`, and the image if no other name keeps it.
    fn remove(&self, image: &Reference) -> Result<(), EngineError>;

    /// Streams a tar into the engine: the names it says it loaded, or why not.
    fn load(&self, tar: &mut dyn Read) -> Result<Vec<String>, EngineError>;

    /// The engine's image store, or why it cannot be told.
    fn store(&self) -> Result<&dyn Store, &EngineError>;

    /// Which archive layout the engine reads, with a fallback when the store cannot be told.
    fn reads(&self) -> Reads;

    /// Whether the engine's store unpacks zstd layers.
    fn zstd_layers(&self) -> ZstdLayers;

    /// Where the engine copies a whole upload, or why that cannot be told.
    fn upload_dir(&self) -> Result<PathBuf, Untold<'_>>;

    /// The digest of the config of the engine's image `id`, or why it cannot be told.
    fn config_of(&self, id: &str) -> Result<String, Untold<'_>>;

    /// Brings `held` up to date with the layers the engine holds, told as `holds` says.
    fn held(&self, holds: Holds, held: &mut Held) -> Result<(), EngineError>;

    /// The id the engine gives `image` when it loads it from an archive.
    fn id_for<'a>(&self, image: &'a Image) -> Result<Option<&'a str>, &EngineError> {
        Ok(self.store()?.image_id(image))
    }
}

impl Requests for Engine {
    fn listing(&self) -> Option<Listing> {
        Engine::listing(self)
    }

    fn image_id(&self, image: &Reference) -> Result<Option<String>, EngineError> {
        Engine::image_id(self, image)
    }

    fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        Engine::tag(self, id, repo, tag)
    }

    fn remove(&self, image: &Reference) -> Result<(), EngineError> {
        Engine::remove(self, image)
    }

    fn load(&self, tar: &mut dyn Read) -> Result<Vec<String>, EngineError> {
        Engine::load(self, tar)
    }

    fn store(&self) -> Result<&dyn Store, &EngineError> {
        Engine::store(self)
    }

    fn reads(&self) -> Reads {
        Engine::reads(self)
    }

    fn zstd_layers(&self) -> ZstdLayers {
        Engine::zstd_layers(self)
    }

    fn upload_dir(&self) -> Result<PathBuf, Untold<'_>> {
        Engine::upload_dir(self)
    }

    fn config_of(&self, id: &str) -> Result<String, Untold<'_>> {
        Engine::config_of(self, id)
    }

    fn held(&self, holds: Holds, held: &mut Held) -> Result<(), EngineError> {
        Engine::held(self, holds, held)
    }

    fn id_for<'a>(&self, image: &'a Image) -> Result<Option<&'a str>, &EngineError> {
        Engine::id_for(self, image)
    }
}
