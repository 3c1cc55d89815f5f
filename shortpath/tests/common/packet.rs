//! Crafting Ethernet / IPv4 / IPv6 / UDP frames for BPF_PROG_TEST_RUN.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use shortpath_common::csum::checksum;

pub const ETH_HLEN: usize = 14;

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
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let ihl = 20 + self.options;
        let udp_len = 8 + self.payload;
        let mut f = eth(self.dst_mac, self.src_mac, 0x0800);
        let mut ip = vec![0u8; ihl];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&((ihl + udp_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6..8].copy_from_slice(&self.frag_off.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        for b in ip[20..].iter_mut() {
            *b = 1; // NOP options
        }
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp(udp_len, self.payload));
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
    pub next_header: u8,
    pub payload: usize,
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
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let udp_len = 8 + self.payload;
        let mut f = eth(self.dst_mac, self.src_mac, 0x86dd);
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[1] = 0x0a; // some flow label bits
        ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        ip[6] = self.next_header;
        ip[7] = self.hop_limit;
        ip[8..24].copy_from_slice(&self.src.octets());
        ip[24..40].copy_from_slice(&self.dst.octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp(udp_len, self.payload));
        f
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], proto: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&proto.to_be_bytes());
    f
}

fn udp(len: usize, payload: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&4321u16.to_be_bytes());
    u[2..4].copy_from_slice(&1234u16.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    u.extend((0..payload).map(|i| i as u8));
    u
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
