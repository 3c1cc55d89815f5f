//! bpf(2) commands aya 0.14 does not wrap: detaching a pinned link now,
//! finding the TCX links of a program on a device, and reading an array
//! map's raw value (a program's `.rodata`).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::ffi::OsStrExt as _,
    path::Path,
};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_LINK_TYPE_TCX: u32 = 11;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

/// `union bpf_attr`, as much of it as these commands read (zeroed rest).
#[repr(C, align(8))]
#[derive(Default)]
struct Attr([u32; 12]);

impl Attr {
    fn set_u64(&mut self, word: usize, v: u64) {
        self.0[word] = v as u32;
        self.0[word + 1] = (v >> 32) as u32;
    }
}

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

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor we now own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Opens a pinned object.
fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = Attr::default();
    attr.set_u64(0, c.as_ptr() as u64);
    bpf(BPF_OBJ_GET, &mut attr).map(owned)
}

fn link_detach(fd: &OwnedFd) -> io::Result<()> {
    let mut attr = Attr::default();
    attr.0[0] = fd.as_raw_fd() as u32;
    match bpf(BPF_LINK_DETACH, &mut attr) {
        // Already detached (its device is gone).
        Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => Ok(()),
        r => r.map(drop),
    }
}

/// Detaches the link pinned at `path` now (`BPF_LINK_DETACH`), instead of
/// whenever its last reference goes: releasing a link is deferred to a
/// workqueue, so unpinning alone leaves the program running for a moment
/// after a switch to bridge mode has returned.
pub fn detach_pinned_link(path: &Path) -> io::Result<()> {
    match obj_get(path) {
        Ok(fd) => link_detach(&fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The id of the link pinned at `path`, if there is one.
pub fn pinned_link_id(path: &Path) -> io::Result<Option<u32>> {
    match obj_get(path) {
        Ok(fd) => Ok(Some(link_info(&fd)?.id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `bpf_link_info` says of a TCX link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcxLink {
    pub id: u32,
    pub prog_id: u32,
    pub ifindex: u32,
}

struct LinkInfo {
    kind: u32,
    id: u32,
    prog_id: u32,
    /// For TCX links: the device.
    ifindex: u32,
}

fn link_info(fd: &OwnedFd) -> io::Result<LinkInfo> {
    // struct bpf_link_info: type, id, prog_id, then a union aligned to 8
    // (at byte 16) whose tcx member starts with the ifindex.
    let mut info = [0u32; 32];
    let mut attr = Attr::default();
    attr.0[0] = fd.as_raw_fd() as u32;
    attr.0[1] = std::mem::size_of_val(&info) as u32;
    attr.set_u64(2, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(LinkInfo {
        kind: info[0],
        id: info[1],
        prog_id: info[2],
        ifindex: info[4],
    })
}

/// Every TCX link in the system. Link ids and ifindexes span namespaces,
/// so callers match a program attached to their device.
pub fn tcx_links() -> io::Result<Vec<TcxLink>> {
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        let mut attr = Attr::default();
        attr.0[0] = id;
        match bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr.0[1],
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        let mut attr = Attr::default();
        attr.0[0] = id;
        let fd = match bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => owned(fd),
            // Released between the two calls (ENOENT), or still being set
            // up by whoever creates it (EAGAIN: in the id table, not yet
            // settled): not one of the links a caller holding the node's
            // lock is looking for.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EAGAIN)) => continue,
            Err(e) => return Err(e),
        };
        let info = link_info(&fd)?;
        if info.kind == BPF_LINK_TYPE_TCX {
            out.push(TcxLink {
                id: info.id,
                prog_id: info.prog_id,
                ifindex: info.ifindex,
            });
        }
    }
}

/// Detaches the link with id `id` now.
pub fn detach_link_id(id: u32) -> io::Result<()> {
    let mut attr = Attr::default();
    attr.0[0] = id;
    match bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => link_detach(&owned(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Detaches program `prog_id` from the TCX hook of device `ifindex` when
/// it was attached without a link (`BPF_PROG_ATTACH`); gone already is
/// fine.
pub fn tcx_prog_detach(ifindex: u32, prog_id: u32, egress: bool) -> io::Result<()> {
    let mut attr = Attr::default();
    attr.0[0] = prog_id;
    let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => owned(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut attr = Attr::default();
    attr.0[0] = ifindex;
    attr.0[1] = prog.as_raw_fd() as u32;
    attr.0[2] = if egress {
        BPF_TCX_EGRESS
    } else {
        BPF_TCX_INGRESS
    };
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
        r => r.map(drop),
    }
}

/// The value at key 0 of array map `fd` (`value_size` bytes).
pub fn array_value(fd: &impl AsRawFd, value_size: usize) -> io::Result<Vec<u8>> {
    let key = 0u32;
    let mut value = vec![0u8; value_size];
    let mut attr = Attr::default();
    attr.0[0] = fd.as_raw_fd() as u32;
    attr.set_u64(2, &key as *const u32 as u64);
    attr.set_u64(4, value.as_mut_ptr() as u64);
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

/// `run_time_ns` and `run_cnt` of program `id` (`bpf_prog_info`, byte
/// offsets 192 and 200): non-zero only while `kernel.bpf_stats_enabled`.
pub fn prog_run_stats(id: u32) -> io::Result<(u64, u64)> {
    let mut attr = Attr::default();
    attr.0[0] = id;
    let fd = owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?);
    let mut info = [0u64; 32];
    let mut attr = Attr::default();
    attr.0[0] = fd.as_raw_fd() as u32;
    attr.0[1] = std::mem::size_of_val(&info) as u32;
    attr.set_u64(2, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok((info[192 / 8], info[200 / 8]))
}
