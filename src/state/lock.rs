//! One loader per engine at a time: an advisory lock on a file under /run.
//!
//! Two loaders on one engine (two template units, or a unit and an operator) would upload the
//! same archive twice, and the engines load shared layers more slowly side by side than one
//! after the other. The second loader waits for the first, then finds its images present. The
//! lock is `flock(2)`: the kernel drops it when the holder exits, even on SIGKILL, so a crash
//! never leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

use crate::state::rundir::RunDir;

/// The loader's run directory (locks, status.json, image markers): a tmpfs that starts empty
/// at every boot. `RuntimeDirectory=container-loader` in the units.
pub const RUN_DIR: &str = "/run/container-loader";

/// The lock file's name for the engine at `socket`: one per socket, so loaders for different
/// engines never wait for each other.
pub fn name_for(socket: &Path) -> String {
    let name: String = socket
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.lock")
}

/// A held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock `name` in `dir` (a regular file, never followed or blocked on), calling
/// `waiting` once if another loader holds it.
pub fn acquire(dir: &RunDir, name: &str, waiting: impl FnOnce()) -> io::Result<Lock> {
    let file = dir.lock_file(name)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            waiting();
            file.lock()?;
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn names_one_lock_per_engine_socket() {
        assert_eq!(
            name_for(Path::new("/run/podman/podman.sock")),
            "run_podman_podman.sock.lock"
        );
        assert_ne!(
            name_for(Path::new("/run/docker.sock")),
            name_for(Path::new("/run/podman/podman.sock"))
        );
    }

    #[test]
    fn a_second_holder_waits_until_the_first_releases() {
        let dir = std::env::temp_dir().join(format!("cl-lock-{}", std::process::id()));
        let run = std::sync::Arc::new(RunDir::open(&dir).unwrap());
        let first = acquire(&run, "engine.lock", || {
            panic!("the first taker must not wait")
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let second = {
            let run = run.clone();
            std::thread::spawn(move || {
                let waited = std::cell::Cell::new(false);
                let lock = acquire(&run, "engine.lock", || waited.set(true)).unwrap();
                tx.send(waited.get()).unwrap();
                drop(lock);
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "second got the lock"
        );
        drop(first);
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            "second did not wait"
        );
        second.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
