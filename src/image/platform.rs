//! Platforms: the device's, and how well an image's suits it. An archive may hold one image
//! for several platforms (an OCI image index, or one name on several images); the engines and
//! the loader pick the one that runs here, as a registry pull would, and where no single image
//! suits the device the loader says so ([`Unsuited`]) rather than let an engine pick.

use std::fmt;

use serde_json::Value;

/// An OS, architecture and variant, as OCI descriptors and image configs spell them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
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

    /// `os/architecture[/variant]`, as engines and `--platform` options write it (tests name
    /// platforms so).
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        Some(Platform {
            os: parts.next().filter(|s| !s.is_empty())?.to_owned(),
            architecture: go_arch(parts.next().filter(|s| !s.is_empty())?).to_owned(),
            variant: parts.next().map(str::to_owned),
        })
    }

    /// The platform a descriptor's `platform`, or an image config, names.
    pub(crate) fn of(value: &Value) -> Option<Platform> {
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
    pub(crate) fn rank(&self, device: &Platform) -> Option<u8> {
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

/// Which of several images suits a device best ([`best`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Best {
    /// This one (its place among them): better than every other.
    One(usize),
    /// None runs on the device.
    NoneFits,
    /// These, equally well.
    Several(Vec<usize>),
}

/// Which of `platforms` (one per image, `None` where it is not known) suits `device` best.
pub(crate) fn best(platforms: &[Option<Platform>], device: &Platform) -> Best {
    let ranks: Vec<Option<u8>> = platforms.iter().map(|p| p.as_ref()?.rank(device)).collect();
    let Some(top) = ranks.iter().flatten().min().copied() else {
        return Best::NoneFits;
    };
    let at_top: Vec<usize> = (0..ranks.len())
        .filter(|&i| ranks[i] == Some(top))
        .collect();
    match at_top.as_slice() {
        [one] => Best::One(*one),
        _ => Best::Several(at_top),
    }
}

/// Why no single image of several that carry one name (or of an image index) suits the
/// device: the archive holds the image for other platforms only, or twice for the device's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsuited {
    /// None is for the device's platform; `offered` are the platforms there are.
    NoneFits {
        name: Option<String>,
        device: Platform,
        offered: Vec<String>,
    },
    /// `count` of them are for it, equally well.
    Several {
        name: String,
        device: Platform,
        count: usize,
    },
}

impl Unsuited {
    /// None of images for `platforms` (`None`: not known) suits `device`.
    pub(crate) fn none_fits(
        name: Option<String>,
        device: &Platform,
        platforms: &[Option<Platform>],
    ) -> Self {
        let mut offered: Vec<String> = Vec::new();
        for p in platforms {
            let p = p.as_ref().map_or("unknown".to_owned(), Platform::to_string);
            if !offered.contains(&p) {
                offered.push(p);
            }
        }
        Unsuited::NoneFits {
            name,
            device: device.clone(),
            offered,
        }
    }
}

impl fmt::Display for Unsuited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsuited::NoneFits {
                name,
                device,
                offered,
            } => {
                let which = name.as_deref().map_or(String::new(), |n| format!(" of {n}"));
                write!(
                    f,
                    "no image{which} for this device's platform {device}, only for {}; ship an archive that holds the {device} image",
                    offered.join(", ")
                )
            }
            Unsuited::Several {
                name,
                device,
                count,
            } => write!(
                f,
                "gives {name} to {count} images for this device's platform {device}, and which one is meant cannot be told; ship an archive that gives {name} to one image per platform"
            ),
        }
    }
}

impl std::error::Error for Unsuited {}

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
    fn finds_the_one_image_that_suits_the_device_best() {
        let device = platform("linux/arm/v7");
        let of = |texts: &[&str]| -> Vec<Option<Platform>> {
            texts.iter().map(|t| Platform::parse(t)).collect()
        };
        let arm = of(&["linux/arm64", "linux/arm/v6", "linux/arm/v7"]);
        assert_eq!(best(&arm, &device), Best::One(2));
        assert_eq!(best(&arm[..2], &device), Best::One(1));
        assert_eq!(best(&of(&["linux/amd64", "x"]), &device), Best::NoneFits);
        let twice = of(&["linux/arm/v7", "linux/amd64", "linux/arm"]);
        assert_eq!(best(&twice, &device), Best::Several(vec![0, 2]));
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
