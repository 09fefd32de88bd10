//! The engine's HTTP API: every route the loader asks (method, path, query) and what each
//! answer means, for docker's API and podman's libpod API side by side. Both answer alike
//! where the loader asks (the same statuses, `Id`, `RootFS.Layers`, error objects); they
//! differ in where the routes are (libpod's under `/v{version}/libpod`, whose image answers
//! give podman's own ids) and in the load's query. An expected answer is not an error: "no
//! such image" is `Ok(None)`. Another API is one more arm in [`Api`]'s matches here.

use std::collections::HashSet;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::held::{IMAGES_MAX, LAYERS_MAX};
use super::http::answer;
use super::http::Method;
use super::store::{Info, Reads};
use super::{canonical_id, short_id, EngineError, Kind, LIBPOD_FALLBACK_VERSION};
use crate::input::reference::Reference;

/// The route every engine answers to tell it is up.
pub(crate) const PING: &str = "/_ping";
/// The header in which podman's libpod API says its version, with every answer; docker's API
/// sends none, so it also tells the engines apart.
pub(crate) const LIBPOD_HEADER: &str = "Libpod-Api-Version";

/// Everything but what a validated reference may hold and HTTP paths carry as is.
const REF_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'/')
    .remove(b':')
    .remove(b'@');

/// Which API the engine is asked through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Api {
    /// docker's, which podman serves too.
    Docker,
    /// podman's own, under `root` (`/v4.3.1/libpod`).
    Libpod { root: String },
}

/// One small request: what to ask, and how to read its answer.
pub(crate) struct Request<T> {
    pub method: Method,
    pub path: String,
    /// What the request is for, in the words of its errors (`inspecting debian:12`).
    pub what: String,
    /// What the answer means: from its status and body, what was asked for, or the error.
    pub read: fn(&str, u16, &[u8]) -> Result<T, EngineError>,
}

impl Api {
    /// The API of an engine of `kind`; podman's at `libpod_version` (digits and dots).
    pub(crate) fn of(kind: Kind, libpod_version: &str) -> Api {
        match kind {
            Kind::Docker => Api::Docker,
            Kind::Podman => Api::Libpod {
                root: format!("/v{libpod_version}/libpod"),
            },
        }
    }

    /// The listing a knock asks before anything else: the one of the engine `kind` says, at
    /// the libpod version that podman 4 and 5 answer alike (the engine has not said its own
    /// yet), or docker's, which podman serves too, when it is not said.
    pub(crate) fn knock_listing(kind: Option<Kind>) -> String {
        let api = Api::of(kind.unwrap_or(Kind::Docker), LIBPOD_FALLBACK_VERSION);
        api.listing()
    }

    /// Where the image routes are: none for docker's API, the versioned prefix for libpod's.
    fn root(&self) -> &str {
        match self {
            Api::Docker => "",
            Api::Libpod { root } => root,
        }
    }

    /// Which layout to send when the store cannot be told: docker gets a manifest.json into
    /// an OCI archive (harmless where an OCI layout is read), podman reads either.
    pub(crate) fn unknown_store_reads(&self) -> Reads {
        match self {
            Api::Docker => Reads::DockerArchive,
            Api::Libpod { .. } => Reads::Either,
        }
    }

    /// `GET /images/json`: every image with its names, read as it streams in.
    pub(crate) fn listing(&self) -> String {
        format!("{}/images/json", self.root())
    }

    /// `POST /images/load`: the upload. docker's answers in one line instead of a progress
    /// stream when `quiet`; podman's has no such query and answers once, at the end.
    pub(crate) fn load(&self) -> String {
        match self {
            Api::Docker => "/images/load?quiet=1".to_owned(),
            Api::Libpod { root } => format!("{root}/images/load"),
        }
    }

