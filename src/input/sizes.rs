//! Sizes as operators write and read them: `512M` on the command line, `12.3 MiB` in the log.

use std::fmt;

/// A byte count, shown in binary units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        match self.0 {
            n if n < 1 << 10 => write!(f, "{n} B"),
            n if n < 1 << 20 => write!(f, "{:.1} KiB", b / 1024.0),
            n if n < 1 << 30 => write!(f, "{:.1} MiB", b / (1 << 20) as f64),
            _ => write!(f, "{:.2} GiB", b / (1 << 30) as f64),
        }
    }
}

impl Size {
    /// The shortest whole `--memory-limit` spelling at or above this size, like `1G`.
    pub fn flag(self) -> String {
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
            if self.0 >= 1 << shift {
                return format!("{}{unit}", self.0.div_ceil(1 << shift));
            }
        }
        self.0.to_string()
    }

    /// Parses `1048576`, `512K`, `512M`, `2G`, `2GiB` or `2GB` (binary units throughout).
    pub fn parse(text: &str) -> Option<Size> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let number: u64 = number.parse().ok()?;
        let shift = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 0,
            "K" | "KB" | "KIB" => 10,
            "M" | "MB" | "MIB" => 20,
            "G" | "GB" | "GIB" => 30,
            "T" | "TB" | "TIB" => 40,
            _ => return None,
        };
        number.checked_mul(1 << shift).map(Size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_operators_use() {
        assert_eq!(Size::parse("512M"), Some(Size(512 << 20)));
        assert_eq!(Size::parse("2GiB"), Some(Size(2 << 30)));
        assert_eq!(Size::parse("4096"), Some(Size(4096)));
        assert_eq!(Size::parse("1k"), Some(Size(1024)));
        for bad in ["", "M", "12X", "-1M", "1.5G", "99999999999T"] {
            assert_eq!(Size::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shows_sizes_in_binary_units() {
        assert_eq!(Size(512).to_string(), "512 B");
        assert_eq!(Size(128 << 20).to_string(), "128.0 MiB");
        assert_eq!(Size(3 << 29).to_string(), "1.50 GiB");
        assert_eq!(Size(128 << 20).flag(), "128M");
        assert_eq!(Size((1 << 30) + 1).flag(), "2G");
    }
}
