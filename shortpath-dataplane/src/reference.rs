//! The hand-written reference programs (`shortpath_ebpf::reference`):
//! one pod pair's redirects with everything fixed at load time. Only
//! benchmarks load them, to compare the dataplane's per-packet cost with
//! the hand-written one on the same machine and frames. The same object
//! holds a program per hook that does nothing (`noop`), whose
//! bpf_stats cost is what counting itself charges every program.

use std::net::Ipv4Addr;

use aya::{programs::SchedClassifier, Ebpf, EbpfLoader};

use crate::{
    object::{classifier, REFERENCE_OBJECT},
    DataplaneError, Hook,
};

/// What the reference programs' names start with.
pub const REFERENCE_PREFIX: &str = "ref_";

/// What the reference programs are compiled for: one local pod, one
/// remote pod network, the NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceParams {
    /// `from_nic`: packets to this address go into the pod.
    pub pod_addr: Ipv4Addr,
    /// The pod's host-side veth (`bpf_redirect_peer` target).
    pub pod_host_ifindex: u32,
    pub pod_mac: [u8; 6],
    pub host_mac: [u8; 6],
    /// `from_pod`: packets to this network go out of the NIC.
    pub remote: ipnet::Ipv4Net,
    pub nic_ifindex: u32,
    pub nic_mac: [u8; 6],
    /// The next hop's MAC (the remote node's NIC).
    pub gateway_mac: [u8; 6],
}

/// The destination and source MACs as one 12-byte header prefix.
fn l2(dst: [u8; 6], src: [u8; 6]) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..6].copy_from_slice(&dst);
    b[6..].copy_from_slice(&src);
    b
}

/// The loaded object; programs are verified on first use.
pub struct ReferenceObject {
    ebpf: Ebpf,
}

impl ReferenceObject {
    pub fn load(p: &ReferenceParams) -> Result<Self, DataplaneError> {
        let word = |a: Ipv4Addr| u32::from_ne_bytes(a.octets());
        let pod_addr = word(p.pod_addr);
        let net = word(p.remote.network());
        let mask = word(p.remote.netmask());
        let pod_l2 = l2(p.pod_mac, p.host_mac);
        let nic_l2 = l2(p.gateway_mac, p.nic_mac);
        let mut loader = EbpfLoader::new();
        loader
            .override_global("REF_POD_ADDR", &pod_addr, true)
            .override_global("REF_POD_IFINDEX", &p.pod_host_ifindex, true)
            .override_global("REF_POD_L2", &pod_l2, true)
            .override_global("REF_REMOTE_NET", &net, true)
            .override_global("REF_REMOTE_MASK", &mask, true)
            .override_global("REF_NIC_IFINDEX", &p.nic_ifindex, true)
            .override_global("REF_NIC_L2", &nic_l2, true);
        let ebpf = loader
            .load(REFERENCE_OBJECT)
            .map_err(|e| DataplaneError::Object(Box::new(e)))?;
        Ok(Self { ebpf })
    }

    /// The reference program for `hook`, loaded (verified) on first use.
    pub fn program(&mut self, hook: Hook) -> Result<&mut SchedClassifier, DataplaneError> {
        classifier(&mut self.ebpf, Self::name(hook))
    }

    /// The program's name in the object: [`REFERENCE_PREFIX`] and the
    /// name of the dataplane program it stands for.
    pub fn name(hook: Hook) -> &'static str {
        match hook {
            Hook::FromNic => "ref_from_nic",
            Hook::FromPod => "ref_from_pod",
        }
    }

    /// The no-op program for `hook`, loaded on first use.
    pub fn noop(&mut self, hook: Hook) -> Result<&mut SchedClassifier, DataplaneError> {
        classifier(&mut self.ebpf, Self::noop_name(hook))
    }

    /// The no-op program's name: one per hook, so that each hook's runs
    /// are counted apart.
    pub fn noop_name(hook: Hook) -> &'static str {
        match hook {
            Hook::FromNic => "ref_noop_nic",
            Hook::FromPod => "ref_noop_pod",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_prefix_and_the_program() {
        for hook in [Hook::FromNic, Hook::FromPod] {
            assert_eq!(
                ReferenceObject::name(hook),
                format!("{REFERENCE_PREFIX}{}", hook.program())
            );
        }
    }

    #[test]
    fn l2_is_destination_then_source() {
        let b = l2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }
}
