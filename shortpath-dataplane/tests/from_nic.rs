//! BPF_PROG_TEST_RUN tests of `from_nic`: crafted frames in, verdict,
//! rewritten bytes and counters out, against maps filled here (no device
//! needed). Loading also proves the verifier accepts the program in both
//! modes.

mod support;

use shortpath_common::{
    endpoint::{Endpoint, EndpointKey, FLAG_SENT_TO_STACK, FLAG_STACK_ONLY},
    mode::FastPath,
};
use shortpath_dataplane::{Hook, TcObject};
use std::collections::BTreeMap;
use support::{
    packet::{self, ETH_HLEN, V4, V6},
    prog::*,
    root_or_skip,
};

// ---------------------------------------------------------------- from_nic

/// BPF_PROG_TEST_RUN receives on the loopback device (ifindex 1) whose MAC
/// is all-zero: frames to 00:00:00:00:00:00 are PACKET_HOST.
const LO: u32 = 1;
const POD_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const POD_IFINDEX: u32 = 42;
const POD4: &str = "172.17.1.2";
const POD6: &str = "fd00:172:17:1::2";
const REMOTE4: &str = "172.17.2.2";
const REMOTE6: &str = "fd00:172:17:2::2";

fn nic_object(mode: FastPath) -> TcObject {
    support::require_root();
    let mut obj = TcObject::load(mode, None).expect("load object");
    let ep = Endpoint {
        ifindex: POD_IFINDEX,
        mtu: 1500,
        flags: 0,
        pod_mac: POD_MAC,
        host_mac: HOST_MAC,
    };
    let mut map = obj.endpoints().unwrap();
    map.insert(EndpointKey::v4([172, 17, 1, 2]), ep, 0).unwrap();
    let v6: std::net::Ipv6Addr = POD6.parse().unwrap();
    map.insert(EndpointKey::v6(v6.octets()), ep, 0).unwrap();
    let stack_only = Endpoint {
        flags: FLAG_STACK_ONLY,
        ..ep
    };
    map.insert(EndpointKey::v4([172, 17, 1, 9]), stack_only, 0)
        .unwrap();
    let small = Endpoint { mtu: 100, ..ep };
    map.insert(EndpointKey::v4([172, 17, 1, 10]), small, 0)
        .unwrap();
    obj
}

fn nic(obj: &mut TcObject, frame: &[u8]) -> Run {
    run(obj, Hook::FromNic, frame, SkbCtx::default())
}

#[test]
fn from_nic_redirects_a_local_pod_over_ipv4_and_ipv6() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Redirect);
    let f4 = V4::new(REMOTE4, POD4).build();
    let r = nic(&mut obj, &f4);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_routed_rewrite(&r, &f4, POD_MAC, HOST_MAC, ETH_HLEN + 8);

    let f6 = V6::new(REMOTE6, POD6).build();
    let r = nic(&mut obj, &f6);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_routed_rewrite(&r, &f6, POD_MAC, HOST_MAC, ETH_HLEN + 7);

    assert_eq!(counts(&obj, LO), BTreeMap::from([("redirect", 2)]));
}

#[test]
fn from_nic_peer_mode_redirects_into_the_pod() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Peer);
    for frame in [
        V4::new(REMOTE4, POD4).build(),
        V6::new(REMOTE6, POD6).build(),
    ] {
        let r = nic(&mut obj, &frame);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(r.out[0..6], POD_MAC);
    }
    let c = counts(&obj, LO);
    assert_eq!(c, BTreeMap::from([("redirect_peer", 2)]));
}

#[test]
fn from_nic_ttl_rewrite_keeps_the_checksum_valid_for_every_ttl() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Redirect);
    for ttl in [2u8, 3, 64, 128, 255] {
        let mut p = V4::new(REMOTE4, POD4);
        p.ttl = ttl;
        let f = p.build();
        let r = nic(&mut obj, &f);
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "ttl {ttl}");
        assert_routed_rewrite(&r, &f, POD_MAC, HOST_MAC, ETH_HLEN + 8);
    }
}

