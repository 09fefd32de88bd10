//! A load as a transaction over names.
//!
//! Loading an archive moves names: the engine gives each name the archive carries to the image
//! the archive holds under it, taking it off whatever image had it. That is the point of a load
//! that works. One that fails must leave the names as they were, and the engines do not all
//! see to it: docker's containerd image store names the images of an archive before it unpacks
//! them, and keeps the names when unpacking then fails, on a new image that cannot be used.
//! A load that "works" but ends with an image that is not the archive's under a name has the
//! same effect. The next boot would find the names and skip the entries, and the units waiting
//! for the images would start on an image that is not whole or not theirs.
//!
//! So the loader asks the engine what each name the archive carries stands for just before the
//! engine gets the tar's end ([`Asked`], called from the upload's tar walk, when the names are
//! known and nothing is loaded yet: every engine reads an archive to its end first). After the
//! load it asks again ([`read_back`]). A name whose image changed is a [`Change`]; when the load
//! is to be undone, [`restore`] puts each changed name back on the image it was on, or removes
//! it where it was on none. On docker's containerd store an image exists only by its names, so
//! an image about to lose one gets a keeper name of its own first ([`KEEPER_REPOSITORY`]), which
//! keeps it there to be named again, and which goes when the load ends.
//!
//! Where the walk could not describe the archive, what a name stood for is taken from the
//! presence check (the entry's own reference) and the engine's listing as of the run's last
//! load ([`Before`]); a name the listing does not show (podman spells some names its own way)
//! counts as having been on no image only when the image it is on now is one the listing did
//! not hold: an image that the load created.

use crate::engine::requests::Requests;
use crate::engine::{short_hex, short_id, EngineError, Listing};
use crate::image::describe::Images;
use crate::input::reference::{canonical, Reference};
use crate::report::log::Log;

/// The repository of the keeper names: the tag is the image's id in hex. One left by a loader
/// killed mid-load is removed by the next load on that engine ([`sweep`]).
pub const KEEPER_REPOSITORY: &str = "localhost/container-loader-keep";

/// Removes the keeper names `listing` shows: left by a loader that did not end its load (killed,
/// or its engine restarted). Their images are then as a load that ended would have left them.
pub fn sweep(engine: &dyn Requests, listing: &Listing, log: &Log) {
    let prefix = format!("{KEEPER_REPOSITORY}:");
    let left: Vec<Reference> = listing
        .names_starting_with(&prefix)
        .filter_map(|name| Reference::parse(name).ok())
        .collect();
    for keeper in left {
        match engine.remove(&keeper) {
            Ok(()) => log.info(format_args!(
                "removed {keeper}, left by a load that did not end"
            )),
            Err(e) => log.warn(format_args!(
                "cannot remove {keeper}, left by a load that did not end: {e}; remove it by hand (docker rmi {keeper})"
            )),
        }
    }
}

/// What the engine's names stood for just before an upload.
pub struct Before<'a> {
    /// The names the archive carries, each with the id the engine gave it just before the
    /// tar's end (`None`: on no image); empty when the walk could not describe the archive.
    pub asked: &'a [(Reference, Option<String>)],
    /// The engine's listing, taken since the run's last load (`None` if it could not be read).
    pub listing: Option<&'a Listing>,
    /// The entry's own reference, and the id the presence check found for it (`None`: absent).
    pub reference: (&'a Reference, Option<String>),
}

/// The names an archive carries as the engine had them just before the tar's end reached it,
/// and the keeper names given to their images.
pub struct Asked {
    pub names: Vec<(Reference, Option<String>)>,
    /// Whether the engine's store needs keeper names ([`Store::names_hold_images`]).
    ///
    /// [`Store::names_hold_images`]: crate::engine::store::Store::names_hold_images
    pub keep: bool,
    keepers: Vec<Reference>,
}

impl Asked {
    /// Nothing asked yet, on `engine`'s store.
    pub fn new(engine: &dyn Requests) -> Asked {
        Asked {
            names: Vec::new(),
            keep: engine.store().is_ok_and(|s| s.names_hold_images()),
            keepers: Vec::new(),
        }
    }

