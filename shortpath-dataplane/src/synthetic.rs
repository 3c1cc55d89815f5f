//! Synthetic endpoints: endpoint map entries that no packet can ever use, to
//! measure the fast path with a full map (`shortpath prog-bench`, and a
//! live node's pinned map for benchmarks at scale).
//!
//! Entry `i` (0 ≤ i < [`MAX_ENDPOINTS`]) has a fixed key and value:
//! - key: even `i` an IPv4 address of 198.18.0.0/15 (RFC 2544, benchmarking),
//!   `198.18.0.0 + i/2 + 1`; odd `i` an IPv6 address of 2001:2::/48 (RFC
//!   5180, benchmarking), `2001:2:: + i/2 + 1`. So the range used is
//!   198.18.0.1 – 198.18.32.0 and 2001:2::1 – 2001:2::2000; the rest of both
//!   networks is free for the caller.
//! - value: [`FLAG_STACK_ONLY`] (both programs hand such a destination to
//!   the stack and never forward to it), host ifindex [`SYNTHETIC_IFINDEX`]
//!   (no device has it, so it is nobody's source either), MACs with the
//!   marker prefix `02:53:59` ("SY").
//!
//! An entry is synthetic only when key *and* value match: [`set`] and
//! [`remove_all`] never touch a real endpoint, even one whose address falls
//! in the same range, and inserting never overwrites one (`BPF_NOEXIST`;
//! the index is skipped). Everything works on any endpoint map — a fresh
//! object's (`TcObject::endpoints`) or a node's pinned one ([`open_pinned`]).

use std::{
    borrow::{Borrow, BorrowMut},
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
};

use aya::maps::{MapData, MapError};
use shortpath_common::endpoint::{
    Endpoint, EndpointKey, AF_INET, AF_INET6, FLAG_STACK_ONLY, MAX_ENDPOINTS,
};

use crate::{
    endpoint_maps::{map_err as err, EndpointMaps},
    DataplaneError, NodeName, NodePins, PinRoot,
};

/// The host ifindex of every synthetic entry: one no device gets (ifindexes
/// are allocated upwards from 1).
pub const SYNTHETIC_IFINDEX: u32 = 0x7fff_fff0;
/// First three bytes of both MACs of a synthetic entry.
const MAC_MARKER: [u8; 3] = [0x02, 0x53, 0x59];
const V4_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const V6_BASE: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0);
const BPF_NOEXIST: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("{want} synthetic endpoints do not fit: the endpoint maps already hold {real} real ones, and real and synthetic entries together are kept to at most {max} (ask for at most {})", max - real)]
    TooMany {
        want: usize,
        real: usize,
        max: usize,
    },
    #[error(transparent)]
    Map(#[from] DataplaneError),
}

/// The key of synthetic entry `i` (see the module docs).
pub fn key(i: u32) -> EndpointKey {
    let offset = i / 2 + 1;
    if i.is_multiple_of(2) {
        EndpointKey::v4((u32::from(V4_BASE) + offset).to_be_bytes())
    } else {
        EndpointKey::v6((u128::from(V6_BASE) + u128::from(offset)).to_be_bytes())
    }
}

/// The index whose [`key`] is `k`, if it is one.
pub fn index(k: &EndpointKey) -> Option<u32> {
    let (offset, odd) = match k.family {
        AF_INET if k.addr[4..] == [0; 12] => {
            let a = u32::from_be_bytes(k.addr[..4].try_into().expect("4 bytes"));
            (a.checked_sub(u32::from(V4_BASE))?, 0)
        }
        AF_INET6 => {
            let a = u128::from_be_bytes(k.addr);
            (u32::try_from(a.checked_sub(u128::from(V6_BASE))?).ok()?, 1)
        }
        _ => return None,
    };
    let i = offset.checked_sub(1)?.checked_mul(2)? + odd;
    (k.pad == [0; 3] && i < MAX_ENDPOINTS).then_some(i)
}

/// The value of synthetic entry `i`.
pub fn endpoint(i: u32) -> Endpoint {
    let [_, _, hi, lo] = i.to_be_bytes();
    let mac = [MAC_MARKER[0], MAC_MARKER[1], MAC_MARKER[2], 0, hi, lo];
    Endpoint {
        ifindex: SYNTHETIC_IFINDEX,
        mtu: 1500,
        flags: FLAG_STACK_ONLY,
        pod_mac: mac,
        host_mac: mac,
    }
}

/// Whether `(k, v)` is a synthetic entry (key and value both match).
pub fn is_synthetic(k: &EndpointKey, v: &Endpoint) -> bool {
    index(k).is_some_and(|i| *v == endpoint(i))
}

/// What the map holds: the indices of its synthetic entries and the number
/// of real ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub synthetic: BTreeSet<u32>,
    pub real: usize,
}

