//! The endpoint map kept in step with the node's pods.

use std::{collections::HashMap as StdMap, net::IpAddr};

use aya::maps::MapData;
use shortpath_common::endpoint::{Endpoint, EndpointKey, KERNEL_FLAGS};

use super::{
    endpoint_maps::{map_err as err, EndpointMaps},
    object::MAP_LEGACY_ENDPOINTS,
    DataplaneError, NodeSpec,
};

pub fn key(addr: IpAddr) -> EndpointKey {
    match addr {
        IpAddr::V4(a) => EndpointKey::v4(a.octets()),
        IpAddr::V6(a) => EndpointKey::v6(a.octets()),
    }
}

/// The map entries a node's pods call for: one per pod address.
pub fn entries(spec: &NodeSpec) -> StdMap<EndpointKey, Endpoint> {
    let mut out = StdMap::new();
    for pod in &spec.pods {
        let ep = Endpoint {
            ifindex: pod.host_if.ifindex,
            mtu: pod.mtu,
            flags: 0,
            pod_mac: pod.pod_mac,
            host_mac: pod.host_mac,
        };
        for a in &pod.addrs {
            out.insert(key(*a), ep);
        }
    }
    out
}

/// Removes `addrs` from the endpoint maps pinned for node `node` under
/// `root`, without loading anything (the CNI plugin's DEL while the agent
/// is down). A node without pins, or absent addresses, are fine.
pub fn remove_pinned(
    root: &crate::PinRoot,
    node: &crate::NodeName,
    addrs: &[IpAddr],
) -> Result<usize, DataplaneError> {
    let Some(pins) = crate::NodePins::existing(root, node)? else {
        return Ok(0);
    };
    let mut n = remove_legacy(&pins.maps(), addrs)?;
    let Some(mut map) = EndpointMaps::pinned_if_present(&pins.maps())? else {
        return Ok(n);
    };
    for a in addrs {
        if map.remove(&key(*a)).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Removes `addrs` from the endpoint map of an older shortpath
/// ([`MAP_LEGACY_ENDPOINTS`], one map keyed by [`EndpointKey`]) if the node
/// still has it pinned: that version's programs may still be attached and
/// read it.
fn remove_legacy(dir: &std::path::Path, addrs: &[IpAddr]) -> Result<usize, DataplaneError> {
    let err = |e| DataplaneError::map(MAP_LEGACY_ENDPOINTS, e);
    let Ok(md) = MapData::from_pin(dir.join(MAP_LEGACY_ENDPOINTS)) else {
        return Ok(0);
    };
    let mut map: aya::maps::HashMap<MapData, EndpointKey, Endpoint> =
        aya::maps::HashMap::try_from(aya::maps::Map::HashMap(md)).map_err(err)?;
    Ok(addrs
        .iter()
        .filter(|a| map.remove(&key(**a)).is_ok())
        .count())
}

/// Makes `map` hold exactly `want`: stale keys removed, the rest written.
/// Returns (written, removed).
pub fn sync<T: std::borrow::BorrowMut<MapData>>(
    map: &mut EndpointMaps<T>,
    want: &StdMap<EndpointKey, Endpoint>,
) -> Result<(usize, usize), DataplaneError> {
    let stale: Vec<EndpointKey> = map
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?
        .into_iter()
        .filter(|k| !want.contains_key(k))
        .collect();
    for k in &stale {
        map.remove(k).map_err(err)?;
    }
    for (k, v) in want {
        write(map, k, v)?;
    }
    Ok((want.len(), stale.len()))
}

/// Writes `want` for `k`, keeping the flags the programs own
/// ([`KERNEL_FLAGS`]) of an entry already there; an entry that differs
/// only in those is left alone. (A program may set such a flag between
/// the read and the write; it sets it again on the pod's next packet.)
pub fn write<T: std::borrow::BorrowMut<MapData>>(
    map: &mut EndpointMaps<T>,
    k: &EndpointKey,
    want: &Endpoint,
) -> Result<(), DataplaneError> {
    let v = match map.get(k, 0) {
        Ok(have) => match merge(&have, want) {
            Some(v) => v,
            None => return Ok(()),
        },
        Err(aya::maps::MapError::KeyNotFound) => *want,
        Err(e) => return Err(err(e)),
    };
    map.insert(k, v, 0).map_err(err)
}

/// The value to write over `have` for `want`, or `None` when `have` is
/// already `want` but for the programs' flags.
fn merge(have: &Endpoint, want: &Endpoint) -> Option<Endpoint> {
    if intent(*have) == intent(*want) {
        return None;
    }
    Some(Endpoint {
        flags: (want.flags & !KERNEL_FLAGS) | (have.flags & KERNEL_FLAGS),
        ..*want
    })
}

/// `e` without the flags the programs own: what userspace asked for.
pub fn intent(mut e: Endpoint) -> Endpoint {
    e.flags &= !KERNEL_FLAGS;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_keep_the_programs_flags_and_skip_what_is_there() {
        use shortpath_common::endpoint::{FLAG_SENT_TO_STACK, FLAG_STACK_ONLY};
        let want = Endpoint {
            ifindex: 3,
            mtu: 1500,
            flags: 0,
            pod_mac: [2, 0, 0, 0, 0, 1],
            host_mac: [2, 0, 0, 0, 0, 2],
        };
        let marked = Endpoint {
            flags: FLAG_SENT_TO_STACK,
            ..want
        };
        assert_eq!(
            merge(&marked, &want),
            None,
            "only the program's flag differs"
        );
        let moved = Endpoint {
            ifindex: 4,
            flags: FLAG_STACK_ONLY,
            ..want
        };
        assert_eq!(
            merge(&marked, &moved).unwrap().flags,
            FLAG_STACK_ONLY | FLAG_SENT_TO_STACK,
            "a real change keeps the program's flag"
        );
        let asked = Endpoint {
            flags: FLAG_STACK_ONLY | FLAG_SENT_TO_STACK,
            ..moved
        };
        assert_eq!(
            merge(&want, &asked).unwrap().flags,
            FLAG_STACK_ONLY,
            "userspace cannot set it"
        );
        assert_eq!(intent(marked), want);
    }
    use crate::{PinRoot, PodSpec, Port};

    #[test]
    fn one_entry_per_pod_address() {
        let pod = |name: &str, ifindex, addrs: &[&str]| PodSpec {
            name: name.into(),
            host_if: Port {
                ifname: format!("lxc{name}"),
                ifindex,
            },
            host_mac: [2, 0, 0, 0, 0, ifindex as u8],
            pod_mac: [2, 1, 0, 0, 0, ifindex as u8],
            mtu: 1500,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        let spec = NodeSpec {
            pin_root: PinRoot::shortpath(),
            node: "n".parse().unwrap(),
            netns: "t-n".into(),
            nic: Port {
                ifname: "eth1".into(),
                ifindex: 100,
            },
            pods: vec![
                pod("a", 5, &["172.17.1.2", "fd00::2"]),
                pod("b", 6, &["172.17.1.3"]),
            ],
            cluster_cidrs: vec![],
        };
        let e = entries(&spec);
        assert_eq!(e.len(), 3);
        let a6 = e[&key("fd00::2".parse().unwrap())];
        assert_eq!(a6.ifindex, 5);
        assert_eq!(a6.pod_mac, [2, 1, 0, 0, 0, 5]);
        let b = e[&EndpointKey::v4([172, 17, 1, 3])];
        assert_eq!(
            (b.ifindex, b.host_mac, b.mtu),
            (6, [2, 0, 0, 0, 0, 6], 1500)
        );
    }
}
