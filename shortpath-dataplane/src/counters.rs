//! Reading the per-CPU counters: (attach ifindex, reason) → packets.

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use shortpath_common::counters::{CounterKey, Reason};

use super::DataplaneError;

/// Packets per reason at one attach point, summed over CPUs.
pub type ReasonCounts = BTreeMap<&'static str, u64>;

/// Sums every CPU's counters, grouped by attach ifindex.
pub fn read<T: std::borrow::Borrow<MapData>>(
    map: &PerCpuHashMap<T, CounterKey, u64>,
) -> Result<BTreeMap<u32, ReasonCounts>, DataplaneError> {
    let mut out: BTreeMap<u32, ReasonCounts> = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) =
            entry.map_err(|e| DataplaneError::map(super::object::MAP_COUNTERS, e))?;
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
