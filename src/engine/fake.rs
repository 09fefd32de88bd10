//! An engine in memory, for unit tests of the load decisions: a test sets up the names the
//! engine has (each on an image id), the store it runs, the layers it holds, and how it
//! answers each upload (load the names given, refuse, say it loaded what it did not, or fail),
//! and any request it is to fail; the fake records every request, and keeps every tar it was
//! sent, so that a test can read what was asked and what was uploaded.
//!
//! What it models: names as docker and podman keep them (one image id per name, compared in
//! their canonical form, so `app` is `docker.io/library/app:latest`), tagging that moves a
//! name, removing a name, a listing of every name, and an upload read to its end (which runs
//! whatever the uploader does before the tar's end) before it is answered. What it does not:
//! it reads nothing of what it is sent (the names an upload gives are what the test scripted,
//! not what the archive holds), images have no existence of their own beyond their names, ids
//! are whatever the test writes, and there is no HTTP, no timing and no space on a disk (the
//! upload directory cannot be told, so the space check is skipped). The ids an archive's
//! images get come from a real [`Store`], as on an engine.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Mutex;

use super::requests::Requests;
use super::store::{ClassicStore, Holds, Info, Reads, Store, StoreError, ZstdLayers};
use super::{EngineError, Held, Listing, Untold};
use crate::input::reference::{canonical, familiar, Reference};

/// How the fake answers one upload, once it has read the tar to its end.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Loads: each name now stands for its id; the answer lists the names.
    Loads(Vec<(String, String)>),
    /// Refuses the archive with `message`, after giving the names `named` their ids (docker's
    /// containerd store names an image before it finds a blob missing).
    Refuses {
        message: String,
        named: Vec<(String, String)>,
    },
    /// Says it loaded these names, and changes nothing.
    Lies(Vec<String>),
    /// The request fails as when the engine closes the connection.
    Fails,
}

/// A request, as the fake records it and as a test names one to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Listing,
    ImageId(String),
    Tag { id: String, name: String },
    Remove(String),
    Load,
    Held,
}

/// Which kind of request a test makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Listing,
    ImageId,
    Tag,
    Remove,
    Held,
}

pub(crate) struct Fake {
    store: Result<Box<dyn Store>, EngineError>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Canonical name -> image id.
    names: BTreeMap<String, String>,
    /// Image id -> its config's digest, where the store names images otherwise (the
    /// containerd store's manifests).
    configs: BTreeMap<String, String>,
    /// Keys of the layers held, as the store tells them.
    held: Vec<String>,
    answers: VecDeque<Answer>,
    failing: Vec<Fail>,
    calls: Vec<Call>,
    uploads: Vec<Vec<u8>>,
}

impl Fake {
    /// An engine on classic docker's store with no image, refusing every upload it has no
    /// answer for.
    pub(crate) fn new() -> Fake {
        Fake::on(Box::new(ClassicStore))
    }

    /// An engine on `store`.
    pub(crate) fn on(store: Box<dyn Store>) -> Fake {
        Fake {
            store: Ok(store),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("a test panicked holding the fake")
    }

    /// The engine has `name` on the image `id`.
    pub(crate) fn with_name(self, name: &str, id: &str) -> Fake {
        self.state().names.insert(canonical(name), id.to_owned());
        self
    }

    /// The engine's image `id` has the config `config` (for a store whose ids are not
    /// config digests; elsewhere the store says the id is its config).
    pub(crate) fn with_config(self, id: &str, config: &str) -> Fake {
        self.state()
            .configs
            .insert(id.to_owned(), config.to_owned());
        self
    }

    /// The engine holds the layers `keys` name (chain ids on classic docker).
    pub(crate) fn holding(self, keys: &[String]) -> Fake {
        self.state().held = keys.to_vec();
        self
    }

    /// The next upload not yet answered gets `answer`.
    pub(crate) fn answering(self, answer: Answer) -> Fake {
        self.state().answers.push_back(answer);
        self
    }

    /// Every request of kind `fail` fails from now on.
    pub(crate) fn failing(&self, fail: Fail) {
        self.state().failing.push(fail);
    }

    /// The id `name` is on now.
    pub(crate) fn id_of(&self, name: &str) -> Option<String> {
        self.state().names.get(&canonical(name)).cloned()
    }

    /// Every request so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The tars uploaded so far, in order.
    pub(crate) fn uploads(&self) -> Vec<Vec<u8>> {
        self.state().uploads.clone()
    }

    /// Records `call`; the error it fails with, if a test made such requests fail.
    fn ask(&self, call: Call, fail: Fail) -> Result<(), EngineError> {
        let mut state = self.state();
        state.calls.push(call.clone());
        match state.failing.contains(&fail) {
            true => Err(EngineError::Answer {
                what: format!("{call:?}"),
                status: 500,
                message: "failed as the test asked".to_owned(),
            }),
            false => Ok(()),
        }
    }
}

impl Requests for Fake {
    fn listing(&self) -> Option<Listing> {
        self.ask(Call::Listing, Fail::Listing).ok()?;
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, id) in &self.state().names {
            // Docker Hub names in their short form, as docker lists them.
            let listed = familiar(name).unwrap_or(name);
            by_id.entry(id.clone()).or_default().push(listed.to_owned());
        }
        let images: Vec<_> = by_id
            .into_iter()
            .map(|(id, names)| serde_json::json!({ "Id": id, "RepoTags": names }))
            .collect();
        Listing::read(serde_json::to_vec(&images).ok()?.as_slice()).ok()
    }

