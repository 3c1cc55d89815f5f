//! The pod CIDR map kept in step with the cluster's pod networks: the
//! destinations `from_pod` may route with the FIB (see
//! `shortpath_common::pod_cidr`).

use std::{collections::BTreeSet, net::IpAddr};

use aya::maps::{
    lpm_trie::{Key, LpmTrie},
    MapData,
};
use ipnet::IpNet;
use shortpath_common::{
    endpoint::{EndpointKey, AF_INET, AF_INET6},
    pod_cidr::{PodCidrKey, HEADER_BITS, MAX_POD_CIDRS, PRESENT},
};

use super::{object::MAP_POD_CIDRS, DataplaneError};

/// The map as userspace sees it: LPM trie of `{family, pad, addr}`.
pub type PodCidrMap<T> = LpmTrie<T, EndpointKey, u32>;

/// The key of `net` (host bits cleared).
pub fn key(net: IpNet) -> PodCidrKey {
    match net {
        IpNet::V4(n) => PodCidrKey::v4(n.addr().octets(), n.prefix_len()),
        IpNet::V6(n) => PodCidrKey::v6(n.addr().octets(), n.prefix_len()),
    }
}

/// The network a key stands for, if it is a well-formed one.
pub fn net(k: &PodCidrKey) -> Option<IpNet> {
    let len = k.prefixlen.checked_sub(HEADER_BITS)?;
    let a = k.net.addr;
    let addr = match k.net.family {
        AF_INET if len <= 32 => IpAddr::from([a[0], a[1], a[2], a[3]]),
        AF_INET6 if len <= 128 => IpAddr::from(a),
        _ => return None,
    };
    IpNet::new(addr, len as u8).ok()
}

fn to_aya(k: &PodCidrKey) -> Key<EndpointKey> {
    Key::new(k.prefixlen, k.net)
}

fn from_aya(k: &Key<EndpointKey>) -> PodCidrKey {
    PodCidrKey {
        prefixlen: k.prefix_len(),
        net: k.data(),
    }
}

/// The keys `want` calls for: one per distinct network (host bits
/// cleared), at most [`MAX_POD_CIDRS`].
pub fn wanted(want: &[IpNet]) -> Result<BTreeSet<Ordered>, DataplaneError> {
    let keys: BTreeSet<Ordered> = want.iter().map(|n| Ordered(key(*n))).collect();
    if keys.len() > MAX_POD_CIDRS as usize {
        return Err(DataplaneError::TooManyPodCidrs {
            count: keys.len(),
            max: MAX_POD_CIDRS,
        });
    }
    Ok(keys)
}

/// A key with an order (for sets and stable output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ordered(pub PodCidrKey);

impl Ord for Ordered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        let k = |k: &PodCidrKey| (k.net.family, k.net.addr, k.prefixlen, k.net.pad);
        k(&self.0).cmp(&k(&o.0))
    }
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// What to change so a map holding `have` holds exactly `want`:
/// (keys to remove, keys to insert). Nothing is rewritten that is there.
pub fn diff(
    have: &BTreeSet<Ordered>,
    want: &BTreeSet<Ordered>,
) -> (Vec<PodCidrKey>, Vec<PodCidrKey>) {
    (
        have.difference(want).map(|k| k.0).collect(),
        want.difference(have).map(|k| k.0).collect(),
    )
}