/// CHECKSUM_COMPLETE packets keep a valid `skb->csum` through the routed
/// hop: the IPv4 TTL rewrite compensates inside the header checksum, the
/// IPv6 hop-limit rewrite reports its difference with `bpf_csum_update`.
/// The lab's veths never produce CHECKSUM_COMPLETE, so this cannot be seen
/// live there; the kernel's test runner checks it instead (see
/// [`run_checksum_complete`]), and the arithmetic is unit-tested in
/// shortpath-common (`csum.rs`).
#[test]
fn from_nic_hop_rewrite_keeps_skb_csum_of_checksum_complete_packets() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Peer);
    // A frame that goes to the stack untouched tells whether the kernel
    // knows the flag at all.
    let probe = V4::new(REMOTE4, "172.17.1.77").build();
    if run_checksum_complete(&mut obj, Hook::FromNic, &probe, SkbCtx::default()).is_err() {
        eprintln!("kernel without BPF_F_TEST_SKB_CHECKSUM_COMPLETE (Linux < 6.17): skipped");
        return;
    }
    let mut wrong = Vec::new();
    for hop in [2u8, 64, 128, 255] {
        let mut v4 = V4::new(REMOTE4, POD4);
        v4.ttl = hop;
        let mut v6 = V6::new(REMOTE6, POD6);
        v6.hop_limit = hop;
        let mut icmp6 = v6.clone();
        icmp6.icmp6 = Some(packet::icmp6_echo());
        for (what, frame, ttl_at) in [
            ("v4", v4.build(), ETH_HLEN + 8),
            ("v6 udp", v6.build(), ETH_HLEN + 7),
            ("v6 icmp", icmp6.build(), ETH_HLEN + 7),
        ] {
            match run_checksum_complete(&mut obj, Hook::FromNic, &frame, SkbCtx::default()) {
                Ok(r) => {
                    assert_eq!(r.verdict, TC_ACT_REDIRECT, "{what} {hop}");
                    assert_routed_rewrite(&r, &frame, POD_MAC, HOST_MAC, ttl_at);
                }
                Err(e) => wrong.push(format!(
                    "{what} hop limit {hop}: skb->csum stale after the rewrite ({})",
                    std::io::Error::from_raw_os_error(e)
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        counts(&obj, LO),
        BTreeMap::from([("pass_no_endpoint", 1), ("redirect_peer", 12)])
    );
}

#[test]
fn from_nic_hands_everything_else_to_the_stack_unchanged() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Peer);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown v4",
            V4::new(REMOTE4, "172.17.1.77").build(),
            "pass_no_endpoint",
        ),
        (
            "unknown v6",
            V6::new(REMOTE6, "fd00:172:17:1::77").build(),
            "pass_no_endpoint",
        ),
        // Broadcast: not addressed to this host.
        ("arp request", packet::arp(), "pass_not_for_host"),
        (
            "stack only",
            V4::new(REMOTE4, "172.17.1.9").build(),
            "pass_stack_only",
        ),
    ];
    let mut lldp = V4::new(REMOTE4, POD4).build();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    cases.push(("lldp", lldp, "pass_not_ip"));
    let mut vlan = V4::new(REMOTE4, POD4).build();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    cases.push(("vlan", vlan, "pass_not_ip"));

    let mut opts = V4::new(REMOTE4, POD4);
    opts.options = 8;
    cases.push(("ip options", opts.build(), "pass_ip_options"));
    for (what, frag_off) in [("first fragment", 0x2000u16), ("later fragment", 0x00b9)] {
        let mut p = V4::new(REMOTE4, POD4);
        p.frag_off = frag_off;
        cases.push((what, p.build(), "pass_fragment"));
    }
    let mut df = V4::new(REMOTE4, POD4);
    df.frag_off = 0x4000; // DF alone is not a fragment: forwarded
    let df = df.build();
    for ttl in [0u8, 1] {
        let mut p = V4::new(REMOTE4, POD4);
        p.ttl = ttl;
        cases.push(("ttl", p.build(), "pass_ttl_expired"));
        let mut p = V6::new(REMOTE6, POD6);
        p.hop_limit = ttl;
        cases.push(("hop limit", p.build(), "pass_ttl_expired"));
    }
    for (what, nh, reason) in [
        ("v6 fragment", 44u8, "pass_fragment"),
        ("v6 hop-by-hop", 0, "pass_ipv6_ext_header"),
        ("v6 routing", 43, "pass_ipv6_ext_header"),
        ("v6 dest opts", 60, "pass_ipv6_ext_header"),
    ] {
        let mut p = V6::new(REMOTE6, POD6);
        p.next_header = nh;
        cases.push((what, p.build(), reason));
    }
    let mut other = V4::new(REMOTE4, POD4);
    other.dst_mac = [0x02, 0x99, 0, 0, 0, 1];
    cases.push(("other host's MAC", other.build(), "pass_not_for_host"));
    let mut bad_version = V4::new(REMOTE4, POD4).build();
    bad_version[ETH_HLEN] = 0x55;
    cases.push(("IP version 5", bad_version, "pass_malformed"));
    let mut short_ihl = V4::new(REMOTE4, POD4).build();
    short_ihl[ETH_HLEN] = 0x44;
    cases.push(("ihl 4", short_ihl, "pass_malformed"));
    let mut big = V4::new(REMOTE4, "172.17.1.10");
    big.payload = 200; // endpoint MTU is 100
    cases.push(("over pod MTU", big.build(), "pass_mtu"));

    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (what, frame, reason) in &cases {
        let r = nic(&mut obj, frame);
        assert_eq!(r.verdict, TC_ACT_OK, "{what}");
        assert_eq!(&r.out, frame, "{what}: frame modified");
        *expected.entry(reason).or_default() += 1;
    }
    let r = nic(&mut obj, &df);
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "DF set");
    *expected.entry("redirect_peer").or_default() += 1;
    assert_eq!(counts(&obj, LO), expected);
}

