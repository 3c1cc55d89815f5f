//! The endpoint maps as one table keyed by [`EndpointKey`].
//!
//! The programs keep one hash map per family (`ENDPOINTS_V4`, keyed by the
//! four address bytes, and `ENDPOINTS_V6`, by the sixteen): the kernel
//! hashes and compares the whole key on every lookup, and a 4-byte key
//! costs less per packet than a 20-byte one. Userspace sees one table:
//! each key goes to the map of its family, so an address lives in exactly
//! one map and there is nothing to keep in step between them.
//!
//! Every write is followed by a bump of the endpoint generation
//! ([`Generation`]): each CPU of the programs caches the endpoints it
//! looked up, tagged with the generation, and drops what a bump makes
//! stale (`shortpath-ebpf/src/endpoint_cache.rs`). Opening the maps for
//! writing bumps it once too, which repairs a writer killed between its
//! write and its bump; opening them for reading leaves it alone.

use std::{
    borrow::{Borrow, BorrowMut},
    io,
    path::Path,
};

use aya::{
    maps::{HashMap, Map, MapData, MapError},
    Ebpf,
};
use shortpath_common::endpoint::{Endpoint, EndpointKey, AF_INET, AF_INET6};

use crate::{
    endpoint_gen::Generation,
    object::{ENDPOINT_MAPS, MAP_ENDPOINTS_GEN, MAP_ENDPOINTS_V4, MAP_ENDPOINTS_V6},
    DataplaneError,
};

/// Both endpoint maps, whoever owns their file descriptors.
pub struct EndpointMaps<T> {
    v4: HashMap<T, [u8; 4], Endpoint>,
    v6: HashMap<T, [u8; 16], Endpoint>,
    /// `None`: opened for reading ([`EndpointMaps::pinned_for_reading`]).
    generation: Option<Generation>,
}

/// Where an [`EndpointKey`] lives.
enum Slot {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// The map and key of `k`; `None` for a key no map can hold (an unknown
/// family, padding or an IPv4 key with bytes past the address).
fn slot(k: &EndpointKey) -> Option<Slot> {
    if k.pad != [0; 3] {
        return None;
    }
    match k.family {
        AF_INET if k.addr[4..] == [0; 12] => {
            Some(Slot::V4([k.addr[0], k.addr[1], k.addr[2], k.addr[3]]))
        }
        AF_INET6 => Some(Slot::V6(k.addr)),
        _ => None,
    }
}

/// A key of no family: `EINVAL`, the errno of a key the kernel cannot
/// take.
fn invalid() -> MapError {
    MapError::IoError(io::Error::from_raw_os_error(libc::EINVAL))
}

/// A write through maps opened for reading: a bug of the caller.
fn read_only() -> MapError {
    MapError::IoError(io::Error::from_raw_os_error(libc::EBADF))
}

impl<T: Borrow<MapData>> EndpointMaps<T> {
    /// The entry for `k`; [`MapError::KeyNotFound`] when there is none.
    pub fn get(&self, k: &EndpointKey, flags: u64) -> Result<Endpoint, MapError> {
        match slot(k) {
            Some(Slot::V4(a)) => self.v4.get(&a, flags),
            Some(Slot::V6(a)) => self.v6.get(&a, flags),
            None => Err(MapError::KeyNotFound),
        }
    }

    /// The endpoint generation now (it only grows); `None` for maps
    /// opened for reading.
    pub fn generation(&self) -> Option<u64> {
        self.generation.as_ref().map(Generation::get)
    }

    /// Every entry: the IPv4 map's, then the IPv6 map's.
    pub fn iter(&self) -> impl Iterator<Item = Result<(EndpointKey, Endpoint), MapError>> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|e| e.map(|(a, v)| (EndpointKey::v4(a), v)));
        let v6 = self
            .v6
            .iter()
            .map(|e| e.map(|(a, v)| (EndpointKey::v6(a), v)));
        v4.chain(v6)
    }

    /// Every key, as [`iter`](Self::iter) orders them.
    pub fn keys(&self) -> impl Iterator<Item = Result<EndpointKey, MapError>> + '_ {
        let v4 = self.v4.keys().map(|k| k.map(EndpointKey::v4));
        let v6 = self.v6.keys().map(|k| k.map(EndpointKey::v6));
        v4.chain(v6)
    }
}

impl<T: BorrowMut<MapData>> EndpointMaps<T> {
    /// Writes `v` for `k` in the map of its family (`flags`: `BPF_ANY`,
    /// `BPF_NOEXIST`, `BPF_EXIST`), then bumps the generation. A key of no
    /// family is `EINVAL`; maps opened for reading are `EBADF`.
    pub fn insert(
        &mut self,
        k: impl Borrow<EndpointKey>,
        v: impl Borrow<Endpoint>,
        flags: u64,
    ) -> Result<(), MapError> {
        let generation = self.generation.as_ref().ok_or_else(read_only)?;
        match slot(k.borrow()) {
            Some(Slot::V4(a)) => self.v4.insert(a, v, flags),
            Some(Slot::V6(a)) => self.v6.insert(a, v, flags),
            None => Err(invalid()),
        }?;
        generation.bump();
        Ok(())
    }

