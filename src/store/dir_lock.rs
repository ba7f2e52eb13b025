//! One countersign per data directory: the server holds an exclusive lock (`flock`) on
//! `<data_dir>/countersign.lock` for its whole life. The kernel releases it when the process
//! ends, however it ends, so a lock is never stale; and while it is held, any git lock file in
//! countersign's own refs can only be left over from an earlier run that was killed.

use anyhow::Context as _;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a lock held by someone else is waited for before it counts as another server's.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

pub const LOCK_FILE: &str = "countersign.lock";

/// Held while the server runs; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock, or explains that another countersign holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        // Opened for reading if it cannot be created or written (a read-only data directory):
        // `flock` needs no write access, and the store reports the read-only disk itself.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .or_else(|_| File::open(&path))
            .with_context(|| format!("cannot open the data directory lock {}", path.display()))?;
        match try_lock(&file) {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "another countersign is already running on the data directory {} (it holds the \
                 lock {}); stop it first, or give this one its own data_dir",
                data_dir.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock the data directory {}", path.display()))
            }
        }
    }

    /// Takes the lock of a data directory another countersign may be serving from, without
    /// creating the lock file: `None` when there is none (no server ever ran there). For tools
    /// that must not run beside a server (`migrate-store`).
    pub fn acquire_existing(data_dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = data_dir.join(LOCK_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .with_context(|| format!("cannot open the data directory lock {}", path.display()))?;
        match try_lock(&file) {
            Ok(()) => Ok(Some(Self { _file: file, path })),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "a countersign server is running on the data directory {} (it holds the lock \
                 {}); stop it first",
                data_dir.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock the data directory {}", path.display()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks `file`. A lock just released may still be held for a moment: a process forked by its
/// holder (for git, an executor) shares the descriptor until it calls exec, which closes it.
/// Another countersign holds it for good, so a short wait tells the two apart.
fn try_lock(file: &File) -> Result<(), TryLockError> {
    let deadline = Instant::now() + RELEASE_WAIT;
    let mut outcome = file.try_lock();
    while matches!(outcome, Err(TryLockError::WouldBlock)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        outcome = file.try_lock();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            second.contains("another countersign is already running"),
            "{second}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn a_tool_takes_an_existing_lock_only_while_no_server_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DataDirLock::acquire_existing(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(LOCK_FILE).exists(), "not created");
        let server = DataDirLock::acquire(dir.path()).unwrap();
        let refused = DataDirLock::acquire_existing(dir.path()).unwrap_err();
        assert!(refused.to_string().contains("stop it first"), "{refused}");
        drop(server);
        let tool = DataDirLock::acquire_existing(dir.path()).unwrap();
        assert!(tool.is_some());
        DataDirLock::acquire(dir.path()).unwrap_err();
    }
}
