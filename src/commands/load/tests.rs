//! The load decisions, each against the fake engine (src/engine/fake.rs) and an archive
//! written to a temporary directory: what is skipped, what is sent again whole, whose fault a
//! failure is and what it does to the exit status, which names a failed load puts back, what
//! is recorded, and which archives are deleted. The real engines prove the same in tests/.

use std::path::{Path, PathBuf};
use std::time::Duration;

use container_loader_testkit::tar_of;

use super::entry::{Ended, Outcome, Turns};
use super::error::EntryError;
use super::records::recorded;
use super::{finish, Summary};
use crate::cli::Load as Options;
use crate::engine::fake::{Answer, Call, Fail, Fake};
use crate::engine::requests::Requests;
use crate::engine::store::ContainerdStore;
use crate::engine::{chains, EngineError};
use crate::image::describe;
use crate::image::digest::sha256_hex;
use crate::input::list::Entry;
use crate::input::reference::Reference;
use crate::report::exit::Exit;
use crate::report::log::Log;
use crate::report::notify::Notifier;
use crate::report::progress::Reporter;
use crate::state::entries::Entries;
use crate::state::row::State;

/// An image the engine had before the load, under a name the archive carries too.
const OLD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
/// An image that is not the archive's.
const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

/// A docker-archive of one image of one layer, as `docker save` writes it.
struct Archive {
    tar: Vec<u8>,
    /// The image's id on classic docker: its config's digest.
    id: String,
    diff_id: String,
}

/// The archive's layer file: big enough to tell a whole upload from one that left it out.
const LAYER: &str = "0123456789abcdef0123456789abcdef/layer.tar";

fn archive(tags: &[&str]) -> Archive {
    let layer = vec![7u8; 8192];
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let hex = sha256_hex(config.as_bytes());
    let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    let manifest = format!(
        r#"[{{"Config":"{hex}.json","RepoTags":[{}],"Layers":["{LAYER}"]}}]"#,
        tags.join(",")
    );
    let files: [(&str, &[u8]); 3] = [
        (&format!("{hex}.json"), config.as_bytes()),
        (LAYER, &layer),
        ("manifest.json", manifest.as_bytes()),
    ];
    Archive {
        tar: tar_of(&files),
        id: format!("sha256:{hex}"),
        diff_id,
    }
}

/// The files of an uploaded tar with their sizes.
fn files_of(tar: &[u8]) -> Vec<(String, u64)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.size())
        })
        .collect()
}

/// A directory of its own for each test's archives, removed when the test ends.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Dir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn images_dir(test: &str) -> Dir {
    let dir = std::env::temp_dir().join(format!("load-tests-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Dir(dir)
}

/// The line `app.tar <reference>` of a list in `dir`, whose `app.tar` is `tar`.
fn entry(dir: &Path, reference: &str, tar: &[u8]) -> Entry {
    std::fs::write(dir.join("app.tar"), tar).unwrap();
    Entry {
        list: dir.join("images.list"),
        line: 1,
        archive: "app.tar".to_owned(),
        reference: Reference::parse(reference).unwrap(),
        images_dir: dir.to_owned(),
    }
}

fn options() -> Options {
    Options {
        lists: Vec::new(),
        images_dir: None,
        engine: None,
        sockets: Vec::new(),
        delete_after_load: false,
        wait: Duration::ZERO,
        timeout: Duration::from_secs(5),
        memory_limit: 128 << 20,
        dry_run: false,
        run_dir: PathBuf::from("/nonexistent"),
        verify: false,
        replace_differing: false,
        space_check: false,
        verbosity: -1,
        progress_interval: Duration::ZERO,
    }
}

/// Every entry's turn in order against `engine`, deletions included, as the run takes them.
fn turns(engine: &dyn Requests, options: &Options, entries: &[Entry]) -> Vec<Ended> {
    // Errors and warnings only: the assertions say what matters.
    let log = Log::new(-1, false);
    let notifier = Notifier::new(None);
    let reporter = Reporter::for_run(-1, Duration::ZERO, &log, &notifier);
    let listing = (entries.len() > 1).then(|| engine.listing()).flatten();
    let mut turns = Turns::new(engine, options, &log, entries, listing);
    let mut ended = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let report = reporter.entry(index + 1, entries.len(), entry);
        let this = turns.entry(entry, &report);
        turns
            .deletions
            .ended(index, entry, this.result.is_ok(), &log);
        ended.push(this);
    }
    ended
}

