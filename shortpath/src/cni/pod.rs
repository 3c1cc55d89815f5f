//! A pod's network: a veth pair (CNI_IFNAME in the pod, a name derived
//! from the container id on the node), the pod's addresses as /32 and
//! /128, and routes through a gateway the host veth answers for itself:
//! `169.254.1.1` and `fe80::1`, both link-scoped addresses of every host
//! veth. No bridge.

use std::{net::IpAddr, os::fd::OwnedFd, path::Path};

use ipnet::IpNet;

use super::spec::{code, gateway, CniError};
use crate::nl::{Link, Netlink, NlError};

/// The host side's name: `sp` + 12 hex digits of the container id and
/// interface name, so DEL finds it without state (≤ 15 characters).
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let a = crc32fast::hash(format!("{container_id}/{ifname}").as_bytes());
    let b = crc32fast::hash(format!("{ifname}/{container_id}").as_bytes());
    format!("sp{a:08x}{:04x}", b & 0xffff)
}

fn setup(e: NlError) -> CniError {
    CniError::new(code::SETUP, "setting up the pod's network").details(e.to_string())
}

/// Opens a namespace path given by the runtime.
pub fn open_netns(path: &Path) -> Result<OwnedFd, CniError> {
    std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("cannot open network namespace {}", path.display()),
        )
        .details(e.to_string())
    })
}

/// Writes a sysctl file inside the namespace at `fd` (on a short-lived
/// thread that enters it).
fn sysctl_in(fd: &OwnedFd, path: String, value: &'static str) -> std::io::Result<()> {
    let dup = fd.try_clone()?;
    std::thread::spawn(move || {
        crate::netns::enter_in_child(&dup)?;
        std::fs::write(path, value)
    })
    .join()
    .map_err(|_| std::io::Error::other("sysctl thread panicked"))?
}

/// What ADD made.
pub struct Wired {
    pub host: Link,
    pub pod: Link,
}

/// Wires the pod. On failure nothing is left (the pair goes with its host
/// side).
pub async fn add(
    netns: &OwnedFd,
    netns_label: &str,
    container_id: &str,
    ifname: &str,
    mtu: u32,
    addrs: &[IpAddr],
) -> Result<Wired, CniError> {
    let node = Netlink::here("node").map_err(setup)?;
    let pod = Netlink::connect_fd(netns_label, netns)
        .await
        .map_err(setup)?;
    if pod.link(ifname).await.is_ok() {
        return Err(CniError::new(
            code::INTERFACE_EXISTS,
            format!("interface {ifname} already exists in {netns_label}"),
        ));
    }
    let host = host_ifname(container_id, ifname);
    // A host veth left by an earlier ADD of this container that failed
    // before its DEL: it is ours by name.
    if let Ok(l) = node.link(&host).await {
        node.del_link(l.index).await.map_err(setup)?;
    }
    node.add_veth(&host, 0, ifname, Some(netns), mtu)
        .await
        .map_err(setup)?;
    let wired = async {
        let h = node.link(&host).await?;
        let p = pod.link(ifname).await?;
        Ok::<_, NlError>((h, p))
    }
    .await
    .map_err(setup);
    let (h, p) = match wired {
        Ok(v) => v,
        Err(e) => {
            let _ = del_host(&host).await;
            return Err(e);
        }
    };
    let r = configure(&node, &pod, netns, &h, &p, addrs).await;
    if let Err(e) = r {
        let _ = node.del_link(h.index).await;
        return Err(e);
    }
    Ok(Wired { host: h, pod: p })
}

async fn configure(
    node: &Netlink,
    pod: &Netlink,
    netns: &OwnedFd,
    h: &Link,
    p: &Link,
    addrs: &[IpAddr],
) -> Result<(), CniError> {
    let v6 = addrs.iter().any(IpAddr::is_ipv6);
    if v6 {
        // The pod's own link-local address is usable at once: no DAD
        // delay before its first IPv6 packet.
        let _ = sysctl_in(
            netns,
            format!("/proc/sys/net/ipv6/conf/{}/accept_dad", p.name),
            "0",
        );
    }
    for a in addrs {
        let gw = gateway(a);
        let gw_net = IpNet::new(gw, if a.is_ipv4() { 32 } else { 64 }).expect("valid prefix");
        node.add_link_address(h.index, gw_net)
            .await
            .or_else(|e| if e.is_exists() { Ok(()) } else { Err(e) })
            .map_err(setup)?;
    }
    node.set_up(h.index).await.map_err(setup)?;
    for a in addrs {
        let host_len = if a.is_ipv4() { 32 } else { 128 };
        pod.add_address(p.index, IpNet::new(*a, host_len).expect("valid"))
            .await
            .map_err(setup)?;
    }
    pod.set_up(p.index).await.map_err(setup)?;
    for a in addrs {
        let gw = gateway(a);
        if a.is_ipv4() {
            pod.add_route_dev(IpNet::new(gw, 32).expect("valid"), None, p.index)
                .await
                .map_err(setup)?;
            pod.add_route_dev("0.0.0.0/0".parse().expect("valid"), Some(gw), p.index)
                .await
                .map_err(setup)?;
        } else {
            pod.add_route_dev("::/0".parse().expect("valid"), Some(gw), p.index)
                .await
                .map_err(setup)?;
        }
        let host_len = if a.is_ipv4() { 32 } else { 128 };
        node.add_route_dev(IpNet::new(*a, host_len).expect("valid"), None, h.index)
            .await
            .map_err(setup)?;
    }
    Ok(())
}

/// Deletes the host veth (and with it the pod side and the host routes)
/// if it exists. Idempotent.
pub async fn del_host(host: &str) -> Result<(), CniError> {
    let node = Netlink::here("node").map_err(setup)?;
    match node.link(host).await {
        Ok(l) => match node.del_link(l.index).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(setup(e)),
        },
        Err(_) => Ok(()),
    }
}

/// The addresses on `ifname` inside the pod, for CHECK.
pub async fn pod_addresses(
    netns: &OwnedFd,
    netns_label: &str,
    ifname: &str,
) -> Result<Vec<IpAddr>, CniError> {
    let pod = Netlink::connect_fd(netns_label, netns)
        .await
        .map_err(setup)?;
    let l = pod.link(ifname).await.map_err(|e| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("no {ifname} in {netns_label}"),
        )
        .details(e.to_string())
    })?;
    pod.addresses(l.index).await.map_err(setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_short_and_distinct() {
        let a = host_ifname("default-c0ffee", "eth0");
        assert_eq!(a, host_ifname("default-c0ffee", "eth0"));
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("sp") && a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, host_ifname("default-c0ffee", "eth1"));
        assert_ne!(a, host_ifname("default-c0ffef", "eth0"));
    }
}
