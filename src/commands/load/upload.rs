//! Sending an archive to the engine: one upload through the decoder, the rewrite for the
//! engine's store and the space check, leaving out the layers the engine holds where its store
//! takes that; and again whole when the engine refused the reduced one or the archive needed a
//! layer left out. How an upload ended is told apart here: the archive's fault, the space
//! check's, or the engine's ([`Upload::outcome`]).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use super::confirm::archive_names;
use super::entry::Turns;
use super::error::{EntryError, Failed};
use super::names::{names_of, Asked};
use crate::cli::Load as Options;
use crate::decode::{self, DecodeError, Decoder, Frames, HoldBack, Pipelined, Progress, Unframed};
use crate::engine::requests::Requests;
use crate::engine::store::ZstdLayers;
use crate::engine::{EngineError, Held};
use crate::image::describe::{Images, Match};
use crate::image::platform::Platform;
use crate::input::archive::Archive;
use crate::input::format::Format;
use crate::input::list::Entry;
use crate::input::reference::Reference;
use crate::input::sizes::Size;
use crate::plan::delta::{self, Leaving, Opened};
use crate::plan::space::{self, Shortfall};
use crate::report::log::Log;
use crate::report::progress::EntryReport;
use crate::rewrite::{LeftOutNeeded, Loadable, Sizer, Unloadable};

impl Turns<'_> {
    /// Uploads the archive, and again whole where the engine refused it without the layers
    /// it holds. `Err` when nothing could be sent; `Ok(Err)` when the load failed.
    pub(super) fn send(
        &mut self,
        entry: &Entry,
        report: &EntryReport,
        archive: Archive,
        replacing: bool,
        asked: &RefCell<Asked>,
    ) -> Result<Result<Sent, Failed>, EntryError> {
        let (engine, options, log) = (self.engine, self.options, self.log);
        let (image, place) = (&entry.reference, entry.place().to_string());
        // The archive's unpacked size is read here (a few reads); where the engine copies it,
        // and how much room is there, is asked beside the upload (see `space::Gate`).
        let estimate = options
            .space_check
            .then(|| space::estimate(archive.format, archive.file(), archive.size));
        let (format, size) = (archive.format, archive.size);
        let mut plan = leaving(engine, &archive, options, &mut self.held, &place, log);
        // A retry reads the file already opened, from its start: the same file as the first
        // upload, whatever its name stands for by then.
        let again = plan.as_ref().and_then(|_| archive.file().try_clone().ok());
        let check_listed = plan.as_ref().is_some_and(|p| p.check_listed);
        // The file read a second time for the sizes of zstd layers sent decoded, where the
        // engine unpacks none (src/rewrite/inflate.rs).
        let unread = matches!(engine.zstd_layers(), ZstdLayers::Unread { .. });
        let sizing = unread.then(|| archive.file().try_clone().ok()).flatten();
        // A layer-framed archive's upload steps over the frames of the layers left out.
        let decoder = match plan.as_mut().and_then(|p| p.skip.take()) {
            Some((frames, holes)) => {
                let (_, _, file) = archive.into_parts();
                decode::framed(file, frames, holes, options.memory_limit)
            }
            None => decode::open(archive, options.memory_limit),
        };
        let name = || entry.archive.clone();
        let job = Job {
            engine,
            reference: image,
            asked,
            format,
            estimate,
            place: &place,
            log,
            report,
            size,
            sizing: sizing.map(|file| (file, options.memory_limit)),
        };
        let mut sent = upload(&job, decoder, plan);
        if let Some(file) = again {
            if let Some(why) = why_whole(&job, &sent, check_listed, replacing) {
                log.info(format_args!(
                    "{place}: {image}: {why}; sending {} whole",
                    entry.archive
                ));
                let decoder =
                    decode::reread(format, &file, options.memory_limit).map_err(|source| {
                        EntryError::Read {
                            archive: name(),
                            source,
                        }
                    })?;
                sent = upload(&job, decoder, None);
            }
        }
        Ok(sent.outcome(entry, image))
    }
}

/// Why an upload that left out the layers the engine holds is to be sent again whole, if it
/// is: the archive needed a layer left out, the engine refused it, or (`check_listed`) the
/// engine does not list the image it loaded. Never when the archive or the space check failed
/// the upload: a whole one would fail too. `replacing`: the engine had an image under the
/// reference before the load, whose name is not to be removed.
fn why_whole(job: &Job, sent: &Upload, check_listed: bool, replacing: bool) -> Option<String> {
    let (engine, image) = (job.engine, job.reference);
    let misjudged = sent.error.as_ref().and_then(LeftOutNeeded::find);
    let retry = (sent.error.is_none() || misjudged.is_some()) && sent.shortfall.is_none();
    if !retry {
        return None;
    }
    match (misjudged, &sent.result) {
        // Cut before the tar's end: the engine loaded nothing.
        (Some(misjudged), _) => Some(format!("the upload stopped before its end: {misjudged}")),
        (None, Err(EngineError::Refused { message })) => {
            // docker's containerd store names the image before it finds a blob missing;
            // the whole upload follows at once, so the name goes without a word.
            if !replacing {
                let _ = remove_left_name(engine, image);
            }
            Some(format!(
                "the engine refused the upload without the layers it held ({message})"
            ))
        }
        (None, Ok(carried))
            if check_listed && !listed_whole(engine, image, sent.promised.as_ref(), carried) =>
        {
            Some("the engine does not list the image loaded without the layers it held (its content is incomplete)".to_owned())
        }
        _ => None,
    }
}

