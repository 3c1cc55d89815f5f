//! Per-CPU counters of the TC programs: one per (attach point, reason).

/// Upper bound of (ifindex, reason) pairs counted per node in the hash
/// map, where devices go whose array slot another device holds.
pub const MAX_COUNTERS: u32 = 16384;

/// Slots of the per-CPU device counter array: device `ifindex` counts in
/// slot `ifindex % DEVICE_SLOTS` when that slot is free or its own (an
/// array lookup the verifier inlines; a hash lookup costs more per packet).
pub const DEVICE_SLOTS: u32 = 256;

/// Counters per device slot: every [`Reason`] value is below it.
pub const REASON_SLOTS: usize = 64;

/// One device's packets by reason, in one CPU's copy of its slot. The
/// first device to count on a CPU claims the slot in that copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceCounters {
    /// The device that holds the slot; 0: free.
    pub ifindex: u32,
    pub pad: u32,
    /// Packets by reason number.
    pub packets: [u64; REASON_SLOTS],
}

impl Default for DeviceCounters {
    fn default() -> Self {
        Self {
            ifindex: 0,
            pad: 0,
            packets: [0; REASON_SLOTS],
        }
    }
}

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

/// Reason numbers are ranged by verdict: redirects below [`PASS_FROM`],
/// passes from it up to [`DROP_FROM`], drops from there. A program derives
/// its TC action from the reason it counts with two comparisons
/// ([`Verdict::of_number`]).
pub const PASS_FROM: u32 = 10;
/// See [`PASS_FROM`].
pub const DROP_FROM: u32 = 40;

impl Verdict {
    /// The verdict of a reason number, by its range.
    #[inline(always)]
    pub const fn of_number(n: u32) -> Verdict {
        if n < PASS_FROM {
            Verdict::Redirect
        } else if n < DROP_FROM {
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }
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
    /// from_pod: handed to the egress device with `bpf_redirect`, MACs from
    /// the next-hop cache (no FIB lookup; see `next_hop`).
    RedirectCached = 3, "redirect_cached", Redirect;
    /// from_nic: not IPv4 or IPv6 (ARP, LLDP, VLAN-tagged, …). from_pod
    /// classifies every EtherType itself (`pass_arp`, `drop_vlan`,
    /// `drop_unknown_l3`).
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
    /// from_pod: ARP whose sender is the pod itself (or an RFC 5227 probe
    /// from 0.0.0.0); the bridge and the node's stack answer it.
    PassArp = 26, "pass_arp", Pass;
    /// from_nic: source address no router forwards (IPv4 0/8, 127/8,
    /// 169.254/16, 224/4, 255.255.255.255; IPv6 ::, ::1, fe80::/10, ff00::/8,
    /// ::ffff:0:0/96); the stack drops and logs it.
    PassMartian = 27, "pass_martian", Pass;
    /// from_nic: IPv4 header checksum does not verify; the stack drops it
    /// and counts it (`InHdrErrors`).
    PassBadChecksum = 28, "pass_bad_checksum", Pass;
    /// from_pod: the destination is neither a pod of this node nor inside
    /// the cluster's pod CIDRs (a Service IP, the internet): the node's
    /// netfilter must see it (kube-proxy's DNAT, masquerade).
    PassNotPodCidr = 29, "pass_not_pod_cidr", Pass;
    /// The destination is a pod of this node and the packet belongs to a
    /// flow that pod sent to the stack (`pass_not_pod_cidr`, recorded in
    /// the stack-flow map): a Service backend's reply, whose source the
    /// node's conntrack must translate back to the Service IP.
    PassStackFlow = 30, "pass_stack_flow", Pass;
    /// Source address does not belong to the pod behind this device (also
    /// ARP senders and ND targets claiming another address).
    DropSpoofed = 40, "drop_spoofed", Drop;
    /// A redirect helper refused an already rewritten packet (cannot happen
    /// with the flags used; counted so it would show).
    DropRedirectError = 41, "drop_redirect_error", Drop;
    /// from_pod: truncated or inconsistent headers (Ethernet, ARP, IPv4
    /// length fields, more than 4 IPv6 extension headers, truncated ND).
    DropMalformed = 42, "drop_malformed", Drop;
    /// from_pod: 802.1Q / 802.1ad tagged frame (pods send untagged frames).
    DropVlan = 43, "drop_vlan", Drop;
    /// from_pod: EtherType other than IPv4, IPv6 and ARP.
    DropUnknownL3 = 44, "drop_unknown_l3", Drop;
    /// from_pod: the pod's own address sent from another MAC than the pod's.
    DropSpoofedMac = 45, "drop_spoofed_mac", Drop;
    /// from_pod: ICMPv6 Router Advertisement or Redirect (pods are hosts,
    /// not routers).
    DropNdRouter = 46, "drop_nd_router", Drop;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_unique_and_ranged_by_verdict() {
        for (i, a) in Reason::ALL.iter().enumerate() {
            assert_eq!(Reason::from_u32(*a as u32), Some(*a));
            for b in &Reason::ALL[i + 1..] {
                assert_ne!(*a as u32, *b as u32);
                assert_ne!(a.name(), b.name());
            }
            let n = *a as u32;
            let range = match a.verdict() {
                Verdict::Redirect => 0..PASS_FROM,
                Verdict::Pass => PASS_FROM..DROP_FROM,
                Verdict::Drop => DROP_FROM..u32::MAX,
            };
            assert!(range.contains(&n), "{a:?} = {n} out of its range");
            assert_eq!(Verdict::of_number(n), a.verdict(), "{a:?}");
            assert!(
                (n as usize) < REASON_SLOTS,
                "{a:?} = {n} has no device slot"
            );
            assert!(a.name().starts_with(match a.verdict() {
                Verdict::Redirect => "redirect",
                Verdict::Pass => "pass_",
                Verdict::Drop => "drop_",
            }));
        }
    }
}
