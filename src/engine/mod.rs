//! The engine client: docker's and podman's HTTP API over their unix socket.
//!
//! Three questions are asked of an engine: which engine is it (the headers of its first
//! answer: `GET /_ping`, or the image listing when that is asked next anyway), does it have
//! an image (`GET /images/json` for all at once, `GET /images/{ref}/json` for one; podman's
//! under `/libpod`), and will it load this tar (`POST /images/load`); before a load, also
//! where it will write it (`GET /info`). An expected answer is not an error: "no such image"
//! is `Ok(None)`. Requests share one kept-alive connection, so presence
//! checks for many images cost one connect; an upload has one of its own, whose socket its
//! body writes to as chunks straight from the pipeline's buffer ([`http`]). The routes, and
//! what each answer means, follow the engine's API ([`api`]); what its image store decides
//! (ids, accepted layouts, where uploads go) is in [`store`]. [`Engine`] is the facade over
//! the three: finding the engine ([`connect`]), then each request as its API words it, sent
//! over [`http`].
//!
//! Every request is bounded in time, so a hung or hostile engine cannot hold the boot:
//! the knock gets what is left of `--wait` (connect, headers and body together), asked of
//! every candidate socket at once, so a silent one does not hold up the others; the other
//! small requests (presence, listing, inspect, tag, delete, info) get
//! min(`--timeout`, [`SMALL_REQUEST_MAX`]) in total; only the upload and its answer, which
//! podman sends only after the whole import, are bounded per read and per write
//! (`--timeout`). And in memory: an answer is read up to [`ANSWER_MAX`] bytes and parsed
//! within a budget of values ([`answer`]); a listing keeps only what can match an entry
//! (ids as `sha256:` + 64 hex, shared between their names, at most [`LISTING_NAMES_MAX`]
//! names of at most [`NAME_MAX`] bytes).

mod api;
mod connect;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod held;
mod http;
mod listing;
pub(crate) mod requests;
pub mod store;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::image::describe::Image;
use crate::input::reference::Reference;
use api::{Api, Request};
pub use connect::Knock;
pub use error::EngineError;
pub use held::Held;
pub(crate) use held::{chain_on, chains};
pub use http::answer;
pub use listing::Listing;
use store::{Info, Reads, Store, StoreError, ZstdLayers};

/// docker's socket when it runs as a system service.
pub(crate) const DOCKER_SOCKET: &str = "/run/docker.sock";
/// podman's socket when `podman.socket` / `podman.service` run as root.
pub(crate) const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// libpod API version used when `--engine podman` talks to an engine that does not say.
pub(crate) const LIBPOD_FALLBACK_VERSION: &str = "4.0.0";
/// Largest answer read for presence, version and load results (load answers are a few lines).
pub(crate) const ANSWER_MAX: u64 = 8 << 20;
/// Longest a request other than the upload may take in all (connect, headers, body), when
/// `--timeout` is longer: the slowest seen is podman 4.3 listing its images or answering
/// `GET /libpod/info` (~0.2 s), so 30 s means a hung engine, not a busy one.
pub(crate) const SMALL_REQUEST_MAX: Duration = Duration::from_secs(30);
/// Most names kept from one listing. A device has tens of images; names beyond this are not
/// lost, only asked about one by one, as every name the listing does not show is.
pub(crate) const LISTING_NAMES_MAX: usize = 10_000;
/// Longest name kept from a listing or a load answer: longer than any reference the list
/// accepts (255 for the name, 128 for the tag), so such a name could never match an entry.
pub(crate) const NAME_MAX: usize = 512;
/// Most names kept from one load answer (an archive names a few images).
const LOADED_NAMES_MAX: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        })
    }
}

pub struct Engine {
    http: http::Client,
    /// Where each request goes and how its answer is read; follows `kind`.
    api: Api,
    pub kind: Kind,
    pub socket: PathBuf,
    /// The engine's version as its `Server` header says it (`26.1.5+dfsg1`).
    pub version: Option<String>,
    /// A `Libpod-Api-Version` header that was not a version (digits and dots), quoted, and
    /// so not used in URLs: for the caller to log.
    pub ignored_api_version: Option<String>,
    /// The listing the knock got ([`Knock::Listing`]).
    first_listing: Option<Listing>,
    /// `GET /info` (`/libpod/info`), asked once when first needed: podman takes ~0.2 s to
    /// answer, docker 26 ~15 ms, and a boot that finds every image present needs neither.
    info: OnceLock<Result<Info, EngineError>>,
    store: OnceLock<Box<dyn Store>>,
}

/// Why the engine's store cannot tell what was asked of it (where an upload is copied, which
/// config an image id names).
#[derive(Debug)]
pub enum Untold<'a> {
    /// Asking the engine about its store failed.
    Asking(&'a EngineError),
    /// Its answer, or what it keeps on disk, does not say.
    Store(StoreError),
}

impl fmt::Display for Untold<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untold::Asking(e) => e.fmt(f),
            Untold::Store(e) => e.fmt(f),
        }
    }
}

impl Engine {
    /// The listing that answered the knock ([`Knock::Listing`]), once; `None` if the knock was
    /// a ping, the listing could not be read, or it was taken already.
    pub fn first_listing(&mut self) -> Option<Listing> {
        self.first_listing.take()
    }

    /// The engine's image store, told from `GET /info` the first time it is asked.
    pub fn store(&self) -> Result<&dyn Store, &EngineError> {
        if let Some(store) = self.store.get() {
            return Ok(store.as_ref());
        }
        let detected = store::detect(self.kind, || self.info())?;
        Ok(self.store.get_or_init(|| detected).as_ref())
    }

