//! Deciding before a load: which layers the engine already holds (`delta`), whether the
//! decoded archive fits (`space`), and which image the archive holds (`verify`).

pub mod delta;
pub mod space;
pub mod verify;