/// One entry's turn.
fn turn(engine: &dyn Requests, options: &Options, entry: &Entry) -> Ended {
    turns(engine, options, std::slice::from_ref(entry))
        .pop()
        .unwrap()
}

fn loads(engine: &Fake) -> usize {
    engine.calls().iter().filter(|c| **c == Call::Load).count()
}

fn loaded_as(names: &[&str], id: &str) -> Answer {
    Answer::Loads(
        names
            .iter()
            .map(|n| (n.to_string(), id.to_owned()))
            .collect(),
    )
}

#[test]
fn a_present_reference_is_skipped_without_an_upload() {
    let dir = images_dir("present");
    let a = archive(&["app:1"]);
    let engine = Fake::new().with_name("app:1", OLD);
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Present(Some(ref id))) if id == OLD));
    assert_eq!(loads(&engine), 0);
}

#[test]
fn a_reference_the_listing_shows_is_present_without_asking_for_it() {
    let dir = images_dir("listed");
    let a = archive(&["app:1"]);
    let engine = Fake::new().with_name("app:1", OLD).with_name("db:2", OTHER);
    let entries = [entry(&dir, "app:1", &a.tar), entry(&dir, "db:2", &a.tar)];
    let ended = turns(&engine, &options(), &entries);
    assert!(ended
        .iter()
        .all(|e| matches!(e.result, Ok(Outcome::Present(_)))));
    assert!(!engine
        .calls()
        .iter()
        .any(|c| matches!(c, Call::ImageId(_) | Call::Load)));
}

#[test]
fn a_missing_reference_is_loaded_and_counts_only_once_the_engine_has_it_on_the_archives_image() {
    let dir = images_dir("loaded");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Loaded { id: Some(ref id), .. }) if *id == a.id));
    assert_eq!(engine.uploads()[0], a.tar, "a whole archive goes as it is");
}

#[test]
fn a_delta_upload_leaves_out_the_layer_the_engine_holds() {
    let dir = images_dir("delta");
    let a = archive(&["app:1"]);
    let engine = Fake::new()
        .holding(&chains(std::slice::from_ref(&a.diff_id)))
        .answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Loaded { .. })));
    let files = files_of(&engine.uploads()[0]);
    assert!(!files.iter().any(|(name, _)| name == LAYER), "{files:?}");
}

#[test]
fn a_refused_delta_upload_is_sent_again_whole() {
    let dir = images_dir("retry");
    let a = archive(&["app:1"]);
    let engine = Fake::new()
        .holding(&chains(std::slice::from_ref(&a.diff_id)))
        .answering(Answer::Refuses {
            message: "layer does not exist".to_owned(),
            named: Vec::new(),
        })
        .answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Loaded { .. })));
    let uploads = engine.uploads();
    assert_eq!(uploads.len(), 2);
    assert!(!files_of(&uploads[0]).iter().any(|(name, _)| name == LAYER));
    assert_eq!(uploads[1], a.tar, "the second upload is the archive whole");
}

#[test]
fn a_delta_upload_the_containerd_store_does_not_list_is_sent_again_whole() {
    let dir = images_dir("unlisted");
    let a = archive(&["app:1"]);
    // On docker's containerd store the image's id is the manifest the loader writes for it.
    let images = describe::read(&a.tar[..]).unwrap().unwrap();
    let target = images.images[0].target.clone().expect("a manifest digest");
    let engine = Fake::on(Box::new(ContainerdStore))
        .holding(std::slice::from_ref(&a.diff_id))
        // The engine answers as if it loaded, and lists nothing under the name.
        .answering(Answer::Loads(Vec::new()))
        .answering(loaded_as(&["app:1"], &target));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Loaded { .. })));
    let uploads = engine.uploads();
    assert_eq!(uploads.len(), 2);
    assert!(!files_of(&uploads[0]).iter().any(|(name, _)| name == LAYER));
    assert!(files_of(&uploads[1]).iter().any(|(name, _)| name == LAYER));
}