/// A load that worked, as far as the engine says.
pub(super) struct Sent {
    /// The names the engine says it loaded.
    pub(super) carried: Vec<String>,
    /// What the archive described, from the walk on the way.
    pub(super) promised: Option<Images>,
    pub(super) progress: Arc<Progress>,
    pub(super) format: Format,
}

/// Whether the engine's listing shows the entry's reference and every name the archive
/// carries, each on the archive's image: docker's containerd store leaves an image whose
/// content is incomplete out of it, and a load of several images may complete some only.
/// Without a description, whether it shows one of the names the engine says it loaded.
fn listed_whole(
    engine: &dyn Requests,
    image: &Reference,
    promised: Option<&Images>,
    carried: &[String],
) -> bool {
    let Some(listing) = engine.listing() else {
        return false;
    };
    let mut names = archive_names(engine, promised);
    if names.is_empty() {
        return carried
            .iter()
            .filter_map(|name| Reference::parse(name).ok())
            .any(|name| listing.id_of(&name).is_some());
    }
    // A reference the archive does not carry gets its name after this check.
    if let Some(Match::Named(i)) = promised.map(|p| p.find(image)) {
        let id = engine.id_for(i).ok().flatten().map(str::to_owned);
        names.push((image.clone(), id));
    }
    names
        .iter()
        .all(|(name, wanted)| listing.id_of(name).map(str::to_owned) == *wanted)
}

/// What an upload can leave out of the archive, where the engine's store takes that and holds
/// some of its layers; `None` for a whole upload (why, in the verbose log).
fn leaving<'h>(
    engine: &dyn Requests,
    archive: &Archive,
    options: &Options,
    held: &'h mut Held,
    place: &str,
    log: &Log,
) -> Option<Leaving<'h>> {
    let delta = engine.store().ok()?.delta()?;
    let opened = Opened {
        format: archive.format,
        file: archive.file(),
        size: archive.size,
        frames: frames(archive, place, log),
    };
    match delta::prepare(engine, delta, held, opened, options.memory_limit) {
        Ok(leaving) => {
            if leaving.bytes.is_none() {
                log.debug(format_args!(
                    "{place}: leaving out the layer files the engine holds by their names"
                ));
            }
            Some(leaving)
        }
        Err(whole) => {
            log.debug(format_args!("{place}: sending the archive whole: {whole}"));
            None
        }
    }
}

/// The frames of a layer-framed zstd archive, whose seek table is checked; `None` for any
/// other archive, or one whose table its frames do not bear out (logged: it is decoded whole).
fn frames(archive: &Archive, place: &str, log: &Log) -> Option<Frames> {
    if archive.format != Format::Zstd {
        return None;
    }
    match Frames::read(archive.file(), archive.size) {
        Ok(frames) => Some(frames),
        Err(Unframed::Plain) => None,
        Err(why) => {
            let name = archive.name();
            log.info(format_args!("{place}: {name}: {why}; decoding it whole"));
            None
        }
    }
}

/// How one upload of an archive went.
pub(super) struct Upload {
    /// The engine's answer: the names it says it loaded, or why not.
    result: Result<Vec<String>, EngineError>,
    /// The first error reading the archive (decoder, disk, an archive that cannot be loaded).
    error: Option<io::Error>,
    /// What the archive described, from the walk on the way.
    promised: Option<Images>,
    /// The space check found the archive would not fit.
    shortfall: Option<Shortfall>,
    progress: Arc<Progress>,
    format: Format,
}

/// What every upload of one entry shares.
struct Job<'a> {
    engine: &'a dyn Requests,
    /// The entry's reference, and what the engine's names were before the tar's end.
    reference: &'a Reference,
    asked: &'a RefCell<Asked>,
    format: Format,
    estimate: Option<space::Estimate>,
    place: &'a str,
    log: &'a Log,
    report: &'a EntryReport<'a>,
    size: u64,
    /// The archive file and `--memory-limit`, for the sizes of zstd layers sent decoded.
    sizing: Option<(File, u64)>,
}

