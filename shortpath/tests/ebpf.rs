//! BPF_PROG_TEST_RUN tests of the TC programs: crafted frames in, verdict,
//! rewritten bytes and counters out. Loading them also proves the kernel
//! verifier accepts both programs in both modes.
//!
//! `from_nic` runs against maps filled here (no device needed). `from_pod`
//! needs a node namespace with real devices and routes for its FIB lookups,
//! so it runs inside a lab node.

mod common;

use std::{collections::BTreeMap, time::Duration};

use aya::programs::{TestRun, TestRunOptions};
use common::{
    packet::{self, Arp, Ext, BROADCAST, ETH_HLEN, V4, V6},
    TestLab,
};
use shortpath::{
    dataplane::{counters, Hook, NodeSpec, TcObject},
    lab,
    netns::{Netns, NetnsGuard},
    nl::Netlink,
};
use shortpath_common::{
    endpoint::{Endpoint, EndpointKey, FLAG_STACK_ONLY},
    mode::FastPath,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it (192 bytes).
#[derive(Default, Clone, Copy)]
struct SkbCtx {
    ifindex: u32,
    gso_segs: u32,
    gso_size: u32,
}

impl SkbCtx {
    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 192];
        b[40..44].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[164..168].copy_from_slice(&self.gso_segs.to_ne_bytes());
        b[176..180].copy_from_slice(&self.gso_size.to_ne_bytes());
        b
    }
}

struct Run {
    verdict: u32,
    out: Vec<u8>,
}

fn run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Run {
    try_run(obj, hook, frame, ctx)
        .unwrap_or_else(|| panic!("BPF_PROG_TEST_RUN refused {} bytes", frame.len()))
}

/// `None` when the kernel's test runner refuses the frame (EINVAL).
fn try_run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Option<Run> {
    let prog = obj.program(hook).expect("program loads and verifies");
    let mut out = vec![0u8; frame.len() + 512];
    let ctx = ctx.bytes();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.ctx_in = Some(&ctx);
    let r = match prog.test_run(opts) {
        Ok(r) => r,
        Err(aya::programs::ProgramError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
        {
            return None
        }
        Err(e) => panic!("BPF_PROG_TEST_RUN with {} bytes: {e}", frame.len()),
    };
    out.truncate(r.data_size_out as usize);
    Some(Run {
        verdict: r.return_value,
        out,
    })
}

/// BPF_PROG_TEST_RUN with `BPF_F_TEST_SKB_CHECKSUM_COMPLETE` (Linux 6.17+),
/// a flag aya's `TestRunOptions` cannot set, so the syscall is made here.
/// The kernel seeds `skb->csum` with the sum of the packet from the network
/// header on, marks the skb CHECKSUM_COMPLETE, runs the program, and fails
/// the run when `skb->csum` no longer matches the packet it returns.
/// `Err(errno)`: EINVAL when the kernel does not know the flag, EBADMSG (or
/// EINVAL on early versions of the patch) for a stale `skb->csum`.
fn run_checksum_complete(
    obj: &mut TcObject,
    hook: Hook,
    frame: &[u8],
    ctx: SkbCtx,
) -> Result<Run, i32> {
    use std::os::fd::{AsFd, AsRawFd};

    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;
    /// The `test` member of `union bpf_attr`.
    #[repr(C)]
    #[derive(Default)]
    struct TestRunAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        pad: u32,
    }
    let prog = obj.program(hook).expect("program loads and verifies");
    let fd = prog.fd().expect("loaded").as_fd().as_raw_fd();
    let mut out = vec![0u8; frame.len() + 512];
    let ctx = ctx.bytes();
    let mut attr = TestRunAttr {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        flags: BPF_F_TEST_SKB_CHECKSUM_COMPLETE,
        ..Default::default()
    };
    // SAFETY: `attr` points at buffers that outlive the call, with their
    // sizes; the kernel writes only `out` and the attr's output fields.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Run {
        verdict: attr.retval,
        out,
    })
}

fn counts(obj: &TcObject, ifindex: u32) -> BTreeMap<&'static str, u64> {
    counters::read(&obj.counters().unwrap())
        .unwrap()
        .remove(&ifindex)
        .unwrap_or_default()
}