#[test]
fn a_refused_whole_upload_is_not_sent_again() {
    let dir = images_dir("refused");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(Answer::Refuses {
        message: "no space left on device".to_owned(),
        named: Vec::new(),
    });
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(
        ended.result,
        Err(EntryError::Load {
            source: EngineError::Refused { .. },
            ..
        })
    ));
    assert_eq!(loads(&engine), 1);
}

#[test]
fn a_delta_upload_the_engine_dropped_is_not_sent_again() {
    let dir = images_dir("dropped");
    let a = archive(&["app:1"]);
    let engine = Fake::new()
        .holding(&chains(std::slice::from_ref(&a.diff_id)))
        .answering(Answer::Fails)
        .answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(
        ended.result,
        Err(EntryError::Load {
            source: EngineError::Request { .. },
            ..
        })
    ));
    assert_eq!(
        loads(&engine),
        1,
        "only a refusal is answered with the whole archive"
    );
}

#[test]
fn a_name_a_refused_delta_upload_left_is_removed_before_the_whole_one() {
    let dir = images_dir("left-name");
    let a = archive(&["app:1"]);
    // As docker's containerd store does; which store decides nothing here.
    let engine = Fake::new()
        .holding(&chains(std::slice::from_ref(&a.diff_id)))
        .answering(Answer::Refuses {
            message: "content digest not found".to_owned(),
            named: vec![("app:1".to_owned(), a.id.clone())],
        })
        .answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(ended.result.is_ok());
    let calls = engine.calls();
    let removed = calls
        .iter()
        .position(|c| *c == Call::Remove("app:1".to_owned()));
    let second = calls.iter().rposition(|c| *c == Call::Load);
    assert!(removed.is_some() && removed < second, "{calls:?}");
}

#[test]
fn a_corrupt_archive_is_the_archives_fault_and_touches_no_name() {
    let dir = images_dir("corrupt");
    let mut e = entry(&dir, "app:1", b"");
    std::fs::write(dir.join("app.tar.gz"), b"\x1f\x8b\x08\0not gzip at all").unwrap();
    e.archive = "app.tar.gz".to_owned();
    let engine = Fake::new().with_name("other:2", OLD);
    let ended = turn(&engine, &options(), &e);
    assert!(
        matches!(ended.result, Err(EntryError::Decode { .. })),
        "{:?}",
        ended.result.as_ref().err()
    );
    assert!(!engine
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Tag { .. } | Call::Remove(_))));
    assert_eq!(engine.id_of("other:2").as_deref(), Some(OLD));
}

#[test]
fn a_missing_archive_fails_the_entry_without_an_upload() {
    let dir = images_dir("no-archive");
    let mut e = entry(&dir, "app:1", b"");
    e.archive = "gone.tar".to_owned();
    let engine = Fake::new();
    let ended = turn(&engine, &options(), &e);
    assert!(matches!(ended.result, Err(EntryError::Archive(_))));
    assert_eq!(loads(&engine), 0);
}

#[test]
fn an_engine_that_cannot_say_whether_it_has_the_image_is_recorded_as_unknown() {
    let dir = images_dir("presence");
    let a = archive(&["app:1"]);
    let engine = Fake::new();
    engine.failing(Fail::ImageId);
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Err(EntryError::Presence(_))));
    assert_eq!(recorded(&ended, false).state, State::Unknown);
    assert_eq!(loads(&engine), 0);
}

#[test]
fn a_load_that_ends_on_another_image_puts_back_the_names_it_moved() {
    let dir = images_dir("restore");
    let a = archive(&["app:1", "other:2"]);
    let engine = Fake::new()
        .with_name("other:2", OLD)
        .answering(loaded_as(&["app:1", "other:2"], OTHER));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(
        ended.result,
        Err(EntryError::NotTheArchives { .. })
    ));
    assert_eq!(engine.id_of("other:2").as_deref(), Some(OLD), "put back");
    assert_eq!(engine.id_of("app:1"), None, "it was nowhere");
}