#[test]
fn from_nic_truncated_frames_at_every_header_boundary_go_to_the_stack() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Redirect);
    let f4 = V4::new(REMOTE4, POD4).build();
    let f6 = V6::new(REMOTE6, POD6).build();
    // This kernel's test runner itself refuses (EINVAL) a frame shorter
    // than the L3 header its EtherType announces; such frames are injected
    // on a live NIC instead (tests/dataplane.rs). Every cut it accepts must
    // go to the stack untouched.
    let mut malformed = 0;
    for (frame, ip_len) in [(&f4, 20), (&f6, 40)] {
        for cut in ETH_HLEN + 1..ETH_HLEN + ip_len {
            if let Some(r) = try_run(&mut obj, Hook::FromNic, &frame[..cut], SkbCtx::default()) {
                assert_passed_unchanged(&r, &frame[..cut]);
                malformed += 1;
            }
        }
    }
    // Headers claiming less than they are.
    let mut short = f4.clone();
    short[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&19u16.to_be_bytes());
    let r = nic(&mut obj, &short);
    assert_passed_unchanged(&r, &short);
    malformed += 1;
    let c = counts(&obj, LO);
    assert_eq!(c, BTreeMap::from([("pass_malformed", malformed)]));
    // The smallest complete packets (a bare header whose length field says
    // so) are forwarded: L4 is not our business.
    let mut min4 = f4[..ETH_HLEN + 20].to_vec();
    min4[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&20u16.to_be_bytes());
    packet::fix_ipv4_checksum(&mut min4);
    let mut min6 = f6[..ETH_HLEN + 40].to_vec();
    min6[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&0u16.to_be_bytes());
    for frame in [min4, min6] {
        let r = nic(&mut obj, &frame);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
    }
}

