//! Image reference grammar: `name[:tag][@digest]`, as docker's distribution/reference defines it
//! (regexp.go, reference.go `Parse`, normalize.go `ParseNormalizedNamed`) and the engines apply
//! it: a reference they would refuse is refused here, before its archive is uploaded on every
//! boot to fail each time. That includes the length of the name as the engine spells it
//! (`debian` is `docker.io/library/debian`) and go-digest's rules for the digest.
//!
//! A reference from image.list ends up inside request paths, and the loader runs as root, so
//! nothing reaches a URL before it has passed this grammar. The grammar admits no `..` path
//! segment and no `?`, `#`, `%` or blank, so a validated reference cannot name another
//! endpoint; the engine client still percent-encodes it as a second line of defence.

use std::borrow::Cow;
use std::fmt;

/// docker's `NameTotalLengthMax`: the name as the engine spells it (domain and path, with
/// `docker.io/` and `library/` added where the name leaves them out) may not be longer.
const NAME_MAX: usize = 255;
/// The digest algorithms go-digest has registered, and the hex digits of each one's digest;
/// docker and podman refuse any other algorithm (`unsupported digest algorithm`).
const DIGESTS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];
/// A tag is one word character followed by at most 127 of `[\w.-]`.
const TAG_MAX: usize = 128;

/// A reference that passed the grammar. It keeps the text as written, since that is what the
/// engine is asked about and what the operator wrote in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    text: String,
}

/// Why a reference was refused; the text completes "invalid image reference: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefError(pub &'static str);

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RefError {}

