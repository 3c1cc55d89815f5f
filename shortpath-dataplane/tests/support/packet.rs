//! Crafting Ethernet / ARP / IPv4 / IPv6 / UDP / TCP / ICMP frames for
//! BPF_PROG_TEST_RUN.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use shortpath_common::csum::checksum;

pub const ETH_HLEN: usize = 14;
pub const BROADCAST: [u8; 6] = [0xff; 6];

#[derive(Clone, Debug)]
pub struct V4 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub options: usize,
    pub frag_off: u16,
    pub payload: usize,
    /// IP protocol: 17 (UDP, the default) or 6 (a TCP header); any other
    /// carries a UDP-shaped payload.
    pub protocol: u8,
    /// L4 source and destination ports (TCP, UDP).
    pub sport: u16,
    pub dport: u16,
    /// An ICMP message (checksum filled in, protocol 1) instead of L4.
    pub icmp: Option<Vec<u8>>,
}

impl V4 {
    pub fn new(src: &str, dst: &str) -> Self {
        Self {
            dst_mac: [0; 6],
            src_mac: [0x02, 0, 0, 0, 0, 0xaa],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            options: 0,
            frag_off: 0,
            payload: 32,
            protocol: 17,
            sport: SPORT,
            dport: DPORT,
            icmp: None,
        }
    }

    /// The same packet the other way: addresses, MACs and ports swapped.
    pub fn reply(&self) -> Self {
        let mut r = self.clone();
        (r.src, r.dst) = (self.dst, self.src);
        (r.src_mac, r.dst_mac) = (self.dst_mac, self.src_mac);
        (r.sport, r.dport) = (self.dport, self.sport);
        r
    }

    pub fn build(&self) -> Vec<u8> {
        let ihl = 20 + self.options;
        let (protocol, upper) = match &self.icmp {
            Some(msg) => {
                let mut m = msg.clone();
                m[2..4].copy_from_slice(&[0, 0]);
                let c = checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                (1, m)
            }
            None => (
                self.protocol,
                l4(self.protocol, self.sport, self.dport, self.payload),
            ),
        };
        let mut f = eth(self.dst_mac, self.src_mac, 0x0800);
        let mut ip = vec![0u8; ihl];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&((ihl + upper.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6..8].copy_from_slice(&self.frag_off.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        for b in ip[20..].iter_mut() {
            *b = 1; // NOP options
        }
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&upper);
        f
    }
}

#[derive(Clone, Debug)]
pub struct V6 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// Next header of the fixed header when neither `ext` nor `icmp6` is
    /// set (the payload is a TCP header for 6, UDP-shaped for anything
    /// else).
    pub next_header: u8,
    pub payload: usize,
    /// L4 source and destination ports (TCP, UDP).
    pub sport: u16,
    pub dport: u16,
    /// Extension headers, in order, between the fixed header and L4.
    pub ext: Vec<Ext>,
    /// An ICMPv6 message (checksum filled in) instead of UDP.
    pub icmp6: Option<Vec<u8>>,
}

/// An IPv6 extension header (8 bytes each).
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header: offset in 8-byte units, more-fragments flag.
    Fragment {
        offset: u16,
        more: bool,
    },
}

impl Ext {
    pub fn number(self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::Routing => 43,
            Ext::Fragment { .. } => 44,
            Ext::DestOpts => 60,
        }
    }

    fn bytes(self, next: u8) -> [u8; 8] {
        match self {
            // Hdr Ext Len 0 and a PadN option filling the 6 bytes.
            Ext::HopByHop | Ext::DestOpts => [next, 0, 1, 4, 0, 0, 0, 0],
            // Type 0 (deprecated) with segments left 0: ignored by receivers.
            Ext::Routing => [next, 0, 0, 0, 0, 0, 0, 0],
            Ext::Fragment { offset, more } => {
                let o = (offset << 3) | u16::from(more);
                let [a, b] = o.to_be_bytes();
                [next, 0, a, b, 0x12, 0x34, 0x56, 0x78]
            }
        }
    }
}

impl V6 {
    pub fn new(src: &str, dst: &str) -> Self {
        Self {
            dst_mac: [0; 6],
            src_mac: [0x02, 0, 0, 0, 0, 0xaa],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            hop_limit: 64,
            next_header: 17,
            payload: 32,
            sport: SPORT,
            dport: DPORT,
            ext: Vec::new(),
            icmp6: None,
        }
    }

    /// The same packet the other way: addresses, MACs and ports swapped.
    pub fn reply(&self) -> Self {
        let mut r = self.clone();
        (r.src, r.dst) = (self.dst, self.src);
        (r.src_mac, r.dst_mac) = (self.dst_mac, self.src_mac);
        (r.sport, r.dport) = (self.dport, self.sport);
        r
    }

    /// A Neighbor Discovery message (hop limit 255, as ND requires) from
    /// `src` to `dst`, sent to the matching group MAC for a multicast
    /// destination.
    pub fn nd(src: &str, dst: &str, msg: Vec<u8>) -> Self {
        let mut v = V6::new(src, dst);
        v.hop_limit = 255;
        if v.dst.octets()[0] == 0xff {
            let d = v.dst.octets();
            v.dst_mac = [0x33, 0x33, d[12], d[13], d[14], d[15]];
        }
        v.icmp6 = Some(msg);
        v
    }

