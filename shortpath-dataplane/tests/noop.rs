//! The no-op programs of the reference object (`bench --modes noop`): each
//! hands every frame on untouched with `TC_ACT_UNSPEC`, so that under TCX
//! the dataplane's program after it handles the packet as if it were not
//! there. BPF_PROG_TEST_RUN, a frame of each family.

mod support;

use std::net::Ipv4Addr;

use aya::programs::{TestRun, TestRunOptions};
use shortpath_dataplane::{
    reference::{ReferenceObject, ReferenceParams},
    Hook,
};
use support::{
    packet::{V4, V6},
    root_or_skip,
};

/// `TC_ACT_UNSPEC` (-1) as the test runner returns it.
const TC_ACT_UNSPEC: u32 = u32::MAX;

#[test]
fn the_noop_programs_hand_every_frame_on_untouched() {
    root_or_skip!();
    let params = ReferenceParams {
        pod_addr: Ipv4Addr::new(172, 17, 1, 2),
        pod_host_ifindex: 42,
        pod_mac: [2, 0, 0, 0, 0, 2],
        host_mac: [2, 0, 0, 0, 0, 1],
        remote: "172.17.2.0/24".parse().unwrap(),
        nic_ifindex: 2,
        nic_mac: [2, 0, 0, 0, 1, 1],
        gateway_mac: [2, 0, 0, 0, 1, 2],
    };
    let mut obj = ReferenceObject::load(&params).expect("reference object loads");
    // Frames the reference programs would take (to the pod, to the remote
    // network) and one they would not (IPv6).
    let frames = [
        V4::new("172.17.2.2", "172.17.1.2").build(),
        V4::new("172.17.1.2", "172.17.2.2").build(),
        V6::new("fd00:172:17:2::2", "fd00:172:17:1::2").build(),
    ];
    for hook in [Hook::FromNic, Hook::FromPod] {
        let prog = obj.noop(hook).expect("no-op program loads");
        for frame in &frames {
            let mut out = vec![0u8; frame.len() + 64];
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(frame);
            opts.data_out = Some(&mut out);
            let r = prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
            out.truncate(r.data_size_out as usize);
            assert_eq!(r.return_value, TC_ACT_UNSPEC, "{hook:?}");
            assert_eq!(&out, frame, "{hook:?}: the frame changed");
        }
    }
}