    /// Asks the engine for `reference` and each name `images` carries; where the store needs
    /// it, gives each image found a keeper name. A name the engine cannot be asked about is
    /// left out.
    pub fn ask(&mut self, engine: &dyn Requests, reference: &Reference, images: &Images) {
        let carried = images.images.iter().flat_map(|i| i.references.iter());
        let names = std::iter::once(reference.clone())
            .chain(carried.filter_map(|name| Reference::parse(name).ok()));
        for name in names {
            let known = self.names.iter().any(|(n, _)| same_name(n, &name));
            if known || name.as_str().contains('@') {
                continue;
            }
            if let Ok(id) = engine.image_id(&name) {
                self.names.push((name, id));
            }
        }
        if self.keep {
            self.keep_images(engine);
        }
    }

    /// Gives each image a name is on a keeper name, so that it stays to be named again.
    fn keep_images(&mut self, engine: &dyn Requests) {
        let mut ids: Vec<&String> = self
            .names
            .iter()
            .filter_map(|(_, id)| id.as_ref())
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let tag = id.strip_prefix("sha256:").unwrap_or(id);
            let Ok(keeper) = Reference::parse(&format!("{KEEPER_REPOSITORY}:{tag}")) else {
                continue;
            };
            if engine.tag(id, KEEPER_REPOSITORY, tag).is_ok() {
                self.keepers.push(keeper);
            }
        }
    }

    /// Removes the keeper names (the load is over); a failure is logged.
    pub fn let_go(&mut self, engine: &dyn Requests, place: &str, log: &Log) {
        for keeper in self.keepers.drain(..) {
            if let Err(e) = engine.remove(&keeper) {
                let id = keeper.as_str().rsplit(':').next().unwrap_or_default();
                log.warn(format_args!(
                    "{place}: cannot remove the name {keeper} kept on {} during the load: {e}; remove it by hand (docker rmi {keeper})",
                    short_hex(id)
                ));
            }
        }
    }
}

/// Where a name stood before the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Was {
    /// On this image.
    On(String),
    /// On no image.
    Nowhere,
    /// Not known: the listing did not show it and the image it is on now was there before.
    Unknown,
}

/// A name read back after a load: where it was, and the image it is on now (`None`: on none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: Reference,
    pub was: Was,
    pub now: Option<String>,
}

impl Was {
    /// Where a name on `id` (`None`: on no image) was.
    fn of(id: &Option<String>) -> Was {
        match id {
            Some(id) => Was::On(id.clone()),
            None => Was::Nowhere,
        }
    }
}

impl Change {
    /// Whether the load moved the name: it is not where it was (as far as that is known).
    pub fn moved(&self) -> bool {
        match (&self.was, &self.now) {
            (Was::On(id), Some(now)) => id != now,
            (Was::Nowhere, None) | (Was::Unknown, _) => false,
            _ => true,
        }
    }
}

impl Before<'_> {
    /// Where `name` stood, as far as this snapshot tells; `now` is the image it is on now.
    fn was(&self, name: &Reference, now: Option<&str>) -> Was {
        if let Some((_, id)) = self.asked.iter().find(|(n, _)| same_name(n, name)) {
            return Was::of(id);
        }
        let (reference, id) = &self.reference;
        if same_name(name, reference) {
            return Was::of(id);
        }
        let Some(listing) = self.listing else {
            return Was::Unknown;
        };
        if let Some(id) = listing.id_of(name) {
            return Was::On(id.to_owned());
        }
        match now {
            // Not on an image the listing held: on one this load made, so it was on none.
            Some(now) if !listing.holds_id(now) => Was::Nowhere,
            Some(_) => Was::Unknown,
            None => Was::Nowhere,
        }
    }
}

/// Whether two references name the same image as the engines read them.
pub fn same_name(a: &Reference, b: &Reference) -> bool {
    canonical(a.as_str()) == canonical(b.as_str())
}

