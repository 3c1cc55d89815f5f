//! Named network namespaces (`/run/netns/<name>`, compatible with
//! `ip netns`) and running code inside them.
//!
//! Namespace switches only ever happen on dedicated threads
//! ([`run_in`], [`spawn_in`]) behind a [`NetnsGuard`] that restores the
//! thread's original namespace; tokio workers never call `setns`.

mod guard;
mod server;
mod thread;

use std::{
    fs::{self, File},
    io,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{unshare, CloneFlags},
};

pub use guard::NetnsGuard;
pub use server::{join_thread, PortSender, PortServer, StartError, ThreadError};
pub use thread::{run_in, run_in_blocking, spawn_in, wait_idle, NetnsThread};

/// Where named namespaces live, as with iproute2.
pub const NETNS_RUN_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name}: {op} failed: {source}")]
    Io {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("network namespace {name} already exists (remove it or pick another lab name)")]
    Exists { name: String },
    #[error("network namespace {name} does not exist")]
    Missing { name: String },
    #[error("the thread working in network namespace {name} panicked")]
    ThreadPanicked { name: String },
}

impl NetnsError {
    fn io(name: &str, op: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Io {
            name: name.to_owned(),
            op,
            source: source.into(),
        }
    }
}

/// A named network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(&self.name)
    }

    pub fn exists(&self) -> bool {
        // A leftover file that is not a mount point is not a namespace.
        File::open(self.path())
            .ok()
            .and_then(|f| nix::sys::statfs::fstatfs(&f).ok())
            .is_some_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
    }

    /// Opens the namespace (for `setns`, veth peers, program attach).
    pub fn open(&self) -> Result<OwnedFd, NetnsError> {
        File::open(self.path())
            .map(OwnedFd::from)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => NetnsError::Missing {
                    name: self.name.clone(),
                },
                _ => NetnsError::io(&self.name, "open", e),
            })
    }

    /// Creates the namespace and brings its loopback up later via netlink.
    /// Fails if it exists.
    pub fn create(&self) -> Result<(), NetnsError> {
        if self.exists() {
            return Err(NetnsError::Exists {
                name: self.name.clone(),
            });
        }
        prepare_run_dir().map_err(|e| NetnsError::io(&self.name, "prepare /run/netns", e))?;
        let path = self.path();
        File::create(&path).map_err(|e| NetnsError::io(&self.name, "create mount point", e))?;
        let name = self.name.clone();
        // unshare() moves the calling thread only: do it on a throwaway
        // thread, then keep the namespace alive with a bind mount.
        let result = std::thread::Builder::new()
            .name(format!("netns-create:{name}"))
            .spawn(move || -> Result<(), NetnsError> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetnsError::io(&name, "unshare", e))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| NetnsError::io(&name, "bind mount", e))
            })
            .map_err(|e| NetnsError::io(&self.name, "spawn thread", e))?
            .join()
            .map_err(|_| NetnsError::ThreadPanicked {
                name: self.name.clone(),
            })?;
        if result.is_err() {
            let _ = fs::remove_file(self.path());
        }
        result
    }

    /// Removes the namespace; succeeds if it is already gone. Devices in it
    /// disappear with it once no process or program holds it.
    pub fn delete(&self) -> Result<(), NetnsError> {
        let path = self.path();
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(NetnsError::io(&self.name, "unmount", e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetnsError::io(&self.name, "remove", e)),
        }
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Names of all named namespaces.
pub fn list() -> io::Result<Vec<String>> {
    match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Makes /run/netns a shared mount so namespace mounts propagate to every
/// mount namespace, as `ip netns add` does.
fn prepare_run_dir() -> io::Result<()> {
    fs::create_dir_all(NETNS_RUN_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared().map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

/// `setns` into `fd` for a child process between fork and exec (see
/// [`std::os::unix::process::CommandExt::pre_exec`]).
pub fn enter_in_child(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns is a plain syscall, safe between fork and exec.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
