//! The programs' per-CPU endpoint cache never serves a stale endpoint:
//! every write through `EndpointMaps` reaches the next packet, and a
//! writer killed between its write and its generation bump is repaired by
//! the next open. BPF_PROG_TEST_RUN on one CPU, maps pinned in a bpffs
//! directory of the test's own (removed even on failure), so the writer
//! holds its maps open across packets as the agent does.

mod support;

use std::path::{Path, PathBuf};

use shortpath_common::{
    endpoint::{Endpoint, EndpointKey},
    mode::FastPath,
};
use shortpath_dataplane::{EndpointMaps, Hook, TcObject};
use support::{
    packet::{V4, V6},
    prog::*,
    root_or_skip,
};

const POD4: &str = "172.17.1.2";
const POD6: &str = "fd00:172:17:1::2";
const REMOTE4: &str = "172.17.2.2";
const REMOTE6: &str = "fd00:172:17:2::2";
const HOST_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const OLD_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const NEW_MAC: [u8; 6] = [0x02, 0x33, 0, 0, 0, 0x03];

/// A bpffs directory of this test's own, removed with everything pinned in
/// it when dropped.
struct PinDir(PathBuf);

impl PinDir {
    fn new(test: &str) -> Self {
        let p = PathBuf::from(format!(
            "/sys/fs/bpf/shortpath-test-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("bpffs directory");
        Self(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn endpoint(pod_mac: [u8; 6]) -> Endpoint {
    Endpoint {
        ifindex: 42,
        mtu: 1500,
        flags: 0,
        pod_mac,
        host_mac: HOST_MAC,
    }
}

fn key(addr: &str) -> EndpointKey {
    match addr.parse().unwrap() {
        std::net::IpAddr::V4(a) => EndpointKey::v4(a.octets()),
        std::net::IpAddr::V6(a) => EndpointKey::v6(a.octets()),
    }
}

/// The destination MAC `from_nic` wrote, or `None` when it handed the
/// frame to the stack.
fn delivered_to(obj: &mut TcObject, frame: &[u8]) -> Option<[u8; 6]> {
    let r = run(obj, Hook::FromNic, frame, SkbCtx::default());
    match r.verdict {
        TC_ACT_REDIRECT => Some(r.out[..6].try_into().unwrap()),
        TC_ACT_OK => {
            assert_eq!(r.out, frame, "handed on unchanged");
            None
        }
        v => panic!("verdict {v}"),
    }
}

#[test]
fn every_endpoint_write_reaches_the_next_packet() {
    root_or_skip!();
    let dir = PinDir::new("cache-writes");
    let mut obj = TcObject::load(FastPath::Redirect, Some(dir.path())).expect("load");
    let mut maps = EndpointMaps::pinned(dir.path()).expect("pinned endpoint maps");
    for (pod, frame) in [
        (POD4, V4::new(REMOTE4, POD4).build()),
        (POD6, V6::new(REMOTE6, POD6).build()),
    ] {
        assert_eq!(delivered_to(&mut obj, &frame), None, "{pod}: no endpoint");
        maps.insert(key(pod), endpoint(OLD_MAC), 0).unwrap();
        assert_eq!(delivered_to(&mut obj, &frame), Some(OLD_MAC), "{pod}");
        // Now cached on this CPU; the same writer changes it.
        maps.insert(key(pod), endpoint(NEW_MAC), 0).unwrap();
        assert_eq!(
            delivered_to(&mut obj, &frame),
            Some(NEW_MAC),
            "{pod}: rewritten"
        );
        maps.remove(&key(pod)).unwrap();
        assert_eq!(delivered_to(&mut obj, &frame), None, "{pod}: removed");
        maps.insert(key(pod), endpoint(OLD_MAC), 0).unwrap();
        assert_eq!(delivered_to(&mut obj, &frame), Some(OLD_MAC), "{pod}");
    }
}

/// Writes `ep` for `pod` straight into the kernel's map of its family:
/// no bump, as a writer killed between its write and its bump leaves it.
fn write_without_bump(dir: &Path, pod: &str, ep: Endpoint) {
    let open = |name: &str| {
        let md = aya::maps::MapData::from_pin(dir.join(name)).unwrap();
        aya::maps::Map::HashMap(md)
    };
    match pod.parse().unwrap() {
        std::net::IpAddr::V4(a) => {
            let mut m: aya::maps::HashMap<_, [u8; 4], Endpoint> =
                aya::maps::HashMap::try_from(open("ENDPOINTS_V4")).unwrap();
            m.insert(a.octets(), ep, 0).unwrap();
        }
        std::net::IpAddr::V6(a) => {
            let mut m: aya::maps::HashMap<_, [u8; 16], Endpoint> =
                aya::maps::HashMap::try_from(open("ENDPOINTS_V6")).unwrap();
            m.insert(a.octets(), ep, 0).unwrap();
        }
    }
}

/// A write that skips the bump (a writer killed between the two, or one
/// that bypasses `EndpointMaps`) stays hidden behind the cache — which
/// shows the cache serves both families — until the next open of the maps
/// for writing, which bumps. Only where the cache exists.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_write_without_its_bump_is_repaired_by_the_next_open() {
    root_or_skip!();
    let dir = PinDir::new("cache-repair");
    let mut obj = TcObject::load(FastPath::Redirect, Some(dir.path())).expect("load");
    for (pod, frame) in [
        (POD4, V4::new(REMOTE4, POD4).build()),
        (POD6, V6::new(REMOTE6, POD6).build()),
    ] {
        EndpointMaps::pinned(dir.path())
            .unwrap()
            .insert(key(pod), endpoint(OLD_MAC), 0)
            .unwrap();
        assert_eq!(delivered_to(&mut obj, &frame), Some(OLD_MAC), "{pod}");

        write_without_bump(dir.path(), pod, endpoint(NEW_MAC));
        assert_eq!(
            delivered_to(&mut obj, &frame),
            Some(OLD_MAC),
            "{pod}: the cache still holds the old endpoint: the bump is what tells it"
        );

        // Opening for reading changes nothing; opening for writing repairs.
        let reader = EndpointMaps::pinned_for_reading(dir.path()).unwrap();
        assert_eq!(reader.generation(), None);
        assert_eq!(reader.get(&key(pod), 0).unwrap().pod_mac, NEW_MAC);
        assert_eq!(delivered_to(&mut obj, &frame), Some(OLD_MAC), "{pod}");
        let before = EndpointMaps::pinned(dir.path()).unwrap().generation();
        assert_eq!(
            delivered_to(&mut obj, &frame),
            Some(NEW_MAC),
            "{pod}: repaired"
        );
        assert!(EndpointMaps::pinned(dir.path()).unwrap().generation() > before);
    }
}

/// With the cache off (what the loader chooses on PREEMPT_RT kernels), the
/// programs read the maps on every packet: even a write without its bump
/// is seen at once.
#[test]
fn with_the_cache_off_every_packet_reads_the_map() {
    root_or_skip!();
    let dir = PinDir::new("cache-off");
    let mut obj = TcObject::load_with(FastPath::Redirect, Some(dir.path()), false).expect("load");
    EndpointMaps::pinned(dir.path())
        .unwrap()
        .insert(key(POD4), endpoint(OLD_MAC), 0)
        .unwrap();
    let frame = V4::new(REMOTE4, POD4).build();
    assert_eq!(delivered_to(&mut obj, &frame), Some(OLD_MAC));
    write_without_bump(dir.path(), POD4, endpoint(NEW_MAC));
    assert_eq!(delivered_to(&mut obj, &frame), Some(NEW_MAC));
}

/// A slot no lookup has filled yet is all zero, and so are the address
/// 0.0.0.0 / :: and the generation of an object nobody has written to:
/// the cache must still miss there (slots are tagged with the generation
/// plus one), or a frame to 0.0.0.0 would find an endpoint of all zeros
/// (ifindex 0, MTU 0) in slot 0.
#[test]
fn an_empty_slot_matches_no_address() {
    root_or_skip!();
    // No endpoint map opened: the generation is still 0.
    let mut obj = TcObject::load(FastPath::Redirect, None).expect("load");
    for frame in [
        V4::new(REMOTE4, "0.0.0.0").build(),
        V6::new(REMOTE6, "::").build(),
    ] {
        assert_eq!(delivered_to(&mut obj, &frame), None);
    }
    assert_eq!(
        counts(&obj, 1),
        std::collections::BTreeMap::from([("pass_no_endpoint", 2)])
    );
}