/// Asks the engine for each of `names` (digest references and repeats left out): where each
/// is now, and where `before` says it was. A name the engine could not be asked about is
/// reported to `log` and left out.
pub fn read_back(
    engine: &dyn Requests,
    before: &Before,
    names: &[Reference],
    place: &str,
    log: &Log,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut seen: Vec<&Reference> = Vec::new();
    for name in names {
        if name.as_str().contains('@') || seen.iter().any(|s| same_name(s, name)) {
            continue;
        }
        seen.push(name);
        let now = match engine.image_id(name) {
            Ok(now) => now,
            Err(e) => {
                log.warn(format_args!(
                    "{place}: cannot tell which image {name} is after the load: {e}"
                ));
                continue;
            }
        };
        let was = before.was(name, now.as_deref());
        changes.push(Change {
            name: name.clone(),
            was,
            now,
        });
    }
    changes
}

/// Undoes the moves among `changes`: each name goes back on the image it was on, or is removed
/// where it was on none. Each step is logged under `place`.
pub fn restore(engine: &dyn Requests, changes: &[Change], place: &str, log: &Log) {
    for change in changes.iter().filter(|c| c.moved()) {
        let name = &change.name;
        let undone = match &change.was {
            Was::On(id) => put_back(engine, name, id),
            Was::Nowhere => engine.remove(name),
            Was::Unknown => continue,
        };
        match undone {
            Ok(()) => log.warn(format_args!(
                "{place}: {name}: the failed load had moved it {}; {}",
                moved_text(change),
                match &change.was {
                    Was::On(id) => format!("put back on {}", short_id(id)),
                    _ => "removed, as it was on no image before".to_owned(),
                }
            )),
            Err(e) => log.error(format_args!(
                "{place}: {name}: the failed load moved it {}, and undoing that failed: {e}; {}",
                moved_text(change),
                by_hand(change)
            )),
        }
    }
}

/// After a load that worked: removes each name the engine gave the loaded image `id` beyond
/// `asked` (the entry's reference and the names the archive carries), where it was on no
/// image before: podman makes `localhost/v1:latest` of an OCI ref.name that is a bare tag
/// (`v1`), which names no image. A name that was there before stays, and the log says why.
/// A name removed is on no image in `changes` too: the load did not move it.
pub fn drop_unasked(
    engine: &dyn Requests,
    changes: &mut [Change],
    (asked, id): (&[Reference], &str),
    place: &str,
    log: &Log,
) {
    let unasked = changes
        .iter_mut()
        .filter(|c| !asked.iter().any(|a| spelling_of(&c.name, a)))
        .filter(|c| !is_id(&c.name, id));
    for change in unasked {
        let name = &change.name;
        if change.now.is_none() && change.was == Was::Nowhere {
            // docker's containerd store answers a bare tag with `Loaded image: v1:latest` and
            // keeps `v1` as an image name of its own, which every docker route reads as
            // docker.io/library/v1:latest: not found, nor removed (measured on docker 26).
            log.info(format_args!(
                "{place}: {name}: the engine says it loaded it but finds no image by that name; kept: the engine names the image by the archive's bare tag in a way its API can neither find nor remove"
            ));
            continue;
        }
        if change.now.as_deref() != Some(id) {
            continue;
        }
        let why = match &change.was {
            Was::Nowhere => match engine.remove(name) {
                Ok(()) => {
                    change.now = None;
                    log.info(format_args!(
                        "{place}: {name}: removed: the engine gave it to the loaded image, and neither the list nor the archive names it"
                    ));
                    continue;
                }
                Err(e) => format!("removing it failed: {e}"),
            },
            Was::On(was) if was == id => "it was on this image before".to_owned(),
            Was::On(was) => format!("it was on {} before", short_id(was)),
            Was::Unknown => "whether it was there before cannot be told".to_owned(),
        };
        log.info(format_args!(
            "{place}: {name}: the engine gave it to the loaded image, though neither the list nor the archive names it; kept: {why}"
        ));
    }
}