/// What a router must not forward as it is goes to the stack unchanged,
/// which drops and counts it: an IPv4 total length or IPv6 payload length
/// beyond the frame, a bad IPv4 header checksum, a martian source.
#[test]
fn from_nic_hands_bad_lengths_checksums_and_martians_to_the_stack() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Redirect);
    let mut cases = Vec::new();

    let f4 = V4::new(REMOTE4, POD4).build();
    let mut long4 = f4.clone();
    let tot_len = u16::from_be_bytes([long4[ETH_HLEN + 2], long4[ETH_HLEN + 3]]);
    long4[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&(tot_len + 1).to_be_bytes());
    packet::fix_ipv4_checksum(&mut long4);
    cases.push(case(
        "v4 tot_len > frame",
        long4,
        TC_ACT_OK,
        "pass_malformed",
    ));
    cases.push(case(
        "v4 frame cut in the payload",
        f4[..f4.len() - 1].to_vec(),
        TC_ACT_OK,
        "pass_malformed",
    ));
    let f6 = V6::new(REMOTE6, POD6).build();
    let mut long6 = f6.clone();
    let payload = u16::from_be_bytes([long6[ETH_HLEN + 4], long6[ETH_HLEN + 5]]);
    long6[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(payload + 1).to_be_bytes());
    cases.push(case(
        "v6 payload_len > frame",
        long6,
        TC_ACT_OK,
        "pass_malformed",
    ));
    cases.push(case(
        "v6 frame cut in the payload",
        f6[..f6.len() - 1].to_vec(),
        TC_ACT_OK,
        "pass_malformed",
    ));

    let mut bad = f4.clone();
    bad[ETH_HLEN + 11] ^= 0x01;
    cases.push(case(
        "bad header checksum",
        bad,
        TC_ACT_OK,
        "pass_bad_checksum",
    ));

    for src in [
        "0.1.2.3",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
    ] {
        let f = V4::new(src, POD4).build();
        cases.push(case(format!("martian {src}"), f, TC_ACT_OK, "pass_martian"));
    }
    for src in [
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "ff02::1",
        "::ffff:10.0.0.1",
    ] {
        let f = V6::new(src, POD6).build();
        cases.push(case(format!("martian {src}"), f, TC_ACT_OK, "pass_martian"));
    }

    // Near misses that are forwarded: Ethernet padding after the packet,
    // sources next to the martian ranges.
    let mut padded = f4.clone();
    padded.extend_from_slice(&[0; 10]);
    cases.push(case("padded frame", padded, TC_ACT_REDIRECT, "redirect"));
    for src in [
        "1.0.0.1",
        "126.255.255.255",
        "169.253.1.1",
        "223.255.255.255",
    ] {
        let f = V4::new(src, POD4).build();
        cases.push(case(
            format!("source {src}"),
            f,
            TC_ACT_REDIRECT,
            "redirect",
        ));
    }
    for src in ["::2", "fec0::1", "fe00::1", "::fffe:10.0.0.1"] {
        let f = V6::new(src, POD6).build();
        cases.push(case(
            format!("source {src}"),
            f,
            TC_ACT_REDIRECT,
            "redirect",
        ));
    }
    check_cases(&mut obj, Hook::FromNic, SkbCtx::default(), LO, &cases);
}

#[test]
fn from_nic_gso_packets_are_not_held_to_the_pod_mtu() {
    root_or_skip!();
    let mut obj = nic_object(FastPath::Peer);
    let mut big = V4::new(REMOTE4, "172.17.1.10");
    big.payload = 200;
    let frame = big.build();
    let gso = SkbCtx {
        gso_size: 64,
        gso_segs: 4,
        ..Default::default()
    };
    let r = run(&mut obj, Hook::FromNic, &frame, gso);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
}

// ------------------------------------------------- replies of stack flows

/// A client pod whose host veth is the loopback device, where
/// BPF_PROG_TEST_RUN runs: `from_pod` sees its packets as its own.
const CLIENT4: &str = "172.17.1.20";
const CLIENT6: &str = "fd00:172:17:1::20";
const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x20];
/// A Service IP (outside every pod CIDR: the object's POD_CIDRS is empty)
/// and the backend that answers for it.
const SERVICE4: &str = "10.96.0.10";
const SERVICE6: &str = "fd00:96::10";
const SERVICE_PORT: u16 = 8080;
const BACKEND4: &str = REMOTE4;
const BACKEND6: &str = REMOTE6;

/// [`nic_object`] with the client pod on the loopback device.
fn client_object(mode: FastPath) -> TcObject {
    let mut obj = nic_object(mode);
    let ep = Endpoint {
        ifindex: LO,
        mtu: 1500,
        flags: 0,
        pod_mac: CLIENT_MAC,
        host_mac: HOST_MAC,
    };
    let mut map = obj.endpoints().unwrap();
    let v4: std::net::Ipv4Addr = CLIENT4.parse().unwrap();
    let v6: std::net::Ipv6Addr = CLIENT6.parse().unwrap();
    map.insert(EndpointKey::v4(v4.octets()), ep, 0).unwrap();
    map.insert(EndpointKey::v6(v6.octets()), ep, 0).unwrap();
    obj
}