    pub fn build(&self) -> Vec<u8> {
        let (upper_proto, upper) = match &self.icmp6 {
            Some(msg) => {
                let mut m = msg.clone();
                m[2] = 0;
                m[3] = 0;
                let c = self.icmp6_checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                (58, m)
            }
            None => (
                self.next_header,
                l4(self.next_header, self.sport, self.dport, self.payload),
            ),
        };
        let mut chain = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(upper_proto, |n| n.number());
            chain.extend_from_slice(&e.bytes(next));
        }
        let first = self.ext.first().map_or(upper_proto, |e| e.number());
        let mut f = eth(self.dst_mac, self.src_mac, 0x86dd);
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[1] = 0x0a; // some flow label bits
        ip[4..6].copy_from_slice(&((chain.len() + upper.len()) as u16).to_be_bytes());
        ip[6] = first;
        ip[7] = self.hop_limit;
        ip[8..24].copy_from_slice(&self.src.octets());
        ip[24..40].copy_from_slice(&self.dst.octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&chain);
        f.extend_from_slice(&upper);
        f
    }

    fn icmp6_checksum(&self, msg: &[u8]) -> u16 {
        let mut pseudo = Vec::with_capacity(40 + msg.len());
        pseudo.extend_from_slice(&self.src.octets());
        pseudo.extend_from_slice(&self.dst.octets());
        pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(msg);
        checksum(&pseudo)
    }
}

/// ICMPv6 Neighbor Solicitation for `target` (RFC 4861 4.3).
pub fn nd_ns(target: &str) -> Vec<u8> {
    nd_with_target(135, 0, target)
}

/// ICMPv6 Neighbor Advertisement for `target`, solicited + override.
pub fn nd_na(target: &str) -> Vec<u8> {
    nd_with_target(136, 0x60, target)
}

/// ICMPv6 Router Solicitation.
pub fn nd_rs() -> Vec<u8> {
    vec![133, 0, 0, 0, 0, 0, 0, 0]
}

/// ICMPv6 Router Advertisement: hop limit 64, lifetime 1800 s.
pub fn nd_ra() -> Vec<u8> {
    let mut m = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08];
    m.extend_from_slice(&[0; 8]); // reachable time, retrans timer
    m
}

/// ICMPv6 Redirect: "use `target` to reach `dst`".
pub fn nd_redirect(target: &str, dst: &str) -> Vec<u8> {
    let mut m = vec![137, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.parse::<Ipv6Addr>().unwrap().octets());
    m.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    m
}

/// ICMPv6 Echo Request.
pub fn icmp6_echo() -> Vec<u8> {
    vec![128, 0, 0, 0, 0x12, 0x34, 0, 1, 0xde, 0xad, 0xbe, 0xef]
}

/// An ICMP (IPv4: request 8, reply 0) or ICMPv6 (request 128, reply 129)
/// echo message of type `kind` with identifier `id`.
pub fn echo(kind: u8, id: u16) -> Vec<u8> {
    let [a, b] = id.to_be_bytes();
    vec![kind, 0, 0, 0, a, b, 0, 1, 0xde, 0xad, 0xbe, 0xef]
}

fn nd_with_target(kind: u8, flags: u8, target: &str) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.parse::<Ipv6Addr>().unwrap().octets());
    m
}

fn eth(dst: [u8; 6], src: [u8; 6], proto: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&proto.to_be_bytes());
    f
}

/// Default L4 ports of crafted packets.
pub const SPORT: u16 = 4321;
pub const DPORT: u16 = 1234;

/// A TCP header (20 bytes, ACK) for protocol 6, else a UDP header, then
/// `payload` bytes. Checksums are left zero: the programs never read them.
fn l4(protocol: u8, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = vec![0u8; if protocol == 6 { 20 } else { 8 }];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    if protocol == 6 {
        u[12] = 5 << 4; // data offset
        u[13] = 0x10; // ACK
        u[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
    } else {
        u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    }
    u.extend((0..payload).map(|i| i as u8));
    u
}

/// `frame` with an 802.1Q (`tpid` 0x8100) or 802.1ad (0x88a8) tag inserted
/// after the MACs.
pub fn vlan(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An Ethernet/IPv4 ARP packet with chosen sender and target.
#[derive(Clone, Debug)]
pub struct Arp {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// Hardware type, protocol type, hardware and protocol address lengths.
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    /// 1 request, 2 reply.
    pub oper: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// A broadcast request from `mac`/`sender` for `target`.
    pub fn request(mac: [u8; 6], sender: &str, target: &str) -> Self {
        Self {
            eth_dst: BROADCAST,
            eth_src: mac,
            htype: 1,
            ptype: 0x0800,
            hlen: 6,
            plen: 4,
            oper: 1,
            sender_mac: mac,
            sender_ip: sender.parse().unwrap(),
            target_mac: [0; 6],
            target_ip: target.parse().unwrap(),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = eth(self.eth_dst, self.eth_src, 0x0806);
        f.extend_from_slice(&self.htype.to_be_bytes());
        f.extend_from_slice(&self.ptype.to_be_bytes());
        f.extend_from_slice(&[self.hlen, self.plen]);
        f.extend_from_slice(&self.oper.to_be_bytes());
        f.extend_from_slice(&self.sender_mac);
        f.extend_from_slice(&self.sender_ip.octets());
        f.extend_from_slice(&self.target_mac);
        f.extend_from_slice(&self.target_ip.octets());
        f
    }
}

/// Rewrites the IPv4 header checksum of `frame` after a test edited it.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[ETH_HLEN] & 0x0f) * 4;
    frame[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&[0, 0]);
    let c = checksum(&frame[ETH_HLEN..ETH_HLEN + ihl]);
    frame[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
}

pub fn arp() -> Vec<u8> {
    let mut f = eth([0xff; 6], [0x02, 0, 0, 0, 0, 0xaa], 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xaa, 10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f
}

pub fn ipv4_header_valid(frame: &[u8]) -> bool {
    let ihl = usize::from(frame[ETH_HLEN] & 0x0f) * 4;
    checksum(&frame[ETH_HLEN..ETH_HLEN + ihl]) == 0
}
