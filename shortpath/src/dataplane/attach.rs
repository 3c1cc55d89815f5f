//! Attaching a node's programs and switching them in place.
//!
//! Every function here runs on a thread inside the node's namespace:
//! interface names and ifindexes are resolved there.
//!
//! Replacement is atomic per hook: a TCX link is updated to the new program
//! (`BPF_LINK_UPDATE`), a cls_bpf filter is changed in place (same priority
//! and handle). Packets see the old or the new program, never none.

use std::io;

use aya::programs::{
    links::{FdLink, LinkError, PinnedLink},
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
    LinkOrder, ProgramError, SchedClassifier, TcAttachType,
};
use serde::Serialize;

use super::{
    counters::{self, ReasonCounts},
    endpoints,
    pins::{self, NodePins},
    AttachKind, DataplaneError, DataplaneState, Hook, Mode, NodeSpec, Port, TcObject,
};

/// Our cls_bpf filter's fixed identity on every device, so a later run
/// (another process) can replace or remove exactly it.
const TC_PRIORITY: u16 = 1;
const TC_HANDLE: TcHandle = TcHandle::new(0, 1);

fn ports(spec: &NodeSpec) -> Vec<(Port, Hook)> {
    std::iter::once((spec.nic.clone(), Hook::FromNic))
        .chain(spec.pods.iter().map(|p| (p.host_if.clone(), Hook::FromPod)))
        .collect()
}

/// Gives every port a clsact qdisc, the anchor of tc filters. Adding a
/// qdisc briefly deactivates the device (`dev_deactivate`: packets sent in
/// that instant are dropped), so this runs when ports are created, before
/// traffic, and never during a mode switch. Idempotent. Call inside the
/// node's namespace.
pub fn prepare(spec: &NodeSpec) -> Result<(), DataplaneError> {
    for (port, hook) in ports(spec) {
        match tc::qdisc_add_clsact(&port.ifname) {
            Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Ok(()) => {}
            Err(e) => {
                return Err(DataplaneError::Attach {
                    netns: spec.netns.clone(),
                    program: hook.program(),
                    ifname: port.ifname.clone(),
                    ifindex: port.ifindex,
                    attach: "clsact qdisc",
                    source: Box::new(e.into()),
                })
            }
        }
    }
    Ok(())
}

/// Brings one node to `mode` with programs attached the `attach` way.
/// `prev` is what the node had. Call inside the node's namespace.
pub fn apply(
    spec: &NodeSpec,
    mode: Mode,
    attach: AttachKind,
    prev: &DataplaneState,
) -> Result<(), DataplaneError> {
    let pins = NodePins::new(&spec.lab, &spec.node);
    let ports = ports(spec);
    let prev_attach = prev.attach.filter(|_| prev.mode != Mode::Bridge);

    let Some(fast) = mode.fast_path() else {
        // Bridge: the stack does everything. Detaching is atomic too.
        if let Some(kind) = prev_attach {
            for (port, _) in &ports {
                detach(spec, &pins, port, kind)?;
            }
        }
        for hook in [Hook::FromNic, Hook::FromPod] {
            pins::unpin(&pins.prog(hook.program()))?;
        }
        return Ok(());
    };
    if attach == AttachKind::Tcx && !super::tcx_supported() {
        return Err(DataplaneError::NoTcx);
    }

    prepare(spec)?;
    pins.create()?;
    let mut obj = TcObject::load(fast, Some(&pins.maps()))?;
    endpoints::sync(&mut obj.endpoints()?, &endpoints::entries(spec))?;
    for hook in [Hook::FromNic, Hook::FromPod] {
        let path = pins.prog(hook.program());
        pins::unpin(&path)?;
        obj.program(hook)?
            .pin(&path)
            .map_err(|e| DataplaneError::Pin {
                path: path.clone(),
                source: io::Error::other(e),
            })?;
    }
    for (port, hook) in &ports {
        let prog = obj.program(*hook)?;
        let wrap = |source| DataplaneError::Attach {
            netns: spec.netns.clone(),
            program: hook.program(),
            ifname: port.ifname.clone(),
            ifindex: port.ifindex,
            attach: attach.as_str(),
            source: Box::new(source),
        };
        match attach {
            AttachKind::Tcx => attach_tcx(prog, &pins, port).map_err(wrap)?,
            AttachKind::Tc => attach_tc(prog, port).map_err(wrap)?,
        }
        // Switching tc ↔ tcx: the new hook runs first (TCX before cls_bpf),
        // so removing the old one afterwards loses nothing.
        if let Some(old) = prev_attach.filter(|k| *k != attach) {
            detach(spec, &pins, port, old)?;
        }
    }
    remove_stale_links(&pins, &ports)?;
    Ok(())
}

