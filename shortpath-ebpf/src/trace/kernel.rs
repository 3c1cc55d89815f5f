//! Reads of kernel memory. Every read goes through `bpf_probe_read_kernel`
//! at an offset from [`Offsets`]; a failed read gives `None`, never a fault.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use shortpath_common::trace::{Offsets, TraceEvent, FLAG_IPV4, FLAG_TAGGED, TAG_MAGIC};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[inline(always)]
pub fn read<T>(addr: u64) -> Option<T> {
    if addr == 0 {
        return None;
    }
    // SAFETY: the helper checks the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// `net->ns.inum` of a `possible_net_t` at `at`.
#[inline(always)]
pub fn netns_inum(o: &Offsets, possible_net: u64) -> u32 {
    read::<u64>(possible_net)
        .and_then(|net| read::<u32>(net + o.net_inum as u64))
        .unwrap_or(0)
}

/// (netns inode, ifindex) of a `net_device`, zeros when `dev` is null.
#[inline(always)]
pub fn device(o: &Offsets, dev: u64) -> (u32, u32) {
    if dev == 0 {
        return (0, 0);
    }
    let ifindex = read::<u32>(dev + o.dev_ifindex as u64).unwrap_or(0);
    (netns_inum(o, dev + o.dev_nd_net as u64), ifindex)
}

#[inline(always)]
pub fn skb_dev(o: &Offsets, skb: u64) -> u64 {
    read::<u64>(skb + o.skb_dev as u64).unwrap_or(0)
}

#[inline(always)]
pub fn skb_iif(o: &Offsets, skb: u64) -> u32 {
    read::<u32>(skb + o.skb_iif as u64).unwrap_or(0)
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
fn l3_addr(o: &Offsets, skb: u64, at: L3) -> Option<u64> {
    match at {
        L3::Data => read::<u64>(skb + o.skb_data as u64),
        L3::NetworkHeader => {
            let head = read::<u64>(skb + o.skb_head as u64)?;
            let nh = read::<u16>(skb + o.skb_network_header as u64)?;
            (nh != 0xffff).then_some(head + nh as u64)
        }
    }
}

/// Fills addresses, ports, IP id and probe tag of `ev` from the packet.
#[inline(always)]
pub fn packet(o: &Offsets, skb: u64, at: L3, ev: &mut TraceEvent) {
    let Some(l3) = l3_addr(o, skb, at) else {
        return;
    };
    let Some(ip) = read::<[u8; 20]>(l3) else {
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
    let Some(l4) = read::<[u8; 16]>(l3 + ihl) else {
        return;
    };
    ev.sport = u16::from_be_bytes([l4[0], l4[1]]);
    ev.dport = u16::from_be_bytes([l4[2], l4[3]]);
    if ev.proto == IPPROTO_UDP && l4[8..12] == TAG_MAGIC {
        ev.tag = u32::from_be_bytes([l4[12], l4[13], l4[14], l4[15]]);
        ev.flags |= FLAG_TAGGED;
    }
}

/// Whether the tracer reports this packet: probe packets only, or a
/// sample of all IPv4 packets chosen by header so every hop agrees.
#[inline(always)]
pub fn wanted(o: &Offsets, ev: &TraceEvent) -> bool {
    if o.tagged_only != 0 {
        return ev.flags & FLAG_TAGGED != 0;
    }
    if ev.flags & FLAG_IPV4 == 0 {
        return false;
    }
    if o.sample <= 1 {
        return true;
    }
    let h = u32::from_ne_bytes(ev.saddr)
        ^ u32::from_ne_bytes(ev.daddr)
        ^ (ev.ip_id as u32).wrapping_mul(2_654_435_761);
    h.wrapping_mul(2_246_822_519) % o.sample == 0
}
