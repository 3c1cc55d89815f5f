//! The agent's state directory: checked on the way down (root-owned, not
//! writable by others, no symlinks), locked by one agent per node, and
//! written atomically.

use std::{
    fs::File,
    io::{self, Read as _, Seek as _, Write as _},
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};

use crate::securefs::{self, SecureDir, SecureDirError};

const LOCK: &str = "agent.lock";
/// How long a start waits for the lock before giving up.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path:?} must be an absolute path without '.' or '..'")]
    BadPath { what: &'static str, path: PathBuf },
    #[error(transparent)]
    Dir(#[from] SecureDirError),
    #[error(
        "another shortpathd runs for this node (state {dir}, held by {holder}); stop it first"
    )]
    Busy { dir: PathBuf, holder: String },
    #[error("state directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The components of an absolute path; empty, `.` and `..` components
/// refused (a trailing `/` is fine).
pub fn components<'a>(what: &'static str, path: &'a Path) -> Result<Vec<&'a str>, StoreError> {
    let bad = || StoreError::BadPath {
        what,
        path: path.into(),
    };
    let s = path.to_str().ok_or_else(bad)?;
    let rest = s.strip_prefix('/').ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad());
    }
    Ok(parts)
}

/// Creates (if needed) and checks an absolute directory, every component
/// from `/` down.
pub fn ensure_dir(what: &'static str, path: &Path) -> Result<SecureDir, StoreError> {
    let parts = components(what, path)?;
    Ok(securefs::ensure(what, Path::new("/"), &parts)?)
}

pub struct Store {
    dir: SecureDir,
    /// Held for the agent's life; the kernel releases it when we die.
    _lock: Flock<File>,
}

impl Store {
    /// Opens and locks the state directory. Fails at once if another agent
    /// holds it, naming that agent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = ensure_dir("agent state", path)?;
        let io = |source| StoreError::Io {
            dir: path.into(),
            source,
        };
        // A predecessor that was just killed can hold the lock for a few
        // milliseconds more, until its last thread is gone: wait that long.
        let started = std::time::Instant::now();
        let mut lock = loop {
            let file = securefs::open_file(&dir, LOCK, 0o600)?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((mut f, _)) if started.elapsed() >= BUSY_WAIT => {
                    let mut holder = String::new();
                    let _ = f.read_to_string(&mut holder);
                    return Err(StoreError::Busy {
                        dir: path.into(),
                        holder: holder.trim().to_owned(),
                    });
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        };
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        write!(lock, "pid {}", std::process::id()).map_err(io)?;
        Ok(Self { dir, _lock: lock })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    pub fn read<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        match securefs::read_file(&self.dir, name)? {
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            None => Ok(None),
        }
    }

    pub fn write<T: serde::Serialize>(&self, name: &str, value: &T) -> io::Result<()> {
        securefs::write_json(&self.dir, name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_paths_are_absolute_and_plain() {
        assert_eq!(
            components("x", Path::new("/run/shortpathd")).unwrap(),
            ["run", "shortpathd"]
        );
        for bad in ["run/x", "/run/../etc", "/run/./x", "", "/", "/run//x"] {
            assert!(components("x", Path::new(bad)).is_err(), "{bad}");
        }
    }
}
