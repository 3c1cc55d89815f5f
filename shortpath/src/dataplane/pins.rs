//! bpffs layout: `/sys/fs/bpf/shortpath/<lab>/<node>/{maps,links,progs}/`.
//! Pinned links and programs keep the dataplane forwarding after the CLI
//! exits; pinned maps are shared by the program generations of a node.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::DataplaneError;

const BPFFS: &str = "/sys/fs/bpf";

pub fn root() -> PathBuf {
    Path::new(BPFFS).join("shortpath")
}

pub struct NodePins {
    pub dir: PathBuf,
}

impl NodePins {
    pub fn new(lab: &str, node: &str) -> Self {
        Self {
            dir: root().join(lab).join(node),
        }
    }

    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    pub fn link(&self, ifname: &str) -> PathBuf {
        self.dir.join("links").join(ifname)
    }

    pub fn links(&self) -> PathBuf {
        self.dir.join("links")
    }

    pub fn prog(&self, program: &str) -> PathBuf {
        self.dir.join("progs").join(program)
    }

    /// Creates the directories, mounting bpffs first if needed.
    pub fn create(&self) -> Result<(), DataplaneError> {
        ensure_bpffs()?;
        for d in [self.maps(), self.links(), self.dir.join("progs")] {
            std::fs::create_dir_all(&d)
                .map_err(|source| DataplaneError::Pin { path: d, source })?;
        }
        Ok(())
    }
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Mounts bpffs on `/sys/fs/bpf` unless it is there already.
pub fn ensure_bpffs() -> Result<(), DataplaneError> {
    let path = Path::new(BPFFS);
    if is_bpffs(path) {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        path,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| DataplaneError::Bpffs {
        path: path.into(),
        source: io::Error::from(e),
    })
}

/// Removes every pin of a lab (links pinned there detach when their last
/// reference goes). Missing is fine: idempotent.
pub fn remove_lab(lab: &str) -> Result<(), DataplaneError> {
    let dir = root().join(lab);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DataplaneError::Pin {
            path: dir,
            source: e,
        }),
        _ => Ok(()),
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
