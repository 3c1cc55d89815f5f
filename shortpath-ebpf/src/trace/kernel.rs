//! Reads of kernel memory. Structure fields are plain loads through the
//! BTF-typed pointers `tp_btf` programs receive (the verifier checks each
//! offset against the kernel's BTF; a NULL or bad pointer reads as zero).
//! Packet bytes, which BTF does not describe, go through
//! `bpf_probe_read_kernel`.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use shortpath_common::trace::{parse_tag, TraceEvent, FLAG_IPV4, FLAG_TAGGED};

use super::maps::offset;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// A field of a kernel structure: `*(base + off)`.
#[inline(always)]
pub fn field<T: Copy>(base: u64, off: u64) -> T {
    // SAFETY: `base` is a BTF-typed kernel pointer; the verifier turns the
    // load into a checked, fault-tolerant one.
    unsafe { core::ptr::read_volatile((base + off) as *const T) }
}

/// Bytes the kernel's BTF does not describe (packet data).
#[inline(always)]
pub fn bytes<T>(addr: u64) -> Option<T> {
    if addr == 0 {
        return None;
    }
    // SAFETY: the helper checks the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// `net->ns.inum` of a `possible_net_t` at `possible_net`.
#[inline(always)]
pub fn netns_inum(possible_net: u64) -> u32 {
    let net: u64 = field(possible_net, 0);
    if net == 0 {
        return 0;
    }
    field(net, offset!(net_inum))
}

/// (netns inode, ifindex) of a `net_device`, zeros when `dev` is null.
#[inline(always)]
pub fn device(dev: u64) -> (u32, u32) {
    if dev == 0 {
        return (0, 0);
    }
    let ifindex: u32 = field(dev, offset!(dev_ifindex));
    (netns_inum(dev + offset!(dev_nd_net)), ifindex)
}

#[inline(always)]
pub fn skb_dev(skb: u64) -> u64 {
    field(skb, offset!(skb_dev))
}

#[inline(always)]
pub fn skb_iif(skb: u64) -> u32 {
    field(skb, offset!(skb_iif))
}

/// Where the IPv4 header of an skb starts at a given tracepoint.
#[derive(Clone, Copy)]
pub enum L3 {
    /// At `skb->data`: receive side, after `eth_type_trans` pulled L2.
    Data,
    /// At `skb->head + skb->network_header`: transmit side and later.
    NetworkHeader,
}

#[inline(always)]
fn l3_addr(skb: u64, at: L3) -> Option<u64> {
    match at {
        L3::Data => Some(field::<u64>(skb, offset!(skb_data))),
        L3::NetworkHeader => {
            let head: u64 = field(skb, offset!(skb_head));
            let nh: u16 = field(skb, offset!(skb_network_header));
            (nh != 0xffff).then_some(head + nh as u64)
        }
    }
}

/// Fills addresses, ports, IP id and probe tag of `ev` from the packet.
#[inline(always)]
pub fn packet(skb: u64, at: L3, ev: &mut TraceEvent) {
    let Some(l3) = l3_addr(skb, at) else {
        return;
    };
    let Some(ip) = bytes::<[u8; 20]>(l3) else {
        return;
    };
    if ip[0] >> 4 != 4 {
        return;
    }
    let ihl = ((ip[0] & 0x0f) as u64) * 4;
    ev.flags |= FLAG_IPV4;
    ev.proto = ip[9];
    ev.ip_id = u16::from_be_bytes([ip[4], ip[5]]);
    ev.saddr = [ip[12], ip[13], ip[14], ip[15]];
    ev.daddr = [ip[16], ip[17], ip[18], ip[19]];
    let first_fragment = (ip[6] & 0x1f) == 0 && ip[7] == 0;
    if ihl < 20 || !first_fragment || (ev.proto != IPPROTO_UDP && ev.proto != IPPROTO_TCP) {
        return;
    }
    let Some(l4) = bytes::<[u8; 16]>(l3 + ihl) else {
        return;
    };
    ev.sport = u16::from_be_bytes([l4[0], l4[1]]);
    ev.dport = u16::from_be_bytes([l4[2], l4[3]]);
    if ev.proto != IPPROTO_UDP {
        return;
    }
    // The UDP payload starts after the 8-byte header.
    if let Some(tag) = parse_tag(&l4[8..]) {
        ev.tag = tag;
        ev.flags |= FLAG_TAGGED;
    }
}

/// Whether the tracer reports this packet: probe packets only, or a
/// sample of all IPv4 packets chosen by header so every hop agrees.
#[inline(always)]
pub fn wanted(ev: &TraceEvent) -> bool {
    if offset!(tagged_only) != 0 {
        return ev.flags & FLAG_TAGGED != 0;
    }
    if ev.flags & FLAG_IPV4 == 0 {
        return false;
    }
    let sample = offset!(sample) as u32;
    if sample <= 1 {
        return true;
    }
    let h = u32::from_ne_bytes(ev.saddr)
        ^ u32::from_ne_bytes(ev.daddr)
        ^ (ev.ip_id as u32).wrapping_mul(2_654_435_761);
    h.wrapping_mul(2_246_822_519).is_multiple_of(sample)
}
