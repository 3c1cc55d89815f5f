//! Writing a [`Plan`] into the `NEXT_HOPS` map, reading it back.

use std::{
    borrow::{Borrow, BorrowMut},
    collections::BTreeMap,
    path::Path,
};

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Map, MapData, MapError,
    },
    Ebpf,
};
use ipnet::IpNet;
use shortpath_common::{endpoint::EndpointKey, next_hop::NextHop};

use super::{NextHopEntry, Plan};
use crate::{
    cache_gen::Generation,
    object::{MAP_CACHE_GEN, MAP_NEXT_HOPS},
    pod_cidrs::{key, net},
    DataplaneError,
};

/// The map as userspace sees it: the LPM trie, and the cache generation
/// every write bumps (the programs cache what they look up in it per CPU;
/// see `cache_gen`).
pub struct NextHopMap<T> {
    trie: LpmTrie<T, EndpointKey, NextHop>,
    generation: Generation,
}

impl<T: Borrow<MapData>> NextHopMap<T> {
    /// The entry for exactly `k` (prefix and length).
    pub fn get(&self, k: &Key<EndpointKey>, flags: u64) -> Result<NextHop, MapError> {
        self.trie.get(k, flags)
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = Result<Key<EndpointKey>, MapError>> + '_ {
        self.trie.keys()
    }

    /// The cache generation now (it only grows).
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }
}

impl<T: BorrowMut<MapData>> NextHopMap<T> {
    /// Writes `v` for `k`, then bumps the cache generation.
    pub fn insert(
        &mut self,
        k: &Key<EndpointKey>,
        v: impl Borrow<NextHop>,
        flags: u64,
    ) -> Result<(), MapError> {
        self.trie.insert(k, v, flags)?;
        self.generation.bump();
        Ok(())
    }

    /// Removes `k`, then bumps the cache generation.
    pub fn remove(&mut self, k: &Key<EndpointKey>) -> Result<(), MapError> {
        self.trie.remove(k)?;
        self.generation.bump();
        Ok(())
    }
}

impl<'a> NextHopMap<&'a mut MapData> {
    /// The trie of a loaded object.
    pub fn of(ebpf: &'a mut Ebpf) -> Result<Self, DataplaneError> {
        let (mut trie, mut generation) = (None, None);
        for (name, map) in ebpf.maps_mut() {
            match name {
                MAP_NEXT_HOPS => trie = Some(map),
                MAP_CACHE_GEN => generation = Some(map),
                _ => {}
            }
        }
        let generation = Generation::of(generation.ok_or(DataplaneError::NoMap(MAP_CACHE_GEN))?)?;
        let trie = trie.ok_or(DataplaneError::NoMap(MAP_NEXT_HOPS))?;
        Ok(Self {
            trie: LpmTrie::try_from(trie).map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))?,
            generation,
        })
    }
}

impl NextHopMap<MapData> {
    /// The trie pinned in `dir` (a node's maps directory).
    pub fn pinned(dir: &Path) -> Result<Self, DataplaneError> {
        let err = |e| DataplaneError::map(MAP_NEXT_HOPS, e);
        let md = MapData::from_pin(dir.join(MAP_NEXT_HOPS)).map_err(err)?;
        Ok(Self {
            trie: LpmTrie::try_from(Map::LpmTrie(md)).map_err(err)?,
            generation: Generation::pinned(dir)?,
        })
    }
}

fn to_aya(n: &IpNet) -> Key<EndpointKey> {
    let k = key(*n);
    Key::new(k.prefixlen, k.net)
}

fn entries<T: Borrow<MapData>>(
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

/// Makes the map hold exactly `plan`: changed and new entries are written
/// first (an entry is replaced in place, never missing in between), then
/// stale ones go. Returns the number of entries written and removed.
pub fn sync<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    plan: &Plan,
) -> Result<(usize, usize), DataplaneError> {
    let err = |e| DataplaneError::map(MAP_NEXT_HOPS, e);
    let have = entries(map)?;
    let mut written = 0;
    for (n, nh) in &plan.entries {
        if have.get(n) != Some(nh) {
            map.insert(&to_aya(n), *nh, 0).map_err(err)?;
            written += 1;
        }
    }
    let mut removed = 0;
    for n in have.keys().filter(|n| !plan.entries.contains_key(n)) {
        match map.remove(&to_aya(n)) {
            Ok(()) => removed += 1,
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok((written, removed))
}

/// Removes the entries (routes and exceptions alike) outside every network
/// of `cluster`; returns how many went.
pub fn prune<T: BorrowMut<MapData>>(
    map: &mut NextHopMap<T>,
    cluster: &[IpNet],
) -> Result<usize, DataplaneError> {
    let err = |e| DataplaneError::map(MAP_NEXT_HOPS, e);
    let mut removed = 0;
    for n in entries(map)?
        .into_keys()
        .filter(|n| !cluster.iter().any(|c| c.contains(n)))
    {
        match map.remove(&to_aya(&n)) {
            Ok(()) => removed += 1,
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(removed)
}

/// The entries the map holds, sorted by destination.
pub fn read<T: Borrow<MapData>>(map: &NextHopMap<T>) -> Result<Vec<NextHopEntry>, DataplaneError> {
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
    let dir = pins.maps();
    if !dir.join(MAP_NEXT_HOPS).exists() || !dir.join(MAP_CACHE_GEN).exists() {
        return Ok(Vec::new());
    }
    read(&NextHopMap::pinned(&dir)?)
}
