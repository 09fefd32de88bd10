//! How a run ends, as its exit status tells it: one list for every command, so that a unit or a
//! script reads the same number the same way whichever command it ran.

/// How a run ended, as the exit status tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every entry's image is present (or, in a dry run, could be loaded).
    Done = 0,
    /// Some entry failed, or a list line was invalid.
    Failed = 1,
    /// A usage error, or a list that could not be read.
    Usage = 2,
    /// No engine answered within `--wait`.
    Unreachable = 3,
}
