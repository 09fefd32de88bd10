//! What a run tells: the journal (`log`), progress lines, sd_notify, stdout and the exit
//! status.

pub mod exit;
pub mod log;
pub(crate) mod notify;
pub(crate) mod progress;
pub mod stdout;
