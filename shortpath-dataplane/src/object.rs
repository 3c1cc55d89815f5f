//! The eBPF objects built by `build.rs`, embedded so the binary runs on
//! its own.

use std::path::Path;

use aya::{
    include_bytes_aligned,
    maps::{MapData, PerCpuHashMap},
    programs::SchedClassifier,
    Ebpf, EbpfLoader,
};
use shortpath_common::mode::FastPath;

use super::{
    endpoint_gen::Generation, endpoint_maps::EndpointMaps, next_hops::NextHopMap,
    pod_cidrs::PodCidrMap, stack_flows::StackFlowMap, DataplaneError, Hook,
};

/// The TC programs (`from_nic`, `from_pod`) and their maps.
pub static TC_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shortpath-tc"));

/// The kernel path tracer's programs (used by `shortpath trace`).
pub static TRACE_OBJECT: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shortpath-trace"));

/// The hand-written reference programs `shortpath prog-bench` compares
/// with (`shortpath_ebpf::reference`).
pub static REFERENCE_OBJECT: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shortpath-reference"));

pub const MAP_ENDPOINTS_V4: &str = "ENDPOINTS_V4";
pub const MAP_ENDPOINTS_V6: &str = "ENDPOINTS_V6";
/// The endpoint generation: see `endpoint_maps`.
pub const MAP_ENDPOINTS_GEN: &str = "ENDPOINTS_GEN";
/// How messages name the two endpoint maps together.
pub const ENDPOINT_MAPS: &str = "ENDPOINTS_V4/ENDPOINTS_V6";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const MAP_DEVICE_COUNTERS: &str = "DEVICE_COUNTERS";
pub const MAP_POD_CIDRS: &str = "POD_CIDRS";
pub const MAP_STACK_FLOWS: &str = "STACK_FLOWS";
pub const MAP_NEXT_HOPS: &str = "NEXT_HOPS";
/// Bumped by `from_pod` after each flow it adds to `STACK_FLOWS`: the
/// programs' per-CPU cache of "not a stack flow" answers follows it.
pub const MAP_STACK_FLOWS_GEN: &str = "STACK_FLOWS_GEN";
/// The maps pinned per node and shared by every program generation (a
/// flow remembered by one generation's `from_pod` has its replies handed
/// to the stack by the next one's).
pub const PINNED_MAPS: [&str; 9] = [
    MAP_ENDPOINTS_V4,
    MAP_ENDPOINTS_V6,
    MAP_ENDPOINTS_GEN,
    MAP_COUNTERS,
    MAP_DEVICE_COUNTERS,
    MAP_POD_CIDRS,
    MAP_STACK_FLOWS,
    MAP_STACK_FLOWS_GEN,
    MAP_NEXT_HOPS,
];
const GLOBAL_MODE: &str = "MODE";
/// 1: the programs' per-CPU endpoint cache is on (`endpoint_maps`).
const GLOBAL_CACHE_ENDPOINTS: &str = "CACHE_ENDPOINTS";
/// The endpoint map of shortpath before the per-family split (key: a
/// 20-byte `EndpointKey`). A node pinned by such a version keeps it until
/// programs of this version are attached (`apply` then unpins it); until
/// then, the CNI plugin's fallback DEL removes from it too.
pub const MAP_LEGACY_ENDPOINTS: &str = "ENDPOINTS";

/// Whether the running kernel is PREEMPT_RT, where two programs can
/// interleave on one CPU and the per-CPU endpoint cache is left off.
pub fn realtime_kernel() -> bool {
    std::fs::read_to_string("/sys/kernel/realtime").is_ok_and(|s| s.trim() == "1")
}
/// The section the load-time globals live in (one array map per program
/// generation, frozen).
pub const RODATA: &str = ".rodata";

/// Byte offset of the `MODE` global in `.rodata`, from the object's symbol
/// table: lets the kernel's copy of a loaded program tell which mode it runs.
pub fn mode_offset() -> Option<usize> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    static OFFSET: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let file = object::File::parse(TC_OBJECT).ok()?;
        let sym = file.symbols().find(|s| s.name() == Ok(GLOBAL_MODE))?;
        let section = file.section_by_index(sym.section_index()?).ok()?;
        (section.name() == Ok(RODATA)).then_some(sym.address() as usize)
    })
}

/// The TC program `name` of `ebpf`, loaded into the kernel (verified) on
/// first use.
pub(crate) fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DataplaneError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::NoProgram(name))?
        .try_into()
        .map_err(|e| DataplaneError::program(name, e))?;
    if prog.fd().is_err() {
        prog.load().map_err(|e| DataplaneError::program(name, e))?;
    }
    Ok(prog)
}

