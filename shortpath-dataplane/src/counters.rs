//! Reading the per-CPU counters: (attach ifindex, reason) → packets, from
//! the device slot array and the hash map beside it (devices whose slot
//! another one holds).

use std::{collections::BTreeMap, path::Path};

use aya::maps::{Map, MapData, PerCpuArray, PerCpuHashMap};
use shortpath_common::counters::{CounterKey, DeviceCounters, Reason, DEVICE_SLOTS};

use super::{
    object::{MAP_COUNTERS, MAP_DEVICE_COUNTERS},
    DataplaneError,
};

/// The device slot array as userspace sees it.
pub type DeviceCounterMap<T> = PerCpuArray<T, DeviceCounters>;

/// Both counter maps of a node or an object.
pub struct CounterMaps<T> {
    pub hash: PerCpuHashMap<T, CounterKey, u64>,
    pub devices: DeviceCounterMap<T>,
}

impl CounterMaps<MapData> {
    /// The maps pinned in `dir`.
    pub fn pinned(dir: &Path) -> Result<Self, DataplaneError> {
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name)).map_err(|e| DataplaneError::map(name, e))
        };
        Ok(Self {
            hash: PerCpuHashMap::try_from(Map::PerCpuHashMap(open(MAP_COUNTERS)?))
                .map_err(|e| DataplaneError::map(MAP_COUNTERS, e))?,
            devices: PerCpuArray::try_from(Map::PerCpuArray(open(MAP_DEVICE_COUNTERS)?))
                .map_err(|e| DataplaneError::map(MAP_DEVICE_COUNTERS, e))?,
        })
    }
}

impl<T: std::borrow::Borrow<MapData>> CounterMaps<T> {
    /// Every device's packets per reason, summed over CPUs and both maps.
    pub fn read(&self) -> Result<BTreeMap<u32, ReasonCounts>, DataplaneError> {
        let mut out = read(&self.hash)?;
        read_devices(&self.devices, &mut out)?;
        Ok(out)
    }
}

/// Adds every CPU's device slots to `out`.
pub fn read_devices<T: std::borrow::Borrow<MapData>>(
    map: &DeviceCounterMap<T>,
    out: &mut BTreeMap<u32, ReasonCounts>,
) -> Result<(), DataplaneError> {
    for slot in 0..DEVICE_SLOTS {
        let per_cpu = map
            .get(&slot, 0)
            .map_err(|e| DataplaneError::map(MAP_DEVICE_COUNTERS, e))?;
        for c in per_cpu.iter().filter(|c| c.ifindex != 0) {
            add_slot(c, out);
        }
    }
    Ok(())
}

/// One CPU's copy of a slot into `out`.
fn add_slot(c: &DeviceCounters, out: &mut BTreeMap<u32, ReasonCounts>) {
    for (reason, n) in c.packets.iter().enumerate().filter(|(_, n)| **n > 0) {
        let name = Reason::from_u32(reason as u32).map_or("unknown", Reason::name);
        *out.entry(c.ifindex).or_default().entry(name).or_default() += n;
    }
}

/// Packets per reason at one attach point, summed over CPUs.
pub type ReasonCounts = BTreeMap<&'static str, u64>;

/// Sums every CPU's hash-map counters, grouped by attach ifindex.
fn read<T: std::borrow::Borrow<MapData>>(
    map: &PerCpuHashMap<T, CounterKey, u64>,
) -> Result<BTreeMap<u32, ReasonCounts>, DataplaneError> {
    let mut out: BTreeMap<u32, ReasonCounts> = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(|e| DataplaneError::map(MAP_COUNTERS, e))?;
        let total: u64 = per_cpu.iter().sum();
        let name = Reason::from_u32(key.reason).map_or("unknown", Reason::name);
        *out.entry(key.ifindex).or_default().entry(name).or_default() += total;
    }
    Ok(out)
}

/// Packets the fast path redirected (any helper) in `counts`.
pub fn redirected(counts: &ReasonCounts) -> u64 {
    Reason::ALL
        .iter()
        .filter(|r| r.verdict() == shortpath_common::counters::Verdict::Redirect)
        .filter_map(|r| counts.get(r.name()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_add_up_per_device_and_reason() {
        let mut out = BTreeMap::new();
        let mut c = DeviceCounters {
            ifindex: 7,
            ..Default::default()
        };
        c.packets[Reason::RedirectPeer as usize] = 3;
        c.packets[Reason::PassTtl as usize] = 1;
        add_slot(&c, &mut out);
        add_slot(&c, &mut out); // another CPU's copy
        c.ifindex = 263; // same slot (7 + 256) on a third CPU
        add_slot(&c, &mut out);
        assert_eq!(
            out[&7],
            BTreeMap::from([("redirect_peer", 6), ("pass_ttl_expired", 2)])
        );
        assert_eq!(out[&263]["redirect_peer"], 3);
    }
}