/// Whether `name` is `asked` as the engines spell it: podman stores a short name without a
/// registry (`debian:bookworm`) as `localhost/debian:bookworm`.
fn spelling_of(name: &Reference, asked: &Reference) -> bool {
    let text = asked.as_str();
    let tagged = match text
        .rsplit_once('/')
        .map_or(text, |(_, last)| last)
        .contains(':')
    {
        true => text.to_owned(),
        false => format!("{text}:latest"),
    };
    same_name(name, asked) || name.as_str() == format!("localhost/{tagged}")
}

/// Whether `name` is the image `id` itself, as podman reports an image loaded without a name
/// (`sha256:<hex>`, which podman resolves to the image, and which removing would remove the
/// image).
fn is_id(name: &Reference, id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    let text = name.as_str();
    let bare = text.strip_suffix(":latest").unwrap_or(text);
    let bare = bare.strip_prefix("sha256:").unwrap_or(bare);
    bare.len() >= 12 && hex.starts_with(bare)
}

/// "from A to B", for a change whose name is already said.
fn moved_text(change: &Change) -> String {
    let was = match &change.was {
        Was::On(id) => short_id(id),
        Was::Nowhere => "no image".to_owned(),
        Was::Unknown => "an image not known".to_owned(),
    };
    let now = change
        .now
        .as_deref()
        .map_or("no image".to_owned(), short_id);
    format!("from {was} to {now}")
}

/// What an operator types to do what [`restore`] could not.
fn by_hand(change: &Change) -> String {
    match &change.was {
        Was::On(id) => format!("put it back by hand (docker tag {} {})", id, change.name),
        _ => format!("remove it by hand (docker rmi {})", change.name),
    }
}

/// Gives `name` back to the image `id`.
fn put_back(engine: &dyn Requests, name: &Reference, id: &str) -> Result<(), EngineError> {
    match name.repository_and_tag() {
        Some((repo, tag)) => engine.tag(id, repo, tag),
        // Digest references are left out by read_back: they name content, not a place.
        None => Ok(()),
    }
}

