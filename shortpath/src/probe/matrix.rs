//! All-pairs reachability: every protocol, every family, every ordered pair.

use std::{net::IpAddr, time::Duration};

use super::{ping, tcp_echo, udp_echo, Proto};
use crate::netns::Netns;

/// Something that can be reached: a node or a pod.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub netns: Netns,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub dst: IpAddr,
    pub proto: Proto,
    /// Round-trip time, or why it failed.
    pub outcome: Result<Duration, String>,
}

impl Probe {
    pub fn family(&self) -> &'static str {
        if self.dst.is_ipv6() {
            "ipv6"
        } else {
            "ipv4"
        }
    }
}

/// Payload size of each probe.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    /// The same payload for every protocol and family.
    Bytes(usize),
    /// The largest payload whose packet fits this MTU (per protocol and
    /// family): full-size packets.
    Mtu(u32),
}

impl Size {
    fn payload(self, proto: Proto, dst: IpAddr) -> usize {
        match self {
            Size::Bytes(n) => n,
            Size::Mtu(mtu) => super::max_payload(proto, dst, mtu),
        }
    }
}

/// Probes `from` → `to` with every protocol over every shared family.
pub fn probe_pair(from: &Endpoint, to: &Endpoint, payload: usize, timeout: Duration) -> Vec<Probe> {
    probe_pair_sized(from, to, Size::Bytes(payload), timeout)
}

/// [`probe_pair`] with per-protocol payload sizes.
pub fn probe_pair_sized(
    from: &Endpoint,
    to: &Endpoint,
    size: Size,
    timeout: Duration,
) -> Vec<Probe> {
    let mut out = Vec::new();
    let dsts = [(from.ipv4, to.ipv4), (from.ipv6, to.ipv6)];
    for dst in dsts.into_iter().filter_map(|(a, b)| a.and(b)) {
        for proto in Proto::ALL {
            let payload = size.payload(proto, dst);
            let r = match proto {
                Proto::Icmp => ping(&from.netns, dst, payload, timeout),
                Proto::Udp => udp_echo(&from.netns, &to.netns, dst, payload, timeout),
                Proto::Tcp => tcp_echo(&from.netns, &to.netns, dst, payload, timeout),
            };
            out.push(Probe {
                from: from.name.clone(),
                to: to.name.clone(),
                dst,
                proto,
                outcome: r.map_err(|e| e.to_string()),
            });
        }
    }
    out
}

/// Every ordered pair of distinct endpoints.
pub fn probe_all(eps: &[Endpoint], payload: usize, timeout: Duration) -> Vec<Probe> {
    probe_all_sized(eps, Size::Bytes(payload), timeout)
}

/// [`probe_all`] with per-protocol payload sizes.
pub fn probe_all_sized(eps: &[Endpoint], size: Size, timeout: Duration) -> Vec<Probe> {
    let mut out = Vec::new();
    for a in eps {
        for b in eps.iter().filter(|b| b.name != a.name) {
            out.extend(probe_pair_sized(a, b, size, timeout));
        }
    }
    out
}
