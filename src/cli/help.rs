//! `--help` and `--version`: each command's usage, its rows of `FLAGS` and its exit statuses;
//! without a command, every command's usage and the default command's options.

use super::flags::{Flag, FLAGS};
use super::Name;

/// Where an option's text starts in `--help`.
pub(super) const HELP_COLUMN: usize = 27;

const IMAGE_LIST: &str = "\
image.list: one \"ARCHIVE REF\" per line; blank lines and # comments are skipped.
An archive that does not carry REF but holds one image: that image is tagged REF.
";

const EXIT_STATUS: &str = "\
exit status: 0 every entry's image is present at the end; 1 some entry failed
             (or, with --verify, differs);
             2 usage error or unreadable list; 3 engine unreachable after --wait
";

/// `container-loader --help` (`None`: the overview, with the default command's options) or
/// `container-loader COMMAND --help`.
pub fn help(command: Option<Name>) -> String {
    let mut out = match command {
        None => overview(),
        Some(name) => format!("usage: {}\n\noptions:\n", synopsis(name)),
    };
    let name = command.unwrap_or(Name::Load);
    for flag in FLAGS.iter().filter(|f| f.commands.include(name)) {
        out.push_str(&option(flag));
    }
    out.push('\n');
    out.push_str(&exit_status(name));
    out
}

/// `container-loader 0.1.0 (x86_64-unknown-linux-musl; formats: zstd gzip xz tar)`.
pub fn version() -> String {
    format!(
        "container-loader {} ({}; formats: zstd gzip xz tar)",
        env!("CARGO_PKG_VERSION"),
        env!("CONTAINER_LOADER_TARGET")
    )
}

/// What the program does and every command's usage, up to the default command's options.
fn overview() -> String {
    let mut out = String::from(concat!(
        "container-loader: load the container images a root filesystem ships into ",
        "docker or podman\n\nusage:\n"
    ));
    for &name in Name::ALL {
        for (i, line) in synopsis(name).lines().enumerate() {
            out.push_str(if i == 0 { "  " } else { "    " });
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(concat!(
        "  container-loader COMMAND --help\n      that command's options\n\n",
        "options of load:\n"
    ));
    out
}

/// The usage line and what the command does.
fn synopsis(name: Name) -> &'static str {
    match name {
        Name::Load => {
            "container-loader [load] [OPTIONS]
  load what is missing (the default command)"
        }
        Name::Status => {
            "container-loader status [OPTIONS]
  per entry: archive present?, format, size, image present / missing /
  differs, image id"
        }
        Name::Inspect => {
            "container-loader inspect [OPTIONS] ARCHIVE...
  the images inside archives: references, id, layers, platform, sizes
  (reads, never unpacks; no engine)"
        }
        Name::Scan => {
            "container-loader scan DIR [OPTIONS]
  write an image.list for the archives in DIR, one line per reference
  inside them"
        }
        #[cfg(feature = "pack")]
        Name::Pack => {
            "container-loader pack [OPTIONS] IN OUT
  write the tar inside IN as a layer-framed zstd archive OUT: a frame per
  member, a member index and a seek table (build hosts only)"
        }
    }
}

/// An option's lines: its spellings and value, then its text from [`HELP_COLUMN`] on (on a
/// line of its own when the spellings reach that far).
fn option(flag: &Flag) -> String {
    let mut tag = match flag.short {
        Some(c) => format!("  -{c}, --{}", flag.long),
        None => format!("      --{}", flag.long),
    };
    if let Some(value) = flag.value() {
        tag.push(' ');
        tag.push_str(value);
    }
    let mut lines = flag.help.lines();
    let mut out = if tag.len() < HELP_COLUMN - 1 {
        format!("{tag:<HELP_COLUMN$}{}\n", lines.next().unwrap_or(""))
    } else {
        format!("{tag}\n")
    };
    for line in lines {
        out.push_str(&format!("{:HELP_COLUMN$}{line}\n", ""));
    }
    out
}

/// What the command's exit statuses mean.
fn exit_status(name: Name) -> String {
    match name {
        Name::Load | Name::Status => format!("{IMAGE_LIST}\n{EXIT_STATUS}"),
        Name::Inspect => {
            "exit status: 0 every archive read; 1 some archive could not be read; 2 usage error\n"
                .to_owned()
        }
        Name::Scan => concat!(
            "exit status: 0 a line for every archive; 1 some archive could not be read,\n",
            "             names no image, or a --ref names none;\n",
            "             2 usage error, DIR unreadable or the list not written\n",
        )
        .to_owned(),
        #[cfg(feature = "pack")]
        Name::Pack => {
            "exit status: 0 OUT written; 1 IN unreadable or OUT not written; 2 usage error\n"
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_without_a_command_names_every_command_and_load_options() {
        let text = help(None);
        for &name in Name::ALL {
            assert!(text.contains(&format!("container-loader {name}")) || name == Name::Load);
        }
        assert!(text.contains("container-loader COMMAND --help"), "{text}");
        assert!(
            text.contains("--delete-after-load") && !text.contains("--ref"),
            "{text}"
        );
    }

    #[test]
    fn an_option_too_long_for_its_column_has_its_text_on_the_next_line() {
        let text = help(Some(Name::Load));
        assert!(
            text.contains(concat!(
                "\n      --progress-interval SECONDS\n",
                "                           without a terminal,"
            )),
            "{text}"
        );
        assert!(
            text.contains("\n      --dry-run            say what would be loaded"),
            "{text}"
        );
    }

    #[test]
    fn each_command_help_ends_with_its_exit_statuses() {
        for &name in Name::ALL {
            let text = help(Some(name));
            assert!(text.ends_with(&exit_status(name)), "{text}");
        }
    }
}
