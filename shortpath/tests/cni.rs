//! The CNI plugin as a runtime drives it: the binary exec'd with crafted
//! CNI_* environments and configs on stdin, inside a lab node whose
//! shortpathd it talks to, with the reference `host-local` IPAM plugin.

mod common;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::{
    assert_all_ok,
    cni::{self, plugin, PodNs, Run, PLUGIN, REFERENCE_PLUGINS},
    TestLab,
};
use serde_json::{json, Value};
use shortpath::{netns::Netns, probe};

const T: Duration = Duration::from_secs(3);

type Fixture = cni::NodeA;

impl Fixture {
    fn fixture(prefix: &str) -> Self {
        Self::new(prefix, "shortpath-test")
    }

    fn config(&self, version: &str) -> Value {
        self.conf(version, 100, 200)
    }

    fn endpoints(&self) -> Value {
        shortpath::agent::api::call(&self.sock(), &shortpath::agent::api::Request::EndpointList)
            .unwrap()
    }
}

fn err_code(r: &Run) -> u64 {
    assert!(!r.ok, "expected an error, got {}", r.out);
    assert!(
        r.out["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.out
    );
    r.out["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no code: {}", r.out))
}

#[test]
fn version_and_every_error_the_spec_defines_without_a_node() {
    // No root needed: nothing is touched before these checks.
    let conf = |v: &str| {
        json!({"cniVersion": v, "name": "n", "type": "shortpath",
        "socket": "/nonexistent/api.sock", "ipam": {"type": "host-local"}})
    };
    let r = plugin(None, &[("CNI_COMMAND", "VERSION")], &conf("1.0.0"));
    assert!(r.ok);
    assert_eq!(
        r.out["supportedVersions"],
        json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", REFERENCE_PLUGINS),
    ];
    let without =
        |k: &str| -> Vec<(&str, &str)> { add.iter().copied().filter(|(n, _)| *n != k).collect() };
    for missing in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        let r = plugin(None, &without(missing), &conf("1.0.0"));
        assert_eq!(err_code(&r), 4, "without {missing}: {}", r.out);
        assert_eq!(r.out["cniVersion"], "1.0.0");
    }
    let mut bad = add.to_vec();
    bad[0] = ("CNI_COMMAND", "FROB");
    assert_eq!(err_code(&plugin(None, &bad, &conf("1.0.0"))), 4);
    // Not JSON: 6. JSON but not a config: 7. A version it does not speak: 1.
    let raw = |stdin: &str| {
        let mut c = Command::new(PLUGIN);
        c.env_clear().stdin(Stdio::piped()).stdout(Stdio::piped());
        for (k, v) in add {
            c.env(k, v);
        }
        let mut ch = c.spawn().unwrap();
        ch.stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = ch.wait_with_output().unwrap();
        Run {
            ok: o.status.success(),
            out: serde_json::from_slice(&o.stdout).unwrap(),
        }
    };
    assert_eq!(err_code(&raw("{not json")), 6);
    assert_eq!(err_code(&raw(r#"{"cniVersion":"1.0.0"}"#)), 7);
    assert_eq!(err_code(&plugin(None, &add, &conf("0.2.0"))), 1);
    let mut other = conf("1.0.0");
    other["type"] = "bridge".into();
    assert_eq!(err_code(&plugin(None, &add, &other)), 7);
    // The agent is not there: ADD says try again later, STATUS not available.
    let r = plugin(None, &add, &conf("1.1.0"));
    assert_eq!(err_code(&r), 11, "{}", r.out);
    assert!(
        r.out["msg"].as_str().unwrap().contains("shortpathd"),
        "{}",
        r.out
    );
    let r = plugin(
        None,
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", REFERENCE_PLUGINS)],
        &conf("1.1.0"),
    );
    assert_eq!(err_code(&r), 50, "{}", r.out);
}

#[test]
fn add_check_del_in_every_version_leave_nothing_behind() {
    common::root_or_skip!();
    assert!(
        Path::new(REFERENCE_PLUGINS).join("host-local").exists(),
        "run scripts/setup.sh (containernetworking-plugins)"
    );
    let f = Fixture::fixture("cn");
    let pods = f.lab.pod_endpoints();
    let remote = pods.iter().find(|p| p.name == "pod-b").unwrap().clone();
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let pod = PodNs::new(format!("{}-c{i}", f.lab.name));
        let id = format!("ctr{i}");
        let conf = f.config(version);
        let r = f.run("ADD", &id, &pod.path(), &conf);
        assert!(r.ok, "ADD {version}: {}", r.out);
        let res = &r.out;
        assert_eq!(res["cniVersion"], version);
        assert_eq!(res["ips"].as_array().unwrap().len(), 2, "{res}");
        let v4: std::net::IpAddr = res["ips"][0]["address"]
            .as_str()
            .unwrap()
            .trim_end_matches("/32")
            .parse()
            .unwrap();
        let v6: std::net::IpAddr = res["ips"][1]["address"]
            .as_str()
            .unwrap()
            .trim_end_matches("/128")
            .parse()
            .unwrap();
        assert_eq!(res["ips"][0]["gateway"], "169.254.1.1");
        assert_eq!(
            res["ips"][0].get("version").is_some(),
            version.starts_with("0."),
            "{res}"
        );
        assert_eq!(res["interfaces"][1]["name"], "eth0");
        assert_eq!(res["interfaces"][1]["sandbox"], pod.path());
        // Pod → pod on the other node, pod → node, node → pod, both families.
        let me = probe::Endpoint {
            name: id.clone(),
            netns: Netns::new(&pod.0),
            ipv4: Some(v4),
            ipv6: Some(v6),
        };
        assert_all_ok(&probe::probe_pair(&me, &remote, 56, T));
        let node = probe::Endpoint {
            name: "node-a".into(),
            netns: Netns::new(&f.ns),
            ipv4: Some("192.168.1.1".parse().unwrap()),
            ipv6: Some("fd00:192:168:1::1".parse().unwrap()),
        };
        assert_all_ok(&probe::probe_pair(&me, &node, 56, T));
        assert_all_ok(&probe::probe_pair(&node, &me, 56, T));
        // The agent has it, in the kernel, with from_pod on its host veth.
        let eps = f.endpoints();
        let ep = eps["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"]["id"] == format!("{id}_eth0"))
            .unwrap_or_else(|| panic!("{eps}"));
        assert_eq!(ep["in_kernel"], true);
        let host = ep["endpoint"]["host_if"].as_str().unwrap().to_owned();
        assert!(common::kernel::attached(&f.ns).contains(&(
            host.clone(),
            "tcx",
            "ingress",
            "from_pod".into()
        )));
        assert!(f.host_veths().contains(&host), "{:?}", f.host_veths());
        assert_eq!(
            f.ipam_files().len(),
            2,
            "one v4 and one v6 lease: {:?}",
            f.ipam_files()
        );
        // CHECK with the result; ADD again: the interface exists.
        let mut c = conf.clone();
        c["prevResult"] = res.clone();
        let r = f.run("CHECK", &id, &pod.path(), &c);
        if version == "0.3.1" {
            assert_eq!(err_code(&r), 1, "CHECK does not exist in 0.3.1: {}", r.out);
        } else {
            assert!(r.ok, "CHECK {version}: {}", r.out);
        }
        let r = f.run("ADD", &id, &pod.path(), &conf);
        assert_eq!(err_code(&r), 100, "{}", r.out);
        // DEL, DEL again, DEL without a netns, DEL after the netns is gone.
        let mut d = conf.clone();
        d["prevResult"] = res.clone();
        for netns in [pod.path(), pod.path(), String::new()] {
            let r = f.run("DEL", &id, &netns, &d);
            assert!(r.ok, "DEL {version} ({netns:?}): {}", r.out);
        }
        drop(pod);
        let r = f.run("DEL", &id, &format!("/run/netns/{}-c{i}", f.lab.name), &d);
        assert!(r.ok, "DEL after the netns is gone: {}", r.out);
        assert!(!f.host_veths().contains(&host), "{host} left behind");
        let eps = f.endpoints();
        assert!(!eps.to_string().contains(&format!("{id}_eth0")), "{eps}");
    }
    assert!(f.ipam_files().is_empty(), "IPAM left {:?}", f.ipam_files());
    assert_eq!(
        f.endpoints()["map_entries"],
        2,
        "only the lab's pod remains"
    );
    let log = std::fs::read_to_string(f.log.path()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("container=ctr0")
            && l.contains("command=ADD")
            && l.contains("result=ok")),
        "{log}"
    );
}