/// A packet the client sends to the Service (v4 or v6) from `sport`.
fn to_service(v6: bool, protocol: u8, sport: u16) -> Vec<u8> {
    if v6 {
        let mut p = V6::new(CLIENT6, SERVICE6);
        p.src_mac = CLIENT_MAC;
        (p.next_header, p.sport, p.dport) = (protocol, sport, SERVICE_PORT);
        p.build()
    } else {
        let mut p = V4::new(CLIENT4, SERVICE4);
        p.src_mac = CLIENT_MAC;
        (p.protocol, p.sport, p.dport) = (protocol, sport, SERVICE_PORT);
        p.build()
    }
}

/// The backend's answer arriving on the NIC for `dst`:`dport`.
fn from_backend(v6: bool, protocol: u8, dst: &str, dport: u16) -> V4OrV6 {
    if v6 {
        let mut p = V6::new(BACKEND6, dst);
        (p.next_header, p.sport, p.dport) = (protocol, SERVICE_PORT, dport);
        V4OrV6::V6(p)
    } else {
        let mut p = V4::new(BACKEND4, dst);
        (p.protocol, p.sport, p.dport) = (protocol, SERVICE_PORT, dport);
        V4OrV6::V4(p)
    }
}

enum V4OrV6 {
    V4(V4),
    V6(V6),
}

impl V4OrV6 {
    fn build(&self) -> Vec<u8> {
        match self {
            V4OrV6::V4(p) => p.build(),
            V4OrV6::V6(p) => p.build(),
        }
    }
}