/// Every name the load may have moved: the entry's own, those the archive carries, and those
/// the engine says it loaded.
pub(super) fn names_of(
    image: &Reference,
    promised: Option<&Images>,
    carried: &[String],
) -> Vec<Reference> {
    let archive = promised
        .into_iter()
        .flat_map(|p| p.images.iter())
        .flat_map(|i| i.references.iter());
    std::iter::once(image.clone())
        .chain(
            archive
                .chain(carried.iter())
                .filter_map(|name| Reference::parse(name).ok()),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::Fake;

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const NEW: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn the_entrys_own_reference_was_where_the_presence_check_found_it() {
        let listing = Listing::of(&[("app:1", B)]);
        let app = reference("app:1");
        let before = Before {
            asked: &[],
            listing: Some(&listing),
            reference: (&app, Some(A.to_owned())),
        };
        assert_eq!(before.was(&app, Some(NEW)), Was::On(A.to_owned()));
    }

    #[test]
    fn a_listed_name_was_on_its_listed_image() {
        let listing = Listing::of(&[("app:shared", B)]);
        let app = reference("app:1");
        let before = Before {
            asked: &[],
            listing: Some(&listing),
            reference: (&app, None),
        };
        let shared = reference("docker.io/library/app:shared");
        assert_eq!(before.was(&shared, Some(NEW)), Was::On(B.to_owned()));
    }

    #[test]
    fn an_unlisted_name_on_a_new_image_was_on_none() {
        let listing = Listing::of(&[("other:1", B)]);
        let app = reference("app:1");
        let before = Before {
            asked: &[],
            listing: Some(&listing),
            reference: (&app, None),
        };
        assert_eq!(before.was(&reference("app:2"), Some(NEW)), Was::Nowhere);
    }

    #[test]
    fn an_unlisted_name_on_an_image_that_was_there_is_not_known() {
        let listing = Listing::of(&[("other:1", B)]);
        let app = reference("app:1");
        let before = Before {
            asked: &[],
            listing: Some(&listing),
            reference: (&app, None),
        };
        assert_eq!(before.was(&reference("app:2"), Some(B)), Was::Unknown);
    }

    #[test]
    fn without_a_listing_only_the_entrys_reference_is_known() {
        let app = reference("app:1");
        let before = Before {
            asked: &[],
            listing: None,
            reference: (&app, None),
        };
        assert_eq!(before.was(&app, Some(NEW)), Was::Nowhere);
        assert_eq!(before.was(&reference("app:2"), Some(NEW)), Was::Unknown);
    }

    #[test]
    fn a_name_asked_before_the_tars_end_was_where_the_engine_said() {
        let listing = Listing::of(&[("app:2", B)]);
        let (app, two) = (reference("app:1"), reference("app:2"));
        let asked = [(two.clone(), Some(A.to_owned()))];
        let before = Before {
            asked: &asked,
            listing: Some(&listing),
            reference: (&app, None),
        };
        assert_eq!(before.was(&two, Some(NEW)), Was::On(A.to_owned()));
    }

    /// Runs [`drop_unasked`] for an image `NEW` loaded under `app:1` on `engine`: the
    /// changes as it leaves them.
    fn dropped(engine: &Fake, changes: Vec<Change>) -> Vec<Change> {
        let mut changes = changes;
        let asked = [reference("app:1")];
        let log = Log::new(-1, false);
        drop_unasked(engine, &mut changes, (&asked, NEW), "l:1", &log);
        changes
    }

    fn change(name: &str, was: Was, now: Option<&str>) -> Change {
        Change {
            name: reference(name),
            was,
            now: now.map(str::to_owned),
        }
    }

    #[test]
    fn a_name_the_engine_made_on_the_loaded_image_is_removed() {
        let engine = Fake::new()
            .with_name("app:1", NEW)
            .with_name("localhost/v1:latest", NEW);
        let changes = dropped(
            &engine,
            vec![
                change("app:1", Was::Nowhere, Some(NEW)),
                change("localhost/v1:latest", Was::Nowhere, Some(NEW)),
            ],
        );
        assert_eq!(engine.id_of("localhost/v1:latest"), None);
        assert_eq!(engine.id_of("app:1"), Some(NEW.to_owned()));
        assert!(!changes[1].moved(), "removed: not moved");
    }

    #[test]
    fn the_loaded_images_id_as_the_engine_reports_it_is_no_name_to_remove() {
        let engine = Fake::new().with_name(NEW, NEW);
        dropped(&engine, vec![change(NEW, Was::Nowhere, Some(NEW))]);
        assert_eq!(engine.id_of(NEW), Some(NEW.to_owned()));
    }

    #[test]
    fn a_short_name_as_podman_spells_it_is_the_name_asked_for() {
        let engine = Fake::new().with_name("localhost/app:1", NEW);
        dropped(
            &engine,
            vec![change("localhost/app:1", Was::Nowhere, Some(NEW))],
        );
        assert_eq!(engine.id_of("localhost/app:1"), Some(NEW.to_owned()));
    }

    #[test]
    fn a_name_not_asked_for_that_was_there_before_stays() {
        let engine = Fake::new()
            .with_name("app:1", NEW)
            .with_name("localhost/v1:latest", NEW);
        for was in [Was::On(B.to_owned()), Was::On(NEW.to_owned()), Was::Unknown] {
            dropped(&engine, vec![change("localhost/v1:latest", was, Some(NEW))]);
            assert_eq!(engine.id_of("localhost/v1:latest"), Some(NEW.to_owned()));
        }
    }

    #[test]
    fn a_change_says_where_the_name_went() {
        let change = Change {
            name: reference("app:1"),
            was: Was::On(A.to_owned()),
            now: Some(NEW.to_owned()),
        };
        assert_eq!(
            moved_text(&change),
            "from sha256:aaaaaaaaaaaa to sha256:cccccccccccc"
        );
    }
}
