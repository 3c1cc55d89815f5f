//! Endpoints as the agent keeps them: checked requests, and the records
//! that name what the kernel's endpoint map holds.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::api::{ApiError, EndpointRequest, ErrorCode};
use crate::{
    dataplane::{PodSpec, Port},
    nl::Mac,
};

shortpath_dataplane::name_type!(
    /// The caller's name for an endpoint (a container id, a pod name).
    EndpointId,
    "endpoint",
    128
);

/// The node's pod CIDRs: at most one IPv4 and one IPv6 network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodCidrs(Vec<IpNet>);

impl PodCidrs {
    pub fn contains(&self, a: &IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(a))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

impl fmt::Display for PodCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_networks(f, &self.0)
    }
}

/// Networks as the command line takes them: comma-separated.
pub fn write_networks(f: &mut fmt::Formatter<'_>, nets: &[IpNet]) -> fmt::Result {
    let s: Vec<String> = nets.iter().map(ToString::to_string).collect();
    f.write_str(&s.join(","))
}

/// One network of a `--pod-cidr`/`--cluster-cidr` list: a network, not an
/// address (`10.1.0.0/24`, not `10.1.0.5/24`); `kind` and `example` name
/// it in the message.
pub fn parse_network(part: &str, kind: &str, example: &str) -> Result<IpNet, String> {
    let net: IpNet = part
        .trim()
        .parse()
        .map_err(|_| format!("bad {kind} {part:?}: write it like {example}"))?;
    if net.trunc() != net {
        return Err(format!(
            "{kind} {net} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

impl FromStr for PodCidrs {
    type Err = String;
    /// `V4[,V6]`: networks, not addresses (`10.1.0.0/24`, not `10.1.0.5/24`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut nets: Vec<IpNet> = Vec::new();
        for part in s.split(',') {
            let net = parse_network(part, "pod CIDR", "10.1.0.0/24")?;
            if nets
                .iter()
                .any(|n| n.addr().is_ipv4() == net.addr().is_ipv4())
            {
                return Err(format!(
                    "more than one IPv{} pod CIDR in {s:?}: give one IPv4 and at most one IPv6",
                    if net.addr().is_ipv4() { 4 } else { 6 }
                ));
            }
            nets.push(net);
        }
        Ok(Self(nets))
    }
}

/// An interface name as the kernel accepts it (≤ 15 bytes, no '/', no
/// whitespace, not `.` or `..`).
pub fn check_ifname(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_graphic() && c != b'/' && c != b':');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid interface name {s:?}: 1 to 15 printable characters, no '/' or ':'"
        ))
    }
}

pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let bad = || format!("invalid MAC {s:?}: write it like 02:00:00:00:00:05");
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if m[0] & 1 != 0 || m == [0; 6] {
        return Err(format!("MAC {s} is not a unicast address"));
    }
    Ok(Mac(m))
}

/// A request that passed every check that needs no kernel.
#[derive(Clone, Debug)]
pub struct Checked {
    pub id: EndpointId,
    pub host_if: String,
    pub addrs: Vec<IpAddr>,
    pub pod_mac: Mac,
    pub mtu: Option<u32>,
}

fn invalid(m: String) -> ApiError {
    ApiError::new(ErrorCode::Invalid, m)
}

/// Checks a request against the node's pod CIDRs.
pub fn check(req: &EndpointRequest, cidrs: &PodCidrs) -> Result<Checked, ApiError> {
    let id = EndpointId::new(&req.id).map_err(|e| invalid(e.to_string()))?;
    check_ifname(&req.host_if).map_err(invalid)?;
    if req.addrs.is_empty() {
        return Err(invalid(format!("endpoint {id}: no addresses")));
    }
    let mut addrs = Vec::new();
    for a in &req.addrs {
        let ip: IpAddr = a.parse().map_err(|_| {
            invalid(format!(
                "endpoint {id}: {a:?} is not an IP address (a pod address has no prefix length)"
            ))
        })?;
        if !cidrs.contains(&ip) {
            return Err(invalid(format!(
                "endpoint {id}: {ip} is outside this node's pod CIDRs ({cidrs})"
            )));
        }
        if addrs.contains(&ip) {
            return Err(invalid(format!("endpoint {id}: {ip} given twice")));
        }
        addrs.push(ip);
    }
    if addrs.iter().filter(|a| a.is_ipv4()).count() > 1
        || addrs.iter().filter(|a| a.is_ipv6()).count() > 1
    {
        return Err(invalid(format!(
            "endpoint {id}: at most one IPv4 and one IPv6 address"
        )));
    }
    let pod_mac = parse_mac(&req.pod_mac).map_err(|m| invalid(format!("endpoint {id}: {m}")))?;
    if let Some(mtu) = req.mtu {
        if !(68..=65535).contains(&mtu) {
            return Err(invalid(format!(
                "endpoint {id}: MTU {mtu} is outside 68..65535"
            )));
        }
    }
    Ok(Checked {
        id,
        host_if: req.host_if.clone(),
        addrs,
        pod_mac,
        mtu: req.mtu,
    })
}

