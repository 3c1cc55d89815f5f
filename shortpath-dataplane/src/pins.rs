//! bpffs layout: `<pin root>/<node>/{maps,links,progs}/`, the pin root a
//! directory below `/sys/fs/bpf` (`/sys/fs/bpf/shortpath` on a node; the
//! lab uses `/sys/fs/bpf/shortpath/<lab>`).
//! Pinned links and programs keep the dataplane forwarding after the CLI
//! exits; pinned maps are shared by the program generations of a node.
//!
//! Paths are built only from validated names, and every directory is
//! checked on the way down (root-owned, not writable by others, never a
//! symlink: see [`crate::securefs`]).

use std::{
    fmt, io,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Serialize;

use super::DataplaneError;
use crate::{
    names::{NameError, NodeName, PinName},
    securefs::{self, SecureDirError},
};

pub const BPFFS: &str = "/sys/fs/bpf";
const TOP: &str = "shortpath";
const SUBDIRS: [&str; 3] = ["maps", "links", "progs"];

/// A directory below `/sys/fs/bpf` that holds nodes' pins: one or more
/// checked components, never `.`, `..` or a symlink on the way down.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct PinRoot(Vec<PinName>);

impl PinRoot {
    /// `/sys/fs/bpf/shortpath`, the default.
    pub fn shortpath() -> Self {
        Self(vec![PinName::new(TOP).expect("a valid name")])
    }

    /// A directory below this one.
    pub fn join(&self, name: &str) -> Result<Self, NameError> {
        let mut v = self.0.clone();
        v.push(PinName::new(name)?);
        Ok(Self(v))
    }

    pub fn path(&self) -> PathBuf {
        self.0
            .iter()
            .fold(PathBuf::from(BPFFS), |p, c| p.join(c.as_str()))
    }

    fn components(&self) -> Vec<&str> {
        self.0.iter().map(|c| c.as_str()).collect()
    }

    /// Removes every pin below this root (links pinned there detach when
    /// their last reference goes). Missing is fine: idempotent. Nothing
    /// outside the checked directory is touched.
    pub fn remove_all(&self) -> Result<(), DataplaneError> {
        if !is_bpffs(Path::new(BPFFS)) {
            return Ok(());
        }
        match securefs::existing("pin", Path::new(BPFFS), &self.components()).map_err(pin_err)? {
            Some(d) => securefs::remove_all(d).map_err(pin_err),
            None => Ok(()),
        }
    }
}

impl Default for PinRoot {
    fn default() -> Self {
        Self::shortpath()
    }
}

impl fmt::Display for PinRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path().display().fmt(f)
    }
}

impl fmt::Debug for PinRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path(), f)
    }
}

impl From<PinRoot> for String {
    fn from(r: PinRoot) -> String {
        r.to_string()
    }
}

/// Why a pin root was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinRootError {
    #[error("pin root {0:?} must be a directory below {BPFFS}, such as {BPFFS}/shortpath")]
    Outside(String),
    #[error("pin root {path:?}: {source}")]
    Name {
        path: String,
        #[source]
        source: NameError,
    },
}

impl FromStr for PinRoot {
    type Err = PinRootError;
    /// An absolute path below `/sys/fs/bpf`, every component a checked name.
    fn from_str(s: &str) -> Result<Self, PinRootError> {
        let outside = || PinRootError::Outside(s.to_owned());
        let rest = s
            .strip_prefix(BPFFS)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(outside)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut v = Vec::new();
        for c in rest.split('/').filter(|_| !rest.is_empty()) {
            v.push(PinName::new(c).map_err(|source| PinRootError::Name {
                path: s.to_owned(),
                source,
            })?);
        }
        if v.is_empty() {
            return Err(outside());
        }
        Ok(Self(v))
    }
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
    pub fn create(root: &PinRoot, node: &NodeName) -> Result<Self, DataplaneError> {
        ensure_bpffs()?;
        let mut dir = None;
        for sub in SUBDIRS {
            let mut path = root.components();
            path.extend([node.as_str(), sub]);
            let d = securefs::ensure("pin", Path::new(BPFFS), &path).map_err(pin_err)?;
            dir = d.path.parent().map(Path::to_path_buf);
        }
        Ok(Self {
            dir: dir.expect("three subdirectories"),
        })
    }

    /// The node's pin directory if it exists (and passes the checks).
    pub fn existing(root: &PinRoot, node: &NodeName) -> Result<Option<Self>, DataplaneError> {
        if !is_bpffs(Path::new(BPFFS)) {
            return Ok(None);
        }
        let mut path = root.components();
        path.push(node.as_str());
        let Some(d) = securefs::existing("pin", Path::new(BPFFS), &path).map_err(pin_err)? else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_roots_stay_below_bpffs() {
        let r: PinRoot = "/sys/fs/bpf/shortpath/lab1".parse().unwrap();
        assert_eq!(r.path(), Path::new("/sys/fs/bpf/shortpath/lab1"));
        assert_eq!(r, PinRoot::shortpath().join("lab1").unwrap());
        for bad in [
            "/sys/fs/bpf",
            "/sys/fs/bpf/",
            "/sys/fs/bpf/../etc",
            "/sys/fs/bpf/a/./b",
            "/sys/fs/bpf/a/../../tmp",
            "/tmp/x",
            "sys/fs/bpf/x",
            "/sys/fs/bpfx/y",
            "/sys/fs/bpf/a b",
        ] {
            assert!(bad.parse::<PinRoot>().is_err(), "{bad}");
        }
        assert!(PinRoot::shortpath().join("..").is_err());
    }
}
