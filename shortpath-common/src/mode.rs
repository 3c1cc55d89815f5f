//! Forwarding modes of the TC programs, passed as the `MODE` load-time global.

/// How the fast path hands a packet to a local pod.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPath {
    /// `bpf_redirect` to the host-side veth: skips bridge, netfilter and
    /// routing; the pod still receives through the CPU backlog.
    Redirect = 1,
    /// `bpf_redirect_peer` into the pod's veth: also skips the backlog queue.
    Peer = 2,
}

impl FastPath {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Redirect),
            2 => Some(Self::Peer),
            _ => None,
        }
    }
}