#[test]
fn a_refused_load_puts_back_a_name_the_engine_moved_before_refusing() {
    let dir = images_dir("refused-moved");
    let a = archive(&["app:1", "other:2"]);
    let engine = Fake::new()
        .with_name("other:2", OLD)
        .answering(Answer::Refuses {
            message: "broken layer".to_owned(),
            named: vec![("other:2".to_owned(), a.id.clone())],
        });
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Err(EntryError::Load { .. })));
    assert_eq!(engine.id_of("other:2").as_deref(), Some(OLD));
}

#[test]
fn an_engine_that_says_it_loaded_but_has_no_reference_fails_the_entry_as_missing() {
    let dir = images_dir("lie");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(Answer::Lies(vec!["app:1".to_owned()]));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(
        ended.result,
        Err(EntryError::NotPresentAfterLoad { .. })
    ));
    let record = recorded(&ended, false);
    assert_eq!((record.state, record.image_id), (State::Missing, None));
}

#[test]
fn a_loaded_entry_is_recorded_present_with_the_engines_id() {
    let dir = images_dir("recorded");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(loaded_as(&["app:1"], &a.id));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    let record = recorded(&ended, false);
    assert_eq!(
        (record.state, record.image_id),
        (State::Present, Some(a.id))
    );
}

#[test]
fn a_failed_load_over_an_image_the_engine_had_records_that_image_present() {
    let dir = images_dir("replacing");
    let a = archive(&["app:1"]);
    let engine = Fake::new()
        .with_name("app:1", OLD)
        .answering(loaded_as(&["app:1"], OTHER));
    let options = Options {
        verify: true,
        replace_differing: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(ended.result.is_err());
    assert_eq!(engine.id_of("app:1").as_deref(), Some(OLD), "put back");
    let record = recorded(&ended, true);
    assert_eq!(
        (record.state, record.image_id.as_deref()),
        (State::Present, Some(OLD))
    );
}

#[test]
fn verify_keeps_an_image_that_differs_without_replace_differing() {
    let dir = images_dir("differs");
    let a = archive(&["app:1"]);
    let engine = Fake::new().with_name("app:1", OLD);
    let options = Options {
        verify: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Differs { .. })));
    assert_eq!(recorded(&ended, true).state, State::Differs);
    assert_eq!(loads(&engine), 0);
}

/// `--verify` with nothing else.
fn verifying() -> Options {
    Options {
        verify: true,
        ..options()
    }
}

#[test]
fn verify_on_the_containerd_store_takes_another_manifest_of_the_archives_config_as_its_image() {
    let dir = images_dir("same-config");
    let a = archive(&["app:1"]);
    // The engine's manifest is not the one the archive's image gets, over the same config.
    let engine = Fake::on(Box::new(ContainerdStore))
        .with_name("app:1", OLD)
        .with_config(OLD, &a.id);
    let ended = turn(&engine, &verifying(), &entry(&dir, "app:1", &a.tar));
    match &ended.result {
        Ok(Outcome::Verified { id, archive_id }) => {
            assert_eq!(id, OLD);
            assert_ne!(archive_id, OLD, "the archive's own manifest digest");
        }
        other => panic!("not verified: {:?}", other.as_ref().err()),
    }
    assert_eq!(recorded(&ended, true).state, State::Present);
    assert_eq!(loads(&engine), 0);
}

#[test]
fn verify_on_the_containerd_store_finds_another_config_differs() {
    let dir = images_dir("other-config");
    let a = archive(&["app:1"]);
    let engine = Fake::on(Box::new(ContainerdStore))
        .with_name("app:1", OLD)
        .with_config(OLD, OTHER);
    let ended = turn(&engine, &verifying(), &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Differs { .. })));
    assert_eq!(loads(&engine), 0);
}

