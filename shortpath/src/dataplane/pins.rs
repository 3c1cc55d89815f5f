//! bpffs layout: `/sys/fs/bpf/shortpath/<lab>/<node>/{maps,links,progs}/`.
//! Pinned links and programs keep the dataplane forwarding after the CLI
//! exits; pinned maps are shared by the program generations of a node.
//!
//! Paths are built only from validated names, and every directory is
//! checked on the way down (root-owned, not writable by others, never a
//! symlink: see [`crate::securefs`]).

use std::{
    io,
    path::{Path, PathBuf},
};

use super::DataplaneError;
use crate::{
    names::{LabName, NodeName},
    securefs::{self, SecureDirError},
};

const BPFFS: &str = "/sys/fs/bpf";
const TOP: &str = "shortpath";
const SUBDIRS: [&str; 3] = ["maps", "links", "progs"];

pub fn root() -> PathBuf {
    Path::new(BPFFS).join(TOP)
}

fn pin_err(e: SecureDirError) -> DataplaneError {
    match e {
        SecureDirError::Io { path, source, .. } => DataplaneError::Pin { path, source },
        unsafe_dir => DataplaneError::UnsafePinDir(Box::new(unsafe_dir)),
    }
}

/// A node's pin directory. Its path is only handed out once checked.
pub struct NodePins {
    pub dir: PathBuf,
}

impl NodePins {
    /// Creates (if needed) and checks the node's pin directories, mounting
    /// bpffs first if needed.
    pub fn create(lab: &LabName, node: &NodeName) -> Result<Self, DataplaneError> {
        ensure_bpffs()?;
        let mut dir = None;
        for sub in SUBDIRS {
            let d = securefs::ensure(
                "pin",
                Path::new(BPFFS),
                &[TOP, lab.as_str(), node.as_str(), sub],
            )
            .map_err(pin_err)?;
            dir = d.path.parent().map(Path::to_path_buf);
        }
        Ok(Self {
            dir: dir.expect("three subdirectories"),
        })
    }

    /// The node's pin directory if it exists (and passes the checks).
    pub fn existing(lab: &LabName, node: &NodeName) -> Result<Option<Self>, DataplaneError> {
        if !is_bpffs(Path::new(BPFFS)) {
            return Ok(None);
        }
        let Some(d) =
            securefs::existing("pin", Path::new(BPFFS), &[TOP, lab.as_str(), node.as_str()])
                .map_err(pin_err)?
        else {
            return Ok(None);
        };
        for sub in SUBDIRS {
            securefs::existing("pin", &d.path, &[sub]).map_err(pin_err)?;
        }
        Ok(Some(Self { dir: d.path }))
    }

    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    /// Pin of the TCX link on device `ifname` (an interface name: no '/').
    pub fn link(&self, ifname: &str) -> PathBuf {
        debug_assert!(!ifname.contains('/') && ifname != ".." && ifname != ".");
        self.dir.join("links").join(ifname)
    }

    pub fn links(&self) -> PathBuf {
        self.dir.join("links")
    }

    pub fn prog(&self, program: &str) -> PathBuf {
        self.dir.join("progs").join(program)
    }
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Mounts bpffs on `/sys/fs/bpf` (mode 0700) unless it is there already.
pub fn ensure_bpffs() -> Result<(), DataplaneError> {
    let path = Path::new(BPFFS);
    if is_bpffs(path) {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        path,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| DataplaneError::Bpffs {
        path: path.into(),
        source: io::Error::from(e),
    })
}

/// Removes every pin of a lab (links pinned there detach when their last
/// reference goes). Missing is fine: idempotent. Nothing outside the lab's
/// checked pin directory is touched.
pub fn remove_lab(lab: &LabName) -> Result<(), DataplaneError> {
    if !is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    match securefs::existing("pin", Path::new(BPFFS), &[TOP, lab.as_str()]).map_err(pin_err)? {
        Some(d) => securefs::remove_all(d).map_err(pin_err),
        None => Ok(()),
    }
}

/// Removes a pin file if present.
pub fn unpin(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DataplaneError::Pin {
            path: path.into(),
            source: e,
        }),
        _ => Ok(()),
    }
}
