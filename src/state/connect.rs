//! Connecting to the engine as the commands do: the first socket that answers within the wait,
//! and what the verbose log says about it, the same for `load` and `status`.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{Engine, EngineError, Kind, Knock, LIBPOD_FALLBACK_VERSION};
use crate::report::log::Log;

/// Connects to the engine, or says why not. `kind` `None`: whichever answers. `knock`: what
/// to ask first ([`Engine::first_listing`] keeps a listing).
pub fn connect(
    sockets: &[PathBuf],
    kind: Option<Kind>,
    wait: Duration,
    timeout: Duration,
    knock: Knock,
    log: &Log,
) -> Result<Engine, EngineError> {
    let engine = Engine::connect(sockets, kind, wait, timeout, knock)?;
    if let Some(api) = &engine.ignored_api_version {
        log.debug(format_args!(
            "ignored the engine's Libpod-Api-Version \"{api}\" (not digits and dots); using its API as version {LIBPOD_FALLBACK_VERSION}"
        ));
    }
    // Telling the store costs a request (GET /info), worth it only when someone reads it.
    if log.verbose() {
        log.debug(format_args!(
            "engine: {} at {}",
            engine.describe(),
            engine.socket.display()
        ));
    }
    Ok(engine)
}
