//! Incremental Internet checksum updates (RFC 1624), shared so that the
//! arithmetic the eBPF programs run is unit-tested on the host.

/// New IPv4 header checksum after the TTL is decremented by one, as the
/// kernel's `ip_decrease_ttl` computes it. The TTL is the high byte of its
/// big-endian word, so the word falls by 0x0100 and the checksum (the
/// word's one's complement share) rises by 0x0100, with the end-around
/// carry. `check` is the field's two bytes read natively
/// (`u16::from_ne_bytes`), and so is the result: a one's complement sum is
/// the same in either byte order (RFC 1071), so the programs swap nothing,
/// and 0x0100 in network order is `from_ne_bytes([1, 0])`. Where RFC 1624
/// eqn. 3 gives 0xffff this gives 0x0000, the same one's complement value.
#[inline(always)]
pub const fn ipv4_ttl_decrement(check: u16) -> u16 {
    let c = check as u32 + u16::from_ne_bytes([1, 0]) as u32;
    (c + (c >> 16)) as u16
}

/// What `bpf_csum_update` must add to `skb->csum` after the IPv6 hop limit
/// is decremented by one with a direct packet write.
///
/// On CHECKSUM_COMPLETE packets `skb->csum` is the one's complement sum of
/// the packet from the network header on, accumulated by `csum_partial`
/// from 16-bit words loaded in the CPU's byte order. The hop limit shares
/// the word at IPv6 offset 6 with the next-header byte; the offset is even,
/// so the word sits aligned in that sum and no byte rotation is needed. The
/// result is new − old of that word in one's complement (`new + !old`), in
/// the same byte order, ready for the kernel's `csum_add`. IPv4 needs no
/// such update: the header checksum compensates the TTL change, so the sum
/// over the header does not move (see [`ipv4_ttl_decrement`]).
#[inline(always)]
pub const fn ipv6_hop_limit_decrement_diff(next_header: u8, hop_limit: u8) -> u32 {
    let old = u16::from_ne_bytes([next_header, hop_limit]);
    let new = u16::from_ne_bytes([next_header, hop_limit.wrapping_sub(1)]);
    new as u32 + (!old) as u32
}

