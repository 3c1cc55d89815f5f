//! shortpathd in lab nodes (`lab up --agent`): its API, restart safety,
//! reconcile, netlink watch, socket permissions, metrics, and two agents
//! forwarding pod to pod. The kernel is checked with aya's query and
//! iproute2, not with the agent's own answers alone.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    os::unix::{fs::PermissionsExt as _, net::UnixStream, process::CommandExt as _},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};
use common::{assert_all_ok, kill9, ok, shortpath, stdout, TestLab};
use serde_json::{json, Value};
use shortpath::{
    netns::{self, Netns},
    probe::{self, UdpSequence},
};

const T: Duration = Duration::from_secs(3);

fn agent_up(prefix: &str) -> TestLab {
    TestLab::up_with(prefix, None, &["--agent", "--mode", "peer"])
}

fn sock(lab: &TestLab, node: &str) -> PathBuf {
    PathBuf::from(format!(
        "/run/shortpath/{}/agents/{node}/api.sock",
        lab.name
    ))
}

/// One raw request line, one raw response line.
fn raw(path: &PathBuf, line: &str) -> Value {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}"));
    s.set_read_timeout(Some(T)).unwrap();
    (&s).write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    BufReader::new(&s).read_line(&mut out).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// [`raw`], or `None` while nothing answers.
fn try_raw(path: &PathBuf, line: &str) -> Option<Value> {
    let s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    (&s).write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut out = String::new();
    BufReader::new(&s).read_line(&mut out).ok()?;
    serde_json::from_str(&out).ok()
}

fn call(path: &PathBuf, req: Value) -> Value {
    let v = raw(path, &req.to_string());
    assert_eq!(v["ok"], true, "{req} → {v}");
    v["result"].clone()
}

