//! The values options take, read from their text: seconds, the engine, sizes, `ARCHIVE=REF`,
//! and the sockets to try from `--host` and the environment. Each refusal names the option and
//! what it takes, as the operator reads it after `container-loader COMMAND: `.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Refusal;
use crate::engine::{Kind, DOCKER_SOCKET, PODMAN_SOCKET};
use crate::input::sizes::Size;

/// Whole seconds, as `--wait`, `--timeout` and `--progress-interval` take them.
pub(super) fn seconds(flag: &'static str, text: &str) -> Result<Duration, Refusal> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| Refusal::NotSeconds {
            flag,
            text: text.to_owned(),
        })
}

/// `--engine`: `None` for auto, detected from the engine's first answer.
pub(super) fn engine(text: &str) -> Result<Option<Kind>, Refusal> {
    match text {
        "auto" => Ok(None),
        "docker" => Ok(Some(Kind::Docker)),
        "podman" => Ok(Some(Kind::Podman)),
        other => Err(Refusal::NotAnEngine(other.to_owned())),
    }
}

/// `--memory-limit` in bytes: a size such as `512M`, never zero.
pub(super) fn memory_limit(text: &str) -> Result<u64, Refusal> {
    Size::parse(text)
        .filter(|s| s.0 > 0)
        .map(|s| s.0)
        .ok_or_else(|| Refusal::NotASize(text.to_owned()))
}

/// `--ref ARCHIVE=REF`, split at its first `=`.
pub(super) fn archive_ref(pair: &str) -> Result<(String, String), Refusal> {
    pair.split_once('=')
        .map(|(archive, reference)| (archive.to_owned(), reference.to_owned()))
        .ok_or_else(|| Refusal::NotARef(pair.to_owned()))
}

/// The sockets to try: `--host`, else `$CONTAINER_HOST`, else `$DOCKER_HOST`, else the
/// engine's usual socket (both engines' when the engine is to be detected).
pub(super) fn sockets(
    host: Option<String>,
    engine: Option<Kind>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, Refusal> {
    let given = host
        .map(|h| ("--host", h))
        .or_else(|| {
            env("CONTAINER_HOST")
                .filter(|h| !h.is_empty())
                .map(|h| ("$CONTAINER_HOST", h))
        })
        .or_else(|| {
            env("DOCKER_HOST")
                .filter(|h| !h.is_empty())
                .map(|h| ("$DOCKER_HOST", h))
        });
    if let Some((from, url)) = given {
        return unix_path(&url)
            .map(|p| vec![p])
            .ok_or(Refusal::NotASocket { from, url });
    }
    Ok(match engine {
        Some(Kind::Docker) => vec![DOCKER_SOCKET.into()],
        Some(Kind::Podman) => vec![PODMAN_SOCKET.into()],
        None => vec![DOCKER_SOCKET.into(), PODMAN_SOCKET.into()],
    })
}

/// The socket's path in `unix:///path` or a plain path; `None` for any other scheme.
fn unix_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("unix://").unwrap_or(url);
    (path.starts_with('/') || !url.contains("://")).then(|| PathBuf::from(path))
}

/// `--level`: a zstd level the encoder takes, 1 to 22.
#[cfg(feature = "pack")]
pub(super) fn level(text: &str) -> Result<i32, Refusal> {
    text.parse()
        .ok()
        .filter(|n| (1..=22).contains(n))
        .ok_or_else(|| Refusal::NotALevel(text.to_owned()))
}

/// `--threads`: at least one.
#[cfg(feature = "pack")]
pub(super) fn threads(text: &str) -> Result<usize, Refusal> {
    text.parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| Refusal::NotThreads(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_whole_and_not_negative() {
        assert_eq!(seconds("--wait", "0"), Ok(Duration::ZERO));
        assert_eq!(seconds("--wait", "90"), Ok(Duration::from_secs(90)));
        assert_eq!(
            seconds("--wait", "1.5"),
            Err(Refusal::NotSeconds {
                flag: "--wait",
                text: "1.5".to_owned()
            })
        );
        assert!(seconds("--wait", "-1").is_err());
    }

    #[test]
    fn a_memory_limit_is_a_size_above_zero() {
        assert_eq!(memory_limit("512M"), Ok(512 << 20));
        assert!(memory_limit("0").is_err());
        assert!(memory_limit("lots").is_err());
    }

    #[test]
    fn a_ref_splits_at_its_first_equals_sign() {
        assert_eq!(
            archive_ref("a.tar=example.org/a:1"),
            Ok(("a.tar".to_owned(), "example.org/a:1".to_owned()))
        );
        assert_eq!(archive_ref("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert!(archive_ref("a.tar").is_err());
    }

    #[test]
    fn a_host_is_a_unix_url_or_a_path() {
        assert_eq!(unix_path("unix:///run/x.sock"), Some("/run/x.sock".into()));
        assert_eq!(unix_path("/run/x.sock"), Some("/run/x.sock".into()));
        assert_eq!(unix_path("x.sock"), Some("x.sock".into()));
        assert_eq!(unix_path("tcp://10.0.0.1:2375"), None);
    }

    #[test]
    fn an_empty_environment_variable_counts_as_unset() {
        let env = |k: &str| (k == "CONTAINER_HOST").then(String::new);
        assert_eq!(
            sockets(None, Some(Kind::Docker), &env),
            Ok(vec![PathBuf::from(DOCKER_SOCKET)])
        );
    }
}