#[test]
fn a_failed_add_releases_its_address_and_a_del_after_it_succeeds() {
    common::root_or_skip!();
    let f = Fixture::fixture("cf");
    let pod = PodNs::new(format!("{}-cx", f.lab.name));
    // IPAM hands out an address outside the node's pod CIDR: the agent
    // refuses the endpoint after IPAM and the wiring ran.
    let mut conf = f.config("1.0.0");
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.250.0.0/24"}]]);
    let r = f.run("ADD", "bad1", &pod.path(), &conf);
    assert!(!r.ok, "{}", r.out);
    assert!(
        r.out["details"]
            .as_str()
            .unwrap_or_default()
            .contains("outside"),
        "{}",
        r.out
    );
    assert!(
        f.ipam_files().is_empty(),
        "address not released: {:?}",
        f.ipam_files()
    );
    assert!(f.host_veths().is_empty(), "{:?}", f.host_veths());
    let r = f.run("DEL", "bad1", &pod.path(), &conf);
    assert!(r.ok, "DEL after a failed ADD: {}", r.out);
}

#[test]
fn with_the_agent_down_add_says_try_again_and_del_still_cleans_up() {
    common::root_or_skip!();
    let f = Fixture::fixture("cd");
    let pod = PodNs::new(format!("{}-cy", f.lab.name));
    let conf = f.config("1.1.0");
    let r = f.run("ADD", "down1", &pod.path(), &conf);
    assert!(r.ok, "{}", r.out);
    let res = r.out.clone();
    let host = f.host_veths().pop().unwrap();
    assert_eq!(f.ipam_files().len(), 2);
    // Agent down (SIGKILL: its pins stay, the node keeps forwarding).
    let sock = PathBuf::from(format!(
        "/run/shortpath/{}/agents/node-a/api.sock",
        f.lab.name
    ));
    let h = shortpath::agent::api::call(&sock, &shortpath::agent::api::Request::Health).unwrap();
    let pid = h["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let st = plugin(
        Some(&f.ns),
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", REFERENCE_PLUGINS)],
        &conf,
    );
    assert_eq!(err_code(&st), 50);
    let pod2 = PodNs::new(format!("{}-cz", f.lab.name));
    assert_eq!(err_code(&f.run("ADD", "down2", &pod2.path(), &conf)), 11);
    // DEL: veth, IPAM and the map entries go without the agent.
    let mut d = conf.clone();
    d["prevResult"] = res.clone();
    let r = f.run("DEL", "down1", &pod.path(), &d);
    assert!(r.ok, "DEL with the agent down: {}", r.out);
    assert!(!f.host_veths().contains(&host));
    assert!(f.ipam_files().is_empty(), "{:?}", f.ipam_files());
    // The map no longer has the pod's addresses: read it as the agent
    // would on its next start.
    let root: shortpath::dataplane::PinRoot = format!("/sys/fs/bpf/shortpath/{}", f.lab.name)
        .parse()
        .unwrap();
    let node: shortpath::dataplane::NodeName = "node-a".parse().unwrap();
    let addrs: Vec<std::net::IpAddr> = res["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        shortpath::dataplane::remove_pinned_addresses(&root, &node, &addrs).unwrap(),
        0,
        "entries were still there"
    );
}