    fn image_id(&self, image: &Reference) -> Result<Option<String>, EngineError> {
        self.ask(Call::ImageId(image.to_string()), Fail::ImageId)?;
        Ok(self.id_of(image.as_str()))
    }

    fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let name = format!("{repo}:{tag}");
        let call = Call::Tag {
            id: id.to_owned(),
            name: name.clone(),
        };
        self.ask(call, Fail::Tag)?;
        self.state().names.insert(canonical(&name), id.to_owned());
        Ok(())
    }

    fn remove(&self, image: &Reference) -> Result<(), EngineError> {
        self.ask(Call::Remove(image.to_string()), Fail::Remove)?;
        match self.state().names.remove(&canonical(image.as_str())) {
            Some(_) => Ok(()),
            None => Err(EngineError::Answer {
                what: format!("removing {image}"),
                status: 404,
                message: "no such image".to_owned(),
            }),
        }
    }

    fn load(&self, tar: &mut dyn Read) -> Result<Vec<String>, EngineError> {
        self.state().calls.push(Call::Load);
        // Read to the end before answering, as every engine does; the tar is not held while
        // it is read, since what runs before its end asks the fake too.
        let mut body = Vec::new();
        let read = tar.read_to_end(&mut body);
        self.state().uploads.push(body);
        if let Err(e) = read {
            return Err(EngineError::Request {
                what: "uploading".to_owned(),
                source: ureq::Error::Io(e),
            });
        }
        let mut state = self.state();
        let answer = state.answers.pop_front().unwrap_or(Answer::Refuses {
            message: "the test gave the fake no answer for this upload".to_owned(),
            named: Vec::new(),
        });
        let mut name = |names: &[(String, String)]| {
            for (name, id) in names {
                state.names.insert(canonical(name), id.clone());
            }
        };
        match answer {
            Answer::Loads(names) => {
                name(&names);
                Ok(names.into_iter().map(|(n, _)| n).collect())
            }
            Answer::Refuses { message, named } => {
                name(&named);
                Err(EngineError::Refused { message })
            }
            Answer::Lies(names) => Ok(names),
            Answer::Fails => Err(EngineError::Request {
                what: "uploading: the engine closed the connection (did it stop or crash?)"
                    .to_owned(),
                source: ureq::Error::Io(io::ErrorKind::BrokenPipe.into()),
            }),
        }
    }

    fn store(&self) -> Result<&dyn Store, &EngineError> {
        self.store.as_ref().map(|s| s.as_ref())
    }

    fn reads(&self) -> Reads {
        self.store().map_or(Reads::DockerArchive, |s| s.reads())
    }

    /// The fake stands for an engine recent enough for any layer.
    fn zstd_layers(&self) -> ZstdLayers {
        ZstdLayers::Read
    }

    /// The fake has no disk: its `/info` names no directory, as a docker whose answer lacks
    /// `DockerRootDir` (the space check is then skipped, as on such an engine).
    fn upload_dir(&self) -> Result<PathBuf, Untold<'_>> {
        Err(Untold::Store(StoreError::NoDockerRoot))
    }

    /// What the test set, else what the store tells from an `/info` that names no directory:
    /// the id itself where it is the config, no answer on the containerd store.
    fn config_of(&self, id: &str) -> Result<String, Untold<'_>> {
        if let Some(config) = self.state().configs.get(id) {
            return Ok(config.clone());
        }
        let store = self.store().map_err(Untold::Asking)?;
        store.config_of(id, &Info::default()).map_err(Untold::Store)
    }

    fn held(&self, _holds: Holds, held: &mut Held) -> Result<(), EngineError> {
        self.ask(Call::Held, Fail::Held)?;
        *held = Held::of(&self.state().held);
        Ok(())
    }
}
