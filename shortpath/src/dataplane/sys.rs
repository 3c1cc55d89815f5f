//! bpf(2) commands aya 0.14 does not wrap.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::ffi::OsStrExt as _,
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `union bpf_attr`, as much of it as these commands read (zeroed rest).
#[repr(C, align(8))]
#[derive(Default)]
struct Attr([u32; 8]);

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, zero-padded bpf_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a pinned object.
fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = Attr::default();
    let ptr = c.as_ptr() as u64;
    attr.0[0] = ptr as u32;
    attr.0[1] = (ptr >> 32) as u32;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Detaches the link pinned at `path` now (`BPF_LINK_DETACH`), instead of
/// whenever its last reference goes: releasing a link is deferred to a
/// workqueue, so unpinning alone leaves the program running for a moment
/// after a switch to bridge mode has returned.
pub fn detach_pinned_link(path: &Path) -> io::Result<()> {
    let fd = match obj_get(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut attr = Attr::default();
    attr.0[0] = fd.as_raw_fd() as u32;
    match bpf(BPF_LINK_DETACH, &mut attr) {
        // Already detached (its device is gone).
        Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => Ok(()),
        r => r.map(drop),
    }
}
