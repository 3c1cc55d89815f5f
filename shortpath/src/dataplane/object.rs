//! The eBPF objects built by `build.rs`, embedded so the binary runs on
//! its own.

use aya::{include_bytes_aligned, Ebpf, EbpfLoader};
use shortpath_common::mode::FastPath;

/// The TC programs (`from_nic`, `from_pod`) and their maps.
pub static TC_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shortpath-tc"));

pub const PROG_FROM_NIC: &str = "from_nic";
pub const PROG_FROM_POD: &str = "from_pod";
pub const MAP_ENDPOINTS: &str = "ENDPOINTS";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const GLOBAL_MODE: &str = "MODE";

/// Loads the TC object with `mode` baked into `.rodata`. Maps are created
/// fresh unless `pins` names a directory holding them (then they are reused
/// and, if absent, created and pinned there).
pub fn load_tc(mode: FastPath, pins: Option<&std::path::Path>) -> Result<Ebpf, aya::EbpfError> {
    let mode = mode as u32;
    let mut loader = EbpfLoader::new();
    loader.override_global(GLOBAL_MODE, &mode, true);
    let paths = pins.map(|dir| (dir.join(MAP_ENDPOINTS), dir.join(MAP_COUNTERS)));
    if let Some((endpoints, counters)) = &paths {
        loader.map_pin_path(MAP_ENDPOINTS, endpoints.as_path());
        loader.map_pin_path(MAP_COUNTERS, counters.as_path());
    }
    loader.load(TC_OBJECT)
}