    /// Removes `k`, then bumps the generation; [`MapError::KeyNotFound`]
    /// (or the kernel's `ENOENT`) when it is not there.
    pub fn remove(&mut self, k: &EndpointKey) -> Result<(), MapError> {
        let generation = self.generation.as_ref().ok_or_else(read_only)?;
        match slot(k) {
            Some(Slot::V4(a)) => self.v4.remove(&a),
            Some(Slot::V6(a)) => self.v6.remove(&a),
            None => Err(MapError::KeyNotFound),
        }?;
        generation.bump();
        Ok(())
    }
}

impl<'a> EndpointMaps<&'a mut MapData> {
    /// The endpoint maps of a loaded object.
    pub fn of(ebpf: &'a mut Ebpf) -> Result<Self, DataplaneError> {
        let (mut v4, mut v6, mut generation) = (None, None, None);
        for (name, map) in ebpf.maps_mut() {
            match name {
                MAP_ENDPOINTS_V4 => v4 = Some(map),
                MAP_ENDPOINTS_V6 => v6 = Some(map),
                MAP_ENDPOINTS_GEN => generation = Some(map),
                _ => {}
            }
        }
        let v4 = v4.ok_or(DataplaneError::NoMap(MAP_ENDPOINTS_V4))?;
        let v6 = v6.ok_or(DataplaneError::NoMap(MAP_ENDPOINTS_V6))?;
        let generation =
            Generation::of(generation.ok_or(DataplaneError::NoMap(MAP_ENDPOINTS_GEN))?)?;
        Ok(Self {
            v4: HashMap::try_from(v4).map_err(|e| DataplaneError::map(MAP_ENDPOINTS_V4, e))?,
            v6: HashMap::try_from(v6).map_err(|e| DataplaneError::map(MAP_ENDPOINTS_V6, e))?,
            generation: Some(generation),
        })
    }
}

impl EndpointMaps<MapData> {
    /// The endpoint maps pinned in `dir` (a node's maps directory), for
    /// writing: the generation is mapped and bumped once.
    pub fn pinned(dir: &Path) -> Result<Self, DataplaneError> {
        let mut maps = Self::pinned_for_reading(dir)?;
        maps.generation = Some(Generation::pinned(dir)?);
        Ok(maps)
    }

    /// The endpoint maps pinned in `dir`, for reading only: nothing is
    /// mapped or bumped, and writes fail.
    pub fn pinned_for_reading(dir: &Path) -> Result<Self, DataplaneError> {
        fn open<K: aya::Pod>(
            dir: &Path,
            name: &'static str,
        ) -> Result<HashMap<MapData, K, Endpoint>, DataplaneError> {
            let md = MapData::from_pin(dir.join(name)).map_err(|e| DataplaneError::map(name, e))?;
            HashMap::try_from(Map::HashMap(md)).map_err(|e| DataplaneError::map(name, e))
        }
        Ok(Self {
            v4: open(dir, MAP_ENDPOINTS_V4)?,
            v6: open(dir, MAP_ENDPOINTS_V6)?,
            generation: None,
        })
    }

    /// [`pinned`](Self::pinned), or `None` when the maps (or their
    /// generation) are not all pinned in `dir`.
    pub fn pinned_if_present(dir: &Path) -> Result<Option<Self>, DataplaneError> {
        let present = [MAP_ENDPOINTS_V4, MAP_ENDPOINTS_V6, MAP_ENDPOINTS_GEN]
            .iter()
            .all(|m| dir.join(m).exists());
        present.then(|| Self::pinned(dir)).transpose()
    }
}

/// A map error, naming the endpoint maps.
pub fn map_err(e: MapError) -> DataplaneError {
    DataplaneError::map(ENDPOINT_MAPS, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_one_home_and_malformed_keys_have_none() {
        assert!(matches!(
            slot(&EndpointKey::v4([10, 0, 0, 1])),
            Some(Slot::V4([10, 0, 0, 1]))
        ));
        let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert!(matches!(slot(&EndpointKey::v6(v6)), Some(Slot::V6(a)) if a == v6));
        let mut long_v4 = EndpointKey::v4([10, 0, 0, 1]);
        long_v4.addr[4] = 1;
        let padded = EndpointKey {
            pad: [0, 1, 0],
            ..EndpointKey::v4([10, 0, 0, 1])
        };
        let no_family = EndpointKey {
            family: 0,
            ..EndpointKey::v6(v6)
        };
        for k in [long_v4, padded, no_family] {
            assert!(slot(&k).is_none(), "{k:?}");
        }
    }
}
