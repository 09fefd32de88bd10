//! The engine's image listing, read in bounded memory.
//!
//! One `GET /images/json` answers "present" for every entry it names, but its size is the
//! engine's to choose: an answer of one 1 MB id and 2,000 names once cost 1.96 GB when each
//! name got its own copy of the id. So the listing is read as it streams in, never held
//! whole nor parsed into a tree: of each image only `Id` and its names (`RepoTags`,
//! `Names`) are looked at, everything else is skipped unread into memory. An id is kept only
//! as `sha256:` + 64 lower-case hex (podman's bare hex is given the prefix) and once per
//! image, its names pointing at it by index; a name is kept only if it could be a reference
//! the list accepts (at most [`NAME_MAX`] bytes of printable ASCII), and at most
//! [`LISTING_NAMES_MAX`] names in all. What is not kept is not lost: a name the listing does
//! not show is asked about on its own.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufReader, Read};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Deserializer;

use super::{canonical_id, LISTING_NAMES_MAX, NAME_MAX};
use crate::input::reference::{self, Reference};

/// What of a listing is read into memory before it is parsed, and the buffer it streams
/// through when it is longer.
const STREAM_BUFFER: usize = 64 << 10;

/// The names an engine listed, each with its image id.
#[derive(Default)]
pub struct Listing {
    ids: Vec<Box<str>>,
    names: HashMap<Box<str>, u32>,
    /// Names not kept: beyond [`LISTING_NAMES_MAX`], too long or not text, or of an image
    /// whose id is not a sha256 digest.
    pub dropped: usize,
}

impl Listing {
    /// Reads a listing answer (a JSON array of image objects) from `answer`.
    pub fn read(mut answer: impl Read) -> Result<Listing, serde_json::Error> {
        let mut listing = Listing::default();
        // A device's listing is a few KiB: read whole, it is parsed from memory, several times
        // faster than from a reader byte by byte (4-7% of a no-op run). A longer one streams
        // on from where this buffer ends, through a second buffer of the same size.
        let mut head = Vec::with_capacity(STREAM_BUFFER);
        (&mut answer)
            .take(STREAM_BUFFER as u64)
            .read_to_end(&mut head)
            .map_err(serde_json::Error::io)?;
        if head.len() < STREAM_BUFFER {
            listing.parse(Deserializer::from_slice(&head))?;
        } else {
            let rest = BufReader::with_capacity(STREAM_BUFFER, io::Cursor::new(head).chain(answer));
            listing.parse(Deserializer::from_reader(rest))?;
        }
        Ok(listing)
    }

    /// Adds the names of the one JSON array `de` holds, and nothing may follow it.
    fn parse<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        mut de: Deserializer<R>,
    ) -> Result<(), serde_json::Error> {
        ListingSeed(self).deserialize(&mut de)?;
        de.end()
    }

    /// The id of `image` if the listing shows it under exactly its name: a tagless reference
    /// means `:latest`, and docker lists Docker Hub names in their short form (`debian:12` for
    /// `docker.io/library/debian:12`). Digest references are never matched. Only "present" can
    /// be concluded: a name not matched here is asked about on its own.
    pub fn id_of(&self, image: &Reference) -> Option<&str> {
        let text = image.as_str();
        if text.contains('@') {
            return None;
        }
        let full = reference::tagged(text);
        let short = reference::familiar(&full);
        let index = self
            .names
            .get(&*full)
            .or_else(|| short.and_then(|s| self.names.get(s)))?;
        self.ids.get(*index as usize).map(|id| &**id)
    }

    /// The names the listing shows that start with `prefix`, as the engine spells them.
    pub fn names_starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.names
            .keys()
            .map(|name| &**name)
            .filter(move |name| name.starts_with(prefix))
    }

    /// Whether the listing holds an image with the id `id` (`sha256:` and 64 hex digits).
    pub fn holds_id(&self, id: &str) -> bool {
        self.ids.iter().any(|held| &**held == id)
    }

    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Listing {
        let mut listing = Listing::default();
        for (name, id) in pairs {
            listing.ids.push((*id).into());
            let index = listing.ids.len() as u32 - 1;
            listing.names.insert((*name).into(), index);
        }
        listing
    }

    fn room(&self, pending: usize) -> bool {
        self.names.len() + pending < LISTING_NAMES_MAX
    }
}

/// The top-level array.
struct ListingSeed<'a>(&'a mut Listing);

impl<'de> DeserializeSeed<'de> for ListingSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListingSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of images")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(ImageSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One image object: its id and names are kept, the rest skipped.
struct ImageSeed<'a>(&'a mut Listing);

impl<'de> DeserializeSeed<'de> for ImageSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ImageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an image object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let listing = self.0;
        // Either key may come first: names wait here until the id is known.
        let mut id = None;
        let mut names = Names::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Id => id = map.next_value_seed(IdSeed)?,
                Key::Names => map.next_value_seed(NamesSeed {
                    listing: &*listing,
                    names: &mut names,
                })?,
                Key::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        listing.dropped += names.dropped;
        match id {
            Some(id) if !names.kept.is_empty() => {
                listing.ids.push(id);
                let index = listing.ids.len() as u32 - 1;
                for name in names.kept {
                    listing.names.insert(name, index);
                }
            }
            _ => listing.dropped += names.kept.len(),
        }
        Ok(())
    }
}

enum Key {
    Id,
    Names,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "Id" => Key::Id,
            // docker's and podman's: both are read, whichever the engine sends.
            "RepoTags" | "Names" => Key::Names,
            _ => Key::Other,
        })
    }
}