impl Reference {
    pub fn parse(text: &str) -> Result<Self, RefError> {
        if text.is_empty() {
            return Err(RefError("empty reference"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        // A tag is the text after the last ':' that follows the last '/': a ':' before that
        // belongs to a registry port (`localhost:5000/app`).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        check_name(name)?;
        if digest.is_none() && tag.is_none() && is_hex(name, 64) {
            return Err(RefError(
                "64 hex digits are an image id, not a name (ParseNormalizedNamed refuses them)",
            ));
        }
        if normalized_len(name) > NAME_MAX {
            return Err(RefError(
                "repository name longer than 255 characters as the engine spells it (docker.io/library/ included)",
            ));
        }
        Ok(Reference {
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name and the tag (`latest` when none is written), as `docker tag` takes them;
    /// `None` for a digest reference, which names content, not a tag.
    pub fn repository_and_tag(&self) -> Option<(&str, &str)> {
        if self.text.contains('@') {
            return None;
        }
        let last_slash = self.text.rfind('/').map_or(0, |i| i + 1);
        Some(match self.text[last_slash..].rfind(':') {
            Some(i) => (
                &self.text[..last_slash + i],
                &self.text[last_slash + i + 1..],
            ),
            None => (&self.text, "latest"),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name` as the engines spell it (normalize.go `splitDockerDomain`): its registry, whether
/// `library/` goes before the rest, and the rest. A name without a registry is on `docker.io`
/// (`index.docker.io` is the same), and one without a path there is under `library/`. The one
/// place these rules live: the name's length, comparing names and the listing all use it.
fn split_domain(name: &str) -> (&str, bool, &str) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", name),
    };
    let domain = match domain {
        "index.docker.io" => "docker.io",
        d => d,
    };
    (domain, domain == "docker.io" && !rest.contains('/'), rest)
}

/// The length of `name` as the engine spells it ([`split_domain`]).
fn normalized_len(name: &str) -> usize {
    let (domain, library, rest) = split_domain(name);
    domain.len() + 1 + usize::from(library) * "library/".len() + rest.len()
}

/// `name` with `:latest` when it has neither tag nor digest, as the engines read it.
pub fn tagged(name: &str) -> Cow<'_, str> {
    let last = name.rsplit('/').next().unwrap_or_default();
    match last.contains(':') || last.contains('@') {
        true => Cow::Borrowed(name),
        false => Cow::Owned(format!("{name}:latest")),
    }
}

/// The name two spellings of one image share: `debian` -> `docker.io/library/debian:latest`;
/// `quay.io/a/b:1` stays. Names are compared in this form.
pub fn canonical(name: &str) -> String {
    let (domain, library, rest) = split_domain(name);
    let library = if library { "library/" } else { "" };
    tagged(&format!("{domain}/{library}{rest}")).into_owned()
}

/// The short form docker lists a Docker Hub name in (`debian:12` for
/// `docker.io/library/debian:12`, `u/app:1` for `docker.io/u/app:1`); `None` for other registries.
pub fn familiar(full: &str) -> Option<&str> {
    full.strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
}

fn check_name(name: &str) -> Result<(), RefError> {
    if name.is_empty() {
        return Err(RefError("empty repository name"));
    }
    if name.len() > NAME_MAX {
        return Err(RefError("repository name longer than 255 characters"));
    }
    let mut components = name.split('/');
    let first = components.next().unwrap_or_default();
    let has_more = name.contains('/');
    // The first component is a registry when it has a '.' or ':' or is `localhost`. (Newer
    // docker also reads an upper-case first component as a registry; dockerd 20.10 and podman
    // 4 refuse such names, so they are refused here, before anything is loaded.)
    let is_domain = has_more && (first.contains(['.', ':']) || first == "localhost");
    if is_domain {
        check_domain(first)?;
    } else {
        check_path_component(first)?;
    }
    components.try_for_each(check_path_component)
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(c: &str) -> Result<(), RefError> {
    if c.is_empty() {
        return Err(RefError("empty path component (double or trailing '/')"));
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RefError("repository name must be lower case"));
    }
    let b = c.as_bytes();
    if !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return Err(RefError(
            "path component must start and end with a letter or digit",
        ));
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|s| s == b'-');
        if !ok {
            return Err(RefError(
                "repository name may only contain [a-z0-9] separated by '.', '_', '__' or '-'",
            ));
        }
    }
    Ok(())
}

/// `host[:port]`, host being dot-separated `[A-Za-z0-9-]` labels or a bracketed IPv6 address.
fn check_domain(d: &str) -> Result<(), RefError> {
    let (host, port) = if let Some(v6) = d.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or(RefError("unclosed '[' in registry"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(RefError("invalid IPv6 registry address"));
        }
        match after {
            "" => ("", None),
            p => (
                "",
                Some(
                    p.strip_prefix(':')
                        .ok_or(RefError("invalid registry port"))?,
                ),
            ),
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RefError("registry port must be digits"));
        }
    }
    if d.starts_with('[') {
        return Ok(());
    }
    for label in host.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-');
        if !ok {
            return Err(RefError("invalid registry host name"));
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), RefError> {
    if tag.is_empty() {
        return Err(RefError("empty tag after ':'"));
    }
    if tag.len() > TAG_MAX {
        return Err(RefError("tag longer than 128 characters"));
    }
    if !is_word(tag.as_bytes()[0]) {
        return Err(RefError("tag must start with a letter, digit or '_'"));
    }
    if !tag.bytes().all(|b| is_word(b) || b == b'.' || b == b'-') {
        return Err(RefError(
            "tag may only contain letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// `algorithm:hex` as the reference grammar writes it (algorithm components
/// `[A-Za-z][A-Za-z0-9]*` joined by `+.-_`, at least 32 hex digits), and then as go-digest
/// validates it: an algorithm it has registered, with exactly as many lower-case hex digits as
/// that algorithm's digest has.
fn check_digest(digest: &str) -> Result<(), RefError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or(RefError("digest must be ALGORITHM:HEX"))?;
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '-', '_']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        });
    if !alg_ok {
        return Err(RefError("invalid digest algorithm"));
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RefError("digest must have at least 32 hex digits"));
    }
    let Some(&(_, digits)) = DIGESTS.iter().find(|(name, _)| *name == alg) else {
        return Err(RefError(
            "unsupported digest algorithm (the engines know sha256, sha384 and sha512)",
        ));
    };
    if hex.len() != digits {
        return Err(RefError(
            "digest has the wrong length for its algorithm (sha256: 64 hex digits, sha384: 96, sha512: 128)",
        ));
    }
    if !is_hex(hex, digits) {
        return Err(RefError("digest hex digits must be lower case"));
    }
    Ok(())
}

/// `len` lower-case hex digits.
fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_the_references_image_lists_carry() {
        for ok in [
            "debian",
            "debian:bookworm",
            "library/debian:12.5-slim",
            "docker.io/library/debian:bookworm",
            "quay.io/libpod/alpine:3.10.2",
            "localhost/demo/hello:1.0",
            "localhost:5000/app_x/y__z:v1",
            "registry.example.com:443/a-b--c/d.e:TAG_1",
            "[::1]:5000/app:1",
            "my-registry/app:latest",
        ] {
            assert!(Reference::parse(ok).is_ok(), "{ok} should parse");
        }
        assert!(Reference::parse(&format!("debian@{SHA}")).is_ok());
        assert!(Reference::parse(&format!("a/b@{SHA}")).is_ok());
        assert!(Reference::parse(&format!("debian:12@{SHA}")).is_ok());
    }

    #[test]
    fn reads_a_registry_port_as_part_of_the_name_not_as_a_tag() {
        assert!(Reference::parse("localhost:5000/app").is_ok());
        assert!(Reference::parse("localhost:5000/app:1.2").is_ok());
        assert!(Reference::parse("localhost:50x0/app").is_err());
    }

    #[test]
    fn refuses_references_that_could_reach_other_endpoints() {
        for bad in [
            "../../containers/json?all=1",
            "debian/../../x",
            "debian:tag?x=1",
            "debian#frag",
            "deb%2Fian",
            "name:tag with space",
            "/debian",
            "debian/",
            "a//b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn refuses_malformed_names_tags_and_digests() {
        for bad in [
            "",
            "library/Debian:tag",
            "UPPER/case:tag",
            "Debian",
            "UPPER",
            "debian:",
            "debian:-x",
            "-debian",
            "deb..ian",
            "debian@sha256:abc",
            "debian@:0123456789abcdef0123456789abcdef",
            "debian@sha256",
            "localhost:port/app",
            "[..]:5000/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Reference::parse(&format!("debian:{}", "t".repeat(129))).is_err());
        assert!(Reference::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn splits_into_repository_and_tag_as_docker_tag_takes_them() {
        let split = |r: &str| {
            Reference::parse(r)
                .unwrap()
                .repository_and_tag()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        };
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(split("debian:bookworm"), pair("debian", "bookworm"));
        assert_eq!(
            split("localhost:5000/app"),
            pair("localhost:5000/app", "latest")
        );
        assert_eq!(split("quay.io/a/b:1.0"), pair("quay.io/a/b", "1.0"));
        assert_eq!(split(&format!("app@{SHA}")), None);
    }

    fn refused(text: &str) -> &'static str {
        match Reference::parse(text) {
            Ok(_) => panic!("{text:?} should be refused"),
            Err(RefError(why)) => why,
        }
    }

    #[test]
    fn refuses_a_sha256_digest_of_other_than_64_hex_digits() {
        let hex = &SHA["sha256:".len()..];
        assert!(refused(&format!("app@sha256:{}", &hex[..32])).contains("wrong length"));
        assert!(refused(&format!("app@sha256:{hex}0")).contains("wrong length"));
    }

    #[test]
    fn refuses_upper_case_hex_in_a_digest() {
        let upper = SHA.to_uppercase().replace("SHA256", "sha256");
        assert!(refused(&format!("app@{upper}")).contains("lower case"));
    }

    #[test]
    fn accepts_sha384_and_sha512_digests_of_their_own_lengths() {
        assert!(Reference::parse(&format!("app@sha384:{}", "a".repeat(96))).is_ok());
        assert!(Reference::parse(&format!("app@sha512:{}", "b".repeat(128))).is_ok());
        assert!(refused(&format!("app@sha512:{}", "b".repeat(64))).contains("wrong length"));
        assert!(refused(&format!("app@sha384:{}", "a".repeat(64))).contains("wrong length"));
    }

    #[test]
    fn refuses_digest_algorithms_the_engines_do_not_know() {
        for alg in ["md5", "sha1", "blake3", "sha256+b64", "SHA256"] {
            let why = refused(&format!("app@{alg}:{}", "a".repeat(64)));
            assert!(why.contains("unsupported digest algorithm"), "{alg}: {why}");
        }
    }

    #[test]
    fn limits_the_name_as_the_engine_spells_it_to_255_characters() {
        // `docker.io/library/` (18 characters) is added to a name without registry or path.
        let fits = "a".repeat(255 - 18);
        assert!(Reference::parse(&fits).is_ok());
        assert!(Reference::parse(&format!("{fits}:tag")).is_ok());
        let why = refused(&"a".repeat(250));
        assert!(why.contains("as the engine spells it"), "{why}");
        // `docker.io/` (10) for a name with a path; nothing for one with a registry.
        assert!(Reference::parse(&format!("u/{}", "b".repeat(255 - 12))).is_ok());
        assert!(Reference::parse(&format!("u/{}", "b".repeat(255 - 11))).is_err());
        let registry = format!("example.org/{}", "c".repeat(255 - 12));
        assert!(Reference::parse(&registry).is_ok());
        assert!(Reference::parse(&format!("{registry}c")).is_err());
        // The tag and digest do not count.
        assert!(Reference::parse(&format!("{fits}:{}@{SHA}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn spells_names_out_as_the_engines_read_them() {
        assert_eq!(canonical("debian"), "docker.io/library/debian:latest");
        assert_eq!(canonical("u/app:1"), "docker.io/u/app:1");
        assert_eq!(canonical("localhost/app"), "localhost/app:latest");
        assert_eq!(canonical("localhost:5000/a:2"), "localhost:5000/a:2");
        assert_eq!(canonical("quay.io/a/b:c"), "quay.io/a/b:c");
        assert_eq!(canonical("a@sha256:00"), "docker.io/library/a@sha256:00");
        // As docker reads them: one image, however it is spelled.
        assert_eq!(canonical("docker.io/debian:12"), canonical("debian:12"));
        assert_eq!(canonical("index.docker.io/u/app"), canonical("u/app"));
        assert_eq!(familiar("docker.io/library/debian:12"), Some("debian:12"));
        assert_eq!(familiar("docker.io/u/app:1"), Some("u/app:1"));
        assert_eq!(familiar("quay.io/a:1"), None);
    }

    #[test]
    fn spells_index_docker_io_as_docker_io_when_measuring_a_name() {
        assert_eq!(
            normalized_len("index.docker.io/debian"),
            "docker.io/library/debian".len()
        );
        assert_eq!(normalized_len("debian"), "docker.io/library/debian".len());
        assert_eq!(normalized_len("u/app"), "docker.io/u/app".len());
        assert_eq!(normalized_len("localhost/app"), "localhost/app".len());
    }

    #[test]
    fn refuses_64_hex_digits_as_a_name_since_they_are_an_image_id() {
        let id = &SHA["sha256:".len()..];
        assert!(refused(id).contains("image id"));
        assert!(Reference::parse(&format!("{id}:1")).is_ok());
        assert!(Reference::parse(&id[..63]).is_ok());
    }
}