/// One crafted frame, the verdict the program must return and the reason
/// it must count.
struct Case {
    what: String,
    frame: Vec<u8>,
    verdict: u32,
    reason: &'static str,
}

fn case(what: impl Into<String>, frame: Vec<u8>, verdict: u32, reason: &'static str) -> Case {
    Case {
        what: what.into(),
        frame,
        verdict,
        reason,
    }
}

/// Runs every case, then compares the whole counter map of `counted_on`
/// with the reasons of the cases: the object is fresh, so the totals are
/// exact. Frames that are not redirected must come out unchanged. Every
/// wrong verdict is listed before the test fails.
#[track_caller]
fn check_cases(obj: &mut TcObject, hook: Hook, ctx: SkbCtx, counted_on: u32, cases: &[Case]) {
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    for c in cases {
        let r = run(obj, hook, &c.frame, ctx);
        if r.verdict != c.verdict {
            wrong.push(format!(
                "{}: verdict {} (want {})",
                c.what, r.verdict, c.verdict
            ));
        } else if c.verdict != TC_ACT_REDIRECT && r.out != c.frame {
            wrong.push(format!("{}: frame modified", c.what));
        }
        *expected.entry(c.reason).or_default() += 1;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(counts(obj, counted_on), expected, "counters");
}

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
    common::require_root();
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

/// The frame went to the stack exactly as it came.
#[track_caller]
fn assert_passed_unchanged(r: &Run, frame: &[u8]) {
    assert_eq!(r.verdict, TC_ACT_OK, "verdict");
    assert_eq!(r.out, frame, "a passed frame must not be modified");
}

#[track_caller]
fn assert_routed_rewrite(r: &Run, frame: &[u8], dst: [u8; 6], src: [u8; 6], ttl_at: usize) {
    assert_eq!(r.out.len(), frame.len());
    assert_eq!(r.out[0..6], dst, "destination MAC");
    assert_eq!(r.out[6..12], src, "source MAC");
    assert_eq!(r.out[ttl_at], frame[ttl_at] - 1, "TTL / hop limit − 1");
    if frame[12..14] == [0x08, 0x00] {
        assert!(packet::ipv4_header_valid(&r.out), "IPv4 header checksum");
        // Only TTL and checksum changed in the IP header.
        let ip = ETH_HLEN..ETH_HLEN + 20;
        let diff: Vec<usize> = ip
            .clone()
            .filter(|&i| r.out[i] != frame[i])
            .map(|i| i - ETH_HLEN)
            .collect();
        assert!(diff.iter().all(|i| [8, 10, 11].contains(i)), "{diff:?}");
    }
    // Addresses and payload: after the IPv4 checksum / IPv6 hop limit.
    let rest = if frame[12..14] == [0x08, 0x00] {
        ETH_HLEN + 12
    } else {
        ttl_at + 1
    };
    assert_eq!(
        r.out[rest..],
        frame[rest..],
        "addresses and payload untouched"
    );
}

#[test]
fn from_nic_redirects_a_local_pod_over_ipv4_and_ipv6() {
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

// ---------------------------------------------------------------- from_pod

const TWO_PODS: &str =
    "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 1\n";

struct PodBench {
    spec: NodeSpec,
    inv: lab::Inventory,
}

fn pod_bench(lab: &TestLab) -> PodBench {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let inv = rt
        .block_on(lab::inventory(&lab.name.parse().unwrap()))
        .expect("inventory");
    let spec = inv.dataplane_spec("node-a").expect("node-a");
    assert_eq!(spec.pods.len(), 2);
    PodBench { spec, inv }
}

impl PodBench {
    fn object(&self, mode: FastPath) -> TcObject {
        let mut obj = TcObject::load(mode, None).expect("load");
        assert_eq!(obj.sync_endpoints(&self.spec).unwrap(), (4, 0));
        obj
    }
    fn pod(&self, i: usize) -> &shortpath::lab::PodInfo {
        self.inv.pods_of("node-a").nth(i).unwrap()
    }
    fn ctx(&self, i: usize) -> SkbCtx {
        SkbCtx {
            ifindex: self.pod(i).host_if.ifindex,
            ..Default::default()
        }
    }
    /// A frame pod `i` sends to `dst` through its gateway (the bridge).
    fn v4(&self, i: usize, dst: &str) -> V4 {
        let p = self.pod(i);
        let mut f = V4::new(&p.ipv4.unwrap().to_string(), dst);
        f.src_mac = p.mac.0;
        f.dst_mac = self.inv.node("node-a").unwrap().bridge.mac.0;
        f
    }
    fn v6(&self, i: usize, dst: &str) -> V6 {
        let p = self.pod(i);
        let mut f = V6::new(&p.ipv6.unwrap().to_string(), dst);
        f.src_mac = p.mac.0;
        f.dst_mac = self.gateway_mac();
        f
    }
    fn gateway_mac(&self) -> [u8; 6] {
        self.inv.node("node-a").unwrap().bridge.mac.0
    }
    fn mac(&self, i: usize) -> [u8; 6] {
        self.pod(i).mac.0
    }
    fn ip4(&self, i: usize) -> String {
        self.pod(i).ipv4.unwrap().to_string()
    }
    fn ip6(&self, i: usize) -> String {
        self.pod(i).ipv6.unwrap().to_string()
    }
    /// `frame` as pod `i` would send it: from its MAC, to the gateway.
    fn v4_from(&self, i: usize, src: &str, dst: &str) -> V4 {
        let mut f = V4::new(src, dst);
        f.src_mac = self.mac(i);
        f.dst_mac = self.gateway_mac();
        f
    }
    fn v6_from(&self, i: usize, src: &str, dst: &str) -> V6 {
        let mut f = V6::new(src, dst);
        f.src_mac = self.mac(i);
        f.dst_mac = self.gateway_mac();
        f
    }
    /// An ND message pod `i` sends (its MAC, hop limit 255).
    fn nd(&self, i: usize, src: &str, dst: &str, msg: Vec<u8>) -> V6 {
        let mut f = V6::nd(src, dst, msg);
        f.src_mac = self.mac(i);
        if f.dst_mac == [0; 6] {
            f.dst_mac = self.gateway_mac();
        }
        f
    }
    /// Runs `cases` on pod 0's device of a fresh `mode` object.
    fn check(&self, mode: FastPath, cases: &[Case]) {
        let mut obj = self.object(mode);
        check_cases(
            &mut obj,
            Hook::FromPod,
            self.ctx(0),
            self.pod(0).host_if.ifindex,
            cases,
        );
    }
}

/// A MAC that belongs to no pod.
const FOREIGN_MAC: [u8; 6] = [0x02, 0x66, 0x66, 0, 0, 0x66];
/// Some link-local address of pod 0 (link-local sources are not looked up).
const POD_LL: &str = "fe80::11:22ff:fe33:4455";

fn enter(netns: &str) -> NetnsGuard {
    NetnsGuard::enter(&Netns::new(netns)).expect("enter node namespace")
}

#[test]
fn from_pod_drops_spoofed_sources_and_counts_them() {
    let lab = TestLab::up_with("ebs", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut obj = b.object(FastPath::Redirect);
    let other = b.pod(1).ipv4.unwrap().to_string();
    let mut spoofs = vec![
        V4::new("10.6.6.6", REMOTE4).build(),
        // A real pod's address, sent from another pod's device.
        V4::new(&other, REMOTE4).build(),
        V6::new("fd00:6::6", REMOTE6).build(),
    ];
    let mut own_v4_wrong_dev = b.v4(0, REMOTE4);
    own_v4_wrong_dev.src = other.parse().unwrap();
    spoofs.push(own_v4_wrong_dev.build());
    for f in &spoofs {
        let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_SHOT);
    }
    let c = counts(&obj, b.pod(0).host_if.ifindex);
    let expected = BTreeMap::from([("drop_spoofed", spoofs.len() as u64)]);
    assert_eq!(c, expected);
}

#[test]
fn from_pod_same_node_pod_gets_it_directly() {
    let lab = TestLab::up_with("ebl", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let peer = b.pod(1);
    let (peer4, peer6) = (
        peer.ipv4.unwrap().to_string(),
        peer.ipv6.unwrap().to_string(),
    );
    for (mode, reason) in [
        (FastPath::Redirect, "redirect"),
        (FastPath::Peer, "redirect_peer"),
    ] {
        let mut obj = b.object(mode);
        // Routed via the gateway MAC: the router's rewrite.
        let f = b.v4(0, &peer4).build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "{reason} v4");
        assert_routed_rewrite(&r, &f, peer.mac.0, peer.host_if.mac.0, ETH_HLEN + 8);
        let f = b.v6(0, &peer6).build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "{reason} v6");
        assert_routed_rewrite(&r, &f, peer.mac.0, peer.host_if.mac.0, ETH_HLEN + 7);
        // Bridged (same subnet, addressed to the pod's MAC): as is.
        let mut bridged = b.v4(0, &peer4);
        bridged.dst_mac = peer.mac.0;
        let f = bridged.build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(r.out, f, "bridged frame is delivered untouched");
        let c = counts(&obj, b.pod(0).host_if.ifindex);
        assert_eq!(c, BTreeMap::from([(reason, 3)]));
    }
}

#[test]
fn from_pod_routes_with_the_fib() {
    let lab = TestLab::up_with("ebf", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let node_a = b.inv.node("node-a").unwrap().clone();
    let node_b = b.inv.node("node-b").unwrap().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A route whose gateway never answers: the neighbour stays unresolved.
    rt.block_on(async {
        let nl = Netlink::connect(&Netns::new(&node_a.netns)).await.unwrap();
        nl.add_route(
            "10.99.0.0/16".parse().unwrap(),
            "192.168.1.77".parse().unwrap(),
        )
        .await
        .unwrap();
    });
    let _ns = enter(&b.spec.netns);
    let mut obj = b.object(FastPath::Peer);
    let lxc = b.pod(0).host_if.ifindex;

    let f = b.v4(0, "10.99.1.1").build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "unresolved neighbour");
    assert_eq!(r.out[ETH_HLEN + 8], 63, "TTL − 1 before redirect_neigh");
    assert!(packet::ipv4_header_valid(&r.out));

    // Resolve node-b's NIC, then the FIB gives egress device and MACs.
    shortpath::probe::ping(
        &Netns::new(&node_a.netns),
        node_b.nic.ipv4.unwrap(),
        56,
        Duration::from_secs(3),
    )
    .expect("node-a reaches node-b");
    let remote = b.inv.pods_of("node-b").next().unwrap();
    let f = b.v4(0, &remote.ipv4.unwrap().to_string()).build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "resolved neighbour");
    assert_routed_rewrite(&r, &f, node_b.nic.mac.0, node_a.nic.mac.0, ETH_HLEN + 8);

    let remote4 = remote.ipv4.unwrap().to_string();
    let mut cases = vec![
        case(
            "no route",
            b.v4(0, "10.200.0.1").build(),
            TC_ACT_OK,
            "pass_fib_not_forwarded",
        ),
        case(
            "the node itself",
            b.v4(0, "192.168.1.1").build(),
            TC_ACT_OK,
            "pass_fib_not_forwarded",
        ),
        case(
            "multicast",
            b.v4(0, "224.0.0.251").build(),
            TC_ACT_OK,
            "pass_multicast",
        ),
        case(
            "v6 multicast",
            b.v6(0, "ff02::fb").build(),
            TC_ACT_OK,
            "pass_multicast",
        ),
        case(
            "ARP",
            Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build(),
            TC_ACT_OK,
            "pass_arp",
        ),
    ];
    let mut ll = V6::new("fe80::1", "ff02::2");
    ll.src_mac = b.mac(0);
    cases.push(case(
        "link-local source",
        ll.build(),
        TC_ACT_OK,
        "pass_link_local",
    ));
    let mut ttl = b.v4(0, &remote4);
    ttl.ttl = 1;
    cases.push(case("ttl 1", ttl.build(), TC_ACT_OK, "pass_ttl_expired"));
    let mut big = b.v4(0, &remote4);
    big.payload = 1600;
    cases.push(case(
        "over egress MTU",
        big.build(),
        TC_ACT_OK,
        "pass_fib_frag_needed",
    ));
    // bpf_fib_lookup checks the MTU only when the neighbour is known: the
    // unresolved next hop needs its own check, or bpf_redirect_neigh would
    // hand the device a frame it drops silently.
    let mut big = b.v4(0, "10.99.1.1");
    big.payload = 1600;
    cases.push(case(
        "over egress MTU, unresolved neighbour",
        big.build(),
        TC_ACT_OK,
        "pass_fib_frag_needed",
    ));
    let mut gso = b.ctx(0);
    gso.gso_size = 1400;
    gso.gso_segs = 2;
    let r = run(&mut obj, Hook::FromPod, &big.build(), gso);
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "GSO is segmented to fit");

    let mut expected = BTreeMap::from([("redirect_neigh", 2), ("redirect", 1)]);
    for c in &cases {
        let r = run(&mut obj, Hook::FromPod, &c.frame, b.ctx(0));
        assert_eq!(r.verdict, c.verdict, "{}", c.what);
        assert_eq!(r.out, c.frame, "{}: modified", c.what);
        *expected.entry(c.reason).or_default() += 1;
    }
    assert_eq!(counts(&obj, lxc), expected);
}