    /// `GET /info`: where the engine stores images, and how.
    pub(crate) fn info(&self) -> Request<Info> {
        Request {
            method: Method::Get,
            path: format!("{}/info", self.root()),
            what: "asking where the engine stores images".to_owned(),
            read: |what, status, body| match status {
                200 => Ok(Info::read(&json(what, status, body)?)),
                _ => Err(answer::unexpected(what, status, body)),
            },
        }
    }

    /// `GET /images/{ref}/json`: the engine's id for `image`, `None` when it has none.
    pub(crate) fn image_id(&self, image: &Reference) -> Request<Option<String>> {
        Request {
            method: Method::Get,
            path: format!("{}/images/{}/json", self.root(), encode(image)),
            what: format!("inspecting {image}"),
            read: read_image_id,
        }
    }

    /// `DELETE /images/{ref}`: removes the name, and the image if no other name keeps it.
    pub(crate) fn remove(&self, image: &Reference) -> Request<()> {
        Request {
            method: Method::Delete,
            path: format!("{}/images/{}", self.root(), encode(image)),
            what: format!("removing {image}"),
            read: |what, status, body| match status {
                200 => Ok(()),
                _ => Err(answer::unexpected(what, status, body)),
            },
        }
    }

    /// `POST /images/{id}/tag?repo=&tag=`: names image `id` `repo:tag`, each percent-encoded.
    pub(crate) fn tag(&self, id: &str, repo: &str, tag: &str) -> Request<()> {
        let query = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        Request {
            method: Method::Post,
            path: format!(
                "{}/images/{}/tag?repo={}&tag={}",
                self.root(),
                query(id),
                query(repo),
                query(tag)
            ),
            what: format!("tagging {} as {repo}:{tag}", short_id(id)),
            read: |what, status, body| match status {
                200 | 201 => Ok(()),
                _ => Err(answer::unexpected(what, status, body)),
            },
        }
    }

    /// `GET /images/json` read whole: the ids of the engine's images, at most
    /// [`IMAGES_MAX`], more being an error.
    pub(crate) fn image_ids(&self) -> Request<HashSet<String>> {
        Request {
            method: Method::Get,
            path: self.listing(),
            what: "listing the engine's images".to_owned(),
            read: read_image_ids,
        }
    }

    /// `GET /images/{id}/json`: the diffIDs of image `id`, bottom up (`RootFS.Layers`); none
    /// for an image gone meanwhile or of more than [`LAYERS_MAX`] layers.
    pub(crate) fn diff_ids(&self, id: &str) -> Request<Vec<String>> {
        Request {
            method: Method::Get,
            path: format!("{}/images/{id}/json", self.root()),
            what: format!("asking which layers {} has", short_id(id)),
            read: read_diff_ids,
        }
    }
}

/// The engine whose first answer carried `libpod` (its [`LIBPOD_HEADER`]), unless `kind` says.
pub(crate) fn kind_of(kind: Option<Kind>, libpod: Option<&str>) -> Kind {
    kind.unwrap_or(match libpod {
        Some(_) => Kind::Podman,
        None => Kind::Docker,
    })
}

/// A libpod API version as it may go into a URL path: digits and dots (`5.4.2`).
pub(crate) fn is_api_version(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// An inspect answer's `Id`; 404 with the engine's own error object is "no such image", while
/// a plain 404 is a route the engine does not have.
fn read_image_id(what: &str, status: u16, body: &[u8]) -> Result<Option<String>, EngineError> {
    match status {
        200 => {
            let v = answer::parse(body).unwrap_or_default();
            match v["Id"].as_str() {
                None => Ok(None),
                Some(id) => canonical_id(id).map(Some).ok_or_else(|| {
                    let message = format!(
                        "an image id that is not sha256: and 64 hex digits: {}",
                        answer::quote(id)
                    );
                    EngineError::answer(what, status, message)
                }),
            }
        }
        404 if answer::is_engine_error(body) => Ok(None),
        _ => Err(answer::unexpected(what, status, body)),
    }
}

fn read_image_ids(what: &str, status: u16, body: &[u8]) -> Result<HashSet<String>, EngineError> {
    if status != 200 {
        return Err(answer::unexpected(what, status, body));
    }
    let ids: HashSet<String> = json(what, status, body)?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|image| canonical_id(image["Id"].as_str()?))
        .collect();
    if ids.len() > IMAGES_MAX {
        let message = format!(
            "{} images, more than the {IMAGES_MAX} whose layers are asked about",
            ids.len()
        );
        return Err(EngineError::answer(what, status, message));
    }
    Ok(ids)
}

