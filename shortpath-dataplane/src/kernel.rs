//! What the kernel has attached — the truth the state file only caches.
//!
//! shortpath's programs (`from_nic`, `from_pod`) are found on a device's TC
//! hooks both ways they can be attached: TCX links (`BPF_PROG_QUERY`, then
//! the links of that program on that device) and cls_bpf filters (the
//! netlink filter dump). Each one's mode is read from its own frozen
//! `.rodata`. Everything here runs inside the node's namespace.

use std::os::fd::AsFd as _;

use aya::{
    maps::MapInfo,
    programs::{ProgramInfo, SchedClassifier, TcAttachType},
};
use serde::Serialize;
use shortpath_common::mode::FastPath;

use super::{object, sys, AttachKind, DataplaneError, Hook, Mode, Port};
use crate::nl::blocking::{self as nl, BpfFilter, TcHook};

/// Whether a program name is one of ours. Only devices of a shortpath node
/// are ever looked at, so the name identifies the program.
pub fn is_ours(name: &str) -> bool {
    [Hook::FromNic, Hook::FromPod]
        .iter()
        .any(|h| h.program() == name)
}

/// One of our programs attached to a device.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub kind: AttachKind,
    pub hook: TcHook,
    pub prog_id: u32,
    pub program: String,
    /// The mode it was loaded in; `None` if it cannot be read.
    pub mode: Option<FastPath>,
    handle: Handle,
}

#[derive(Clone, Debug)]
enum Handle {
    /// TCX link ids running the program on this device.
    Tcx(Vec<u32>),
    Tc(BpfFilter),
}

impl Attachment {
    /// The TCX link ids of this attachment.
    pub fn link_ids(&self) -> &[u32] {
        match &self.handle {
            Handle::Tcx(ids) => ids,
            Handle::Tc(_) => &[],
        }
    }

    /// The cls_bpf filter's (priority, handle).
    pub fn tc_id(&self) -> Option<(u16, u32)> {
        match &self.handle {
            Handle::Tc(f) => Some((f.priority, f.handle)),
            Handle::Tcx(_) => None,
        }
    }

    pub fn mode(&self) -> Option<Mode> {
        self.mode.map(Mode::from)
    }
}

fn query_err(netns: &str, port: &Port) -> impl Fn(std::io::Error) -> DataplaneError {
    let (netns, ifname) = (netns.to_owned(), port.ifname.clone());
    move |source| DataplaneError::Query {
        netns: netns.clone(),
        ifname: ifname.clone(),
        source,
    }
}

/// The mode frozen into a loaded program's `.rodata`.
fn program_mode(info: &ProgramInfo) -> Option<FastPath> {
    let offset = object::mode_offset()?;
    let ids = info.map_ids().ok()??;
    for id in ids {
        let Ok(map) = MapInfo::from_id(id) else {
            continue;
        };
        if map.name_as_str() != Some(object::RODATA) {
            continue;
        }
        let fd = map.fd().ok()?;
        let value = sys::array_value(&fd.as_fd(), map.value_size() as usize).ok()?;
        let bytes = value.get(offset..offset + 4)?;
        return FastPath::from_u32(u32::from_ne_bytes(bytes.try_into().ok()?));
    }
    None
}

fn info_by_id(id: u32) -> Option<ProgramInfo> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
}

/// The TCX links of the system at one moment: enumerated once for all the
/// ports an operation looks at, not once per port.
pub struct Links(Vec<sys::TcxLink>);

impl Links {
    pub fn read(netns: &str) -> Result<Self, DataplaneError> {
        sys::tcx_links()
            .map(Links)
            .map_err(|source| DataplaneError::Query {
                netns: netns.to_owned(),
                ifname: "(TCX links)".into(),
                source,
            })
    }

    /// Links running `prog_id` on device `ifindex`.
    fn of(&self, prog_id: u32, ifindex: u32) -> Vec<u32> {
        self.0
            .iter()
            .filter(|l| l.prog_id == prog_id && l.ifindex == ifindex)
            .map(|l| l.id)
            .collect()
    }
}

/// Our programs on `port`'s TC hooks, as the kernel reports them; `links`
/// must have been read after the last change to the port.
pub fn attachments(
    netns: &str,
    port: &Port,
    links: &Links,
) -> Result<Vec<Attachment>, DataplaneError> {
    let err = query_err(netns, port);
    let mut out = Vec::new();
    for (hook, kind) in [
        (TcHook::Ingress, TcAttachType::Ingress),
        (TcHook::Egress, TcAttachType::Egress),
    ] {
        if super::tcx_supported() {
            let progs = match SchedClassifier::query_tcx(&port.ifname, kind) {
                Ok((_, progs)) => progs,
                // The device is gone, and everything attached to it.
                Err(_) if !device_exists(port) => Vec::new(),
                Err(e) => return Err(err(std::io::Error::other(e))),
            };
            for p in progs {
                let Some(name) = p.name_as_str().filter(|n| is_ours(n)) else {
                    continue;
                };
                out.push(Attachment {
                    kind: AttachKind::Tcx,
                    hook,
                    prog_id: p.id(),
                    program: name.to_owned(),
                    mode: program_mode(&p),
                    handle: Handle::Tcx(links.of(p.id(), port.ifindex)),
                });
            }
        }
        for f in nl::bpf_filters(port.ifindex, hook).map_err(&err)? {
            let Some(id) = f.prog_id else { continue };
            let info = info_by_id(id);
            let name = info
                .as_ref()
                .and_then(|i| i.name_as_str().map(str::to_owned))
                .or_else(|| f.prog_name.clone())
                .unwrap_or_default();
            if !is_ours(&name) {
                continue;
            }
            out.push(Attachment {
                kind: AttachKind::Tc,
                hook,
                prog_id: id,
                program: name,
                mode: info.as_ref().and_then(program_mode),
                handle: Handle::Tc(f),
            });
        }
    }
    Ok(out)
}