/// One generation of the TC programs, with `mode` frozen in `.rodata`.
pub struct TcObject {
    ebpf: Ebpf,
}

impl TcObject {
    /// Loads the object. Maps are created fresh unless `maps_dir` is given:
    /// then the maps pinned there are reused (created and pinned if absent),
    /// so program generations share endpoints, counters, pod CIDRs and the
    /// flows pods sent to the stack.
    pub fn load(mode: FastPath, maps_dir: Option<&Path>) -> Result<Self, DataplaneError> {
        Self::load_with(mode, maps_dir, !realtime_kernel())
    }

    /// [`load`](Self::load), with the per-CPU endpoint cache on or off
    /// (`load` leaves it off on PREEMPT_RT kernels only).
    pub fn load_with(
        mode: FastPath,
        maps_dir: Option<&Path>,
        endpoint_cache: bool,
    ) -> Result<Self, DataplaneError> {
        let mode = mode as u32;
        let cache = u32::from(endpoint_cache);
        let mut loader = EbpfLoader::new();
        loader.override_global(GLOBAL_MODE, &mode, true);
        loader.override_global(GLOBAL_CACHE_ENDPOINTS, &cache, true);
        let paths: Vec<_> = maps_dir
            .map(|dir| PINNED_MAPS.map(|m| (m, dir.join(m))).to_vec())
            .unwrap_or_default();
        for (map, path) in &paths {
            loader.map_pin_path(map, path.as_path());
        }
        let ebpf = loader
            .load(TC_OBJECT)
            .map_err(|e| DataplaneError::Object(Box::new(e)))?;
        Ok(Self { ebpf })
    }

    /// The program for `hook`, loaded into the kernel (verified) on first use.
    pub fn program(&mut self, hook: Hook) -> Result<&mut SchedClassifier, DataplaneError> {
        classifier(&mut self.ebpf, hook.program())
    }

    /// The endpoint maps of this generation.
    pub fn endpoints(&mut self) -> Result<EndpointMaps<&mut MapData>, DataplaneError> {
        EndpointMaps::of(&mut self.ebpf)
    }

    /// Makes the endpoint maps hold exactly `spec`'s pods; returns
    /// (entries written, stale entries removed).
    pub fn sync_endpoints(
        &mut self,
        spec: &super::NodeSpec,
    ) -> Result<(usize, usize), DataplaneError> {
        super::endpoints::sync(&mut self.endpoints()?, &super::endpoints::entries(spec))
    }

    /// The pod CIDR map of this generation.
    pub fn pod_cidrs(&mut self) -> Result<PodCidrMap<&mut MapData>, DataplaneError> {
        let map = self
            .ebpf
            .map_mut(MAP_POD_CIDRS)
            .ok_or(DataplaneError::NoMap(MAP_POD_CIDRS))?;
        PodCidrMap::try_from(map).map_err(|e| DataplaneError::map(MAP_POD_CIDRS, e))
    }

    /// Makes the pod CIDR map hold exactly `spec`'s cluster CIDRs; returns
    /// (inserted, removed).
    pub fn sync_pod_cidrs(
        &mut self,
        spec: &super::NodeSpec,
    ) -> Result<(usize, usize), DataplaneError> {
        super::pod_cidrs::sync(&mut self.pod_cidrs()?, &spec.cluster_cidrs)
    }

    /// The endpoint generation of this object, for a writer of the
    /// next-hop cache, which bumps it after each write (opening it bumps
    /// nothing: the tests would not see a missing bump).
    pub(crate) fn generation(&self) -> Result<Generation, DataplaneError> {
        Generation::of_unbumped(
            self.ebpf
                .map(MAP_ENDPOINTS_GEN)
                .ok_or(DataplaneError::NoMap(MAP_ENDPOINTS_GEN))?,
        )
    }

    /// Writes one next-hop entry for `net` and bumps the generation after
    /// it, so that no CPU's cache answers with the entry it replaced.
    pub fn insert_next_hop(
        &mut self,
        net: ipnet::IpNet,
        entry: shortpath_common::next_hop::NextHop,
    ) -> Result<(), DataplaneError> {
        let generation = self.generation()?;
        super::next_hops::insert(&mut self.next_hops()?, net, entry, &generation)
    }