fn read_diff_ids(what: &str, status: u16, body: &[u8]) -> Result<Vec<String>, EngineError> {
    match status {
        200 => {}
        404 => return Ok(Vec::new()),
        _ => return Err(answer::unexpected(what, status, body)),
    }
    let image = answer::parse(body).unwrap_or_default();
    let layers = image["RootFS"]["Layers"].as_array();
    let layers = layers
        .filter(|l| l.len() <= LAYERS_MAX)
        .into_iter()
        .flatten();
    // A layer that is not a sha256 digest ends the stack: nothing above it is taken.
    Ok(layers.map_while(|l| canonical_id(l.as_str()?)).collect())
}

/// The answer as JSON, within the budget of values; not JSON is the engine's error.
fn json(what: &str, status: u16, body: &[u8]) -> Result<serde_json::Value, EngineError> {
    answer::parse(body).map_err(|e| EngineError::answer(what, status, format!("not JSON: {e}")))
}

/// A validated reference, percent-encoded for a URL path.
fn encode(image: &Reference) -> String {
    utf8_percent_encode(image.as_str(), REF_ENCODE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_reference_characters_a_path_carries_and_encodes_the_rest() {
        let r = Reference::parse("localhost:5000/a_b/c-d.e:1.0").unwrap();
        assert_eq!(encode(&r), "localhost:5000/a_b/c-d.e:1.0");
        // The grammar lets no '+' through (go-digest knows no such algorithm); the encoder
        // would still escape one.
        let digest = format!("x@sha256:{}", "0".repeat(64));
        let d = Reference::parse(&digest).unwrap();
        assert_eq!(encode(&d), digest);
    }

    #[test]
    fn takes_a_libpod_api_version_only_as_digits_and_dots() {
        for good in ["4", "4.0.0", "5.4.2"] {
            assert!(is_api_version(good), "{good}");
        }
        for bad in [
            "",
            "4#frag",
            "4/../../x",
            "v4",
            ".4",
            "4 ",
            "4?x=1",
            &"1".repeat(33),
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn puts_libpods_routes_under_its_version_and_dockers_at_the_root() {
        let podman = Api::of(Kind::Podman, "5.4.2");
        assert_eq!(podman.listing(), "/v5.4.2/libpod/images/json");
        assert_eq!(podman.load(), "/v5.4.2/libpod/images/load");
        assert_eq!(podman.info().path, "/v5.4.2/libpod/info");
        assert_eq!(Api::Docker.load(), "/images/load?quiet=1");
        assert_eq!(Api::Docker.info().path, "/info");
        assert_eq!(Api::knock_listing(None), "/images/json");
        assert_eq!(
            Api::knock_listing(Some(Kind::Podman)),
            "/v4.0.0/libpod/images/json"
        );
    }

    #[test]
    fn reads_an_engine_404_as_no_such_image_and_a_plain_one_as_an_error() {
        let what = "inspecting x";
        let no_such = br#"{"message":"No such image: x:latest"}"#;
        assert_eq!(read_image_id(what, 404, no_such).unwrap(), None);
        assert!(read_image_id(what, 404, b"Not Found").is_err());
        let hex = "a".repeat(64);
        let found = format!(r#"{{"Id":"{hex}"}}"#);
        assert_eq!(
            read_image_id(what, 200, found.as_bytes()).unwrap(),
            Some(format!("sha256:{hex}"))
        );
    }
}
