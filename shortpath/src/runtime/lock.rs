//! One writer per lab: an advisory lock (`flock`) on
//! `/run/shortpath/<lab>/lock`, held for as long as a command changes the
//! lab (`lab up`/`down`, `mode`, and bench, trace and report, which switch
//! modes and may build their own lab).
//!
//! The kernel drops the lock when its holder exits, however it exits
//! (SIGKILL included), so a crash never leaves a lab locked. The holder
//! writes who it is into the file; a second writer says what it waits for.
//! A holder that leaves no lab behind removes the file and the directory;
//! a waiter that then gets the lock on the unlinked file notices (the path
//! no longer names it) and starts over.

use std::{
    fs::File,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::fd::AsRawFd,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::{ensure_lab_dir, SecureDir};
use crate::{
    names::LabName,
    securefs::{self, SecureDirError},
};

const LOCK_FILE: &str = "lock";
const POLL: Duration = Duration::from_millis(20);

/// Whether a second writer waits for the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wait {
    #[default]
    Block,
    /// Fail at once if another writer holds the lab.
    NoWait,
}

/// Who holds a lab's lock, as written into the lock file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    /// Seconds since the epoch when it took the lock.
    pub since: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = now().saturating_sub(self.since);
        write!(f, "pid {} (`{}`, for {secs} s)", self.pid, self.command)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lab {lab} is busy: {holder} is changing it; run again when it is done, or leave out --no-wait to wait for it")]
    Busy { lab: LabName, holder: String },
    #[error(transparent)]
    Dir(#[from] SecureDirError),
    #[error("lock of lab {lab}: {source}")]
    Io {
        lab: LabName,
        #[source]
        source: std::io::Error,
    },
}

/// The lab's writer lock; released on drop.
pub struct LabLock {
    lab: LabName,
    dir: SecureDir,
    file: File,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Ok(true)` when we got the lock.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn holder_of(mut file: &File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    match serde_json::from_str::<Holder>(s.trim()) {
        Ok(h) => h.to_string(),
        Err(_) => "another shortpath process".to_owned(),
    }
}

fn this_command() -> String {
    let mut c = std::env::args().collect::<Vec<_>>().join(" ");
    if let Some(name) = c.split_whitespace().next() {
        let short = std::path::Path::new(name)
            .file_name()
            .map_or_else(|| name.to_owned(), |f| f.to_string_lossy().into_owned());
        c = c.replacen(name, &short, 1);
    }
    c.chars().take(200).collect()
}

impl LabLock {
    /// Takes the writer lock of `lab`, creating its runtime directory if
    /// needed. With [`Wait::Block`] it waits for the current holder (saying
    /// so once on stderr); the wait ends when the future is dropped.
    pub async fn acquire(lab: &LabName, wait: Wait) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            lab: lab.clone(),
            source,
        };
        let mut announced = false;
        loop {
            // The previous holder may be removing the directory right now:
            // then the path vanishes under us, and we start over.
            let opened = ensure_lab_dir(lab)
                .and_then(|dir| securefs::open_file(&dir, LOCK_FILE, 0o600).map(|f| (dir, f)));
            let (dir, file) = match opened {
                Ok(v) => v,
                Err(SecureDirError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            while !try_lock(&file).map_err(io)? {
                if wait == Wait::NoWait {
                    return Err(LockError::Busy {
                        lab: lab.clone(),
                        holder: holder_of(&file),
                    });
                }
                if !announced {
                    eprintln!(
                        "waiting for lab {lab}: {} is changing it (--no-wait fails instead)",
                        holder_of(&file)
                    );
                    announced = true;
                }
                tokio::time::sleep(POLL).await;
            }
            // The previous holder may have removed the lab (and this file)
            // while we waited: then the lock we got guards nothing.
            if !securefs::same_file(&file, &dir.path.join(LOCK_FILE)) {
                continue;
            }
            let mut lock = LabLock {
                lab: lab.clone(),
                dir,
                file,
            };
            lock.record_holder().map_err(io)?;
            return Ok(lock);
        }
    }

    fn record_holder(&mut self) -> std::io::Result<()> {
        let h = Holder {
            pid: std::process::id(),
            command: this_command(),
            since: now(),
        };
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(
            serde_json::to_string(&h)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )
    }

    pub fn lab(&self) -> &LabName {
        &self.lab
    }

    pub(super) fn dir(&self) -> &SecureDir {
        &self.dir
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        use nix::unistd::{unlinkat, UnlinkatFlags};
        let lab_left = super::read_state(&self.lab, super::LAB_STATE).map_or(true, |s| s.is_some());
        if lab_left {
            return;
        }
        // No lab any more: leave nothing behind (other layers' state files
        // of the gone lab included; the lock file last). Others waiting on
        // this file see it unlinked and start over.
        if let Ok(entries) = std::fs::read_dir(&self.dir.path) {
            for e in entries.flatten() {
                let name = e.file_name();
                if name != LOCK_FILE && e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = unlinkat(self.dir.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir);
                }
            }
        }
        let _ = unlinkat(self.dir.fd(), LOCK_FILE, UnlinkatFlags::NoRemoveDir);
        let _ = std::fs::remove_dir(&self.dir.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_is_shown_with_pid_command_and_age() {
        let h = Holder {
            pid: 42,
            command: "shortpath mode peer".into(),
            since: now() - 3,
        };
        let s = h.to_string();
        assert!(s.starts_with("pid 42 (`shortpath mode peer`, for "), "{s}");
        let text = serde_json::to_string(&h).unwrap();
        let f = tempfile::tempfile().unwrap();
        (&f).write_all(text.as_bytes()).unwrap();
        assert_eq!(holder_of(&f), h.to_string());
        let empty = tempfile::tempfile().unwrap();
        assert_eq!(holder_of(&empty), "another shortpath process");
    }
}