fn err_code(path: &PathBuf, line: &str) -> String {
    let v = raw(path, line);
    assert_eq!(v["ok"], false, "{line} → {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(!msg.is_empty(), "an error says why: {v}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

fn ip(ns: &str, args: &[&str]) {
    let o = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn mac_of(ns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", dev])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["address"].as_str().unwrap().to_owned()
}

/// Our programs' ids on every device of `ns` (TCX ingress), by device:
/// what "nothing re-created" is checked against.
fn tcx_programs(ns: &str) -> Vec<(String, u32, String)> {
    netns::run_in_blocking(&Netns::new(ns), || {
        let mut out = Vec::new();
        for i in nix::net::if_::if_nameindex().unwrap().iter() {
            let dev = i.name().to_string_lossy().into_owned();
            if let Ok((_, progs)) = SchedClassifier::query_tcx(&dev, TcAttachType::Ingress) {
                for p in progs {
                    out.push((
                        dev.clone(),
                        p.id(),
                        p.name_as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
        }
        out.sort();
        out
    })
    .unwrap()
}

/// The running agent of a node: pid and argv.
fn agent_process(lab: &TestLab, node: &str) -> (i32, Vec<String>) {
    let h = call(&sock(lab, node), json!({"op":"health"}));
    let pid = h["pid"].as_i64().unwrap() as i32;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = argv
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, argv)
}

/// Starts an agent again with the same argv in node `ns`, and waits until
/// it is ready. Returns (pid, time to ready).
fn restart(lab: &TestLab, node: &str, argv: &[String]) -> (u32, Duration) {
    let ns = format!("{}-{node}", lab.name);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(format!(
            "/run/shortpath/{}/agents/{node}/agent.log",
            lab.name
        ))
        .unwrap();
    let fd = Netns::new(&ns).open().unwrap();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: setns and setsid only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            netns::enter_in_child(&fd)?;
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let t = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    std::mem::forget(child);
    loop {
        if let Some(h) = try_raw(&sock(lab, node), r#"{"op":"health"}"#) {
            if h["result"]["ready"] == true && h["result"]["pid"] == pid {
                return (pid, t.elapsed());
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "agent did not come back"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn log_of(lab: &TestLab, node: &str) -> String {
    std::fs::read_to_string(format!(
        "/run/shortpath/{}/agents/{node}/agent.log",
        lab.name
    ))
    .unwrap()
}

/// Prints the agents' logs if the test fails (before the lab goes).
struct LogsOnPanic(String);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in ["node-a", "node-b"] {
                let p = format!("/run/shortpath/{}/agents/{node}/agent.log", self.0);
                let log = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {p} (last 40 lines, newest first)");
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

fn metrics(ns: &str) -> String {
    netns::run_in_blocking(&Netns::new(ns), || {
        let mut s = TcpStream::connect("127.0.0.1:9464").unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .unwrap()
}

fn metric(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn api_round_trips_and_bad_input_changes_nothing() {
    common::root_or_skip!();
    let lab = agent_up("ag");
    let ns = format!("{}-node-a", lab.name);
    let s = sock(&lab, "node-a");

    let h = call(&s, json!({"op":"health"}));
    assert_eq!(h["ready"], true);
    assert_eq!(h["endpoints"], 1, "the lab registered its pod");
    assert_eq!(
        call(&s, json!({"op":"mode_get"})),
        json!({"state":"uniform","mode":"peer","attach":"tcx"})
    );
    let st = call(&s, json!({"op":"status"}));
    let hooks: Vec<&str> = st["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["from_nic", "from_pod"]);
    assert!(st["programs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["attached"] == true && p["mode"] == "peer"));

    // A new endpoint on a fresh veth: map entry and from_pod on its host side.
    ip(
        &ns,
        &[
            "link", "add", "spx0", "type", "veth", "peer", "name", "spx1",
        ],
    );
    ip(&ns, &["link", "set", "spx0", "up"]);
    let pod_mac = mac_of(&ns, "spx1");
    let ep = json!({"id":"c0ffee","host_if":"spx0","addrs":["172.17.1.50","fd00:172:17:1::50"],"pod_mac":pod_mac});
    let r = call(&s, json!({"op":"endpoint_add","endpoint":ep}));
    assert_eq!(r["created"], true);
    assert!(common::kernel::attached(&ns).contains(&(
        "spx0".into(),
        "tcx",
        "ingress",
        "from_pod".into()
    )));
    let list = call(&s, json!({"op":"endpoint_list"}));
    assert_eq!(list["map_entries"], 4, "{list}");
    assert!(list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["in_kernel"] == true));

    // Bad input: a clear error each, and nothing changes.
    let before = (call(&s, json!({"op":"endpoint_list"})), tcx_programs(&ns));
    let bad_ep = |f: &dyn Fn(&mut Value)| {
        let mut e = json!({"id":"bad","host_if":"spx1","addrs":["172.17.1.60"],"pod_mac":"02:00:00:00:00:60"});
        f(&mut e);
        json!({"op":"endpoint_add","endpoint":e}).to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_request"),
        (r#"{"op":"format_disk"}"#.into(), "bad_request"),
        (r#"{"op":"mode_set","mode":"turbo"}"#.into(), "bad_request"),
        (
            r#"{"op":"endpoint_remove","id":"nobody"}"#.into(),
            "not_found",
        ),
        (
            r#"{"op":"endpoint_remove","id":"../../etc"}"#.into(),
            "invalid",
        ),
        (bad_ep(&|e| e["addrs"] = json!(["10.99.0.1"])), "invalid"),
        (
            bad_ep(&|e| e["addrs"] = json!(["172.17.1.60/24"])),
            "invalid",
        ),
        (bad_ep(&|e| e["addrs"] = json!(["172.17.2.60"])), "invalid"),
        (
            bad_ep(&|e| e["pod_mac"] = json!("zz:00:00:00:00:00")),
            "invalid",
        ),
        (bad_ep(&|e| e["host_if"] = json!("nosuchdev")), "invalid"),
        (bad_ep(&|e| e["host_if"] = json!("eth1")), "invalid"),
        (bad_ep(&|e| e["id"] = json!("a/b")), "invalid"),
        (bad_ep(&|e| e["color"] = json!("red")), "bad_request"),
        (bad_ep(&|e| e["addrs"] = json!(["172.17.1.50"])), "conflict"),
        (bad_ep(&|e| e["host_if"] = json!("spx0")), "conflict"),
    ];
    for (line, want) in &cases {
        assert_eq!(&err_code(&s, line), want, "{line}");
    }
    assert_eq!(
        (call(&s, json!({"op":"endpoint_list"})), tcx_programs(&ns)),
        before,
        "rejected requests changed something"
    );

    // Mode through the API: the kernel follows, then back.
    call(&s, json!({"op":"mode_set","mode":"redirect","attach":"tc"}));
    let att = common::kernel::attached(&ns);
    assert!(
        att.contains(&("eth1".into(), "tc", "ingress", "from_nic".into())),
        "{att:?}"
    );
    assert!(
        att.contains(&("spx0".into(), "tc", "ingress", "from_pod".into())),
        "{att:?}"
    );
    assert!(!att.iter().any(|a| a.1 == "tcx"), "{att:?}");
    call(&s, json!({"op":"mode_set","mode":"peer","attach":"tcx"}));

    // Remove: entries and program go; a second remove is not_found.
    call(&s, json!({"op":"endpoint_remove","id":"c0ffee"}));
    assert!(!common::kernel::attached(&ns).iter().any(|a| a.0 == "spx0"));
    assert_eq!(call(&s, json!({"op":"endpoint_list"}))["map_entries"], 2);
    assert_eq!(
        err_code(&s, r#"{"op":"endpoint_remove","id":"c0ffee"}"#),
        "not_found"
    );

    // The same API from the command line.
    let sp = s.to_string_lossy().into_owned();
    let h: Value = serde_json::from_str(&stdout(&ok(shortpath(&[
        "agent", "--socket", &sp, "health",
    ]))))
    .unwrap();
    assert_eq!(h["ready"], true);
    let m: Value =
        serde_json::from_str(&stdout(&ok(shortpath(&["agent", "--socket", &sp, "mode"])))).unwrap();
    assert_eq!(m["mode"], "peer");
    let o = shortpath(&["agent", "--socket", &sp, "remove", "nobody"]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    assert!(e.contains("not_found") && e.contains("nobody"), "{e}");

    // Several requests on one connection, answered in order.
    let c = UnixStream::connect(&s).unwrap();
    (&c).write_all(b"{\"op\":\"health\"}\n{\"op\":\"mode_get\"}\n")
        .unwrap();
    let mut r = BufReader::new(&c);
    for want in ["ready", "mode"] {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains(want), "{line}");
    }
}

#[test]
fn the_socket_is_root_only() {
    common::root_or_skip!();
    let lab = agent_up("as");
    let s = sock(&lab, "node-a");
    let mode = |p: &PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s), 0o600);
    assert_eq!(mode(&s.parent().unwrap().to_path_buf()), 0o700);
    let as_nobody = |path: &PathBuf| {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect({:?})\nexcept OSError as e:\n  print('refused', e.errno)\n  raise SystemExit\ntry:\n  s.sendall(b'{{\"op\":\"health\"}}\\n')\nexcept BrokenPipeError:\n  pass\nprint(s.makefile().readline().strip())\n",
            path.display().to_string()
        );
        let o = Command::new("python3")
            .args(["-c", &script])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    // The file mode keeps others out...
    let out = as_nobody(&s);
    assert!(out.starts_with("refused"), "{out}");
    // ...and so does the agent itself, should the mode ever be loosened.
    let open = PathBuf::from(format!("/tmp/sp-agent-open-{}.sock", lab.name));
    let _ = std::fs::remove_file(&open);
    std::os::unix::fs::symlink(&s, &open).unwrap();
    for dir in [s.parent().unwrap(), s.parent().unwrap().parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rundir = PathBuf::from(format!("/run/shortpath/{}", lab.name));
    let top = PathBuf::from("/run/shortpath");
    for dir in [&rundir, &top] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&open);
    let _ = std::fs::remove_file(&open);
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();
    for dir in [
        s.parent().unwrap(),
        s.parent().unwrap().parent().unwrap(),
        rundir.as_path(),
        top.as_path(),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("root only"),
        "{v}"
    );
}

#[test]
fn a_killed_agent_keeps_forwarding_and_comes_back_adopting_everything() {
    common::root_or_skip!();
    let lab = agent_up("ak");
    let pods = lab.pod_endpoints();
    let (a, b) = (&pods[0], &pods[1]);
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
    let nodes = ["node-a", "node-b"];
    let before: Vec<_> = nodes
        .iter()
        .map(|n| tcx_programs(&format!("{}-{n}", lab.name)))
        .collect();
    let lists: Vec<_> = nodes
        .iter()
        .map(|n| call(&sock(&lab, n), json!({"op":"endpoint_list"})))
        .collect();

    let v4 = UdpSequence::start(&a.netns, &b.netns, b.ipv4.unwrap(), 2000).unwrap();
    let v6 = UdpSequence::start(&b.netns, &a.netns, a.ipv6.unwrap(), 2000).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let procs: Vec<_> = nodes.iter().map(|n| agent_process(&lab, n)).collect();
    for (pid, _) in &procs {
        kill9(*pid);
    }
    // Down for a while: the pinned dataplane forwards on its own.
    std::thread::sleep(Duration::from_millis(700));
    for (n, (_, argv)) in nodes.iter().zip(&procs) {
        let (_, took) = restart(&lab, n, argv);
        assert!(took < Duration::from_secs(2), "{n}: ready after {took:?}");
    }
    std::thread::sleep(Duration::from_millis(300));
    for (what, s) in [("v4 a→b", v4), ("v6 b→a", v6)] {
        let r = s.stop().unwrap();
        assert!(r.sent > 1500, "{what}: stream too short: {r:?}");
        assert_eq!((r.lost, r.duplicated), (0, 0), "{what}: {r:?}");
    }
    for (i, n) in nodes.iter().enumerate() {
        let ns = format!("{}-{n}", lab.name);
        assert_eq!(
            tcx_programs(&ns),
            before[i],
            "{n}: programs were re-created"
        );
        assert_eq!(
            call(&sock(&lab, n), json!({"op":"endpoint_list"})),
            lists[i],
            "{n}"
        );
        let log = log_of(&lab, n);
        let last = log.lines().rfind(|l| l.contains(" ready ")).unwrap();
        assert!(last.contains("adopted=true"), "{n}: {last}");
    }
    // The fast path still carries the traffic.
    let st = lab.status();
    assert_eq!(st["mode"], "peer");
    assert!(st["dataplane"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["running"] == true));
}

#[test]
fn stale_endpoints_are_reconciled_on_start_and_on_veth_removal() {
    common::root_or_skip!();
    let lab = agent_up("ar");
    let ns = format!("{}-node-a", lab.name);
    let s = sock(&lab, "node-a");
    // Two extra endpoints on veths of our own.
    for (i, (host, peer)) in [("spy0", "spy1"), ("spz0", "spz1")].into_iter().enumerate() {
        ip(
            &ns,
            &["link", "add", host, "type", "veth", "peer", "name", peer],
        );
        let ep = json!({"id":format!("e{i}"),"host_if":host,"addrs":[format!("172.17.1.{}", 70 + i)],"pod_mac":mac_of(&ns, peer)});
        call(&s, json!({"op":"endpoint_add","endpoint":ep}));
    }
    assert_eq!(call(&s, json!({"op":"health"}))["endpoints"], 3);

    // Agent down, a veth deleted behind its back: the next start removes
    // its endpoint and counts it.
    let (pid, argv) = agent_process(&lab, "node-a");
    kill9(pid);
    ip(&ns, &["link", "del", "spy0"]);
    restart(&lab, "node-a", &argv);
    let list = call(&s, json!({"op":"endpoint_list"}));
    let ids: Vec<&str> = list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint"]["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"e0") && ids.contains(&"e1"), "{list}");
    assert_eq!(
        list["map_entries"], 3,
        "pod-a's two addresses and e1's: {list}"
    );
    let m = metrics(&ns);
    assert_eq!(
        metric(
            &m,
            "shortpath_reconcile_actions_total{action=\"stale_endpoint_removed\"}"
        ),
        Some(1),
        "{m}"
    );
    assert!(log_of(&lab, "node-a").contains("host veth gone: endpoint removed endpoint=e0"));

    // Agent up, a veth deleted: its endpoint goes within 100 ms.
    let t = Instant::now();
    ip(&ns, &["link", "del", "spz0"]);
    let gone = loop {
        let l = call(&s, json!({"op":"endpoint_list"}));
        if l["map_entries"] == 2 && l["endpoints"].as_array().unwrap().len() == 1 {
            break t.elapsed();
        }
        assert!(t.elapsed() < T, "endpoint e1 still there: {l}");
        std::thread::sleep(Duration::from_millis(2));
    };
    eprintln!("endpoint removed {gone:?} after its veth");
    assert!(gone < Duration::from_millis(100), "took {gone:?}");
    let m = metrics(&ns);
    assert_eq!(
        metric(
            &m,
            "shortpath_reconcile_actions_total{action=\"stale_endpoint_removed\"}"
        ),
        Some(2),
        "{m}"
    );
    assert!(
        metric(&m, "shortpath_netlink_events_total{kind=\"link_deleted\"}").unwrap_or(0) >= 1,
        "{m}"
    );

    // Records lost (state file gone): the map's entries are adopted under
    // the device's name, and the first real add on that device takes over.
    let (pid, argv) = agent_process(&lab, "node-a");
    kill9(pid);
    std::fs::remove_file(format!(
        "/run/shortpath/{}/agents/node-a/endpoints.json",
        lab.name
    ))
    .unwrap();
    restart(&lab, "node-a", &argv);
    let l = call(&s, json!({"op":"endpoint_list"}));
    let e = &l["endpoints"][0]["endpoint"];
    assert_eq!(
        (e["adopted"].clone(), e["id"].clone()),
        (json!(true), e["host_if"].clone()),
        "{l}"
    );
    let again =
        json!({"id":"pod-a","host_if":e["host_if"],"addrs":e["addrs"],"pod_mac":e["pod_mac"]});
    call(&s, json!({"op":"endpoint_add","endpoint":again}));
    let l = call(&s, json!({"op":"endpoint_list"}));
    assert_eq!(l["endpoints"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l["endpoints"][0]["endpoint"]["id"], "pod-a", "{l}");
    assert_eq!(l["map_entries"], 2, "{l}");
}

#[test]
fn two_agents_forward_pod_to_pod_in_peer_mode_and_export_metrics() {
    common::root_or_skip!();
    let lab = agent_up("a2");
    let pods = lab.pod_endpoints();
    assert_all_ok(&probe::probe_all(&pods, 56, T));
    let ns_a = format!("{}-node-a", lab.name);
    let ns_b = format!("{}-node-b", lab.name);
    let before = metrics(&ns_b);
    let seq =
        UdpSequence::start(&pods[0].netns, &pods[1].netns, pods[1].ipv4.unwrap(), 1000).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let r = seq.stop().unwrap();
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    let after = metrics(&ns_b);
    let key =
        "shortpath_packets_total{program=\"from_nic\",device=\"eth1\",reason=\"redirect_peer\"}";
    let peer = metric(&after, key).unwrap_or(0) - metric(&before, key).unwrap_or(0);
    assert!(
        peer >= r.received,
        "node-b's from_nic put {peer} of {} packets into the pod:\n{after}",
        r.received
    );
    for (ns, m) in [(&ns_a, metrics(&ns_a)), (&ns_b, after)] {
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{ns}: {m}");
        assert_eq!(metric(&m, "shortpath_endpoints "), Some(1), "{ns}: {m}");
        assert_eq!(
            metric(&m, "shortpath_mode{mode=\"peer\"}"),
            Some(1),
            "{ns}: {m}"
        );
        assert_eq!(metric(&m, "shortpath_agent_ready "), Some(1), "{ns}: {m}");
        assert!(
            m.contains("shortpath_api_requests_total{op=\"endpoint_add\",outcome=\"ok\"} 1"),
            "{ns}: {m}"
        );
    }
    // Run time per program, while bpf_stats is on (restored after).
    let stats = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap();
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").unwrap();
    let seq =
        UdpSequence::start(&pods[0].netns, &pods[1].netns, pods[1].ipv4.unwrap(), 1000).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = seq.stop();
    let m = metrics(&ns_b);
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", stats.trim()).unwrap();
    let run = |what: &str| {
        m.lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "shortpath_program_{what}_total{{program=\"from_nic\""
                ))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert!(run("runs") >= 300 && run("run_time_ns") > 0, "{m}");

    // Route and neighbour changes on the NIC are seen.
    let events = |kind: &str| {
        metric(
            &metrics(&ns_a),
            &format!("shortpath_netlink_events_total{{kind=\"{kind}\"}}"),
        )
        .unwrap_or(0)
    };
    let (routes, neighs) = (events("nic_route_changed"), events("nic_neighbour_changed"));
    ip(
        &ns_a,
        &[
            "neigh",
            "replace",
            "192.168.1.77",
            "lladdr",
            "02:00:00:00:00:77",
            "dev",
            "eth1",
        ],
    );
    ip(
        &ns_a,
        &[
            "route",
            "add",
            "10.77.0.0/16",
            "via",
            "192.168.1.77",
            "dev",
            "eth1",
        ],
    );
    let t = Instant::now();
    while (events("nic_route_changed"), events("nic_neighbour_changed")) <= (routes, neighs) {
        assert!(t.elapsed() < T, "no route/neighbour event counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(events("nic_route_changed") > routes && events("nic_neighbour_changed") > neighs);

    // `mode` goes through the agents; `lab down` stops them.
    ok(shortpath(&["mode", "bridge", "--name", &lab.name]));
    assert_eq!(
        metric(&metrics(&ns_a), "shortpath_mode{mode=\"bridge\"}"),
        Some(1)
    );
    assert!(common::kernel::attached(&ns_a).is_empty());
    let pid = call(&sock(&lab, "node-a"), json!({"op":"health"}))["pid"]
        .as_i64()
        .unwrap();
    ok(shortpath(&["lab", "down", "--name", &lab.name]));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "agent {pid} still runs"
    );
}

/// Kills the agent with SIGKILL at random moments while a client adds,
/// moves and removes endpoints and switches modes; after each kill the
/// next start (without `--mode`) must leave records, map and attachments
/// in agreement.
#[test]
fn sigkill_during_changes_is_repaired_by_the_next_start() {
    common::root_or_skip!();
    let lab = agent_up("kl");
    let _logs = LogsOnPanic(lab.name.clone());
    let ns = format!("{}-node-a", lab.name);
    let s = sock(&lab, "node-a");
    const VETHS: usize = 4;
    let mut macs = Vec::new();
    for i in 0..VETHS {
        ip(
            &ns,
            &[
                "link",
                "add",
                &format!("spk{i}"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("spl{i}"),
            ],
        );
        macs.push(mac_of(&ns, &format!("spl{i}")));
    }
    let mut seed = u64::from(std::process::id()) | 1;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut kills_mid_change = 0;
    for round in 0..20 {
        let (pid, argv) = agent_process(&lab, "node-a");
        // Restarts name no mode: the agent keeps or repairs what it finds.
        let argv: Vec<String> = argv
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                let flag = |s: &str| matches!(s, "--mode" | "--attach");
                !(flag(a) || (*i > 0 && flag(&argv[i - 1])))
            })
            .map(|(_, a)| a.clone())
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, sp, m) = (stop.clone(), s.clone(), macs.clone());
        let mut r2 = rand(1 << 30) | 1;
        let client = std::thread::spawn(move || {
            let mut next = move |n: u64| {
                r2 = r2
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (r2 >> 33) % n
            };
            let mut answered = 0;
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let i = next(VETHS as u64) as usize;
                let req = match next(5) {
                    0 | 1 => {
                        json!({"op":"endpoint_add","endpoint":{"id":format!("k{i}"),"host_if":format!("spk{i}"),
                        "addrs":[format!("172.17.1.{}", 100 + i * 10 + next(3) as usize)],"pod_mac":m[i]}})
                    }
                    2 => json!({"op":"endpoint_remove","id":format!("k{i}")}),
                    _ => {
                        let mode = ["bridge", "redirect", "peer"][next(3) as usize];
                        let attach = ["tcx", "tc"][next(2) as usize];
                        json!({"op":"mode_set","mode":mode,"attach":attach})
                    }
                };
                let Ok(c) = UnixStream::connect(&sp) else {
                    break;
                };
                if (&c).write_all(format!("{req}\n").as_bytes()).is_err() {
                    break;
                }
                let mut line = String::new();
                if BufReader::new(&c).read_line(&mut line).unwrap_or(0) == 0 {
                    return (answered, true);
                }
                answered += 1;
            }
            (answered, false)
        });
        std::thread::sleep(Duration::from_millis(20 + rand(400)));
        kill9(pid);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (answered, cut) = client.join().unwrap();
        kills_mid_change += usize::from(cut);
        restart(&lab, "node-a", &argv);

        // Records, map and attachments agree.
        let what = format!("round {round} ({answered} answered before the kill)");
        let list = call(&s, json!({"op":"endpoint_list"}));
        let eps = list["endpoints"].as_array().unwrap();
        assert!(eps.iter().all(|e| e["in_kernel"] == true), "{what}: {list}");
        let addrs: usize = eps
            .iter()
            .map(|e| e["endpoint"]["addrs"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            list["map_entries"], addrs,
            "{what}: map entries without a record: {list}"
        );
        let mode = call(&s, json!({"op":"mode_get"}));
        assert_eq!(mode["state"], "uniform", "{what}: {mode}");
        let att = common::kernel::attached(&ns);
        let mut want: Vec<(String, &str, &str, String)> = Vec::new();
        if mode["mode"] != "bridge" {
            let kind = if mode["attach"] == "tc" { "tc" } else { "tcx" };
            want.push(("eth1".into(), kind, "ingress", "from_nic".into()));
            for e in eps {
                let dev = e["endpoint"]["host_if"].as_str().unwrap().to_owned();
                want.push((dev, kind, "ingress", "from_pod".into()));
            }
        }
        want.sort();
        assert_eq!(att, want, "{what}: mode {mode}");
    }
    eprintln!("{kills_mid_change} of 20 kills cut a request short");
    assert!(kills_mid_change > 0, "no kill hit a request in progress");
}