/// IPv4 options and fragments go to the stack — only after the source
/// check, which reads `saddr` at its fixed offset whatever follows.
#[test]
fn from_pod_checks_the_source_of_ipv4_options_and_fragments() {
    let lab = TestLab::up_with("ebo", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut cases = Vec::new();
    for (src, reason, verdict) in [
        (b.ip4(1), "drop_spoofed", TC_ACT_SHOT),
        ("10.6.6.6".to_owned(), "drop_spoofed", TC_ACT_SHOT),
        ("169.254.1.1".to_owned(), "drop_spoofed", TC_ACT_SHOT),
        (b.ip4(0), "", TC_ACT_OK),
    ] {
        let own = reason.is_empty();
        let mut opts = b.v4_from(0, &src, REMOTE4);
        opts.options = 8;
        let r = if own { "pass_ip_options" } else { reason };
        cases.push(case(format!("{src} options"), opts.build(), verdict, r));
        for (what, frag_off) in [("first fragment", 0x2000u16), ("later fragment", 0x00b9)] {
            let mut f = b.v4_from(0, &src, REMOTE4);
            f.frag_off = frag_off;
            let r = if own { "pass_fragment" } else { reason };
            cases.push(case(format!("{src} {what}"), f.build(), verdict, r));
        }
    }
    cases.push(case(
        "169.254/16 source",
        b.v4_from(0, "169.254.1.1", REMOTE4).build(),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    let ll_to_metadata = b.v4_from(0, "169.254.1.1", "169.254.169.254").build();
    cases.push(case(
        "169.254/16 to 169.254/16",
        ll_to_metadata,
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// Every IPv6 extension header kind, spoofed and own: the source check and
/// the ND rules run before extension headers and fragments go to the stack.
#[test]
fn from_pod_checks_the_source_behind_ipv6_extension_headers() {
    let lab = TestLab::up_with("ebx", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut cases = Vec::new();
    let kinds = [
        (Ext::HopByHop, "pass_ipv6_ext_header"),
        (Ext::Routing, "pass_ipv6_ext_header"),
        (Ext::DestOpts, "pass_ipv6_ext_header"),
        (
            Ext::Fragment {
                offset: 0,
                more: true,
            },
            "pass_fragment",
        ),
        (
            Ext::Fragment {
                offset: 185,
                more: false,
            },
            "pass_fragment",
        ),
    ];
    for (ext, own_reason) in kinds {
        for src in [b.ip6(1), "fd00:6::6".to_owned()] {
            let mut f = b.v6_from(0, &src, REMOTE6);
            f.ext = vec![ext];
            cases.push(case(
                format!("{src} {ext:?}"),
                f.build(),
                TC_ACT_SHOT,
                "drop_spoofed",
            ));
        }
        let mut f = b.v6(0, REMOTE6);
        f.ext = vec![ext];
        cases.push(case(
            format!("own {ext:?}"),
            f.build(),
            TC_ACT_OK,
            own_reason,
        ));
    }
    // Four headers are walked; a fifth is too many.
    let four = vec![Ext::HopByHop, Ext::DestOpts, Ext::Routing, Ext::DestOpts];
    let mut f = b.v6(0, REMOTE6);
    f.ext = four.clone();
    cases.push(case(
        "own, 4 headers",
        f.build(),
        TC_ACT_OK,
        "pass_ipv6_ext_header",
    ));
    f.ext.push(Ext::DestOpts);
    cases.push(case(
        "own, 5 headers",
        f.build(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    // A chain that runs past the end of the packet.
    let mut cut = b.v6(0, REMOTE6);
    cut.next_header = 60;
    cut.payload = 0;
    let mut cut = cut.build();
    cut.truncate(cut.len() - 4);
    cut[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&4u16.to_be_bytes());
    cases.push(case(
        "own, chain cut short",
        cut,
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    b.check(FastPath::Peer, &cases);
}

/// Tagged frames are never a pod's: 802.1Q and 802.1ad, with a spoofed or
/// the pod's own packet inside, and a double tag.
#[test]
fn from_pod_drops_vlan_tagged_frames() {
    let lab = TestLab::up_with("ebv", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let own = b.v4(0, REMOTE4).build();
    let spoofed = b.v4_from(0, &b.ip4(1), REMOTE4).build();
    let own6 = b.v6(0, REMOTE6).build();
    let mut cases = Vec::new();
    for (tpid, name) in [(0x8100u16, "802.1Q"), (0x88a8, "802.1ad")] {
        for (inner, f) in [("own", &own), ("spoofed", &spoofed), ("own v6", &own6)] {
            cases.push(case(
                format!("{name} {inner}"),
                packet::vlan(f, tpid, 5),
                TC_ACT_SHOT,
                "drop_vlan",
            ));
        }
    }
    let qinq = packet::vlan(&packet::vlan(&own, 0x8100, 5), 0x88a8, 7);
    cases.push(case("QinQ own", qinq, TC_ACT_SHOT, "drop_vlan"));
    let arp = Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build();
    cases.push(case(
        "802.1Q own ARP",
        packet::vlan(&arp, 0x8100, 5),
        TC_ACT_SHOT,
        "drop_vlan",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// ARP goes to the stack only when it speaks for the pod itself: its own
/// IP (or 0.0.0.0 for a probe), from its own MAC in both headers.
#[test]
fn from_pod_arp_must_come_from_the_pod_itself() {
    let lab = TestLab::up_with("eba", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let (me, other, gw) = (b.ip4(0), b.ip4(1), "172.17.1.1");
    let mac = b.mac(0);
    let mut cases = vec![
        case(
            "request claiming another pod's IP",
            Arp::request(mac, &other, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "request claiming an unknown IP",
            Arp::request(mac, "172.17.1.77", gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "request claiming a 169.254/16 IP",
            Arp::request(mac, "169.254.1.1", gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "own request",
            Arp::request(mac, &me, gw).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "RFC 5227 probe",
            Arp::request(mac, "0.0.0.0", &me).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "gratuitous ARP",
            Arp::request(mac, &me, &me).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "foreign MAC in both headers",
            Arp::request(FOREIGN_MAC, &me, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ),
        case(
            "another pod's MAC",
            Arp::request(b.mac(1), &me, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ),
    ];
    let reply = |sender_ip: &str, sender_mac: [u8; 6]| {
        let mut a = Arp::request(mac, sender_ip, gw);
        a.oper = 2;
        a.eth_dst = b.gateway_mac();
        a.target_mac = b.gateway_mac();
        a.sender_mac = sender_mac;
        a.build()
    };
    cases.push(case("own reply", reply(&me, mac), TC_ACT_OK, "pass_arp"));
    cases.push(case(
        "reply claiming another pod's IP",
        reply(&other, mac),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    cases.push(case(
        "reply with a foreign sender MAC",
        reply(&me, FOREIGN_MAC),
        TC_ACT_SHOT,
        "drop_spoofed_mac",
    ));
    let mut probe = Arp::request(mac, "0.0.0.0", &me);
    probe.sender_mac = FOREIGN_MAC;
    cases.push(case(
        "probe with a foreign sender MAC",
        probe.build(),
        TC_ACT_SHOT,
        "drop_spoofed_mac",
    ));
    for (what, edit) in [
        ("htype 6", (|a: &mut Arp| a.htype = 6) as fn(&mut Arp)),
        ("ptype IPv6", |a| a.ptype = 0x86dd),
        ("hlen 8", |a| a.hlen = 8),
        ("plen 16", |a| a.plen = 16),
    ] {
        let mut a = Arp::request(mac, &me, gw);
        edit(&mut a);
        cases.push(case(what, a.build(), TC_ACT_SHOT, "drop_malformed"));
    }
    b.check(FastPath::Redirect, &cases);
}

/// Neighbor Discovery: a pod may resolve and announce its own (or
/// link-local) addresses, never another's, and never act as a router.
#[test]
fn from_pod_nd_may_not_claim_other_addresses_or_routes() {
    let lab = TestLab::up_with("ebn", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let (me, other) = (b.ip6(0), b.ip6(1));
    let mut cases = vec![
        case(
            "unsolicited NA for another pod",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other)).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "NA for another pod from the pod's global address",
            b.nd(0, &me, "fe80::1", packet::nd_na(&other)).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "NA for an unknown address",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na("fd00:6::6"))
                .build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "RA",
            b.nd(0, POD_LL, "ff02::1", packet::nd_ra()).build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "RA from the pod's global address",
            b.nd(0, &me, "ff02::1", packet::nd_ra()).build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "Redirect",
            b.nd(
                0,
                POD_LL,
                "fe80::99",
                packet::nd_redirect("fe80::1", &other),
            )
            .build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "DAD NS for another pod's address",
            b.nd(0, "::", "ff02::1:ff00:3", packet::nd_ns(&other))
                .build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "truncated NA",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other)[..12].to_vec())
                .build(),
            TC_ACT_SHOT,
            "drop_malformed",
        ),
        case(
            "link-local source to a global address",
            b.v6_from(0, POD_LL, REMOTE6).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            ":: source to a global address",
            b.v6_from(0, "::", REMOTE6).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        // Legitimate ND goes to the stack.
        case(
            "NS for the gateway",
            b.nd(
                0,
                POD_LL,
                "ff02::1:ff00:1",
                packet::nd_ns("fd00:172:17:1::1"),
            )
            .build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "RS",
            b.nd(0, POD_LL, "ff02::2", packet::nd_rs()).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "DAD NS for the pod's own address",
            b.nd(0, "::", "ff02::1:ff00:2", packet::nd_ns(&me)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "DAD NS for a link-local address",
            b.nd(0, "::", "ff02::1:ff33:4455", packet::nd_ns(POD_LL))
                .build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "NA for the pod's own address",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&me)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "NA for its link-local address, from its global one",
            b.nd(0, &me, "fe80::1", packet::nd_na(POD_LL)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
    ];
    // Claims hidden behind extension headers are found all the same.
    for ext in [
        Ext::DestOpts,
        Ext::HopByHop,
        Ext::Fragment {
            offset: 0,
            more: false,
        },
    ] {
        let mut f = b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other));
        f.ext = vec![ext];
        cases.push(case(
            format!("NA for another pod behind {ext:?}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ));
    }
    let mut f = b.nd(0, POD_LL, "ff02::1", packet::nd_ra());
    f.ext = vec![Ext::HopByHop, Ext::DestOpts];
    cases.push(case(
        "RA behind two headers",
        f.build(),
        TC_ACT_SHOT,
        "drop_nd_router",
    ));
    // Other ICMPv6 from the pod's own address takes the fast path.
    let mut echo = b.v6(0, &other);
    echo.icmp6 = Some(packet::icmp6_echo());
    cases.push(case(
        "echo to a pod",
        echo.build(),
        TC_ACT_REDIRECT,
        "redirect",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// The rest of the policy: unknown EtherTypes, the pod's address from
/// another MAC, inconsistent or truncated headers are dropped; DHCP
/// discover and group-MAC frames go to the stack, never the fast path.
#[test]
fn from_pod_drops_what_no_pod_sends_and_keeps_group_frames_off_the_fast_path() {
    let lab = TestLab::up_with("ebm", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let own4 = b.v4(0, REMOTE4).build();
    let own6 = b.v6(0, REMOTE6).build();
    let mut cases = Vec::new();
    for (what, ethertype) in [
        ("LLDP", 0x88ccu16),
        ("802.3 length", 0x0040),
        ("MPLS", 0x8847),
    ] {
        let mut f = own4.clone();
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        cases.push(case(what, f, TC_ACT_SHOT, "drop_unknown_l3"));
    }
    for (what, mac) in [
        ("foreign MAC", FOREIGN_MAC),
        ("another pod's MAC", b.mac(1)),
    ] {
        let mut f = b.v4(0, REMOTE4);
        f.src_mac = mac;
        cases.push(case(
            format!("v4 {what}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ));
        let mut f = b.v6(0, REMOTE6);
        f.src_mac = mac;
        cases.push(case(
            format!("v6 {what}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ));
    }
    cases.push(case(
        "0.0.0.0 to a unicast address",
        b.v4_from(0, "0.0.0.0", REMOTE4).build(),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));

    // Inconsistent headers.
    let mut edit4 = |what: &str, at: usize, bytes: &[u8]| {
        let mut f = own4.clone();
        f[ETH_HLEN + at..ETH_HLEN + at + bytes.len()].copy_from_slice(bytes);
        packet::fix_ipv4_checksum(&mut f);
        cases.push(case(what, f, TC_ACT_SHOT, "drop_malformed"));
    };
    let tot_len = u16::from_be_bytes([own4[ETH_HLEN + 2], own4[ETH_HLEN + 3]]);
    edit4("tot_len > frame", 2, &(tot_len + 1).to_be_bytes());
    edit4("tot_len < header", 2, &19u16.to_be_bytes());
    edit4("IP version 6", 0, &[0x65]);
    edit4("ihl 4", 0, &[0x44]);
    let mut f = own6.clone();
    f[ETH_HLEN] = 0x40;
    cases.push(case("IPv6 version 4", f, TC_ACT_SHOT, "drop_malformed"));
    let mut f = own6.clone();
    let payload = u16::from_be_bytes([f[ETH_HLEN + 4], f[ETH_HLEN + 5]]);
    f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(payload + 1).to_be_bytes());
    cases.push(case(
        "payload_len > frame",
        f,
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    cases.push(case(
        "v4 cut in the payload",
        own4[..own4.len() - 1].to_vec(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    cases.push(case(
        "v6 cut in the payload",
        own6[..own6.len() - 1].to_vec(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    // Truncated frames: every cut the test runner accepts. It refuses
    // frames shorter than 14 bytes and IPv4 / IPv6 frames shorter than their
    // fixed header (those are injected on a live NIC in tests/dataplane.rs);
    // it takes every cut ARP frame, down to a bare Ethernet header.
    let arp = Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build();
    let mut obj = b.object(FastPath::Redirect);
    let mut truncated = 0;
    for (frame, upto) in [
        (&own4, ETH_HLEN + 20),
        (&own6, ETH_HLEN + 40),
        (&arp, arp.len()),
    ] {
        for cut in 1..upto {
            if let Some(r) = try_run(&mut obj, Hook::FromPod, &frame[..cut], b.ctx(0)) {
                assert_eq!(r.verdict, TC_ACT_SHOT, "cut at {cut}");
                truncated += 1;
            }
        }
    }
    assert!(truncated > 0, "the test runner took no truncated frame");
    assert_eq!(
        counts(&obj, b.pod(0).host_if.ifindex),
        BTreeMap::from([("drop_malformed", truncated)]),
        "truncated frames"
    );

    // To the stack: DHCP discover, group MACs with any destination.
    let mut dhcp = b.v4_from(0, "0.0.0.0", "255.255.255.255");
    dhcp.dst_mac = BROADCAST;
    cases.push(case(
        "DHCP discover",
        dhcp.build(),
        TC_ACT_OK,
        "pass_link_local",
    ));
    for (what, mac) in [
        ("broadcast MAC", BROADCAST),
        ("IPv4 multicast MAC", [0x01, 0x00, 0x5e, 0, 0, 1]),
        ("IPv6 multicast MAC", [0x33, 0x33, 0, 0, 0, 1]),
    ] {
        let mut f = b.v4(0, REMOTE4);
        f.dst_mac = mac;
        cases.push(case(
            format!("v4 unicast to {what}"),
            f.build(),
            TC_ACT_OK,
            "pass_multicast",
        ));
        let mut f = b.v6(0, &b.ip6(1));
        f.dst_mac = mac;
        cases.push(case(
            format!("v6 to a local pod, {what}"),
            f.build(),
            TC_ACT_OK,
            "pass_multicast",
        ));
    }
    b.check(FastPath::Peer, &cases);
}