/// The Service-reply rule: `from_pod` remembers what a pod sends to a
/// destination outside the pod CIDRs (here a Service IP), and `from_nic`
/// hands the replies of those flows — destination = the pod's address and
/// port — to the stack unchanged (`pass_stack_flow`), where conntrack
/// reverses the DNAT. Another port, another protocol, another pod, an echo
/// request or a fragment are not replies of a remembered flow: unchanged
/// behaviour.
#[test]
fn from_nic_hands_replies_of_flows_a_pod_sent_to_the_stack_to_the_stack() {
    root_or_skip!();
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    for (mode, helper) in [
        (FastPath::Redirect, "redirect"),
        (FastPath::Peer, "redirect_peer"),
    ] {
        let mut obj = client_object(mode);
        // The client's requests, TCP from 40006 and UDP from 40017, and
        // echo requests with identifier 0x4242: to the stack, remembered.
        let mut requests = Vec::new();
        for v6 in [false, true] {
            requests.push(to_service(v6, TCP, 40006));
            requests.push(to_service(v6, UDP, 40017));
        }
        let mut echo4 = V4::new(CLIENT4, SERVICE4);
        echo4.src_mac = CLIENT_MAC;
        echo4.icmp = Some(packet::echo(8, 0x4242));
        let mut echo6 = V6::new(CLIENT6, SERVICE6);
        echo6.src_mac = CLIENT_MAC;
        echo6.icmp6 = Some(packet::echo(128, 0x4242));
        requests.push(echo4.build());
        requests.push(echo6.build());
        for f in &requests {
            let r = run(&mut obj, Hook::FromPod, f, SkbCtx::default());
            assert_passed_unchanged(&r, f);
        }
        // Again: a known flow is not added twice.
        for f in &requests {
            assert_passed_unchanged(&run(&mut obj, Hook::FromPod, f, SkbCtx::default()), f);
        }
        let flows: Vec<String> = shortpath_dataplane::read_stack_flows(&obj.stack_flows().unwrap())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            flows,
            [
                "icmp 172.17.1.20:16962",
                "tcp 172.17.1.20:40006",
                "udp 172.17.1.20:40017",
                "tcp [fd00:172:17:1::20]:40006",
                "udp [fd00:172:17:1::20]:40017",
                "icmpv6 [fd00:172:17:1::20]:16962",
            ]
        );

        let mut cases = Vec::new();
        for v6 in [false, true] {
            let (client, other_pod) = if v6 { (CLIENT6, POD6) } else { (CLIENT4, POD4) };
            let fam = if v6 { "v6" } else { "v4" };
            for (proto, port, name) in [(TCP, 40006, "tcp"), (UDP, 40017, "udp")] {
                cases.push(case(
                    format!("{fam} {name} reply"),
                    from_backend(v6, proto, client, port).build(),
                    TC_ACT_OK,
                    "pass_stack_flow",
                ));
                cases.push(case(
                    format!("{fam} {name} another port"),
                    from_backend(v6, proto, client, port + 1).build(),
                    TC_ACT_REDIRECT,
                    helper,
                ));
                cases.push(case(
                    format!("{fam} {name} another pod, same port"),
                    from_backend(v6, proto, other_pod, port).build(),
                    TC_ACT_REDIRECT,
                    helper,
                ));
            }
            // The TCP flow's port over UDP: another flow.
            cases.push(case(
                format!("{fam} udp to the tcp flow's port"),
                from_backend(v6, UDP, client, 40006).build(),
                TC_ACT_REDIRECT,
                helper,
            ));
        }
        // A fragment of a reply: no ports to look at; the stack, as always.
        let V4OrV6::V4(mut frag) = from_backend(false, UDP, CLIENT4, 40017) else {
            unreachable!()
        };
        frag.frag_off = 0x2000;
        cases.push(case(
            "v4 first fragment",
            frag.build(),
            TC_ACT_OK,
            "pass_fragment",
        ));
        let V4OrV6::V6(mut frag) = from_backend(true, UDP, CLIENT6, 40017) else {
            unreachable!()
        };
        frag.ext = vec![packet::Ext::Fragment {
            offset: 0,
            more: true,
        }];
        cases.push(case(
            "v6 first fragment",
            frag.build(),
            TC_ACT_OK,
            "pass_fragment",
        ));
        // Fewer than 8 bytes of L4 (the rest is Ethernet padding): no
        // ports are read from the padding.
        let mut cut4 = from_backend(false, UDP, CLIENT4, 40017).build();
        cut4[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&(20u16 + 4).to_be_bytes());
        packet::fix_ipv4_checksum(&mut cut4);
        cases.push(case("v4 L4 cut short", cut4, TC_ACT_REDIRECT, helper));
        let mut cut6 = from_backend(true, UDP, CLIENT6, 40017).build();
        cut6[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&4u16.to_be_bytes());
        cases.push(case("v6 L4 cut short", cut6, TC_ACT_REDIRECT, helper));
        // Echo: the reply with the identifier goes up; a request with it,
        // a reply with another, are delivered.
        for (v6, reply, request) in [(false, 0u8, 8u8), (true, 129, 128)] {
            let fam = if v6 { "v6" } else { "v4" };
            for (what, kind, id, verdict, reason) in [
                ("echo reply", reply, 0x4242u16, TC_ACT_OK, "pass_stack_flow"),
                (
                    "echo reply, another id",
                    reply,
                    0x4243,
                    TC_ACT_REDIRECT,
                    helper,
                ),
                (
                    "echo request, same id",
                    request,
                    0x4242,
                    TC_ACT_REDIRECT,
                    helper,
                ),
            ] {
                let frame = if v6 {
                    let mut p = V6::new(BACKEND6, CLIENT6);
                    p.icmp6 = Some(packet::echo(kind, id));
                    p.build()
                } else {
                    let mut p = V4::new(BACKEND4, CLIENT4);
                    p.icmp = Some(packet::echo(kind, id));
                    p.build()
                };
                cases.push(case(format!("{fam} {what}"), frame, verdict, reason));
            }
        }
        // The client's requests were counted on the same device (lo).
        let mut all = cases;
        for f in requests.iter().chain(&requests) {
            all.push(case("request", f.clone(), TC_ACT_OK, "pass_not_pod_cidr"));
        }
        let (nic_cases, pod_cases): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|c| c.what != "request");
        // Counters of both programs land on lo: compare the sum.
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        for c in nic_cases.iter().chain(&pod_cases) {
            *expected.entry(c.reason).or_default() += 1;
        }
        let mut wrong = Vec::new();
        for c in &nic_cases {
            let r = nic(&mut obj, &c.frame);
            if r.verdict != c.verdict {
                wrong.push(format!(
                    "{}: verdict {} (want {})",
                    c.what, r.verdict, c.verdict
                ));
            } else if c.verdict == TC_ACT_OK && r.out != c.frame {
                wrong.push(format!("{}: frame modified", c.what));
            }
        }
        assert!(wrong.is_empty(), "{mode:?}:\n{}", wrong.join("\n"));
        assert_eq!(counts(&obj, LO), expected, "{mode:?}");
    }
}

