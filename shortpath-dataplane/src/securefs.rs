//! Directories shortpath writes into as root: bpffs pins and runtime state.
//!
//! Every component below a trusted base (`/sys/fs/bpf`, `/run`) must be a
//! real directory — never a symlink, which is not followed — owned by root
//! and writable by nobody else. Once every component passes, no other user
//! can swap an entry underneath us, so paths below stay what we checked.
//! Directories shortpath creates are mode 0700.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{open, openat, OFlag},
    sys::stat::{fstat, mkdirat, Mode},
};

#[derive(Debug, thiserror::Error)]
pub enum SecureDirError {
    #[error("refusing {what} directory {path}: {problem}")]
    Unsafe {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{what} directory {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A directory checked (and created) component by component.
#[derive(Debug)]
pub struct SecureDir {
    pub path: PathBuf,
    fd: OwnedFd,
}

impl SecureDir {
    /// The checked directory, open (its fd cannot be redirected elsewhere).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn io_err(what: &'static str, path: &Path, e: impl Into<io::Error>) -> SecureDirError {
    SecureDirError::Io {
        what,
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Root-owned, not writable by group or others.
fn check_owner(what: &'static str, path: &Path, fd: &OwnedFd) -> Result<(), SecureDirError> {
    let st = fstat(fd).map_err(|e| io_err(what, path, e))?;
    let unsafe_dir = |problem: String| SecureDirError::Unsafe {
        what,
        path: path.to_owned(),
        problem,
    };
    if st.st_uid != 0 {
        return Err(unsafe_dir(format!(
            "owned by uid {}, not root; remove it (shortpath recreates it) or chown it to root",
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "mode {:o} lets others write; chmod go-w it",
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

fn open_component(
    what: &'static str,
    parent: &OwnedFd,
    name: &str,
    path: &Path,
    create: bool,
) -> Result<Option<OwnedFd>, SecureDirError> {
    if create {
        match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(io_err(what, path, e)),
        }
    }
    match openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) if !create => Ok(None),
        Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
            let symlink =
                nix::sys::stat::fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
            Err(SecureDirError::Unsafe {
                what,
                path: path.to_owned(),
                problem: if symlink {
                    "it is a symlink, which shortpath does not follow; remove it".into()
                } else {
                    "it is not a directory; remove it".into()
                },
            })
        }
        Err(e) => Err(io_err(what, path, e)),
    }
}

fn walk(
    what: &'static str,
    base: &Path,
    parts: &[&str],
    create: bool,
) -> Result<Option<SecureDir>, SecureDirError> {
    let mut fd = open(base, DIR_FLAGS, Mode::empty()).map_err(|e| io_err(what, base, e))?;
    let mut path = base.to_path_buf();
    for part in parts {
        debug_assert!(
            !part.is_empty() && !part.contains('/') && *part != "." && *part != "..",
            "path components come from validated names"
        );
        path.push(part);
        match open_component(what, &fd, part, &path, create)? {
            Some(next) => {
                check_owner(what, &path, &next)?;
                fd = next;
            }
            None => return Ok(None),
        }
    }
    Ok(Some(SecureDir { path, fd }))
}

/// Creates (if needed) and checks `base/parts…`. `base` itself is a system
/// directory (it must be a directory, not a symlink); every part below it
/// must pass the ownership checks.
pub fn ensure(
    what: &'static str,
    base: &Path,
    parts: &[&str],
) -> Result<SecureDir, SecureDirError> {
    walk(what, base, parts, true).map(|d| d.expect("created"))
}

/// Checks `base/parts…` without creating anything; `None` if a component
/// does not exist.
pub fn existing(
    what: &'static str,
    base: &Path,
    parts: &[&str],
) -> Result<Option<SecureDir>, SecureDirError> {
    walk(what, base, parts, false)
}

/// Removes the checked directory `dir` and everything in it, without
/// following symlinks inside (they are removed, not followed). Missing is
/// fine.
pub fn remove_all(dir: SecureDir) -> Result<(), SecureDirError> {
    // std's remove_dir_all does not follow symlinks inside the tree; the
    // path itself was just checked component by component.
    match std::fs::remove_dir_all(&dir.path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SecureDirError::Io {
            what: "remove",
            path: dir.path,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Opens `name` inside the checked directory for reading and writing,
/// creating it with `mode`, never following a symlink.
pub fn open_file(dir: &SecureDir, name: &str, mode: u32) -> Result<File, SecureDirError> {
    let path = dir.path.join(name);
    let fd = openat(
        &dir.fd,
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP => SecureDirError::Unsafe {
            what: "state",
            path: path.clone(),
            problem: "it is a symlink, which shortpath does not follow; remove it".into(),
        },
        e => io_err("state", &path, e),
    })?;
    // SAFETY: `fd` is a freshly opened descriptor we own.
    Ok(unsafe { File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) })
}

/// Reads file `name` of the checked directory; `None` if it does not
/// exist. A symlink is refused, not followed.
pub fn read_file(dir: &SecureDir, name: &str) -> io::Result<Option<String>> {
    let fd = match openat(
        &dir.fd,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", dir.path.join(name).display()),
            ))
        }
    };
    let mut s = String::new();
    io::Read::read_to_string(&mut File::from(fd), &mut s)?;
    Ok(Some(s))
}

/// Writes file `name` of the checked directory atomically: a temporary
/// file (mode 0600), synced, renamed over it. A reader sees the old or the
/// new contents, never a part; a crash leaves at most `<name>.tmp`.
pub fn write_atomic(dir: &SecureDir, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    let fd = openat(
        &dir.fd,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let mut f = File::from(fd);
    io::Write::write_all(&mut f, contents)?;
    f.sync_data()?;
    drop(f);
    nix::fcntl::renameat(&dir.fd, tmp.as_str(), &dir.fd, name)?;
    Ok(())
}

/// [`write_atomic`] of `value` as pretty JSON.
pub fn write_json<T: serde::Serialize>(dir: &SecureDir, name: &str, value: &T) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(dir, name, &text)
}

/// Removes file `name` of the checked directory; missing is fine.
pub fn remove_file(dir: &SecureDir, name: &str) -> io::Result<()> {
    match nix::unistd::unlinkat(&dir.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` is still the file behind `file` (not unlinked or
/// replaced since it was opened).
pub fn same_file(file: &File, path: &Path) -> bool {
    let Ok(a) = fstat(file.as_fd()) else {
        return false;
    };
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    nix::sys::stat::lstat(c.as_c_str()).is_ok_and(|b| a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn creates_private_directories() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: ownership checks need root");
            return;
        }
        let t = tmp();
        let d = ensure("test", t.path(), &["a", "b"]).unwrap();
        assert_eq!(d.path, t.path().join("a/b"));
        let mode = std::fs::metadata(&d.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        assert!(existing("test", t.path(), &["a", "b"]).unwrap().is_some());
        assert!(existing("test", t.path(), &["a", "nope"])
            .unwrap()
            .is_none());
    }

    #[test]
    fn refuses_symlinks_writable_and_foreign_directories() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: ownership checks need root");
            return;
        }
        let t = tmp();
        let target = t.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), "x").unwrap();
        symlink(&target, t.path().join("link")).unwrap();
        let e = ensure("pin", t.path(), &["link", "x"]).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(!target.join("x").exists(), "followed the symlink");
        let e = existing("pin", t.path(), &["link"]).err().unwrap();
        assert!(e.to_string().contains("symlink"), "{e}");

        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure("pin", t.path(), &["open", "x"]).unwrap_err();
        assert!(e.to_string().contains("lets others write"), "{e}");

        let foreign = t.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = ensure("pin", t.path(), &["foreign"]).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");

        std::fs::write(t.path().join("file"), "").unwrap();
        let e = ensure("pin", t.path(), &["file"]).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn files_are_opened_without_following_symlinks() {
        let t = tmp();
        let d = SecureDir {
            path: t.path().to_owned(),
            fd: open(t.path(), DIR_FLAGS, Mode::empty()).unwrap(),
        };
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        symlink(&victim, t.path().join("lock")).unwrap();
        let e = open_file(&d, "lock", 0o600).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let f = open_file(&d, "real", 0o600).unwrap();
        assert!(same_file(&f, &t.path().join("real")));
        std::fs::remove_file(t.path().join("real")).unwrap();
        assert!(!same_file(&f, &t.path().join("real")));
    }
}