    /// The next-hop cache of this generation. Reading only: a write needs
    /// the generation bump that [`insert_next_hop`](Self::insert_next_hop)
    /// and the sync make.
    pub fn next_hops(&mut self) -> Result<NextHopMap<&mut MapData>, DataplaneError> {
        let map = self
            .ebpf
            .map_mut(MAP_NEXT_HOPS)
            .ok_or(DataplaneError::NoMap(MAP_NEXT_HOPS))?;
        NextHopMap::try_from(map).map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))
    }

    /// Makes the next-hop cache hold what the kernel's routes and
    /// neighbours (in the calling thread's namespace) allow for `spec`'s
    /// NIC and cluster CIDRs. Returns the plan written.
    pub fn sync_next_hops(
        &mut self,
        spec: &super::NodeSpec,
    ) -> Result<super::next_hops::Plan, DataplaneError> {
        let obs =
            super::next_hops::observe(spec.nic.ifindex).map_err(|e| DataplaneError::NextHops {
                netns: spec.netns.clone(),
                source: e,
            })?;
        let plan = super::next_hops::plan(&spec.cluster_cidrs, &obs);
        let generation = self.generation()?;
        super::next_hops::sync(&mut self.next_hops()?, &plan, &generation)?;
        Ok(plan)
    }

    /// The stack-flow map of this generation: the flows its pods sent to
    /// the stack (written by `from_pod` only).
    pub fn stack_flows(&self) -> Result<StackFlowMap<&MapData>, DataplaneError> {
        let map = self
            .ebpf
            .map(MAP_STACK_FLOWS)
            .ok_or(DataplaneError::NoMap(MAP_STACK_FLOWS))?;
        StackFlowMap::try_from(map).map_err(|e| DataplaneError::map(MAP_STACK_FLOWS, e))
    }

    /// Packets per reason by attach ifindex, from this generation's
    /// counter maps.
    pub fn counts(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, super::counters::ReasonCounts>, DataplaneError>
    {
        let map = |name: &'static str| self.ebpf.map(name).ok_or(DataplaneError::NoMap(name));
        super::counters::CounterMaps {
            hash: PerCpuHashMap::try_from(map(MAP_COUNTERS)?)
                .map_err(|e| DataplaneError::map(MAP_COUNTERS, e))?,
            devices: aya::maps::PerCpuArray::try_from(map(MAP_DEVICE_COUNTERS)?)
                .map_err(|e| DataplaneError::map(MAP_DEVICE_COUNTERS, e))?,
        }
        .read()
    }
}

/// The compiler-builtins routines (byte loops, called as BPF functions) an
/// object's code calls: names of the symbols its relocations point at.
/// The hot paths must have none (docs/DATAPLANE.md, "How the programs
/// touch keys and headers").
pub fn builtin_calls(elf: &[u8]) -> Result<Vec<String>, object::Error> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};
    const BUILTINS: [&str; 5] = ["memset", "memcpy", "memmove", "memcmp", "bcmp"];
    let file = object::File::parse(elf)?;
    let mut out = Vec::new();
    // Program sections and `.text` (BPF-to-BPF subprograms; the builtins'
    // own bodies live there too, and call nothing).
    for section in file.sections() {
        if section.kind() != object::SectionKind::Text {
            continue;
        }
        for (_, reloc) in section.relocations() {
            let RelocationTarget::Symbol(i) = reloc.target() else {
                continue;
            };
            let name = file.symbol_by_index(i)?.name()?;
            if BUILTINS.contains(&name) {
                out.push(name.to_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The functions in an object's code sections, builtins aside.
    fn programs(elf: &[u8]) -> Vec<String> {
        use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};
        let file = object::File::parse(elf).unwrap();
        let mut out: Vec<String> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.is_global())
            .filter(|s| {
                s.section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .is_some_and(|sec| sec.name() != Ok(".text"))
            })
            .map(|s| s.name().unwrap().to_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn each_object_holds_only_its_own_programs() {
        assert_eq!(programs(TC_OBJECT), ["from_nic", "from_pod"]);
        assert_eq!(
            programs(REFERENCE_OBJECT),
            [
                "ref_from_nic",
                "ref_from_pod",
                "ref_noop_nic",
                "ref_noop_pod"
            ]
        );
        let trace = programs(TRACE_OBJECT);
        assert!(!trace.is_empty(), "{trace:?}");
        assert!(
            trace
                .iter()
                .all(|p| !p.starts_with("from_") && !p.starts_with("ref_")),
            "{trace:?}"
        );
    }

    #[test]
    fn tc_programs_call_no_byte_loop_builtins() {
        assert_eq!(builtin_calls(TC_OBJECT).unwrap(), Vec::<String>::new());
        assert_eq!(
            builtin_calls(REFERENCE_OBJECT).unwrap(),
            Vec::<String>::new()
        );
    }
}
