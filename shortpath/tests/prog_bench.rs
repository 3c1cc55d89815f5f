//! `shortpath prog-bench` on a lab of its own: every case timed on the
//! path it claims at every map size; a case whose runs leave that path, or
//! whose expectation is wrong, gives an error instead of a figure. And the
//! synthetic endpoints are inserted and removed exactly, real ones kept.

mod common;

use common::{ok, root_or_skip, shortpath, stdout, TestLab};
use serde_json::Value;
use shortpath::{
    bench::prog::{self, ProgBenchConfig, ProgBenchError, Program},
    dataplane::{synthetic, Hook, TcObject},
    names::LabName,
};
use shortpath_common::{
    endpoint::{Endpoint, EndpointKey},
    mode::FastPath,
};

/// (program, packet, path in peer mode) of every case.
const CASES: [(&str, &str, &str); 11] = [
    ("from_nic", "v4 to a local pod", "redirect_peer"),
    ("ref_from_nic", "v4 to a local pod", "(hand-written)"),
    ("from_nic", "v6 to a local pod", "redirect_peer"),
    (
        "from_nic",
        "v4 to a pod that sent to the stack",
        "redirect_peer",
    ),
    ("from_nic", "v4 to the node (stack)", "pass_no_endpoint"),
    ("from_pod", "v4 to a remote pod", "redirect_cached"),
    ("ref_from_pod", "v4 to a remote pod", "(hand-written)"),
    ("from_pod", "v6 to a remote pod", "redirect_cached"),
    ("from_pod", "v4 to a remote pod, FIB", "redirect"),
    ("from_pod", "v4 to a local pod", "redirect_peer"),
    (
        "from_pod",
        "v4 to a Service IP (stack)",
        "pass_not_pod_cidr",
    ),
];
const SIZES: [u64; 3] = [1, 100, 10_000];