/// Makes `map` hold exactly `want`. New networks are inserted before stale
/// ones go, so an address in both the old and the new set never leaves
/// the fast path in between. Returns (inserted, removed).
pub fn sync<T: std::borrow::BorrowMut<MapData>>(
    map: &mut PodCidrMap<T>,
    want: &[IpNet],
) -> Result<(usize, usize), DataplaneError> {
    let err = |e| DataplaneError::map(MAP_POD_CIDRS, e);
    let want = wanted(want)?;
    let have: BTreeSet<Ordered> = map
        .keys()
        .map(|k| k.map(|k| Ordered(from_aya(&k))))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let (stale, new) = diff(&have, &want);
    for k in &new {
        map.insert(&to_aya(k), PRESENT, 0).map_err(err)?;
    }
    for k in &stale {
        match map.remove(&to_aya(k)) {
            Ok(()) => {}
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok((new.len(), stale.len()))
}

/// The networks the map holds, sorted (keys no network stands for are
/// skipped).
pub fn read<T: std::borrow::Borrow<MapData>>(
    map: &PodCidrMap<T>,
) -> Result<Vec<IpNet>, DataplaneError> {
    let mut keys = BTreeSet::new();
    for k in map.keys() {
        let k = k.map_err(|e| DataplaneError::map(MAP_POD_CIDRS, e))?;
        keys.insert(Ordered(from_aya(&k)));
    }
    Ok(keys.iter().filter_map(|k| net(&k.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn keys_round_trip_as_networks() {
        for n in nets(&[
            "172.17.1.0/24",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "fd00:172:17:1::/64",
            "::/0",
            "10.1.2.3/32",
        ]) {
            let k = key(n);
            assert_eq!(net(&k), Some(n), "{n}");
            assert_eq!(k.prefixlen, HEADER_BITS + u32::from(n.prefix_len()));
        }
        // Host bits are cleared: the key is the network's.
        assert_eq!(
            net(&key("172.17.1.77/24".parse().unwrap())),
            Some("172.17.1.0/24".parse().unwrap())
        );
        let bad = PodCidrKey {
            prefixlen: 8,
            ..key("10.0.0.0/8".parse().unwrap())
        };
        assert_eq!(net(&bad), None);
        let bad = PodCidrKey {
            prefixlen: HEADER_BITS + 33,
            ..key("10.0.0.0/8".parse().unwrap())
        };
        assert_eq!(net(&bad), None);
        let mut bad = key("10.0.0.0/8".parse().unwrap());
        bad.net.family = 7;
        assert_eq!(net(&bad), None);
    }

    #[test]
    fn v4_and_v6_keys_never_collide() {
        // ::/96-ish v6 networks whose first bytes look like a v4 network.
        let v4 = key("10.0.0.0/8".parse().unwrap());
        let v6 = key("a00::/8".parse().unwrap());
        assert_eq!(v4.net.addr, v6.net.addr);
        assert_ne!(v4, v6, "the family is part of the matched prefix");
    }

    #[test]
    fn sync_plan_adds_the_new_removes_the_stale_keeps_the_rest() {
        let have = wanted(&nets(&[
            "172.17.1.0/24",
            "172.17.2.0/24",
            "fd00:172:17:1::/64",
        ]))
        .unwrap();
        let want = wanted(&nets(&[
            "172.17.2.0/24",
            "172.17.3.0/24",
            "fd00:172:17:1::/64",
            "fd00:172:17:2::/64",
            // A duplicate (host bits set) is the same network.
            "172.17.3.9/24",
        ]))
        .unwrap();
        assert_eq!(want.len(), 4);
        let (remove, insert) = diff(&have, &want);
        let show = |v: &[PodCidrKey]| {
            v.iter()
                .map(|k| net(k).unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&remove), ["172.17.1.0/24"]);
        assert_eq!(show(&insert), ["172.17.3.0/24", "fd00:172:17:2::/64"]);
        assert_eq!(diff(&want, &want), (vec![], vec![]));
        let (remove, insert) = diff(&have, &BTreeSet::new());
        assert_eq!((remove.len(), insert.len()), (3, 0));
        // Same address, another length: a different network.
        let (remove, insert) = diff(
            &wanted(&nets(&["10.0.0.0/16"])).unwrap(),
            &wanted(&nets(&["10.0.0.0/8"])).unwrap(),
        );
        assert_eq!(
            (show(&remove), show(&insert)),
            (
                vec!["10.0.0.0/16".to_owned()],
                vec!["10.0.0.0/8".to_owned()]
            )
        );
    }

    #[test]
    fn at_most_the_map_size() {
        let many: Vec<IpNet> = (0..=MAX_POD_CIDRS)
            .map(|i| IpNet::new(IpAddr::from([10, (i >> 8) as u8, i as u8, 0]), 24).unwrap())
            .collect();
        assert!(matches!(
            wanted(&many),
            Err(DataplaneError::TooManyPodCidrs { count, max }) if count == many.len() && max == MAX_POD_CIDRS
        ));
        assert!(wanted(&many[1..]).is_ok());
    }
}