/// Updates the pinned TCX link of `port` to `prog`, or creates and pins it.
fn attach_tcx(
    prog: &mut SchedClassifier,
    pins: &NodePins,
    port: &Port,
) -> Result<(), ProgramError> {
    let path = pins.link(&port.ifname);
    if let Ok(pinned) = PinnedLink::from_pin(&path) {
        let link = SchedClassifierLink::try_from(FdLink::from(pinned));
        match link.map(|l| prog.attach_to_link(l)) {
            Ok(Ok(id)) => {
                // The pin keeps the link; dropping our handle closes an fd.
                drop(prog.take_link(id)?);
                return Ok(());
            }
            // A link whose device went away (pod deleted and re-created):
            // start over with a fresh one.
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let id = prog.attach_with_options(
        &port.ifname,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
    )?;
    let link: FdLink = prog
        .take_link(id)?
        .try_into()
        .map_err(|e: LinkError| ProgramError::IOError(io::Error::other(e)))?;
    link.pin(&path)
        .map_err(|e| ProgramError::IOError(io::Error::other(e)))?;
    Ok(())
}

/// Changes our cls_bpf filter on `port` to `prog`, or creates it.
/// The clsact qdisc is there already ([`prepare`]).
fn attach_tc(prog: &mut SchedClassifier, port: &Port) -> Result<(), ProgramError> {
    let existing = SchedClassifierLink::attached(
        &port.ifname,
        TcAttachType::Ingress,
        TC_PRIORITY,
        TC_HANDLE,
        None,
    )
    .map_err(ProgramError::IOError)?;
    let id = match prog.attach_to_link(existing) {
        Ok(id) => id,
        Err(_) => prog.attach_with_options(
            &port.ifname,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions {
                priority: TC_PRIORITY,
                handle: TC_HANDLE,
                ..Default::default()
            }),
        )?,
    };
    // The filter holds the program; our handle must not remove it on drop.
    std::mem::forget(prog.take_link(id)?);
    Ok(())
}

fn detach(
    spec: &NodeSpec,
    pins: &NodePins,
    port: &Port,
    kind: AttachKind,
) -> Result<(), DataplaneError> {
    match kind {
        AttachKind::Tcx => {
            let path = pins.link(&port.ifname);
            super::sys::detach_pinned_link(&path).map_err(|source| DataplaneError::Pin {
                path: path.clone(),
                source,
            })?;
            pins::unpin(&path)
        }
        AttachKind::Tc => {
            let link = match SchedClassifierLink::attached(
                &port.ifname,
                TcAttachType::Ingress,
                TC_PRIORITY,
                TC_HANDLE,
                None,
            ) {
                Ok(l) => l,
                // The device is gone, and its filters with it.
                Err(_) => return Ok(()),
            };
            use aya::programs::links::Link as _;
            match link.detach() {
                Ok(()) => Ok(()),
                Err(ProgramError::NetlinkError(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                    Ok(())
                }
                Err(source) => Err(DataplaneError::Attach {
                    netns: spec.netns.clone(),
                    program: "tc filter",
                    ifname: port.ifname.clone(),
                    ifindex: port.ifindex,
                    attach: "tc",
                    source: Box::new(source),
                }),
            }
        }
    }
}

/// Link pins of devices that are no longer ports (deleted pods).
fn remove_stale_links(pins: &NodePins, ports: &[(Port, Hook)]) -> Result<(), DataplaneError> {
    let Ok(entries) = std::fs::read_dir(pins.links()) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !ports.iter().any(|(p, _)| p.ifname == name) {
            pins::unpin(&e.path())?;
        }
    }
    Ok(())
}

/// One attached program and what it did.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramStatus {
    pub netns: String,
    pub ifname: String,
    pub ifindex: u32,
    pub hook: &'static str,
    /// Whether the kernel shows our program on the device's TC ingress.
    pub attached: bool,
    pub counters: ReasonCounts,
}

/// Programs of a node with their counters. Call inside the node namespace.
pub fn status(spec: &NodeSpec, st: &DataplaneState) -> Result<Vec<ProgramStatus>, DataplaneError> {
    let pins = NodePins::new(&spec.lab, &spec.node);
    let counts = match aya::maps::MapData::from_pin(pins.maps().join(super::object::MAP_COUNTERS)) {
        Ok(md) => {
            let map = aya::maps::Map::PerCpuHashMap(md);
            let map = aya::maps::PerCpuHashMap::try_from(&map)
                .map_err(|e| DataplaneError::map(super::object::MAP_COUNTERS, e))?;
            counters::read(&map)?
        }
        Err(_) => Default::default(),
    };
    let mut out = Vec::new();
    for (port, hook) in ports(spec) {
        let attached = match (st.mode, st.attach) {
            (Mode::Bridge, _) | (_, None) => false,
            (_, Some(AttachKind::Tcx)) => tcx_attached(&port, hook),
            (_, Some(AttachKind::Tc)) => true,
        };
        let counters = counts.get(&port.ifindex).cloned().unwrap_or_default();
        if !attached && counters.is_empty() {
            continue;
        }
        out.push(ProgramStatus {
            netns: spec.netns.clone(),
            ifname: port.ifname,
            ifindex: port.ifindex,
            hook: hook.program(),
            attached,
            counters,
        });
    }
    Ok(out)
}

fn tcx_attached(port: &Port, hook: Hook) -> bool {
    SchedClassifier::query_tcx(&port.ifname, TcAttachType::Ingress).is_ok_and(|(_, progs)| {
        progs
            .iter()
            .any(|p| p.name_as_str() == Some(hook.program()))
    })
}