/// Full one's complement checksum of `data` (for tests and userspace
/// packet crafting); `data.len()` must be even.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
        i += 2;
    }
    if i < data.len() {
        sum += (data[i] as u32) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ttl: u8, proto: u8, seed: u32) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        let mut x = seed;
        for b in h[1..].iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        h[8] = ttl;
        h[9] = proto;
        h[10] = 0;
        h[11] = 0;
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn valid_header_sums_to_zero() {
        let h = header(64, 6, 1);
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn ttl_decrement_matches_full_recompute() {
        for seed in 0..2000u32 {
            for ttl in [2u8, 3, 64, 128, 255] {
                let proto = (seed % 256) as u8;
                let mut h = header(ttl, proto, seed);
                let check = u16::from_ne_bytes([h[10], h[11]]);
                let inc = u16::from_be_bytes(ipv4_ttl_decrement(check).to_ne_bytes());
                h[8] = ttl - 1;
                h[10] = 0;
                h[11] = 0;
                let full = checksum(&h);
                // 0x0000 and 0xffff are the same one's complement value; a
                // receiver accepts either, so compare validity and value.
                h[10..12].copy_from_slice(&inc.to_be_bytes());
                assert_eq!(checksum(&h), 0, "seed {seed} ttl {ttl}");
                assert!(
                    inc == full || (inc ^ full) == 0xffff,
                    "seed {seed} ttl {ttl}"
                );
            }
        }
    }

    /// A checksum of zero may be written 0xffff (both are one's complement
    /// zero). Its increment wraps: only the end-around carry keeps the
    /// header valid.
    #[test]
    fn ttl_decrement_of_a_checksum_written_as_ffff() {
        for (seed, ttl) in [(7u32, 2u8), (8, 64), (9, 255)] {
            let mut h = header(ttl, 6, seed);
            // The identification word that makes the header's sum 0xffff,
            // so that its checksum is zero.
            h[4..6].fill(0);
            h[10..12].fill(0);
            let id = checksum(&h);
            h[4..6].copy_from_slice(&id.to_be_bytes());
            assert_eq!(checksum(&h), 0);
            h[10..12].fill(0xff);
            assert_eq!(checksum(&h), 0, "0xffff is valid too");
            let inc = ipv4_ttl_decrement(u16::from_ne_bytes([0xff, 0xff]));
            h[8] = ttl - 1;
            h[10..12].copy_from_slice(&inc.to_ne_bytes());
            assert_eq!(checksum(&h), 0, "seed {seed} ttl {ttl}");
        }
    }

    /// The IPv4 TTL rewrite keeps the one's complement sum over the header
    /// (and thus `skb->csum` of CHECKSUM_COMPLETE packets) unchanged.
    #[test]
    fn ttl_decrement_leaves_the_header_sum_unchanged() {
        for seed in 0..500u32 {
            let ttl = (seed % 254 + 2) as u8;
            let mut h = header(ttl, 17, seed);
            let before = native_sum(&h) % 0xffff;
            let check = u16::from_ne_bytes([h[10], h[11]]);
            h[10..12].copy_from_slice(&ipv4_ttl_decrement(check).to_ne_bytes());
            h[8] = ttl - 1;
            assert_eq!(native_sum(&h) % 0xffff, before, "seed {seed}");
        }
    }

    /// `csum_partial`: 16-bit words in the CPU's byte order, unfolded.
    fn native_sum(data: &[u8]) -> u64 {
        let mut sum = 0u64;
        for w in data.chunks(2) {
            sum += u64::from(u16::from_ne_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        sum
    }

    /// The kernel's `csum_add` on `__wsum`: 32-bit add with end-around carry.
    fn csum_add(a: u32, b: u32) -> u32 {
        let (s, carry) = a.overflowing_add(b);
        s + u32::from(carry)
    }

    fn fold(sum: u64) -> u32 {
        let mut s = sum;
        while s > 0xffff_ffff {
            s = (s & 0xffff_ffff) + (s >> 32);
        }
        s as u32
    }

    /// Random IPv6 packets: the sum over the whole L3 packet with the old
    /// hop limit plus the diff equals the sum with the new hop limit, and
    /// without the diff (what the programs did before) it does not. The
    /// lab's veths never produce CHECKSUM_COMPLETE, so this cannot be
    /// watched live on them; tests/ebpf.rs has the kernel check the
    /// programs' `skb->csum` with BPF_F_TEST_SKB_CHECKSUM_COMPLETE.
    #[test]
    fn hop_limit_diff_keeps_the_packet_sum_of_checksum_complete() {
        let mut x = 7u32;
        let mut rnd = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        };
        for n in 0..3000usize {
            // IPv6 header + payload of any length (odd ones too).
            let mut buf = [0u8; 340];
            buf.iter_mut().for_each(|b| *b = rnd());
            let pkt = &mut buf[..40 + n % 300];
            pkt[0] = 0x60 | (pkt[0] & 0x0f);
            let hop_limit = rnd().max(2);
            pkt[7] = hop_limit;
            let skb_csum = fold(native_sum(pkt));
            let diff = ipv6_hop_limit_decrement_diff(pkt[6], hop_limit);
            pkt[7] = hop_limit - 1;
            let recomputed = native_sum(pkt) % 0xffff;
            let updated = u64::from(csum_add(skb_csum, diff)) % 0xffff;
            assert_eq!(updated, recomputed, "packet {n}");
            // Today's behaviour (no update) leaves skb->csum wrong.
            assert_ne!(u64::from(skb_csum) % 0xffff, recomputed, "packet {n}");
        }
    }

    #[test]
    fn odd_length_checksum_pads_with_zero() {
        assert_eq!(checksum(&[0x01]), !0x0100);
    }
}
