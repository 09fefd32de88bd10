//! Reading what the engine answers: error objects, and the result of a load.
//!
//! docker answers a load with HTTP 200 at once and then a stream of JSON objects; a failure is
//! an object with `error`/`errorDetail` inside that 200 stream. podman answers once, at the
//! end: `{"Names": [...]}` on success, or HTTP 500 with `{"cause", "message", "response"}`.
//!
//! An engine's answer is not trusted to be small: it is parsed within a budget of values
//! ([`VALUES_MAX`]), never into an unbounded tree (8 MiB of `[0,0,...]` would be 4 million
//! values, 128 MiB), and any of its text that reaches a log line or status.json is quoted
//! ([`quote`]), cut to [`QUOTE_MAX`] characters.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Deserializer, Map, Value};

use crate::engine::{EngineError, LOADED_NAMES_MAX, NAME_MAX};

/// Longest engine text quoted in a message: its start and its end.
pub(crate) const QUOTE_MAX: usize = 300;
/// Most JSON values (each number, string, array, object) parsed from one answer: docker's
/// and podman's `info` and image inspect answers hold a few hundred. At most a few MiB.
pub(crate) const VALUES_MAX: usize = 50_000;
/// How much of a long text's start and of its end are looked at when quoting it.
const QUOTE_SCAN: usize = 4 * QUOTE_MAX;
/// How much of a longer text's start is kept. The engines' texts are Go error chains
/// (`failed to ingest X: failed to copy: ...: no space left on device`): the start says what
/// failed, the end why (but for a list of attempts, see [`cause`]).
const QUOTE_HEAD: usize = 120;

pub enum Failure {
    Engine(String),
    Read(ureq::Error),
}

/// The message in an engine error object: docker's `message`/`error`, podman's `cause` too.
fn message(v: &Value) -> Option<String> {
    [
        &v["errorDetail"]["message"],
        &v["error"],
        &v["message"],
        &v["cause"],
    ]
    .into_iter()
    .filter_map(Value::as_str)
    .map(quote)
    .find(|m| !m.is_empty())
}

/// Engine text on one line (podman's messages span several), cut to a readable length in
/// its middle, or around the clause that names its cause ([`cause`]). Only its first and last
/// [`QUOTE_SCAN`] bytes are looked at, so a text of megabytes costs no more than a short one.
pub(crate) fn quote(text: &str) -> String {
    let one_line = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let (head, tail) = match text.len() <= 2 * QUOTE_SCAN {
        true => {
            let all = one_line(text);
            if all.chars().count() <= QUOTE_MAX {
                return all;
            }
            if let Some(cause) = cause(&all) {
                let head: String = all
                    .chars()
                    .take(QUOTE_MAX - cause.chars().count())
                    .collect();
                return format!("{} … {cause}", head.trim_end());
            }
            (all.clone(), all)
        }
        false => {
            let start = (0..=QUOTE_SCAN)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let end = (text.len() - QUOTE_SCAN..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            (one_line(&text[..start]), one_line(&text[end..]))
        }
    };
    let tail_chars = QUOTE_MAX - QUOTE_HEAD;
    let head: String = head.chars().take(QUOTE_HEAD).collect();
    let skip = tail.chars().count().saturating_sub(tail_chars);
    let tail: String = tail.chars().skip(skip).collect();
    format!("{} … {}", head.trim_end(), tail.trim_start())
}

/// Words by which an engine's error says what is wrong, the most telling first: a
/// `no such file` is as often a transport that did not apply as the cause.
const CAUSES: [&str; 7] = [
    "did not match",
    "does not match",
    "unexpected EOF",
    "no space left",
    "permission denied",
    "invalid",
    "no such file",
];
/// Least of a text's start kept beside its cause: what failed.
const CAUSE_HEAD: usize = 60;

/// In a list of attempts (podman 5's `payload does not match any of the supported image
/// formats: * oci: ... * docker-archive: ... * dir: ...`, one item per transport tried), the
/// item that names the cause, as `transport: clause`: from the Go error chain's link that
/// holds one of [`CAUSES`] to the item's end, within `QUOTE_MAX - CAUSE_HEAD` characters.
/// Head and tail alone would keep the path prefixes of the first and last transports.
fn cause(one_line: &str) -> Option<String> {
    let items: Vec<&str> = one_line.split(" * ").skip(1).collect();
    let (item, at) = CAUSES.iter().find_map(|word| {
        items
            .iter()
            .find_map(|item| item.find(word).map(|at| (*item, at)))
    })?;
    let transport = item.split_once(": ").map_or("", |(t, _)| t);
    let link = item[..at].rfind(": ").map_or(0, |i| i + 2);
    let clause = match link > transport.len() {
        true => format!("{transport}: {}", &item[link..]),
        false => item.to_owned(),
    };
    Some(clause.chars().take(QUOTE_MAX - CAUSE_HEAD).collect())
}

/// Parses one JSON value of an engine answer, within [`VALUES_MAX`] values.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut budget = VALUES_MAX;
    let mut de = Deserializer::from_slice(bytes);
    let value = Bounded(&mut budget).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a [`Value`] while counting its values down from a budget.
struct Bounded<'a>(&'a mut usize);