    /// `docker 26.1.5+dfsg1, containerd image store`: what `status` and `--verbose` say.
    pub fn describe(&self) -> String {
        let version = self.version.as_deref().unwrap_or("(version unknown)");
        let store = match self.store() {
            Ok(store) => store.name().to_owned(),
            Err(e) => format!("store unknown: {e}"),
        };
        format!("{} {version}, {store}", self.kind)
    }

    /// The id the engine gives `image` when it loads it from an archive: the config digest, or
    /// on docker's containerd image store the manifest digest.
    pub fn id_for<'a>(&self, image: &'a Image) -> Result<Option<&'a str>, &EngineError> {
        Ok(self.store()?.image_id(image))
    }

    /// Which archive layout the engine's store reads; when the store cannot be told, what its
    /// API's engines read whichever store they have.
    pub fn reads(&self) -> Reads {
        let fallback = self.api.unknown_store_reads();
        self.store().map_or(fallback, |s| s.reads())
    }

    /// Whether the engine's store unpacks zstd layers; a store that cannot be told is left
    /// to say so itself.
    pub fn zstd_layers(&self) -> ZstdLayers {
        self.store()
            .map_or(ZstdLayers::Read, |s| s.zstd_layers(self.version.as_deref()))
    }

    /// Where the engine copies a whole upload (its view of the filesystem), or why that
    /// cannot be told.
    pub fn upload_dir(&self) -> Result<PathBuf, Untold<'_>> {
        let store = self.store().map_err(Untold::Asking)?;
        let info = self.info().map_err(Untold::Asking)?;
        store.upload_dir(info).map_err(Untold::Store)
    }

    /// The digest of the config of the engine's image `id` ([`Store::config_of`]).
    pub fn config_of(&self, id: &str) -> Result<String, Untold<'_>> {
        let store = self.store().map_err(Untold::Asking)?;
        let info = self.info().map_err(Untold::Asking)?;
        store.config_of(id, info).map_err(Untold::Store)
    }

    /// `GET /info` or `GET /libpod/info`, asked once.
    fn info(&self) -> Result<&Info, &EngineError> {
        self.info.get_or_init(|| self.ask(self.api.info())).as_ref()
    }

    /// Sends a small `request` and reads its answer as its route says.
    fn ask<T>(&self, request: Request<T>) -> Result<T, EngineError> {
        let (status, body) = self
            .http
            .exchange(request.method, &request.path, &request.what)?;
        (request.read)(&request.what, status, &body)
    }

    /// Every name the engine lists with its image id, from one request: docker's `RepoTags`
    /// (`GET /images/json`), podman's `Names` (`GET /libpod/images/json`), read as it streams
    /// in ([`Listing`]). `None` if the listing fails or cannot be read; the caller then asks
    /// per image, as it does for every name not listed here.
    pub fn listing(&self) -> Option<Listing> {
        self.http
            .stream(&self.api.listing(), |answer| Listing::read(answer).ok())
            .flatten()
    }

    /// The engine's id for `image` (`sha256:…`), `None` when it has no such image.
    pub fn image_id(&self, image: &Reference) -> Result<Option<String>, EngineError> {
        self.ask(self.api.image_id(image))
    }

    /// Removes the name `image` (`DELETE /images/{ref}`), and the image if no other name
    /// keeps it, as `docker rmi` does without `--force`.
    pub fn remove(&self, image: &Reference) -> Result<(), EngineError> {
        self.ask(self.api.remove(image))
    }

    /// Gives the image `id` the name `repo:tag` (`POST /images/{id}/tag`), moving the name off
    /// any image that had it, as `docker tag` does. `repo` and `tag` come from a validated
    /// reference ([`Reference::repository_and_tag`]) and are percent-encoded in the query.
    pub fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        self.ask(self.api.tag(id, repo, tag))
    }

    /// Streams a tar into the engine. Returns what the engine says it loaded. If `tar` fails,
    /// the request is aborted before its last chunk, so the engine loads nothing.
    pub fn load(&self, tar: &mut dyn Read) -> Result<Vec<String>, EngineError> {
        self.http.upload(&self.api.load(), tar)
    }
}

/// `sha256:` + 64 lower-case hex, whether the engine said it so (docker) or gave the bare hex
/// (podman); `None` for anything else, which no engine gives an image: such an id is never
/// kept, logged or put in a URL.
pub(crate) fn canonical_id(id: &str) -> Option<String> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    let digest = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    digest.then(|| format!("sha256:{hex}"))
}

/// `sha256:0123456789ab`: as much of an id as a log line needs, like `docker images` shows.
pub(crate) fn short_id(id: &str) -> String {
    let (algorithm, digest) = id.split_once(':').unwrap_or(("sha256", id));
    format!("{algorithm}:{}", short_hex(digest))
}

/// `0123456789ab`: the first 12 digits of an id, without `sha256:`, for a table's column.
pub(crate) fn short_hex(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_sha256_ids_and_gives_podmans_bare_hex_the_prefix() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(canonical_id(&hex), Some(format!("sha256:{hex}")));
        assert_eq!(
            canonical_id(&format!("sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        for bad in [
            &hex[1..],
            &format!("{hex}0"),
            &hex.to_uppercase(),
            &format!("sha512:{hex}"),
            &format!("sha256:{}", &hex[..63]),
            "",
        ] {
            assert_eq!(canonical_id(bad), None, "{bad}");
        }
    }
}