/// The stack-flow lookup is gated by the endpoint's `FLAG_SENT_TO_STACK`,
/// which `from_pod` sets when the pod sends to the stack: a pod without it
/// gets even a packet that matches a remembered flow on the fast path (no
/// lookup), a pod with it gets the reply handed to the stack. So the flag,
/// set by the program itself, is what makes Service replies safe.
#[test]
fn from_nic_looks_up_stack_flows_only_for_pods_that_sent_to_the_stack() {
    root_or_skip!();
    const TCP: u8 = 6;
    let mut obj = client_object(FastPath::Peer);
    let key = EndpointKey::v4(CLIENT4.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let flags = |obj: &mut TcObject| obj.endpoints().unwrap().get(&key, 0).unwrap().flags;
    assert_eq!(flags(&mut obj) & FLAG_SENT_TO_STACK, 0);
    let reply = from_backend(false, TCP, CLIENT4, 40006).build();
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_REDIRECT,
        "no flow yet"
    );

    let request = to_service(false, TCP, 40006);
    assert_passed_unchanged(
        &run(&mut obj, Hook::FromPod, &request, SkbCtx::default()),
        &request,
    );
    assert_ne!(
        flags(&mut obj) & FLAG_SENT_TO_STACK,
        0,
        "from_pod marks the pod"
    );
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_OK,
        "the reply meets the stack"
    );

    // The same remembered flow, the flag cleared: the lookup is skipped.
    let mut ep = obj.endpoints().unwrap().get(&key, 0).unwrap();
    ep.flags &= !FLAG_SENT_TO_STACK;
    obj.endpoints().unwrap().insert(key, ep, 0).unwrap();
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_REDIRECT,
        "gated by the flag"
    );
    // The pod's next packet to the stack marks it again.
    run(&mut obj, Hook::FromPod, &request, SkbCtx::default());
    assert_eq!(nic(&mut obj, &reply).verdict, TC_ACT_OK);
    let nic_counts = counts(&obj, LO);
    assert_eq!(
        (
            nic_counts.get("redirect_peer"),
            nic_counts.get("pass_stack_flow")
        ),
        (Some(&2), Some(&2)),
        "{nic_counts:?}"
    );
}

/// `from_pod` sets `FLAG_SENT_TO_STACK` in the endpoint map itself, behind
/// the per-CPU endpoint cache of `from_nic`, which has the pod cached
/// without it: its bump of the endpoint generation is what makes the next
/// reply meet the stack (nothing opens the maps in between).
/// A pod that already sent to the stack opens another flow there: the
/// reply check of that flow's port was cached as "not a stack flow" on
/// this CPU, and the flow's insert must still reach the next reply
/// (`from_pod` bumps `STACK_FLOWS_GEN` after it).
#[test]
fn from_nic_sees_a_new_stack_flow_despite_its_cache() {
    root_or_skip!();
    const UDP: u8 = 17;
    let mut obj = client_object(FastPath::Peer);
    run(
        &mut obj,
        Hook::FromPod,
        &to_service(false, UDP, 40020),
        SkbCtx::default(),
    );
    let reply = from_backend(false, UDP, CLIENT4, 40021).build();
    for when in ["checked", "cached"] {
        assert_eq!(
            nic(&mut obj, &reply).verdict,
            TC_ACT_REDIRECT,
            "no stack flow on port 40021 yet ({when})"
        );
    }
    run(
        &mut obj,
        Hook::FromPod,
        &to_service(false, UDP, 40021),
        SkbCtx::default(),
    );
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_OK,
        "the new flow's reply meets the stack"
    );
}

#[test]
fn from_nic_sees_the_flag_from_pod_sets_despite_its_cache() {
    root_or_skip!();
    const UDP: u8 = 17;
    let mut obj = client_object(FastPath::Peer);
    let reply = from_backend(false, UDP, CLIENT4, 40011).build();
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_REDIRECT,
        "cached without the flag"
    );
    let request = to_service(false, UDP, 40011);
    run(&mut obj, Hook::FromPod, &request, SkbCtx::default());
    assert_eq!(
        nic(&mut obj, &reply).verdict,
        TC_ACT_OK,
        "the reply meets the stack"
    );
}