/// What the agent records of an endpoint. The kernel's map holds the
/// addresses, ifindex and MACs; this adds the id and the device name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub id: EndpointId,
    pub host_if: String,
    pub ifindex: u32,
    pub addrs: Vec<IpAddr>,
    pub pod_mac: Mac,
    pub host_mac: Mac,
    pub mtu: u32,
    /// Found in the kernel's map without a record (named after its
    /// device); the first client to add an endpoint on that device takes
    /// it over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}

impl Record {
    pub fn port(&self) -> Port {
        Port {
            ifname: self.host_if.clone(),
            ifindex: self.ifindex,
        }
    }

    pub fn pod(&self) -> PodSpec {
        PodSpec {
            name: self.id.to_string(),
            host_if: self.port(),
            host_mac: self.host_mac.0,
            pod_mac: self.pod_mac.0,
            mtu: self.mtu,
            addrs: self.addrs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(addrs: &[&str]) -> EndpointRequest {
        EndpointRequest {
            id: "c1".into(),
            host_if: "lxc1".into(),
            addrs: addrs.iter().map(|s| s.to_string()).collect(),
            pod_mac: "02:00:00:00:00:05".into(),
            mtu: None,
        }
    }

    #[test]
    fn cidrs_parse_one_per_family_without_host_bits() {
        let c: PodCidrs = "10.1.0.0/24,fd00:1::/64".parse().unwrap();
        assert!(c.contains(&"10.1.0.9".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.9".parse().unwrap()));
        assert!("10.1.0.5/24"
            .parse::<PodCidrs>()
            .unwrap_err()
            .contains("did you mean 10.1.0.0/24"));
        assert!("10.1.0.0/24,10.2.0.0/24".parse::<PodCidrs>().is_err());
        assert!("banana".parse::<PodCidrs>().is_err());
        assert!("".parse::<PodCidrs>().is_err());
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let c: PodCidrs = "10.1.0.0/24,fd00:1::/64".parse().unwrap();
        let ok = check(&req(&["10.1.0.5", "fd00:1::5"]), &c).unwrap();
        assert_eq!(ok.addrs.len(), 2);
        let cases: Vec<(EndpointRequest, &str)> = vec![
            (req(&["10.9.0.5"]), "outside this node's pod CIDRs"),
            (req(&["10.1.0.5/32"]), "not an IP address"),
            (req(&[]), "no addresses"),
            (req(&["10.1.0.5", "10.1.0.6"]), "at most one IPv4"),
            (req(&["10.1.0.5", "10.1.0.5"]), "given twice"),
            (
                EndpointRequest {
                    id: "../x".into(),
                    ..req(&["10.1.0.5"])
                },
                "invalid endpoint name",
            ),
            (
                EndpointRequest {
                    host_if: "a/b".into(),
                    ..req(&["10.1.0.5"])
                },
                "invalid interface name",
            ),
            (
                EndpointRequest {
                    host_if: "x".repeat(16),
                    ..req(&["10.1.0.5"])
                },
                "invalid interface name",
            ),
            (
                EndpointRequest {
                    pod_mac: "ff:ff:ff:ff:ff:ff".into(),
                    ..req(&["10.1.0.5"])
                },
                "not a unicast",
            ),
            (
                EndpointRequest {
                    pod_mac: "02:00:00".into(),
                    ..req(&["10.1.0.5"])
                },
                "invalid MAC",
            ),
            (
                EndpointRequest {
                    mtu: Some(10),
                    ..req(&["10.1.0.5"])
                },
                "MTU 10",
            ),
        ];
        for (r, want) in cases {
            let e = check(&r, &c).unwrap_err();
            assert_eq!(e.code, ErrorCode::Invalid);
            assert!(e.message.contains(want), "{r:?}: {}", e.message);
        }
    }
}
