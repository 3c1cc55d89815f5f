//! Bounds-checked access to Ethernet, ARP, IPv4 and IPv6 headers.
//!
//! The accessors only answer "is this header there and well-formed"; what
//! a missing or odd header means (hand to the stack, drop) is the caller's
//! decision, because it differs between the NIC and a pod's device.

use core::mem::{offset_of, size_of};

use aya_ebpf::programs::TcContext;
use shortpath_common::{counters::Reason, stack_flow::L4_HEAD};

use crate::{key::AddrKey, load};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

/// ARP for IPv4 over Ethernet (RFC 826), the only kind a pod sends.
#[repr(C)]
pub struct ArpHdr {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub oper: [u8; 2],
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

#[repr(C)]
pub struct Ipv6Hdr {
    pub vtc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub nexthdr: u8,
    pub hop_limit: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Header fields as they lie in the packet, one load each ([`load`]).
/// Addresses are in network order (`from_ne_bytes` of their bytes),
/// lengths and flags in host order.
impl EthHdr {
    #[inline(always)]
    pub fn proto(&self) -> u16 {
        // SAFETY: a field of a bounds-checked header.
        u16::from_be(unsafe { load::u16_at::<{ offset_of!(Self, proto) }, _>(self) })
    }

    #[inline(always)]
    pub fn src_mac(&self) -> (u32, u16) {
        // SAFETY: as above.
        unsafe { load::mac_at::<{ offset_of!(Self, src) }, _>(self) }
    }

    #[inline(always)]
    pub fn dst_mac(&self) -> (u32, u16) {
        // SAFETY: as above.
        unsafe { load::mac_at::<{ offset_of!(Self, dst) }, _>(self) }
    }
}

impl Ipv4Hdr {
    #[inline(always)]
    pub fn tot_len(&self) -> u16 {
        // SAFETY: a field of a bounds-checked header.
        u16::from_be(unsafe { load::u16_at::<{ offset_of!(Self, tot_len) }, _>(self) })
    }

    #[inline(always)]
    pub fn frag_off(&self) -> u16 {
        // SAFETY: as above.
        u16::from_be(unsafe { load::u16_at::<{ offset_of!(Self, frag_off) }, _>(self) })
    }

    #[inline(always)]
    pub fn saddr(&self) -> u32 {
        // SAFETY: as above.
        unsafe { load::u32_at::<{ offset_of!(Self, saddr) }, _>(self) }
    }

    #[inline(always)]
    pub fn daddr(&self) -> u32 {
        // SAFETY: as above.
        unsafe { load::u32_at::<{ offset_of!(Self, daddr) }, _>(self) }
    }
}

impl Ipv6Hdr {
    #[inline(always)]
    pub fn saddr(&self) -> [u32; 4] {
        const { assert!(offset_of!(Ipv6Hdr, saddr) == 8) };
        // SAFETY: the 16 address bytes of a bounds-checked header.
        unsafe {
            [
                load::u32_at::<8, _>(self),
                load::u32_at::<12, _>(self),
                load::u32_at::<16, _>(self),
                load::u32_at::<20, _>(self),
            ]
        }
    }

    #[inline(always)]
    pub fn daddr(&self) -> [u32; 4] {
        const { assert!(offset_of!(Ipv6Hdr, daddr) == 24) };
        // SAFETY: as above.
        unsafe {
            [
                load::u32_at::<24, _>(self),
                load::u32_at::<28, _>(self),
                load::u32_at::<32, _>(self),
                load::u32_at::<36, _>(self),
            ]
        }
    }
}

pub enum Ip {
    V4(*mut Ipv4Hdr),
    V6(*mut Ipv6Hdr),
}

/// A frame the fast path may forward: pointers into packet data, valid
/// until the next helper call that may move data (pull, redirect_neigh, …).
pub struct Packet {
    pub eth: *mut EthHdr,
    pub ip: Ip,
}

impl Packet {
    #[inline(always)]
    pub fn dst_key(&self) -> AddrKey {
        // SAFETY: bounds were checked when the packet was parsed.
        unsafe {
            match self.ip {
                Ip::V4(ip) => AddrKey::v4((*ip).daddr()),
                Ip::V6(ip) => AddrKey::v6((*ip).daddr()),
            }
        }
    }

    #[inline(always)]
    pub fn src_key(&self) -> AddrKey {
        // SAFETY: bounds were checked when the packet was parsed.
        unsafe {
            match self.ip {
                Ip::V4(ip) => AddrKey::v4((*ip).saddr()),
                Ip::V6(ip) => AddrKey::v6((*ip).saddr()),
            }
        }
    }

