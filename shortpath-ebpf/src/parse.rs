//! Bounds-checked parsing of Ethernet + IPv4/IPv6 headers.
//!
//! Everything the fast path does not handle comes back as `Err(reason)` so
//! the caller hands the packet to the stack untouched.

use core::mem::size_of;

use aya_ebpf::programs::TcContext;
use shortpath_common::{counters::Reason, endpoint::EndpointKey};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
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

pub enum Ip {
    V4(*mut Ipv4Hdr),
    V6(*mut Ipv6Hdr),
}

/// A parsed frame: pointers into packet data, valid until the next helper
/// call that may move data (pull, redirect_neigh, …).
pub struct Packet {
    pub eth: *mut EthHdr,
    pub ip: Ip,
}

impl Packet {
    #[inline(always)]
    pub fn dst_key(&self) -> EndpointKey {
        // SAFETY: bounds were checked by `parse`.
        unsafe {
            match self.ip {
                Ip::V4(ip) => EndpointKey::v4((*ip).daddr),
                Ip::V6(ip) => EndpointKey::v6((*ip).daddr),
            }
        }
    }

    #[inline(always)]
    pub fn src_key(&self) -> EndpointKey {
        // SAFETY: bounds were checked by `parse`.
        unsafe {
            match self.ip {
                Ip::V4(ip) => EndpointKey::v4((*ip).saddr),
                Ip::V6(ip) => EndpointKey::v6((*ip).saddr),
            }
        }
    }

    /// TTL (IPv4) or hop limit (IPv6).
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        // SAFETY: bounds were checked by `parse`.
        unsafe {
            match self.ip {
                Ip::V4(ip) => (*ip).ttl,
                Ip::V6(ip) => (*ip).hop_limit,
            }
        }
    }

    #[inline(always)]
    pub fn eth_dst(&self) -> [u8; 6] {
        // SAFETY: bounds were checked by `parse`.
        unsafe { (*self.eth).dst }
    }
}

#[inline(always)]
fn header<T>(ctx: &TcContext, offset: usize) -> Result<*mut T, Reason> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return Err(Reason::PassMalformed);
    }
    Ok((start + offset) as *mut T)
}

/// Makes the headers directly readable when the driver left them in paged
/// data. Frames shorter than the headers stay as they are and fail the
/// bounds checks below.
#[inline(always)]
fn linearize(ctx: &TcContext) {
    let want = ETH_HLEN + IPV6_HLEN;
    let len = ctx.len() as usize;
    let want = if len < want { len } else { want };
    if ctx.data() + want > ctx.data_end() {
        let _ = ctx.pull_data(want as u32);
    }
}

#[inline(always)]
pub fn parse(ctx: &TcContext) -> Result<Packet, Reason> {
    linearize(ctx);
    let eth: *mut EthHdr = header(ctx, 0)?;
    // SAFETY: `header` checked the bounds of every pointer dereferenced here.
    let proto = u16::from_be_bytes(unsafe { (*eth).proto });
    match proto {
        ETH_P_IP => {
            let ip: *mut Ipv4Hdr = header(ctx, ETH_HLEN)?;
            let (vihl, frag, tot_len) = unsafe {
                (
                    (*ip).version_ihl,
                    u16::from_be_bytes((*ip).frag_off),
                    u16::from_be_bytes((*ip).tot_len),
                )
            };
            if vihl >> 4 != 4 || (vihl & 0x0f) < 5 || (tot_len as usize) < IPV4_HLEN {
                return Err(Reason::PassMalformed);
            }
            if vihl & 0x0f != 5 {
                return Err(Reason::PassIpOptions);
            }
            // MF set or non-zero offset.
            if frag & 0x3fff != 0 {
                return Err(Reason::PassFragment);
            }
            Ok(Packet {
                eth,
                ip: Ip::V4(ip),
            })
        }
        ETH_P_IPV6 => {
            let ip: *mut Ipv6Hdr = header(ctx, ETH_HLEN)?;
            let (version, next) = unsafe { ((*ip).vtc_flow[0] >> 4, (*ip).nexthdr) };
            if version != 6 {
                return Err(Reason::PassMalformed);
            }
            match next {
                IPPROTO_FRAGMENT => Err(Reason::PassFragment),
                // Hop-by-hop must be processed by every router; routing and
                // destination options may change where the packet goes.
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => Err(Reason::PassExtHeader),
                _ => Ok(Packet {
                    eth,
                    ip: Ip::V6(ip),
                }),
            }
        }
        _ => Err(Reason::PassNotIp),
    }
}

/// Multicast or broadcast destination (the stack owns those).
#[inline(always)]
pub fn is_multicast(key: &EndpointKey) -> bool {
    if key.family == shortpath_common::endpoint::AF_INET {
        key.addr[0] & 0xf0 == 0xe0 || key.addr[..4] == [255, 255, 255, 255]
    } else {
        key.addr[0] == 0xff
    }
}

/// Unspecified or link-local address: ND, DAD, DHCP — stack business.
#[inline(always)]
pub fn is_link_local_or_unspecified(key: &EndpointKey) -> bool {
    if key.family == shortpath_common::endpoint::AF_INET {
        key.addr[..4] == [0, 0, 0, 0] || (key.addr[0] == 169 && key.addr[1] == 254)
    } else {
        (key.addr[0] == 0xfe && key.addr[1] & 0xc0 == 0x80) || key.addr == [0u8; 16]
    }
}