fn device_exists(port: &Port) -> bool {
    nix::net::if_::if_nametoindex(port.ifname.as_str()).is_ok_and(|i| i == port.ifindex)
}

fn detach_err(
    netns: &str,
    port: &Port,
    what: String,
) -> impl FnOnce(std::io::Error) -> DataplaneError {
    let (netns, ifname, ifindex) = (netns.to_owned(), port.ifname.clone(), port.ifindex);
    move |source| DataplaneError::Detach {
        netns,
        what,
        ifname,
        ifindex,
        source,
    }
}

/// Detaches the TCX links `ids` of attachment `a` now.
fn detach_links(
    netns: &str,
    port: &Port,
    a: &Attachment,
    ids: &[u32],
) -> Result<(), DataplaneError> {
    for id in ids {
        sys::detach_link_id(*id).map_err(detach_err(
            netns,
            port,
            format!("TCX link {id} ({})", a.program),
        ))?;
    }
    Ok(())
}

/// Detaches one attachment now.
pub fn detach(netns: &str, port: &Port, a: &Attachment) -> Result<(), DataplaneError> {
    match &a.handle {
        // Attached without a link (not by shortpath, but ours by name).
        Handle::Tcx(ids) if ids.is_empty() => {
            sys::tcx_prog_detach(port.ifindex, a.prog_id, a.hook == TcHook::Egress).map_err(
                detach_err(
                    netns,
                    port,
                    format!("TCX program {} ({})", a.prog_id, a.program),
                ),
            )
        }
        Handle::Tcx(ids) => detach_links(netns, port, a, ids),
        Handle::Tc(f) => nl::delete_filter(f).map_err(detach_err(
            netns,
            port,
            format!("tc filter {}:{} ({})", f.priority, f.handle, a.program),
        )),
    }
}

/// Every device of the calling thread's namespace (a node's: all of its
/// devices belong to the node).
pub fn devices(netns: &str) -> Result<Vec<Port>, DataplaneError> {
    let list = nix::net::if_::if_nameindex().map_err(|e| DataplaneError::Query {
        netns: netns.to_owned(),
        ifname: "(all devices)".into(),
        source: e.into(),
    })?;
    Ok(list
        .iter()
        .map(|i| Port {
            ifname: i.name().to_string_lossy().into_owned(),
            ifindex: i.index(),
        })
        .collect())
}

/// Detaches every program of ours from every device of the namespace;
/// returns how many it found.
pub fn detach_everything(netns: &str) -> Result<usize, DataplaneError> {
    let mut n = 0;
    let links = Links::read(netns)?;
    for port in devices(netns)? {
        for a in attachments(netns, &port, &links)? {
            detach(netns, &port, &a)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The kernel's view of one port, for status.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PortView {
    /// How our program is attached, if it is.
    pub attach: Option<AttachKind>,
    pub program_id: Option<u32>,
    /// The mode the attached program runs.
    pub mode: Option<Mode>,
    /// More than one of our programs on this port (a half-done switch).
    pub extra: usize,
}

/// Summarizes the attachments of one port (ingress only counts as
/// attached; anything else is extra).
pub fn port_view(atts: &[Attachment]) -> PortView {
    let main = atts.iter().find(|a| a.hook == TcHook::Ingress);
    PortView {
        attach: main.map(|a| a.kind),
        program_id: main.map(|a| a.prog_id),
        mode: main.and_then(Attachment::mode),
        extra: atts.len().saturating_sub(usize::from(main.is_some())),
    }
}

/// Run time (ns) and runs of a loaded program, counted by the kernel while
/// `kernel.bpf_stats_enabled` is 1 (both 0 otherwise).
pub fn run_stats(prog_id: u32) -> std::io::Result<(u64, u64)> {
    sys::prog_run_stats(prog_id)
}

/// Whether `prog_id`, attached the `kind` way on `port`'s ingress, is the
/// only program there (ours or any tc filter): then a fresh attach has
/// nothing to clean up, and the system-wide link enumeration that
/// [`attachments`] needs can be skipped. `false` means "look closer".
pub fn sole_attachment(
    port: &Port,
    kind: AttachKind,
    prog_id: u32,
) -> Result<bool, std::io::Error> {
    let mut seen = Vec::new();
    for (hook, t) in [
        (TcHook::Ingress, TcAttachType::Ingress),
        (TcHook::Egress, TcAttachType::Egress),
    ] {
        if super::tcx_supported() {
            let (_, progs) =
                SchedClassifier::query_tcx(&port.ifname, t).map_err(std::io::Error::other)?;
            for p in progs {
                if p.name_as_str().is_some_and(is_ours) {
                    seen.push((AttachKind::Tcx, hook, p.id()));
                }
            }
        }
        for f in nl::bpf_filters(port.ifindex, hook)? {
            seen.push((AttachKind::Tc, hook, f.prog_id.unwrap_or(0)));
        }
    }
    Ok(seen == [(kind, TcHook::Ingress, prog_id)])
}
