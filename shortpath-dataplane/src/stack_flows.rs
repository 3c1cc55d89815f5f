//! The stack-flow map as userspace reads it: the flows pods sent to the
//! node's stack, whose replies the programs hand to the stack too (see
//! `shortpath_common::stack_flow`). Only the programs write it; userspace
//! reads it for tests and diagnostics.

use std::{fmt, net::IpAddr};

use aya::maps::{HashMap, MapData};
use shortpath_common::{
    endpoint::{AF_INET, AF_INET6},
    stack_flow::{StackFlowKey, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
};

use super::{endpoints, object::MAP_STACK_FLOWS, DataplaneError};

/// The map: an LRU hash of [`StackFlowKey`] → 1.
pub type StackFlowMap<T> = HashMap<T, StackFlowKey, u32>;

/// One remembered flow: the pod's address, the protocol and the pod's
/// port (TCP, UDP) or echo identifier (ICMP, ICMPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackFlow {
    pub addr: IpAddr,
    pub protocol: u8,
    pub port: u16,
}

impl StackFlow {
    pub fn new(protocol: u8, addr: IpAddr, port: u16) -> Self {
        Self {
            protocol,
            addr,
            port,
        }
    }

    /// The map key of this flow.
    pub fn key(&self) -> StackFlowKey {
        StackFlowKey::new(&endpoints::key(self.addr), self.protocol, self.port)
    }

    /// The flow a key stands for; `None` for an unknown family.
    pub fn of(k: &StackFlowKey) -> Option<Self> {
        let a = k.addr;
        let addr = match k.family {
            AF_INET => IpAddr::from([a[0], a[1], a[2], a[3]]),
            AF_INET6 => IpAddr::from(a),
            _ => return None,
        };
        Some(Self::new(k.protocol, addr, k.port()))
    }
}

impl fmt::Display for StackFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            IPPROTO_TCP => "tcp".to_owned(),
            IPPROTO_UDP => "udp".to_owned(),
            IPPROTO_ICMP => "icmp".to_owned(),
            IPPROTO_ICMPV6 => "icmpv6".to_owned(),
            p => format!("proto {p}"),
        };
        match self.addr {
            IpAddr::V4(a) => write!(f, "{proto} {a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "{proto} [{a}]:{}", self.port),
        }
    }
}

/// The flows the map holds, sorted by address, protocol, port (keys of an unknown family skipped).
pub fn read<T: std::borrow::Borrow<MapData>>(
    map: &StackFlowMap<T>,
) -> Result<Vec<StackFlow>, DataplaneError> {
    let mut out = Vec::new();
    for k in map.keys() {
        let k = k.map_err(|e| DataplaneError::map(MAP_STACK_FLOWS, e))?;
        out.extend(StackFlow::of(&k));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shortpath_common::{
        endpoint::EndpointKey,
        stack_flow::{Side, L4_HEAD},
    };

    #[test]
    fn flows_round_trip_through_their_keys() {
        for (proto, addr, port) in [
            (IPPROTO_UDP, "172.17.1.2", 4321),
            (IPPROTO_TCP, "fd00:172:17:1::2", 65535),
            (IPPROTO_ICMP, "10.0.0.1", 0),
            (IPPROTO_ICMPV6, "::1", 0x1234),
        ] {
            let f = StackFlow::new(proto, addr.parse().unwrap(), port);
            let k = f.key();
            assert_eq!(StackFlow::of(&k), Some(f));
            assert_eq!(k.port, port.to_be_bytes(), "network order");
            assert_eq!(k.pod(), endpoints::key(f.addr));
        }
        let mut bad = StackFlow::new(IPPROTO_UDP, "10.0.0.1".parse().unwrap(), 1).key();
        bad.family = 7;
        assert_eq!(StackFlow::of(&bad), None);
    }

    /// What the programs record from a pod's packet is the key userspace
    /// builds for the flow.
    #[test]
    fn the_programs_key_is_userspaces() {
        let addr: IpAddr = "fd00:172:17:1::2".parse().unwrap();
        let mut l4 = [0u8; L4_HEAD];
        l4[..4].copy_from_slice(&[0xc3, 0x50, 0x1f, 0x90]); // 50000 → 8080
        let recorded =
            StackFlowKey::of(&endpoints::key(addr), IPPROTO_TCP, &l4, Side::FromPod).unwrap();
        assert_eq!(recorded, StackFlow::new(IPPROTO_TCP, addr, 50000).key());
        assert_eq!(
            recorded.pod(),
            EndpointKey::v6(match addr {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(_) => unreachable!(),
            })
        );
    }

    #[test]
    fn flows_show_protocol_address_and_port() {
        let show = |p, a: &str, port| StackFlow::new(p, a.parse().unwrap(), port).to_string();
        assert_eq!(show(IPPROTO_UDP, "172.17.1.2", 53), "udp 172.17.1.2:53");
        assert_eq!(show(IPPROTO_TCP, "fd00::2", 80), "tcp [fd00::2]:80");
        assert_eq!(show(IPPROTO_ICMPV6, "fd00::2", 7), "icmpv6 [fd00::2]:7");
        assert_eq!(show(132, "10.0.0.1", 9), "proto 132 10.0.0.1:9");
    }
}