    /// The upper-layer protocol and the first [`L4_HEAD`] bytes of its
    /// header, or `None` when the packet has fewer. Only for packets on
    /// the fast path: no IPv4 options, no IPv6 extension headers, no
    /// fragments (both programs hand those to the stack first), so L4
    /// follows the fixed header. The bytes are read directly when they are
    /// in the linear area, else with `bpf_skb_load_bytes` (which moves no
    /// data: packet pointers stay valid).
    #[inline(always)]
    pub fn l4_head(&self, ctx: &TcContext) -> Option<(u8, [u8; L4_HEAD])> {
        // SAFETY: bounds were checked when the packet was parsed.
        let (proto, offset, l4_len) = unsafe {
            match self.ip {
                Ip::V4(ip) => {
                    if (*ip).version_ihl & 0x0f != 5 {
                        return None;
                    }
                    let tot = (*ip).tot_len() as usize;
                    // 0: a BIG TCP packet, as long as the skb.
                    let l4 = if tot == 0 {
                        L4_HEAD
                    } else {
                        tot.saturating_sub(IPV4_HLEN)
                    };
                    ((*ip).protocol, ETH_HLEN + IPV4_HLEN, l4)
                }
                Ip::V6(ip) => {
                    let payload = u16::from_be_bytes((*ip).payload_len) as usize;
                    let l4 = if payload == 0 { L4_HEAD } else { payload };
                    ((*ip).nexthdr, ETH_HLEN + IPV6_HLEN, l4)
                }
            }
        };
        // Ethernet padding after a short packet is no L4 header.
        if l4_len < L4_HEAD {
            return None;
        }
        let head: *const [u8; L4_HEAD] = match header::<[u8; L4_HEAD]>(ctx, offset) {
            Some(h) => h,
            None => return ctx.load(offset).ok().map(|h| (proto, h)),
        };
        // SAFETY: `header` checked the bounds.
        Some((proto, unsafe { *head }))
    }

    /// TTL (IPv4) or hop limit (IPv6).
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        // SAFETY: bounds were checked when the packet was parsed.
        unsafe {
            match self.ip {
                Ip::V4(ip) => (*ip).ttl,
                Ip::V6(ip) => (*ip).hop_limit,
            }
        }
    }

