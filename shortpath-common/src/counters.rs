//! Per-CPU counters of the TC programs: one per (attach point, reason).

/// Upper bound of (ifindex, reason) pairs counted per node.
pub const MAX_COUNTERS: u32 = 16384;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    /// ifindex of the device the program is attached to.
    pub ifindex: u32,
    /// A [`Reason`] as `u32`.
    pub reason: u32,
}

/// What a program did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Redirect,
    Pass,
    Drop,
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $name:literal, $verdict:ident; )+) => {
        /// Why a packet got its verdict. The numbers are ABI between the
        /// programs and userspace: append, never renumber.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant = $value, )+
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            pub const fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $( $value => Some(Reason::$variant), )+
                    _ => None,
                }
            }

            /// Stable name used in status output and JSON.
            pub const fn name(self) -> &'static str {
                match self { $( Reason::$variant => $name, )+ }
            }

            pub const fn verdict(self) -> Verdict {
                match self { $( Reason::$variant => Verdict::$verdict, )+ }
            }
        }
    };
}

reasons! {
    /// Handed to a device with `bpf_redirect`.
    Redirect = 0, "redirect", Redirect;
    /// Handed into the pod namespace with `bpf_redirect_peer`.
    RedirectPeer = 1, "redirect_peer", Redirect;
    /// Handed to the egress device with `bpf_redirect_neigh` (neighbour unresolved).
    RedirectNeigh = 2, "redirect_neigh", Redirect;
    /// Not IPv4 or IPv6 (ARP, LLDP, VLAN-tagged, …).
    PassNotIp = 10, "pass_not_ip", Pass;
    /// Frame not addressed to this host (promiscuous, other host's MAC).
    PassNotForHost = 11, "pass_not_for_host", Pass;
    /// Truncated or inconsistent headers.
    PassMalformed = 12, "pass_malformed", Pass;
    /// IPv4 header with options.
    PassIpOptions = 13, "pass_ip_options", Pass;
    /// IPv4 fragment or IPv6 fragment header.
    PassFragment = 14, "pass_fragment", Pass;
    /// IPv6 hop-by-hop, routing or destination-options header.
    PassExtHeader = 15, "pass_ipv6_ext_header", Pass;
    /// TTL / hop limit ≤ 1: the stack sends the ICMP time-exceeded.
    PassTtl = 16, "pass_ttl_expired", Pass;
    /// Destination is not a pod on this node.
    PassNoEndpoint = 17, "pass_no_endpoint", Pass;
    /// Endpoint marked stack-only.
    PassStackOnly = 18, "pass_stack_only", Pass;
    /// Larger than the pod's MTU and not GSO: the stack fragments or answers.
    PassMtu = 19, "pass_mtu", Pass;
    /// Multicast or broadcast destination.
    PassMulticast = 20, "pass_multicast", Pass;
    /// Link-local or unspecified source/destination (ND, DAD, DHCP).
    PassLinkLocal = 21, "pass_link_local", Pass;
    /// FIB: local delivery or not forwarded (`BPF_FIB_LKUP_RET_NOT_FWDED`).
    PassFibLocal = 22, "pass_fib_not_forwarded", Pass;
    /// FIB: packet exceeds the egress MTU (`BPF_FIB_LKUP_RET_FRAG_NEEDED`).
    PassFibFragNeeded = 23, "pass_fib_frag_needed", Pass;
    /// FIB: blackhole, unreachable, prohibit, forwarding disabled, unsupported.
    PassFibOther = 24, "pass_fib_other", Pass;
    /// The program was loaded without a mode (loader bug): stack keeps all.
    PassUnconfigured = 25, "pass_unconfigured", Pass;
    /// Source address does not belong to the pod behind this device.
    DropSpoofed = 40, "drop_spoofed", Drop;
    /// A redirect helper refused an already rewritten packet (cannot happen
    /// with the flags used; counted so it would show).
    DropRedirectError = 41, "drop_redirect_error", Drop;
}
