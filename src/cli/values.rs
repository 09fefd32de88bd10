//! The values options take, read from their text: seconds, the engine, sizes, `ARCHIVE=REF`,
//! and the sockets to try from `--host` and the environment. Each refusal names the option and
//! what it takes, as the operator reads it after `container-loader COMMAND: `.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{Kind, DOCKER_SOCKET, PODMAN_SOCKET};
use crate::input::sizes::Size;

/// Whole seconds, as `--wait`, `--timeout` and `--progress-interval` take them.
pub(super) fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{flag} takes whole seconds, not \"{text}\""))
}

/// `--engine`: `None` for auto, detected from the engine's first answer.
pub(super) fn engine(text: &str) -> Result<Option<Kind>, String> {
    match text {
        "auto" => Ok(None),
        "docker" => Ok(Some(Kind::Docker)),
        "podman" => Ok(Some(Kind::Podman)),
        other => Err(format!(
            "--engine takes auto, docker or podman, not \"{other}\""
        )),
    }
}

/// `--memory-limit` in bytes: a size such as `512M`, never zero.
pub(super) fn memory_limit(text: &str) -> Result<u64, String> {
    Size::parse(text)
        .filter(|s| s.0 > 0)
        .map(|s| s.0)
        .ok_or_else(|| format!("--memory-limit takes a size like 512M or 2G, not \"{text}\""))
}

/// `--ref ARCHIVE=REF`, split at its first `=`.
pub(super) fn archive_ref(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(archive, reference)| (archive.to_owned(), reference.to_owned()))
        .ok_or_else(|| format!("--ref takes ARCHIVE=REF, not \"{pair}\""))
}

/// The sockets to try: `--host`, else `$CONTAINER_HOST`, else `$DOCKER_HOST`, else the
/// engine's usual socket (both engines' when the engine is to be detected).
pub(super) fn sockets(
    host: Option<String>,
    engine: Option<Kind>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, String> {
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
            .ok_or_else(|| format!("{from} must be unix:///path or a path, not \"{url}\""));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_whole_and_not_negative() {
        assert_eq!(seconds("--wait", "0"), Ok(Duration::ZERO));
        assert_eq!(seconds("--wait", "90"), Ok(Duration::from_secs(90)));
        assert_eq!(
            seconds("--wait", "1.5"),
            Err("--wait takes whole seconds, not \"1.5\"".to_owned())
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