/// Reads the whole map once.
pub fn census<T: Borrow<MapData>>(map: &EndpointMaps<T>) -> Result<Census, DataplaneError> {
    let mut c = Census::default();
    for entry in map.iter() {
        let (k, v) = entry.map_err(err)?;
        match index(&k).filter(|&i| v == endpoint(i)) {
            Some(i) => {
                c.synthetic.insert(i);
            }
            None => c.real += 1,
        }
    }
    Ok(c)
}

/// Makes `map` hold exactly `n` synthetic entries beside its real ones:
/// the highest indices go first, missing ones are inserted from index 0 up,
/// skipping keys a real endpoint holds. Returns the census after the change.
pub fn set<T: BorrowMut<MapData>>(
    map: &mut EndpointMaps<T>,
    n: usize,
) -> Result<Census, SyntheticError> {
    let mut c = census(map)?;
    let max = MAX_ENDPOINTS as usize;
    if c.real + n > max {
        return Err(SyntheticError::TooMany {
            want: n,
            real: c.real,
            max,
        });
    }
    while c.synthetic.len() > n {
        let i = c.synthetic.pop_last().expect("not empty");
        match map.remove(&key(i)) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) if is_errno(&e, libc::ENOENT) => {}
            Err(e) => return Err(err(e).into()),
        }
    }
    let mut i = 0;
    while c.synthetic.len() < n && i < MAX_ENDPOINTS {
        if !c.synthetic.contains(&i) {
            match map.insert(key(i), endpoint(i), BPF_NOEXIST) {
                Ok(()) => {
                    c.synthetic.insert(i);
                }
                // A real endpoint has this address: leave it alone.
                Err(e) if is_errno(&e, libc::EEXIST) => {}
                Err(e) => return Err(err(e).into()),
            }
        }
        i += 1;
    }
    Ok(c)
}

/// Removes every synthetic entry; real ones stay. Returns how many went.
pub fn remove_all<T: BorrowMut<MapData>>(
    map: &mut EndpointMaps<T>,
) -> Result<usize, DataplaneError> {
    let before = census(map)?.synthetic.len();
    set(map, 0).map_err(|e| match e {
        SyntheticError::Map(e) => e,
        SyntheticError::TooMany { .. } => unreachable!("0 entries always fit"),
    })?;
    Ok(before)
}

/// The endpoint map pinned for `node` under `root`, without loading any
/// program; `None` when the node has no pinned map.
pub fn open_pinned(
    root: &PinRoot,
    node: &NodeName,
) -> Result<Option<EndpointMaps<MapData>>, DataplaneError> {
    let Some(pins) = NodePins::existing(root, node)? else {
        return Ok(None);
    };
    EndpointMaps::pinned_if_present(&pins.maps())
}

fn is_errno(e: &MapError, errno: i32) -> bool {
    matches!(e, MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_indices_round_trip_in_the_benchmarking_ranges() {
        assert_eq!(key(0), EndpointKey::v4([198, 18, 0, 1]));
        assert_eq!(
            key(1),
            EndpointKey::v6("2001:2::1".parse::<Ipv6Addr>().unwrap().octets())
        );
        assert_eq!(key(2 * 255), EndpointKey::v4([198, 18, 1, 0]));
        let last = MAX_ENDPOINTS - 1;
        assert_eq!(
            key(last),
            EndpointKey::v6("2001:2::2000".parse::<Ipv6Addr>().unwrap().octets())
        );
        assert_eq!(key(last - 1), EndpointKey::v4([198, 18, 32, 0]));
        for i in (0..MAX_ENDPOINTS).step_by(7).chain([last]) {
            assert_eq!(index(&key(i)), Some(i), "{i}");
            assert!(is_synthetic(&key(i), &endpoint(i)));
        }
    }

    #[test]
    fn other_keys_and_values_are_not_synthetic() {
        for k in [
            EndpointKey::v4([198, 18, 0, 0]),
            EndpointKey::v4([198, 18, 32, 1]),
            EndpointKey::v4([198, 19, 0, 2]),
            EndpointKey::v4([172, 17, 1, 2]),
            EndpointKey::v6("2001:2::".parse::<Ipv6Addr>().unwrap().octets()),
            EndpointKey::v6("2001:2::2001".parse::<Ipv6Addr>().unwrap().octets()),
            EndpointKey::v6("2001:2:0:1::1".parse::<Ipv6Addr>().unwrap().octets()),
            EndpointKey {
                pad: [1, 0, 0],
                ..key(0)
            },
        ] {
            assert_eq!(index(&k), None, "{k:?}");
        }
        // A real endpoint at a synthetic address is still real.
        let real = Endpoint {
            flags: 0,
            ..endpoint(4)
        };
        assert!(!is_synthetic(&key(4), &real));
        assert!(!is_synthetic(&key(4), &endpoint(5)));
        assert_eq!(endpoint(4).flags & FLAG_STACK_ONLY, FLAG_STACK_ONLY);
    }
}