    /// The destination MAC as [`EthHdr::dst_mac`] reads it.
    #[inline(always)]
    pub fn eth_dst(&self) -> (u32, u16) {
        // SAFETY: bounds were checked when the packet was parsed.
        unsafe { (*self.eth).dst_mac() }
    }
}

#[inline(always)]
fn header<T>(ctx: &TcContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Makes the headers directly readable when the driver left them in paged
/// data. Frames shorter than the headers stay as they are and fail the
/// bounds checks.
#[inline(always)]
fn linearize(ctx: &TcContext) {
    let want = ETH_HLEN + IPV6_HLEN;
    let len = ctx.len() as usize;
    let want = if len < want { len } else { want };
    if ctx.data() + want > ctx.data_end() {
        let _ = ctx.pull_data(want as u32);
    }
}

/// Whether an L3 packet of `l3` bytes fits in the frame: `l3` plus the
/// Ethernet header within the skb's length (an addition, where the L3
/// length the frame has room for would be a saturating subtraction).
#[inline(always)]
fn fits_frame(ctx: &TcContext, l3: usize) -> bool {
    l3 + ETH_HLEN <= ctx.len() as usize
}

/// The Ethernet header and its EtherType; `None` when the frame is
/// shorter than 14 bytes. Call first: it pulls the headers into the
/// linear area, which invalidates earlier packet pointers.
#[inline(always)]
pub fn eth(ctx: &TcContext) -> Option<(*mut EthHdr, u16)> {
    linearize(ctx);
    let eth: *mut EthHdr = header(ctx, 0)?;
    // SAFETY: `header` checked the bounds.
    let proto = unsafe { (*eth).proto() };
    Some((eth, proto))
}

/// Whether the frame carries an 802.1Q / 802.1ad tag, in the data or —
/// the receive path untags one level before TC ingress runs — in the skb.
#[inline(always)]
pub fn vlan_tagged(ctx: &TcContext, proto: u16) -> bool {
    // SAFETY: reading a field of the program's own context.
    let accelerated = unsafe { (*ctx.skb.skb).vlan_present } != 0;
    accelerated || proto == ETH_P_8021Q || proto == ETH_P_8021AD
}

/// Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4), complete.
#[inline(always)]
pub fn arp(ctx: &TcContext) -> Option<&ArpHdr> {
    let arp: *const ArpHdr = header(ctx, ETH_HLEN)?;
    // SAFETY: `header` checked the bounds; the programs never write ARP, so
    // the shared view stays valid for as long as the context.
    let arp = unsafe { &*arp };
    let ok = arp.htype == [0, 1] && arp.ptype == [0x08, 0x00] && arp.hlen == 6 && arp.plen == 4;
    ok.then_some(arp)
}

/// A complete fixed IPv4 header with version 4 and IHL ≥ 5 whose total
/// length covers the header and fits in the frame. Packets of more than
/// 64 KiB built by BIG TCP carry `tot_len` 0 and are GSO: their length is
/// the skb's.
#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Option<*mut Ipv4Hdr> {
    let ip: *mut Ipv4Hdr = header(ctx, ETH_HLEN)?;
    // SAFETY: `header` checked the bounds.
    let (vihl, tot_len) = unsafe { ((*ip).version_ihl, (*ip).tot_len() as usize) };
    // Version 4 without options, nearly every packet: one comparison.
    let ihl = if vihl == 0x45 {
        IPV4_HLEN
    } else {
        let ihl = (vihl & 0x0f) as usize * 4;
        if vihl >> 4 != 4 || ihl < IPV4_HLEN {
            return None;
        }
        ihl
    };
    if tot_len == 0 && is_gso(ctx) {
        return Some(ip);
    }
    (tot_len >= ihl && fits_frame(ctx, tot_len)).then_some(ip)
}

/// A complete IPv6 header with version 6 whose payload fits in the frame
/// (payload length 0: jumbogram / BIG TCP, the skb's length counts).
#[inline(always)]
pub fn ipv6(ctx: &TcContext) -> Option<*mut Ipv6Hdr> {
    let ip: *mut Ipv6Hdr = header(ctx, ETH_HLEN)?;
    // SAFETY: `header` checked the bounds.
    let (version, payload) = unsafe {
        (
            (*ip).vtc_flow[0] >> 4,
            u16::from_be_bytes((*ip).payload_len),
        )
    };
    (version == 6 && fits_frame(ctx, IPV6_HLEN + payload as usize)).then_some(ip)
}

#[inline(always)]
fn is_gso(ctx: &TcContext) -> bool {
    // SAFETY: reading a field of the program's own context.
    unsafe { (*ctx.skb.skb).gso_size != 0 }
}

/// What keeps a well-formed IPv4 packet off the fast path: options (the
/// stack processes them) and fragments (MF set or non-zero offset).
#[inline(always)]
pub fn ipv4_fast_path(ip: &Ipv4Hdr) -> Result<(), Reason> {
    // Version 4 was checked by `ipv4`: anything but 0x45 has options.
    if ip.version_ihl != 0x45 {
        return Err(Reason::PassIpOptions);
    }
    if ip.frag_off() & 0x3fff != 0 {
        return Err(Reason::PassFragment);
    }
    Ok(())
}

/// Whether the 20-byte IPv4 header (no options) checksums to zero.
///
/// The one's complement sum is taken over the header's five 32-bit words
/// as they lie in memory (native order, no byte swaps), folded to 16 bits:
/// summing in wider words and folding gives the same sum, the sum in the
/// other byte order is the byte swap of this one, and 0xffff is its own
/// swap (RFC 1071, "byte order independence", "parallel summation").
#[inline(always)]
pub fn ipv4_checksum_ok(ip: &Ipv4Hdr) -> bool {
    // SAFETY: `ip` is a bounds-checked 20-byte header.
    let words = unsafe {
        [
            load::u32_at::<0, _>(ip),
            load::u32_at::<4, _>(ip),
            load::u32_at::<8, _>(ip),
            load::u32_at::<12, _>(ip),
            load::u32_at::<16, _>(ip),
        ]
    };
    ones_complement_fold(words.iter().map(|&w| u64::from(w)).sum()) == 0xffff
}

/// A one's complement sum of at most five 32-bit words folded to 16 bits.
/// Folding to 32 bits leaves at most 2^32 + 3; two 16-bit folds of that
/// leave at most 0x1fffe, then 0xffff: a third would change nothing.
#[inline(always)]
fn ones_complement_fold(sum: u64) -> u64 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}