/// First in a chain, followed by the reference `portmap` plugin: portmap
/// gets our result as prevResult, passes it on, and its hostPort DNAT
/// reaches the pod (whose replies to a non-pod address go through the
/// node's stack, where conntrack undoes the DNAT).
#[test]
fn chained_before_portmap_a_host_port_reaches_the_pod() {
    common::root_or_skip!();
    assert!(
        Path::new(REFERENCE_PLUGINS).join("portmap").exists(),
        "run scripts/setup.sh"
    );
    let f = Fixture::fixture("cp");
    let pod = PodNs::new(format!("{}-cp", f.lab.name));
    let conf = f.config("1.0.0");
    let r = f.run("ADD", "pm1", &pod.path(), &conf);
    assert!(r.ok, "{}", r.out);
    let ours = r.out.clone();
    let portmap = |command: &str| {
        let pm = json!({
            "cniVersion": "1.0.0",
            "name": "shortpath-test",
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]},
            "prevResult": ours,
        });
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", f.ns))
            .arg(Path::new(REFERENCE_PLUGINS).join("portmap"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in cni::env(command, "pm1", &pod.path()) {
            c.env(k, v);
        }
        let mut ch = c.spawn().unwrap();
        ch.stdin
            .take()
            .unwrap()
            .write_all(pm.to_string().as_bytes())
            .unwrap();
        let o = ch.wait_with_output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, out) = portmap("ADD");
    assert!(ok, "portmap ADD: {out}");
    let passed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(passed["ips"], ours["ips"], "portmap passes our result on");
    // A server in the pod on 8080; a client on node-b to node-a:18080.
    let pod_ns = Netns::new(&pod.0);
    let server = shortpath::netns::spawn_in(&pod_ns, || {
        let l = std::net::TcpListener::bind("0.0.0.0:8080").unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        let n = std::io::Read::read(&mut c, &mut buf).unwrap();
        c.write_all(&buf[..n]).unwrap();
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let node_b = Netns::new(format!("{}-node-b", f.lab.name));
    let echoed = shortpath::netns::run_in_blocking(&node_b, || {
        let addr: std::net::SocketAddr = "192.168.1.1:18080".parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&addr, T).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"via-hostport").unwrap();
        let mut buf = [0u8; 16];
        let n = std::io::Read::read(&mut c, &mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .unwrap();
    assert_eq!(echoed, "via-hostport");
    server.join().unwrap().unwrap();
    // DEL in a chain's order: portmap first, then shortpath.
    let (ok, out) = portmap("DEL");
    assert!(ok, "portmap DEL: {out}");
    let mut d = conf.clone();
    d["prevResult"] = ours.clone();
    assert!(f.run("DEL", "pm1", &pod.path(), &d).ok);
    assert!(f.host_veths().is_empty() && f.ipam_files().is_empty());
}

/// `lab up --cni`: each agent writes its conflist once ready, and leaves it
/// when it stops (DEL must keep working while the agent is down).
#[test]
fn the_agent_writes_its_conflist_once_ready_and_leaves_it_when_stopped() {
    common::root_or_skip!();
    let lab = TestLab::up_with("cw", None, &["--cni"]);
    let dir = format!("/run/shortpath/{}/agents/node-a", lab.name);
    let path = format!("{dir}/cni/net.d/05-shortpath.conflist");
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o644
    );
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(c["cniVersion"], "1.0.0");
    assert_eq!(
        c["cniVersions"],
        json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    assert_eq!(c["plugins"][0]["socket"], format!("{dir}/api.sock"));
    assert_eq!(
        c["plugins"][0]["ipam"]["ranges"][0][0]["rangeStart"],
        "172.17.1.100"
    );
    let log = std::fs::read_to_string(format!("{dir}/agent.log")).unwrap();
    let ready = log.find(" ready ").unwrap();
    let written = log.find("CNI configuration written").unwrap();
    assert!(written > ready, "written before ready:\n{log}");
    let sock = PathBuf::from(format!("{dir}/api.sock"));
    let h = shortpath::agent::api::call(&sock, &shortpath::agent::api::Request::Health).unwrap();
    let pid = nix::unistd::Pid::from_raw(h["pid"].as_i64().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = std::time::Instant::now();
    while nix::sys::signal::kill(pid, None).is_ok() && t.elapsed() < T {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        Path::new(&path).exists(),
        "the conflist went with the agent"
    );
}

/// GC removes what the runtime no longer lists; a plugin earlier in the
/// chain keeps its entries in our result (prevResult passthrough); CHECK
/// fails when the pod lost its address.
#[test]
fn gc_prev_result_passthrough_and_a_failing_check() {
    common::root_or_skip!();
    let f = Fixture::fixture("cg");
    let (p1, p2) = (
        PodNs::new(format!("{}-g1", f.lab.name)),
        PodNs::new(format!("{}-g2", f.lab.name)),
    );
    let mut conf = f.config("1.1.0");
    conf["prevResult"] = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "earlier0"}],
        "ips": [{"address": "10.9.9.9/32", "interface": 0}],
        "routes": [],
    });
    let r = f.run("ADD", "g1", &p1.path(), &conf);
    assert!(r.ok, "{}", r.out);
    assert_eq!(r.out["interfaces"][0]["name"], "earlier0", "{}", r.out);
    assert_eq!(r.out["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(r.out["ips"][0]["address"], "10.9.9.9/32");
    assert_eq!(
        r.out["ips"][1]["interface"], 2,
        "our ips point at our pod interface"
    );
    let first = r.out.clone();
    let conf = f.config("1.1.0");
    let r = f.run("ADD", "g2", &p2.path(), &conf);
    assert!(r.ok, "{}", r.out);
    let second = r.out.clone();
    assert_eq!(f.host_veths().len(), 2);
    // CHECK notices a pod that lost its address.
    let ip = second["ips"][0]["address"].as_str().unwrap().to_owned();
    let o = Command::new("ip")
        .args(["-n", &p2.0, "addr", "del", &ip, "dev", "eth0"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut c = conf.clone();
    c["prevResult"] = second.clone();
    let r = f.run("CHECK", "g2", &p2.path(), &c);
    assert!(
        !r.ok && r.out["msg"].as_str().unwrap().contains("not on eth0"),
        "{}",
        r.out
    );
    // GC with only g1 valid: g2's endpoint and veth go, g1's stay.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "eth0"}]);
    let r = plugin(
        Some(&f.ns),
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", REFERENCE_PLUGINS)],
        &gc,
    );
    assert!(r.ok, "GC: {}", r.out);
    let eps = f.endpoints().to_string();
    assert!(eps.contains("g1_eth0") && !eps.contains("g2_eth0"), "{eps}");
    assert_eq!(f.host_veths().len(), 1);
    // The runtime still sends DEL for both: fine.
    for (id, ns, prev) in [("g1", &p1, &first), ("g2", &p2, &second)] {
        let mut d = conf.clone();
        d["prevResult"] = prev.clone();
        let r = f.run("DEL", id, &ns.path(), &d);
        assert!(r.ok, "DEL {id}: {}", r.out);
    }
    assert!(
        f.host_veths().is_empty() && f.ipam_files().is_empty(),
        "{:?} {:?}",
        f.host_veths(),
        f.ipam_files()
    );
}