impl Upload {
    /// How the load went, as the entry sees it.
    fn outcome(self, entry: &Entry, image: &Reference) -> Result<Sent, Failed> {
        let name = || entry.archive.clone();
        // A shortfall is the cause, whatever the upload ended with: the engine may have found
        // its disk full before the check answered.
        if let Some(shortfall) = self.shortfall {
            if self.result.is_err() || self.error.is_some() {
                return Err(Failed::Aborted(EntryError::Space(shortfall)));
            }
        }
        if let Some(source) = self.error {
            // The decoder or the disk failed: the request was aborted, the engine loaded nothing.
            let unusable =
                DecodeError::find(&source).is_some() || Unloadable::find(&source).is_some();
            return Err(Failed::Aborted(match unusable {
                true => EntryError::Decode {
                    archive: name(),
                    source,
                },
                false => EntryError::Read {
                    archive: name(),
                    source,
                },
            }));
        }
        match self.result {
            Ok(carried) => Ok(Sent {
                carried,
                promised: self.promised,
                progress: self.progress,
                format: self.format,
            }),
            Err(source) => Err(Failed::Refused {
                names: names_of(image, self.promised.as_ref(), &[]),
                error: EntryError::Load {
                    archive: name(),
                    source,
                },
            }),
        }
    }
}

/// Streams the archive read by `decoder` into the engine, leaving out what `plan` says.
fn upload(job: &Job, decoder: Decoder, plan: Option<Leaving>) -> Upload {
    let Job {
        engine,
        reference,
        asked,
        format,
        estimate,
        place,
        log,
        report,
        size,
        ref sizing,
    } = *job;
    let progress = decoder.progress.clone();
    // Decoding on its own thread, overlapping the socket writes, which holds back the tail
    // until the decoder verified it; a plain tar has nothing to decode, and the thread's copy
    // would only slow it (docs/performance.md): `HoldBack` keeps its tail from a failed read.
    let stream: Box<dyn Read> = match format {
        Format::Tar => Box::new(HoldBack::new(decoder)),
        _ => Box::new(Pipelined::new(decoder)),
    };
    // What the engine unpacks is less by the files left out.
    let estimate = estimate.map(|e| space::Estimate {
        bytes: e
            .bytes
            .saturating_sub(plan.as_ref().and_then(|p| p.bytes).unwrap_or(0)),
        ..e
    });
    // OCI archives: the device's platform chosen and checked for every engine; what the
    // engine's store reads written in (src/rewrite/mod.rs); any other tar passes as it is, but for the
    // layer files a delta load leaves out. Its tar walk also notes what the archive promises
    // as it streams by: no second read, and no second walk.
    let stream = Loadable::new(stream, Platform::device(), engine.reads())
        .zstd_layers(engine.zstd_layers())
        .before_end(Box::new(move |images: &Images| {
            asked.borrow_mut().ask(engine, reference, images)
        }));
    let stream = match plan {
        Some(p) => stream.leaving_out(p.omission, p.empty),
        None => stream,
    };
    let stream = match sizing {
        Some((file, limit)) => stream.sizing(Sizer::new(format, file, *limit)),
        None => stream,
    };
    let verdict = OnceLock::new();
    let (result, body) = std::thread::scope(|scope| {
        match estimate {
            Some(estimate) => {
                let verdict = &verdict;
                scope.spawn(move || {
                    // The upload waits for a verdict at its end: there is one even if the
                    // check could not finish.
                    let _unblock = Unblock(verdict);
                    let _ = verdict.set(space::judge(engine, estimate, place, log));
                });
            }
            None => drop(verdict.set(Ok(()))),
        }
        let mut body = Guarded::new(space::Gate::new(stream, &verdict));
        let result = report.during(&progress, size, || engine.load(&mut body));
        (result, body)
    });
    let loadable = body.inner.into_inner();
    let (files, bytes) = loadable.left_out();
    if files > 0 {
        log.debug(format_args!(
            "{place}: left out {files} layer files the engine holds ({} of tar)",
            Size(bytes)
        ));
    }
    if result.is_err() && loadable.zstd_unsure() {
        log.warn(format_args!(
            "{place}: the archive's layers are compressed with zstd, which docker's classic image store before 23.0 cannot unpack, and the engine did not say its version; if it is older, save the image with gzip or uncompressed layers"
        ));
    }
    let promised = loadable.finish().ok().and_then(|c| c.images());
    Upload {
        result,
        error: body.error,
        promised,
        shortfall: verdict.get().and_then(|v| v.clone().err()),
        progress,
        format,
    }
}

/// Removes the name `image` a failed load left on an image, if any: the id it was on, and
/// whether removing it worked.
fn remove_left_name(
    engine: &dyn Requests,
    image: &Reference,
) -> Option<(String, Result<(), EngineError>)> {
    let Ok(Some(left)) = engine.image_id(image) else {
        return None;
    };
    Some((left, engine.remove(image)))
}

/// Lets an upload that waits for the space check's verdict end, should the check not finish.
struct Unblock<'a>(&'a OnceLock<Result<(), space::Shortfall>>);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        let _ = self.0.set(Ok(()));
    }
}

/// Keeps the first error the body reader returned: ureq only reports that the upload failed,
/// and the pipeline must know whether the archive or the engine was at fault.
struct Guarded<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R> Guarded<R> {
    fn new(inner: R) -> Self {
        Guarded { inner, error: None }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let told = io::Error::new(e.kind(), e.to_string());
            self.error.get_or_insert(e);
            told
        })
    }
}