#[test]
fn verify_that_cannot_read_the_engines_config_fails_the_entry_and_loads_nothing() {
    let dir = images_dir("config-untold");
    let a = archive(&["app:1"]);
    // No config set: the fake's store cannot read a content store.
    let engine = Fake::on(Box::new(ContainerdStore)).with_name("app:1", OLD);
    let options = Options {
        replace_differing: true,
        ..verifying()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    let e = ended.result.as_ref().err().expect("unverifiable");
    assert!(
        e.to_string().contains("which config it has cannot be told"),
        "{e}"
    );
    assert_eq!(loads(&engine), 0);
    assert_eq!(engine.id_of("app:1").as_deref(), Some(OLD));
}

#[test]
fn an_archive_without_the_reference_gets_it_as_a_tag_on_its_one_image() {
    let dir = images_dir("tag");
    let a = archive(&[]);
    let engine = Fake::new().answering(Answer::Loads(Vec::new()));
    let ended = turn(&engine, &options(), &entry(&dir, "app:1", &a.tar));
    assert!(ended.result.is_ok(), "{:?}", ended.result.as_ref().err());
    assert!(engine.calls().contains(&Call::Tag {
        id: a.id.clone(),
        name: "app:1".to_owned()
    }));
    assert_eq!(engine.id_of("app:1"), Some(a.id));
}

#[test]
fn the_archive_is_deleted_once_its_image_is_there_under_the_reference() {
    let dir = images_dir("delete");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(loaded_as(&["app:1"], &a.id));
    let options = Options {
        delete_after_load: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(ended.result.is_ok());
    assert!(!dir.join("app.tar").exists());
}

#[test]
fn the_archive_is_kept_when_the_engine_does_not_have_its_image_after_the_load() {
    let dir = images_dir("keep");
    let a = archive(&["app:1"]);
    let engine = Fake::new().answering(loaded_as(&["app:1"], OTHER));
    let options = Options {
        delete_after_load: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(ended.result.is_err());
    assert!(dir.join("app.tar").exists());
}

#[test]
fn an_archive_two_lines_name_is_kept_when_one_of_them_fails() {
    let dir = images_dir("keep-shared");
    let a = archive(&["app:1", "app:2"]);
    let engine = Fake::new()
        .answering(loaded_as(&["app:1", "app:2"], &a.id))
        .answering(Answer::Fails);
    engine.failing(Fail::Listing);
    let options = Options {
        delete_after_load: true,
        ..options()
    };
    let entries = [entry(&dir, "app:1", &a.tar), entry(&dir, "db:9", &a.tar)];
    let ended = turns(&engine, &options, &entries);
    assert!(ended[0].result.is_ok() && ended[1].result.is_err());
    assert!(dir.join("app.tar").exists());
}

#[test]
fn a_present_image_leaves_its_archive_in_place() {
    let dir = images_dir("present-kept");
    let a = archive(&["app:1"]);
    let engine = Fake::new().with_name("app:1", &a.id);
    let options = Options {
        delete_after_load: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::Present(_))));
    assert!(dir.join("app.tar").exists());
}

#[test]
fn a_dry_run_sends_nothing() {
    let dir = images_dir("dry");
    let a = archive(&["app:1"]);
    let engine = Fake::new();
    let options = Options {
        dry_run: true,
        ..options()
    };
    let ended = turn(&engine, &options, &entry(&dir, "app:1", &a.tar));
    assert!(matches!(ended.result, Ok(Outcome::WouldLoad)));
    assert_eq!(loads(&engine), 0);
}

/// The exit status of a run whose entries ended as `summary` says.
fn exit_of(summary: Summary, unreadable_lists: usize, unrecorded: bool) -> Exit {
    let lists = Entries {
        entries: Vec::new(),
        invalid_lines: 0,
        unreadable_lists,
    };
    let log = Log::new(-1, false);
    finish(
        &summary,
        &lists,
        unrecorded,
        &options(),
        &log,
        &Notifier::new(None),
    )
}

#[test]
fn the_run_exits_1_when_an_entry_failed_differs_or_could_not_be_recorded() {
    let failed = Summary {
        failed: 1,
        loaded: 3,
        ..Summary::default()
    };
    let differ = Summary {
        differ: 1,
        ..Summary::default()
    };
    assert_eq!(exit_of(failed, 0, false), Exit::Failed);
    assert_eq!(exit_of(differ, 0, false), Exit::Failed);
    assert_eq!(exit_of(Summary::default(), 0, true), Exit::Failed);
    assert_eq!(exit_of(Summary::default(), 1, false), Exit::Usage);
    let fine = Summary {
        loaded: 2,
        present: 5,
        ..Summary::default()
    };
    assert_eq!(exit_of(fine, 0, false), Exit::Done);
}