fn check_json(v: &Value) {
    assert_eq!(v["params"]["mode"], "peer", "{}", v["params"]);
    assert_eq!(v["params"]["repeat"], 250);
    assert!(v["method"].as_str().unwrap().contains("BPF_PROG_TEST_RUN"));
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    let cases = v["cases"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = cases
        .iter()
        .map(|c| {
            (
                c["program"].as_str().unwrap(),
                c["packet"].as_str().unwrap(),
                c["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, CASES);
    for c in cases {
        let sizes = c["sizes"].as_array().unwrap();
        let asked: Vec<u64> = sizes
            .iter()
            .map(|s| s["endpoints"].as_u64().unwrap())
            .collect();
        assert_eq!(asked, SIZES, "{c}");
        for s in sizes {
            let (median, p10, p90) = (
                s["median_ns"].as_f64().unwrap(),
                s["p10_ns"].as_f64().unwrap(),
                s["p90_ns"].as_f64().unwrap(),
            );
            assert!(median > 0.0 && median < 10_000.0, "{c}");
            assert!(p10 <= median && median <= p90, "{s}");
            assert_eq!(
                (s["runs"].as_u64(), s["repeat"].as_u64()),
                (Some(20), Some(250))
            );
            let (asked, held) = (
                s["endpoints"].as_u64().unwrap(),
                s["entries"].as_u64().unwrap(),
            );
            // Never fewer than asked; more only where the cases need them;
            // none for the reference, which uses no endpoint map.
            let reference = c["program"].as_str().unwrap().starts_with("ref_");
            assert!(
                if reference {
                    held == 0
                } else {
                    held == asked || (asked == 1 && (2..=3).contains(&held))
                },
                "{s}"
            );
        }
    }
}

#[test]
fn prog_bench_times_every_case_on_its_path_and_refuses_a_wrong_one() {
    root_or_skip!();
    let lab = TestLab::up("pb");
    let json = tempfile::NamedTempFile::new().unwrap();
    let path = json.path().to_str().unwrap();
    let o = ok(shortpath(&[
        "prog-bench",
        "--name",
        &lab.name,
        "--runs",
        "20",
        "--json",
        path,
    ]));
    let out = stdout(&o);
    for (program, packet, reason) in CASES {
        assert!(
            out.lines()
                .any(|l| l.starts_with(program) && l.contains(packet) && l.contains(reason)),
            "{program} {packet}:\n{out}"
        );
    }
    assert!(out.contains("NS/PKT @1") && out.contains("@10000"), "{out}");
    assert!(out.contains("BPF_PROG_TEST_RUN figures"), "{out}");
    assert!(
        out.contains("Against the hand-written reference")
            && out.contains("from_nic v4 to a local pod")
            && out.contains("from_pod v4 to a remote pod"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    check_json(&v);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let name: LabName = lab.name.parse().unwrap();
    let cfg = ProgBenchConfig {
        runs: 2,
        endpoints: vec![1],
        ..Default::default()
    };
    let prepared = rt.block_on(prog::prepare(&name, cfg.mode)).unwrap();
    let find = |p: &prog::Prepared, program: Program, packet: &str| {
        p.cases
            .iter()
            .position(|c| c.program == program && c.packet == packet)
            .unwrap()
    };
    // As prepared, it runs.
    let r = rt.block_on(prog::run(prepared.clone(), &cfg)).unwrap();
    assert_eq!(r.cases.len(), CASES.len());

    // A wrong expectation: caught by the single checked run.
    let mut p = prepared.clone();
    let i = find(&p, Program::Shortpath(Hook::FromPod), "v4 to a remote pod");
    p.cases[i].expect.reason = "redirect_neigh";
    let e = rt.block_on(prog::run(p, &cfg)).unwrap_err();
    assert!(matches!(e, ProgBenchError::WrongPath { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("v4 to a remote pod") && msg.contains("counted redirect_cached ×1"),
        "{msg}"
    );
    assert!(
        msg.contains("expects TC_ACT_REDIRECT, counted redirect_neigh ×1"),
        "{msg}"
    );

    // The skb-reuse pitfall: hop limit 2 passes the checked run, but the
    // repetitions after the first take `pass_ttl_expired`.
    let mut p = prepared.clone();
    let i = find(&p, Program::Shortpath(Hook::FromPod), "v6 to a remote pod");
    let at = p.cases[i].ttl_at;
    p.cases[i].frame[at] = 2;
    let e = rt.block_on(prog::run(p, &cfg)).unwrap_err();
    assert!(matches!(e, ProgBenchError::WrongPath { .. }), "{e}");
    assert!(
        e.to_string().contains("TC_ACT_OK after 250 repetitions"),
        "{e}"
    );

    // The reference is checked too: compiled for node-a's pod, it hands a
    // frame for another address on (TC_ACT_UNSPEC), and the case says so.
    let mut p = prepared.clone();
    let i = find(&p, Program::Reference(Hook::FromNic), "v4 to a local pod");
    p.cases[i].frame[33] ^= 1; // the last byte of the IPv4 destination
    let e = rt.block_on(prog::run(p, &cfg)).unwrap_err();
    assert!(matches!(e, ProgBenchError::WrongPath { .. }), "{e}");
    assert!(
        e.to_string().contains("ref_from_nic") && e.to_string().contains("TC_ACT_UNSPEC"),
        "{e}"
    );

    // A pass case that would have to be forwarded.
    let mut p = prepared;
    let i = find(
        &p,
        Program::Shortpath(Hook::FromNic),
        "v4 to the node (stack)",
    );
    p.cases[i].expect = prog::Expect::routed("redirect_peer");
    let e = rt.block_on(prog::run(p, &cfg)).unwrap_err();
    assert!(e.to_string().contains("counted pass_no_endpoint ×1"), "{e}");
}

/// Synthetic entries come and go exactly; a real endpoint, even at a
/// synthetic address, is never overwritten nor removed.
#[test]
fn synthetic_endpoints_are_added_and_removed_exactly() {
    root_or_skip!();
    let mut obj = TcObject::load(FastPath::Peer, None).expect("load");
    let mut map = obj.endpoints().unwrap();
    let real = Endpoint {
        ifindex: 7,
        mtu: 1500,
        flags: 0,
        pod_mac: [2, 0, 0, 0, 0, 7],
        host_mac: [2, 0, 0, 0, 1, 7],
    };
    let squatter = synthetic::key(0);
    let pod = EndpointKey::v4([172, 17, 1, 2]);
    map.insert(squatter, real, 0).unwrap();
    map.insert(pod, real, 0).unwrap();

    let c = synthetic::set(&mut map, 100).unwrap();
    assert_eq!((c.synthetic.len(), c.real), (100, 2));
    assert!(!c.synthetic.contains(&0), "index 0 is a real pod's");
    assert_eq!(map.get(&squatter, 0).unwrap(), real);
    assert_eq!(synthetic::census(&map).unwrap(), c);

    let c = synthetic::set(&mut map, 10).unwrap();
    assert_eq!((c.synthetic.len(), c.real), (10, 2));
    assert_eq!(synthetic::census(&map).unwrap(), c);

    let e = synthetic::set(&mut map, 16_383).unwrap_err();
    assert!(e.to_string().contains("at most 16382"), "{e}");
    assert_eq!(
        synthetic::census(&map).unwrap(),
        c,
        "refused before any change"
    );

    assert_eq!(synthetic::remove_all(&mut map).unwrap(), 10);
    let mut left: Vec<EndpointKey> = map.keys().map(Result::unwrap).collect();
    left.sort_by_key(|k| k.addr);
    let mut want = vec![squatter, pod];
    want.sort_by_key(|k| k.addr);
    assert_eq!(left, want);
    assert_eq!(map.get(&pod, 0).unwrap(), real);
}
