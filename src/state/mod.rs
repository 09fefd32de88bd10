//! The run on the device: the lists it reads (`entries`), the engine it talks to
//! (`connect`), its run directory, lock and markers, and status.json (`ready`, `row`).

pub(crate) mod connect;
pub(crate) mod entries;
pub(crate) mod lock;
pub mod marker;
pub(crate) mod ready;
pub(crate) mod row;
pub(crate) mod rundir;
