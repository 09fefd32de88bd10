//! Platforms: the device's, and how well an image's suits it. An archive may hold one image
//! for several platforms (an OCI image index); the engines and the loader pick the one that
//! runs here, as a registry pull would.

use std::fmt;

use serde_json::Value;

/// An OS, architecture and variant, as OCI descriptors and image configs spell them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in Go's names (the engines' and registries').
    pub fn device() -> Platform {
        let architecture = go_arch(std::env::consts::ARCH);
        // 32-bit ARM boards run ARMv7 images; `arm` alone means v7 to the engines as well.
        let variant = (architecture == "arm").then(|| "v7".to_owned());
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// `os/architecture[/variant]`, as engines and `--platform` options write it.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        Some(Platform {
            os: parts.next().filter(|s| !s.is_empty())?.to_owned(),
            architecture: go_arch(parts.next().filter(|s| !s.is_empty())?).to_owned(),
            variant: parts.next().map(str::to_owned),
        })
    }

    /// The platform a descriptor's `platform`, or an image config, names.
    pub fn of(value: &Value) -> Option<Platform> {
        let text = |key: &str| value[key].as_str().filter(|s| !s.is_empty());
        Some(Platform {
            os: text("os")?.to_owned(),
            architecture: go_arch(text("architecture")?).to_owned(),
            variant: text("variant").map(str::to_owned),
        })
    }

    /// How well an image for `self` runs on `device`: 0 is exact, higher is worse, `None`
    /// not at all. A missing variant is the architecture's usual one; an ARMv7 device also
    /// runs v6 and v5 images.
    pub fn rank(&self, device: &Platform) -> Option<u8> {
        if self.os != device.os || self.architecture != device.architecture {
            return None;
        }
        let usual = |p: &Platform| -> String {
            match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", None) => "v8".to_owned(),
                ("arm", None) => "v7".to_owned(),
                ("amd64", Some("v1")) => String::new(),
                (_, v) => v.unwrap_or_default().to_owned(),
            }
        };
        let (mine, theirs) = (usual(self), usual(device));
        match (mine.as_str(), theirs.as_str()) {
            (a, b) if a == b => Some(0),
            ("v6", "v7") => Some(1),
            ("v5", "v7" | "v6") => Some(2),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// Rust's and uname's architecture names -> Go's.
fn go_arch(name: &str) -> &str {
    match name {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn ranks_platforms_as_the_engines_match_them() {
        let rank = |image: &str, device: &str| platform(image).rank(&platform(device));
        assert_eq!(rank("linux/amd64", "linux/amd64"), Some(0));
        assert_eq!(rank("linux/arm64/v8", "linux/arm64"), Some(0));
        assert_eq!(rank("linux/arm", "linux/arm/v7"), Some(0));
        assert_eq!(rank("linux/arm/v6", "linux/arm/v7"), Some(1));
        assert_eq!(rank("linux/arm/v7", "linux/arm/v6"), None);
        assert_eq!(rank("linux/arm64", "linux/amd64"), None);
        assert_eq!(rank("windows/amd64", "linux/amd64"), None);
        let aarch64 = Platform::of(&json!({"os": "linux", "architecture": "aarch64"}));
        assert_eq!(aarch64, Some(platform("linux/arm64")));
    }

    #[test]
    fn knows_the_device_by_its_go_name() {
        let device = Platform::device().to_string();
        let want = match std::env::consts::ARCH {
            "x86_64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            "arm" => "linux/arm/v7",
            other => panic!("add {other} here"),
        };
        assert_eq!(device, want);
    }
}
