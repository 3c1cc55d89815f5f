//! The few frames the benchmark sends: Ethernet + IPv4 or IPv6 + UDP,
//! with every checksum right (the programs check the IPv4 header's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use shortpath_common::csum::checksum;

pub const ETH_HLEN: usize = 14;
/// Offset of the IPv4 TTL / IPv6 hop limit in a frame.
pub const TTL_V4: usize = ETH_HLEN + 8;
pub const TTL_V6: usize = ETH_HLEN + 7;
/// UDP ports of every frame (a client port towards iperf3's).
pub const SPORT: u16 = 40000;
pub const DPORT: u16 = 5201;
/// UDP payload bytes.
const PAYLOAD: usize = 32;
const IPPROTO_UDP: u8 = 17;

/// One UDP datagram in an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct Udp {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub hops: u8,
}

impl Udp {
    /// The frame; `None` when the addresses are of different families.
    pub fn build(&self) -> Option<Vec<u8>> {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(self.v4(s, d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(self.v6(s, d)),
            _ => None,
        }
    }

    /// Where the TTL / hop limit is in the frame.
    pub fn ttl_at(&self) -> usize {
        if self.src.is_ipv4() {
            TTL_V4
        } else {
            TTL_V6
        }
    }

    fn eth(&self, ethertype: u16) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let udp_len = 8 + PAYLOAD;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x5350u16.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = self.hops;
        ip[9] = IPPROTO_UDP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut pseudo = Vec::with_capacity(12 + udp_len);
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
        pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
        let mut f = self.eth(0x0800);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp(&pseudo));
        f
    }

    fn v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let udp_len = 8 + PAYLOAD;
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        ip[6] = IPPROTO_UDP;
        ip[7] = self.hops;
        ip[8..24].copy_from_slice(&src.octets());
        ip[24..40].copy_from_slice(&dst.octets());
        let mut pseudo = Vec::with_capacity(40 + udp_len);
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
        let mut f = self.eth(0x86dd);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp(&pseudo));
        f
    }
}

/// The UDP header and payload, checksummed over `pseudo` (the pseudo
/// header, without the datagram).
fn udp(pseudo: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&SPORT.to_be_bytes());
    u[2..4].copy_from_slice(&DPORT.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    u.extend((0..PAYLOAD).map(|i| i as u8));
    let mut all = pseudo.to_vec();
    all.extend_from_slice(&u);
    let c = match checksum(&all) {
        0 => 0xffff, // 0 means "no checksum" in UDP
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: &str, dst: &str) -> Vec<u8> {
        Udp {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            hops: 255,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn ipv4_frame_has_valid_checksums() {
        let f = frame("172.17.1.2", "172.17.2.2");
        assert_eq!(f.len(), ETH_HLEN + 20 + 8 + PAYLOAD);
        assert_eq!(f[12..14], [0x08, 0x00]);
        assert_eq!(f[TTL_V4], 255);
        assert_eq!(checksum(&f[ETH_HLEN..ETH_HLEN + 20]), 0, "IP header");
        let mut pseudo = f[ETH_HLEN + 12..ETH_HLEN + 20].to_vec();
        pseudo.extend_from_slice(&[0, 17, 0, 40]);
        pseudo.extend_from_slice(&f[ETH_HLEN + 20..]);
        assert_eq!(checksum(&pseudo), 0, "UDP");
    }

    #[test]
    fn ipv6_frame_has_valid_checksum() {
        let f = frame("fd00:172:17:1::2", "fd00:172:17:2::2");
        assert_eq!(f.len(), ETH_HLEN + 40 + 8 + PAYLOAD);
        assert_eq!(f[12..14], [0x86, 0xdd]);
        assert_eq!((f[ETH_HLEN + 6], f[TTL_V6]), (17, 255));
        let mut pseudo = f[ETH_HLEN + 8..ETH_HLEN + 40].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 40, 0, 0, 0, 17]);
        pseudo.extend_from_slice(&f[ETH_HLEN + 40..]);
        assert_eq!(checksum(&pseudo), 0, "UDP");
    }

    #[test]
    fn mixed_families_are_refused() {
        let u = Udp {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            src: "10.0.0.1".parse().unwrap(),
            dst: "fd00::1".parse().unwrap(),
            hops: 64,
        };
        assert!(u.build().is_none());
    }
}
