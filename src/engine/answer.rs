//! Reading what the engine answers: error objects, and the result of a load.
//!
//! docker answers a load with HTTP 200 at once and then a stream of JSON objects; a failure is
//! an object with `error`/`errorDetail` inside that 200 stream. podman answers once, at the
//! end: `{"Names": [...]}` on success, or HTTP 500 with `{"cause", "message", "response"}`.

use std::io::Read;

use serde_json::{Deserializer, Value};

use super::EngineError;

/// Longest engine text quoted in a message: its start and its end.
const QUOTE_MAX: usize = 300;
/// How much of a longer text's start is kept. The engines' texts are Go error chains
/// (`failed to ingest X: failed to copy: ...: no space left on device`): the start says what
/// failed, the end why.
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
/// its middle.
fn quote(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = text.chars().count();
    if chars <= QUOTE_MAX {
        return text;
    }
    let head: String = text.chars().take(QUOTE_HEAD).collect();
    let tail: String = text
        .chars()
        .skip(chars - (QUOTE_MAX - QUOTE_HEAD))
        .collect();
    format!("{head} … {tail}")
}

/// Whether `body` is one of the engine's own error objects (as opposed to, say, a plain-text
/// 404 from a route the engine does not have).
pub fn is_engine_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
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

pub fn unexpected(what: &str, status: u16, body: &[u8]) -> EngineError {
    let message = serde_json::from_slice::<Value>(body)
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

/// Reads a load answer to its end. Returns the names the engine reports as loaded.
pub fn load_result(status: u16, reader: impl Read) -> Result<Vec<String>, Failure> {
    let mut names = Vec::new();
    let mut failure = None;
    for item in Deserializer::from_reader(reader).into_iter::<Value>() {
        let v = match item {
            Ok(v) => v,
            Err(e) if e.is_io() => {
                return Err(Failure::Read(ureq::Error::Io(e.into())));
            }
            Err(e) => {
                failure.get_or_insert_with(|| format!("unreadable answer: {e}"));
                break;
            }
        };
        if v.get("error").is_some() || v.get("errorDetail").is_some() || status != 200 {
            failure.get_or_insert_with(|| message(&v).unwrap_or_else(|| quote(&v.to_string())));
        }
        if let Some(list) = v["Names"].as_array() {
            names.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if let Some(line) = v["stream"].as_str() {
            if let Some(name) = line.trim().strip_prefix("Loaded image: ") {
                names.push(name.to_owned());
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
