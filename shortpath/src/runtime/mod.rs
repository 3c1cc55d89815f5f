//! Where shortpath keeps per-lab runtime state: `/run/shortpath/<lab>/`
//! (tmpfs, so it goes away with the namespaces on reboot), and the lock
//! that makes every writer of a lab wait for the one before it.
//!
//! Paths come only from [`LabName`]s, and every directory on the way is
//! checked by [`crate::securefs`] (root-owned, not writable by others, no
//! symlinks). Writes go through the [`LabLock`] the writer holds; reads of
//! state files are plain reads of a checked directory.

mod lock;

use std::{
    io,
    path::{Path, PathBuf},
};

pub use lock::{LabLock, LockError, Wait};

use crate::{
    names::LabName,
    securefs::{self, SecureDir, SecureDirError},
};

/// The trusted system directory the runtime directory lives in.
const BASE: &str = "/run";
const TOP: &str = "shortpath";
pub const RUN_DIR: &str = "/run/shortpath";
/// The state file whose presence means a lab exists (written by the lab
/// layer); without it, releasing the lock removes the directory.
pub const LAB_STATE: &str = "lab.json";

/// `/run/shortpath/<lab>`. The only way to name a lab's runtime directory.
pub fn lab_dir(lab: &LabName) -> PathBuf {
    Path::new(RUN_DIR).join(lab.as_str())
}

fn ensure_lab_dir(lab: &LabName) -> Result<SecureDir, SecureDirError> {
    securefs::ensure("runtime", Path::new(BASE), &[TOP, lab.as_str()])
}

fn existing_lab_dir(lab: &LabName) -> Result<Option<SecureDir>, SecureDirError> {
    securefs::existing("runtime", Path::new(BASE), &[TOP, lab.as_str()])
}

fn sec_io(e: SecureDirError) -> io::Error {
    io::Error::other(e)
}

/// Reads state file `name` of `lab`; `None` if the lab or the file does not
/// exist. Symlinks are not followed.
pub fn read_state(lab: &LabName, name: &str) -> io::Result<Option<String>> {
    match existing_lab_dir(lab).map_err(sec_io)? {
        Some(dir) => securefs::read_file(&dir, name),
        None => Ok(None),
    }
}

/// Writes state file `name` atomically, as the holder of the lab's lock.
pub fn write_state(lock: &LabLock, name: &str, contents: &str) -> io::Result<()> {
    securefs::write_atomic(lock.dir(), name, contents.as_bytes())
}

/// Serializes `value` as pretty JSON into state file `name` (atomic).
pub fn write_json<T: serde::Serialize>(lock: &LabLock, name: &str, value: &T) -> io::Result<()> {
    securefs::write_json(lock.dir(), name, value)
}

/// Removes state file `name`; missing is fine.
pub fn remove_state(lock: &LabLock, name: &str) -> io::Result<()> {
    securefs::remove_file(lock.dir(), name)
}
