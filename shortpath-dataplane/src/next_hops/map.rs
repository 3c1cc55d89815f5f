//! Writing a [`Plan`] into the `NEXT_HOPS` map, reading it back.

use std::{borrow::BorrowMut, collections::BTreeMap};

use aya::maps::{
    lpm_trie::{Key, LpmTrie},
    MapData,
};
use ipnet::IpNet;
use shortpath_common::{endpoint::EndpointKey, next_hop::NextHop};

use super::{NextHopEntry, Plan};
use crate::{
    endpoint_gen::Generation,
    object::MAP_NEXT_HOPS,
    pod_cidrs::{key, net},
    DataplaneError,
};

/// The map as userspace sees it.
pub type NextHopMap<T> = LpmTrie<T, EndpointKey, NextHop>;

fn to_aya(n: &IpNet) -> Key<EndpointKey> {
    let k = key(*n);
    Key::new(k.prefixlen, k.net)
}

fn entries<T: std::borrow::Borrow<MapData>>(
    map: &NextHopMap<T>,
) -> Result<BTreeMap<IpNet, NextHop>, DataplaneError> {
    let err = |e| DataplaneError::map(MAP_NEXT_HOPS, e);
    let mut out = BTreeMap::new();
    for k in map.keys() {
        let k = k.map_err(err)?;
        let pk = shortpath_common::pod_cidr::PodCidrKey {
            prefixlen: k.prefix_len(),
            net: k.data(),
        };
        let v = map.get(&k, 0).map_err(err)?;
        if let Some(n) = net(&pk) {
            out.insert(n, v);
        }
    }
    Ok(out)
}

/// Writes the entry for `net`, then bumps `generation`, so that no CPU's
/// cache answers with the entry it replaced.
pub(crate) fn insert<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    net: IpNet,
    nh: NextHop,
    generation: &Generation,
) -> Result<(), DataplaneError> {
    map.insert(&to_aya(&net), nh, 0)
        .map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))?;
    generation.bump();
    Ok(())
}

/// Removes the entry for `net`, then bumps `generation`; whether it was
/// there (gone already is no error).
fn remove<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    net: &IpNet,
    generation: &Generation,
) -> Result<bool, DataplaneError> {
    let gone = map.remove(&to_aya(net));
    generation.bump();
    match gone {
        Ok(()) => Ok(true),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(false)
        }
        Err(e) => Err(DataplaneError::map(MAP_NEXT_HOPS, e)),
    }
}

/// Makes the map hold exactly `plan`: changed and new entries are written
/// first (an entry is replaced in place, never missing in between), then
/// stale ones go. Returns the number of entries written and removed.
///
/// The programs cache the next hops they looked up per CPU, tagged with
/// the endpoint generation (shortpath-ebpf/src/endpoint_cache.rs):
/// `generation` is bumped after every write, so no CPU answers from an
/// entry this call replaced or removed.
pub(crate) fn sync<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    plan: &Plan,
    generation: &Generation,
) -> Result<(usize, usize), DataplaneError> {
    let have = entries(map)?;
    let mut written = 0;
    for (n, nh) in &plan.entries {
        if have.get(n) != Some(nh) {
            insert(map, *n, *nh, generation)?;
            written += 1;
        }
    }
    let mut removed = 0;
    for n in have.keys().filter(|n| !plan.entries.contains_key(n)) {
        removed += usize::from(remove(map, n, generation)?);
    }
    Ok((written, removed))
}

/// Removes the entries (routes and exceptions alike) outside every network
/// of `cluster`; returns how many went. `generation` is bumped after each
/// removal, as in [`sync`].
pub(crate) fn prune<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    cluster: &[IpNet],
    generation: &Generation,
) -> Result<usize, DataplaneError> {
    let mut removed = 0;
    for n in entries(map)?
        .into_keys()
        .filter(|n| !cluster.iter().any(|c| c.contains(n)))
    {
        removed += usize::from(remove(map, &n, generation)?);
    }
    Ok(removed)
}

/// The entries the map holds, sorted by destination.
pub fn read<T: std::borrow::Borrow<MapData>>(
    map: &NextHopMap<T>,
) -> Result<Vec<NextHopEntry>, DataplaneError> {
    Ok(entries(map)?
        .iter()
        .map(|(n, nh)| NextHopEntry::new(*n, nh))
        .collect())
}

/// The cache of a node as the kernel holds it (the pinned map), empty when
/// the node has no pins yet.
pub fn read_pinned(spec: &crate::NodeSpec) -> Result<Vec<NextHopEntry>, DataplaneError> {
    let Some(pins) = crate::NodePins::existing(&spec.pin_root, &spec.node)? else {
        return Ok(Vec::new());
    };
    let path = pins.maps().join(MAP_NEXT_HOPS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let md = MapData::from_pin(&path).map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))?;
    let map = NextHopMap::try_from(aya::maps::Map::LpmTrie(md))
        .map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))?;
    read(&map)
}
