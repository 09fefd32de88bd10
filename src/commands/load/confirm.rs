//! After an upload the engine accepted: the entry's reference must be on the archive's image
//! (named so when the archive holds that one image without the name), and so must every name
//! the archive carries; only then does the entry count as loaded.

use super::error::EntryError;
use super::names::{self, Change};
use crate::engine::requests::Requests;
use crate::engine::short_id;
use crate::image::describe::{Images, Match};
use crate::input::list::Entry;
use crate::input::reference::Reference;
use crate::report::log::Log;

/// The names the archive gives its images, each with the id this engine gives that image
/// (where it can be told).
pub(super) fn archive_names(
    engine: &dyn Requests,
    promised: Option<&Images>,
) -> Vec<(Reference, Option<String>)> {
    let mut names = Vec::new();
    for image in promised.into_iter().flat_map(|p| p.images.iter()) {
        let id = engine.id_for(image).ok().flatten().map(str::to_owned);
        for name in &image.references {
            if let (Ok(name), Some(images)) = (Reference::parse(name), promised) {
                // One name on several images (one per platform): the device's.
                if let Match::Named(named) = images.find(&name) {
                    if std::ptr::eq(named, image) {
                        names.push((name, id.clone()));
                    }
                }
            }
        }
    }
    names
}

/// After a load that worked: every name the archive carries is on the archive's image.
pub(super) fn whole(
    engine: &dyn Requests,
    entry: &Entry,
    promised: Option<&Images>,
    readings: &[Change],
) -> Result<(), EntryError> {
    for (name, wanted) in archive_names(engine, promised) {
        let Some(wanted) = wanted else { continue };
        let reading = readings.iter().find(|r| names::same_name(&r.name, &name));
        let Some(now) = reading.map(|r| r.now.clone()) else {
            continue;
        };
        match now {
            Some(now) if now == wanted => {}
            Some(now) => {
                return Err(EntryError::NotTheArchives {
                    archive: entry.archive.clone(),
                    image: name.to_string(),
                    engine_id: short_id(&now),
                    archive_id: short_id(&wanted),
                })
            }
            None => {
                return Err(EntryError::NotPresentAfterLoad {
                    archive: entry.archive.clone(),
                    image: name.to_string(),
                    carried: vec![name.to_string()],
                })
            }
        }
    }
    Ok(())
}

/// After a load: the engine must have the entry's reference, and as the archive's image. When
/// the archive holds one image that it does not call by the reference, the image gets that
/// name, so the next boot finds it. Returns the engine's id for the reference.
pub(super) fn confirm(
    engine: &dyn Requests,
    entry: &Entry,
    promised: Option<&Images>,
    carried: Vec<String>,
    log: &Log,
) -> Result<Option<String>, EntryError> {
    let image = &entry.reference;
    let not_present = |carried| EntryError::NotPresentAfterLoad {
        archive: entry.archive.clone(),
        image: image.to_string(),
        carried,
    };
    let not_the_archives = |id: &str, wanted: &str| EntryError::NotTheArchives {
        archive: entry.archive.clone(),
        image: image.to_string(),
        engine_id: short_id(id),
        archive_id: short_id(wanted),
    };
    let has = engine.image_id(image).map_err(EntryError::Presence)?;
    let (wanted, named) = archive_image(engine, promised, image);
    let Some(wanted) = wanted.as_deref() else {
        // What the archive holds could not be told; the engine's word is all there is.
        return has.map(Some).ok_or_else(|| not_present(carried));
    };
    match has {
        Some(id) if id == wanted => return Ok(Some(id)),
        Some(id) if named => return Err(not_the_archives(&id, wanted)),
        None if named => return Err(not_present(carried)),
        _ => {}
    }
    match name_it(engine, entry, wanted, promised, log) {
        Ok(()) => {}
        Err(Some(error)) => return Err(error),
        Err(None) => return Err(not_present(carried)),
    }
    match engine.image_id(image).map_err(EntryError::Presence)? {
        Some(id) if id == wanted => Ok(Some(id)),
        Some(id) => Err(not_the_archives(&id, wanted)),
        None => Err(not_present(carried)),
    }
}

/// Gives the archive's image `wanted` the entry's reference, which the archive does not
/// carry. `Err(None)` for a digest reference, which names content, not a tag: it cannot be
/// given to an image.
fn name_it(
    engine: &dyn Requests,
    entry: &Entry,
    wanted: &str,
    promised: Option<&Images>,
    log: &Log,
) -> Result<(), Option<EntryError>> {
    let image = &entry.reference;
    let (repo, tag) = image.repository_and_tag().ok_or(None)?;
    engine.tag(wanted, repo, tag).map_err(|source| {
        Some(EntryError::Tag {
            archive: entry.archive.clone(),
            source,
        })
    })?;
    let names = promised
        .map(|p| {
            p.images
                .iter()
                .flat_map(|i| i.references.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let carries = match names.is_empty() {
        true => "no name".to_owned(),
        false => names.join(", "),
    };
    log.info(format_args!(
        "{}: {image}: tagged {} as {image} ({} carries {carries})",
        entry.place(),
        short_id(wanted),
        entry.archive
    ));
    Ok(())
}

/// The archive's image for `image` as this engine's store names it, where that can be told,
/// and whether the archive carries the name (or holds that one image without it).
pub(super) fn archive_image(
    engine: &dyn Requests,
    promised: Option<&Images>,
    image: &Reference,
) -> (Option<String>, bool) {
    let id_of = |i| engine.id_for(i).ok().flatten().map(str::to_owned);
    match promised.map(|p| p.find(image)) {
        Some(Match::Named(i)) => (id_of(i), true),
        Some(Match::Only(i)) => (id_of(i), false),
        _ => (None, false),
    }
}