impl Bounded<'_> {
    fn take<E: serde::de::Error>(&mut self) -> Result<(), E> {
        match self.0.checked_sub(1) {
            Some(left) => {
                *self.0 = left;
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "more than {VALUES_MAX} values in one answer"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(v.into())
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded(&mut *self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.take()?;
            let value = map.next_value_seed(Bounded(&mut *self.0))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Whether `body` is one of the engine's own error objects (as opposed to, say, a plain-text
/// 404 from a route the engine does not have).
pub fn is_engine_error(body: &[u8]) -> bool {
    parse(body).is_ok_and(|v| {
        [
            &v["errorDetail"]["message"],
            &v["error"],
            &v["message"],
            &v["cause"],
        ]
        .into_iter()
        .any(Value::is_string)
    })
}

pub(crate) fn unexpected(what: &str, status: u16, body: &[u8]) -> EngineError {
    let message = parse(body)
        .ok()
        .as_ref()
        .and_then(message)
        .unwrap_or_else(|| quote(&String::from_utf8_lossy(body)));
    EngineError::Answer {
        what: what.to_owned(),
        status,
        message,
    }
}

/// Reads a load answer to its end. Returns the names the engine reports as loaded: at most
/// [`LOADED_NAMES_MAX`], each a plain word of at most [`NAME_MAX`] bytes (any other could not
/// be a reference the loader asked for).
pub fn load_result(status: u16, reader: impl Read) -> Result<Vec<String>, Failure> {
    let mut names = Vec::new();
    let mut failure = None;
    let mut keep = |name: &str| {
        let plain = name.len() <= NAME_MAX && name.bytes().all(|b| b.is_ascii_graphic());
        if plain && names.len() < LOADED_NAMES_MAX {
            names.push(name.to_owned());
        }
    };
    // Each object is held as its text, then parsed within the budget of values.
    for item in Deserializer::from_reader(reader).into_iter::<Box<RawValue>>() {
        let raw = match item {
            Ok(raw) => raw,
            Err(e) if e.is_io() => {
                return Err(Failure::Read(ureq::Error::Io(e.into())));
            }
            Err(e) => {
                failure.get_or_insert_with(|| format!("unreadable answer: {e}"));
                break;
            }
        };
        let v = match parse(raw.get().as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                failure.get_or_insert_with(|| format!("unreadable answer: {e}"));
                break;
            }
        };
        if v.get("error").is_some() || v.get("errorDetail").is_some() || status != 200 {
            failure.get_or_insert_with(|| message(&v).unwrap_or_else(|| quote(raw.get())));
        }
        if let Some(list) = v["Names"].as_array() {
            list.iter().filter_map(Value::as_str).for_each(&mut keep);
        }
        if let Some(line) = v["stream"].as_str() {
            if let Some(name) = line.trim().strip_prefix("Loaded image: ") {
                keep(name);
            }
        }
    }
    match failure {
        Some(m) => Err(Failure::Engine(m)),
        None if status != 200 => Err(Failure::Engine(format!("HTTP {status} with no message"))),
        None => Ok(names),
    }
}

/// The engine's message in the raw bytes it sent before closing a connection we were still
/// writing to. Best effort: the HTTP framing is skipped and the first error object is taken.
pub fn late_message(raw: &[u8]) -> Option<String> {
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = &raw[body_at..];
    body.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'{')
        .find_map(|(i, _)| {
            let v = Deserializer::from_slice(&body[i..])
                .into_iter::<Value>()
                .next()?
                .ok()?;
            message(&v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: u16, body: &str) -> Result<Vec<String>, String> {
        load_result(status, body.as_bytes()).map_err(|e| match e {
            Failure::Engine(m) => m,
            Failure::Read(e) => format!("read: {e}"),
        })
    }

    #[test]
    fn quotes_the_start_and_the_end_of_a_long_engine_message() {
        let cause = "no space left on device";
        let long = format!(
            "failed to ingest \"l/layer.tar\": {}: {cause}",
            "x".repeat(400)
        );
        let quoted = quote(&long);
        assert!(
            quoted.starts_with("failed to ingest \"l/layer.tar\": xxx"),
            "{quoted}"
        );
        assert!(quoted.ends_with(cause), "{quoted}");
        assert_eq!(quoted.chars().count(), QUOTE_MAX + " … ".chars().count());
        assert_eq!(quote("short\n  and\tplain"), "short and plain");
    }

    #[test]
    fn quotes_a_text_of_megabytes_from_its_two_ends() {
        let long = format!("failed to ingest: {}: disk full", "x y ".repeat(1 << 20));
        let quoted = quote(&long);
        assert!(quoted.starts_with("failed to ingest: x y"), "{quoted}");
        assert!(quoted.ends_with("x y : disk full"), "{quoted}");
        assert!(quoted.chars().count() <= QUOTE_MAX + " … ".chars().count());
    }

    /// podman 5.4's answer to an archive whose layer is not its config's diff_id.
    const PODMAN_ATTEMPTS: &str = "unable to load image: payload does not match any of the supported image formats:\n * oci: open /var/tmp/libpod-images-load.tar898714770/index.json: not a directory\n * oci-archive: loading index: open /var/tmp/container_images_oci3003467681/index.json: no such file or directory\n * docker-archive: writing blob: setting up to decompress blob: happened during read: Digest did not match, expected sha256:d2dafce4ab19b28599a46f9401c09f99b726fa278eba1aed42570fd757780184, got sha256:ec74d93659230b71f5c0d017d3e948932d78e8f8879eeac5aa8a20a6d46810c5\n * dir: open /var/tmp/libpod-images-load.tar898714770/manifest.json: not a directory";

    #[test]
    fn quotes_the_attempt_that_names_the_cause_from_a_list_of_attempts() {
        let quoted = quote(PODMAN_ATTEMPTS);
        assert!(
            quoted.starts_with("unable to load image: payload does not match any"),
            "{quoted}"
        );
        assert!(
            quoted.ends_with(" … docker-archive: Digest did not match, expected sha256:d2dafce4ab19b28599a46f9401c09f99b726fa278eba1aed42570fd757780184, got sha256:ec74d93659230b71f5c0d017d3e948932d78e8f8879eeac5aa8a20a6d46810c5"),
            "{quoted}"
        );
        assert!(quoted.chars().count() <= QUOTE_MAX + " … ".chars().count());
    }

    #[test]
    fn prefers_a_mismatch_to_a_missing_file_among_the_attempts() {
        let text = format!(
            "loading failed: * oci-archive: open {}/index.json: no such file or directory * docker-archive: layer 0 (blob sha256:1) does not match config's DiffID sha256:2 * dir: open {}/manifest.json: not a directory",
            "/var/tmp/x".repeat(20),
            "/var/tmp/y".repeat(20)
        );
        let quoted = quote(&text);
        assert!(
            quoted.ends_with(" … docker-archive: layer 0 (blob sha256:1) does not match config's DiffID sha256:2"),
            "{quoted}"
        );
    }

    #[test]
    fn cuts_a_long_cause_within_the_bound() {
        let text = format!(
            "payload does not match: {} * docker-archive: unexpected EOF {}",
            "a".repeat(200),
            "b".repeat(400)
        );
        let quoted = quote(&text);
        assert!(
            quoted.contains(" … docker-archive: unexpected EOF bbb"),
            "{quoted}"
        );
        assert_eq!(quoted.chars().count(), QUOTE_MAX + " … ".chars().count());
    }

    #[test]
    fn parses_an_answer_within_its_budget_of_values_only() {
        let within = format!("[{}0]", "0,".repeat(VALUES_MAX - 2));
        assert!(parse(within.as_bytes()).is_ok());
        let over = format!("[{}0]", "0,".repeat(VALUES_MAX));
        let e = parse(over.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("more than 50000 values"), "{e}");
    }

    #[test]
    fn keeps_only_names_that_could_be_references_from_a_load_answer() {
        let long = "a".repeat(NAME_MAX + 1);
        let body = format!(r#"{{"Names":["ok:1","{long}","two words",1]}}"#);
        assert_eq!(result(200, &body), Ok(vec!["ok:1".to_owned()]));
        let many: Vec<String> = (0..LOADED_NAMES_MAX + 1)
            .map(|i| format!("\"n{i}\""))
            .collect();
        let body = format!(r#"{{"Names":[{}]}}"#, many.join(","));
        assert_eq!(result(200, &body).unwrap().len(), LOADED_NAMES_MAX);
    }

    #[test]
    fn takes_the_loaded_names_from_docker_and_podman_answers() {
        assert_eq!(
            result(200, "{\"stream\":\"Loaded image: debian:bookworm\\n\"}\r\n"),
            Ok(vec!["debian:bookworm".to_owned()])
        );
        assert_eq!(
            result(200, r#"{"Names":["docker.io/library/debian:bookworm"]}"#),
            Ok(vec!["docker.io/library/debian:bookworm".to_owned()])
        );
    }

    #[test]
    fn treats_an_error_object_inside_a_200_stream_as_failure() {
        let body = "{\"stream\":\"x\"}\n{\"errorDetail\":{\"message\":\"archive/tar: invalid tar header\"},\"error\":\"archive/tar: invalid tar header\"}\n";
        assert_eq!(
            result(200, body),
            Err("archive/tar: invalid tar header".to_owned())
        );
    }

    #[test]
    fn never_reports_an_empty_message() {
        assert_eq!(
            result(500, r#"{"cause":"","message":" ","response":500}"#),
            Err(r#"{"cause":"","message":" ","response":500}"#.to_owned())
        );
        assert_eq!(
            result(200, r#"{"errorDetail":{"message":""},"error":"disk full"}"#),
            Err("disk full".to_owned())
        );
    }

    #[test]
    fn reports_podmans_500_message() {
        let body = r#"{"cause":"payload does not match any of the supported image formats","message":"payload does not match any of the supported image formats: oci-archive","response":500}"#;
        let e = result(500, body).unwrap_err();
        assert!(e.starts_with("payload does not match"), "{e}");
    }

    #[test]
    fn finds_the_message_in_a_chunked_answer_sent_before_close() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5a\r\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\r\n0\r\n\r\n";
        assert_eq!(late_message(raw), Some("unexpected EOF".to_owned()));
        assert_eq!(late_message(b"HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn tells_an_engine_404_from_an_unknown_route() {
        assert!(is_engine_error(br#"{"message":"No such image: x:latest"}"#));
        assert!(is_engine_error(
            br#"{"cause":"","message":"","response":404}"#
        ));
        assert!(!is_engine_error(b"Not Found"));
    }
}