/// An `Id`: kept only as a sha256 digest, without copying anything else.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = Option<Box<str>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = Option<Box<str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an image id")
    }

    fn visit_str<E>(self, id: &str) -> Result<Self::Value, E> {
        Ok(canonical_id(id).map(String::into_boxed_str))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[derive(Default)]
struct Names {
    kept: Vec<Box<str>>,
    dropped: usize,
}

/// A `RepoTags` or `Names` array (or null, as docker sends for an image without names).
struct NamesSeed<'a> {
    listing: &'a Listing,
    names: &'a mut Names,
}

impl<'de> DeserializeSeed<'de> for NamesSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NamesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of names")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(NameSeed {
                listing: self.listing,
                names: &mut *self.names,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One name: kept if it could be a reference and there is room, else only counted.
struct NameSeed<'a> {
    listing: &'a Listing,
    names: &'a mut Names,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E>(self, name: &str) -> Result<(), E> {
        let plain = name.len() <= NAME_MAX && name.bytes().all(|b| b.is_ascii_graphic());
        match plain && self.listing.room(self.names.kept.len()) {
            true => self.names.kept.push(name.into()),
            false => self.names.dropped += 1,
        }
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.names.dropped += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn read(json: &str) -> Listing {
        Listing::read(json.as_bytes()).expect("a readable listing")
    }

    fn id_of<'a>(listing: &'a Listing, name: &str) -> Option<&'a str> {
        listing.id_of(&Reference::parse(name).unwrap())
    }

    #[test]
    fn a_listing_shows_a_reference_only_under_its_exact_or_docker_short_name() {
        let listing = Listing::of(&[("debian:12", A), ("quay.io/a/b:1", A), ("u/app:latest", A)]);
        let listed = |r: &str| id_of(&listing, r).is_some();
        assert!(listed("debian:12"));
        assert!(listed("docker.io/library/debian:12"));
        assert!(listed("quay.io/a/b:1"));
        assert!(listed("u/app"));
        assert!(listed("docker.io/u/app:latest"));
        assert!(!listed("debian"));
        assert!(!listed("debian:11"));
        assert!(!listed("quay.io/a/b"));
        assert!(!listed("localhost:5000/debian:12"));
        assert!(!listed(
            "quay.io/a/b:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
    }

    #[test]
    fn a_listing_longer_than_its_buffer_is_read_across_the_buffer_end() {
        let names: Vec<String> = (0..5_000)
            .map(|i| format!("\"example.org/a/long/name/{i:08}:1\""))
            .collect();
        let json = format!(r#"[{{"Id":"{A}","RepoTags":[{}]}}]"#, names.join(","));
        assert!(json.len() > 2 * STREAM_BUFFER);
        let listing = read(&json);
        assert_eq!(
            id_of(&listing, "example.org/a/long/name/00000000:1"),
            Some(A)
        );
        assert_eq!(
            id_of(&listing, "example.org/a/long/name/00004999:1"),
            Some(A)
        );
    }

    #[test]
    fn reads_docker_repo_tags_and_podman_bare_hex_ids_and_names() {
        let hex = &A["sha256:".len()..];
        let docker = format!(
            r#"[{{"Containers":-1,"Id":"{A}","Labels":null,"RepoTags":["debian:12"]}},
                {{"Id":"{A}","RepoTags":null}}]"#
        );
        let podman = format!(r#"[{{"Names":["quay.io/a/b:1"],"Id":"{hex}"}}]"#);
        assert_eq!(id_of(&read(&docker), "debian:12"), Some(A));
        assert_eq!(id_of(&read(&podman), "quay.io/a/b:1"), Some(A));
    }

    #[test]
    fn keeps_no_name_of_an_image_whose_id_is_not_a_sha256_digest() {
        for id in [
            "sha256:abc",
            "sha512:aaaa",
            "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa#",
        ] {
            let listing = read(&format!(r#"[{{"Id":"{id}","RepoTags":["debian:12"]}}]"#));
            assert_eq!(id_of(&listing, "debian:12"), None, "{id}");
            assert_eq!(listing.dropped, 1);
        }
    }

    #[test]
    fn keeps_one_id_per_image_however_many_names_share_it() {
        let names: Vec<String> = (0..2000).map(|i| format!("\"n{i}:1\"")).collect();
        let listing = read(&format!(
            r#"[{{"Id":"{A}","RepoTags":[{}]}}]"#,
            names.join(",")
        ));
        assert_eq!(listing.ids.len(), 1);
        assert_eq!(listing.names.len(), 2000);
        assert_eq!(id_of(&listing, "n1999:1"), Some(A));
    }

    #[test]
    fn keeps_at_most_the_cap_of_names_and_counts_the_rest() {
        let names: Vec<String> = (0..LISTING_NAMES_MAX + 5)
            .map(|i| format!("\"n{i}:1\""))
            .collect();
        let listing = read(&format!(
            r#"[{{"Id":"{A}","RepoTags":[{}]}}]"#,
            names.join(",")
        ));
        assert_eq!(listing.names.len(), LISTING_NAMES_MAX);
        assert_eq!(listing.dropped, 5);
        assert_eq!(id_of(&listing, "n0:1"), Some(A));
    }

    #[test]
    fn skips_names_that_cannot_be_a_reference() {
        let long = "a".repeat(NAME_MAX + 1);
        let listing = read(&format!(
            r#"[{{"Id":"{A}","RepoTags":["{long}:1","with space:1",null,"ok:1"]}}]"#
        ));
        assert_eq!(listing.names.len(), 1);
        assert_eq!(listing.dropped, 3);
    }

    #[test]
    fn refuses_what_is_not_a_listing() {
        for bad in ["{}", "[1]", r#"[{"Id":"x","RepoTags":{"a":1}}]"#, "[{}] x"] {
            assert!(Listing::read(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
