//! The kernel is the truth: status, `mode` and `mode bridge` read what is
//! attached from the kernel, so a crash, a kill or a signal at any point of
//! a mode switch leaves a state that is reported as it is and that the
//! next command repairs. Every check of "what is attached" here is made
//! without shortpath's own code (aya's TCX query, iproute2's tc).

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{kernel, *};
use serde_json::Value;

const TWO_BY_TWO: &str =
    "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 2\n";

fn node_namespaces(lab: &TestLab) -> Vec<String> {
    lab.plan().nodes.iter().map(|n| n.netns.clone()).collect()
}

/// (netns, device) of every port status reports as attached.
fn reported_attached(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["dataplane"]["programs"]
        .as_array()
        .expect("programs[]")
        .iter()
        .filter(|p| p["attached"] == true)
        .map(|p| {
            (
                p["netns"].as_str().unwrap().to_owned(),
                p["ifname"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// (netns, device) of every ingress attachment the kernel shows.
fn kernel_attached(nss: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = kernel::attached_in(nss)
        .into_iter()
        .filter(|(_, (_, _, dir, _))| *dir == "ingress")
        .map(|(ns, (dev, ..))| (ns, dev))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// After `mode bridge`, nothing of ours is attached anywhere, and status
/// agrees with itself and with the kernel.
#[track_caller]
fn assert_clean_bridge(lab: &TestLab) {
    let nss = node_namespaces(lab);
    let left = kernel::attached_in(&nss);
    assert!(
        left.is_empty(),
        "still attached after `mode bridge`: {left:?}"
    );
    let v = lab.status();
    assert_eq!(v["mode"], "bridge", "{v}");
    assert_eq!(v["drift"], Value::Null, "{v}");
    assert!(reported_attached(&v).is_empty());
}

#[test]
fn status_reports_the_kernel_not_the_state_file() {
    root_or_skip!();
    let lab = TestLab::up_with("kt", None, &["--mode", "peer", "--attach", "tc"]);
    let nss = node_namespaces(&lab);
    let v = lab.status();
    assert_eq!(v["mode"], "peer");
    assert_eq!(v["drift"], Value::Null);
    assert_eq!(v["dataplane"]["attach"], "tc");
    for p in v["dataplane"]["programs"].as_array().unwrap() {
        assert_eq!(p["attached"], true, "{p}");
        assert_eq!(p["attach"], "tc", "{p}");
        assert_eq!(p["mode"], "peer", "{p}");
        assert!(p["program_id"].as_u64().unwrap() > 0, "{p}");
    }
    assert_eq!(reported_attached(&v), kernel_attached(&nss));

    // Someone removes one filter behind shortpath's back: status says so.
    let node_a = &nss[0];
    let o = Command::new("tc")
        .args([
            "-n", node_a, "filter", "del", "dev", "eth1", "ingress", "pref", "1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = lab.status();
    assert_eq!(v["mode"], "mixed", "{v}");
    let drift = v["drift"].as_str().expect("drift reported");
    assert!(drift.contains("ports disagree"), "{drift}");
    assert!(drift.contains("nothing attached"), "{drift}");
    assert_eq!(reported_attached(&v), kernel_attached(&nss));
    let shown = stdout(&ok(shortpath(&["mode", "--name", &lab.name])));
    assert!(shown.starts_with("mixed"), "{shown}");
    assert!(shown.contains("drift: ports disagree"), "{shown}");

    // The state file says bridge while the kernel runs peer everywhere.
    ok(shortpath(&["mode", "--name", &lab.name, "peer"]));
    std::fs::write(
        std::path::Path::new("/run/shortpath")
            .join(&lab.name)
            .join("dataplane.json"),
        r#"{"mode":"bridge","attach":null}"#,
    )
    .unwrap();
    let v = lab.status();
    assert_eq!(v["mode"], "peer");
    let drift = v["drift"].as_str().expect("drift reported");
    assert!(
        drift.contains("the state file records bridge, the kernel runs peer (tc)"),
        "{drift}"
    );

    ok(shortpath(&["mode", "--name", &lab.name, "bridge"]));
    assert_clean_bridge(&lab);
}

/// A fault between the nodes of a switch: first an error, then a crash
/// (abort); both leave node-a switched and node-b not.
fn fault_between_nodes(attach: &str) {
    let lab = TestLab::up("kf");
    for fault in ["mode-between-nodes", "abort:mode-between-nodes"] {
        let o = shortpath_env(
            &["mode", "--name", &lab.name, "peer", "--attach", attach],
            &[("SHORTPATH_FAULT", fault)],
        );
        assert!(!o.status.success(), "{fault}");
        let nss = node_namespaces(&lab);
        let seen = kernel_attached(&nss);
        assert!(
            seen.iter().all(|(ns, _)| *ns == nss[0]) && seen.len() == 2,
            "{fault}: node-a alone switched: {seen:?}"
        );
        let v = lab.status();
        assert_eq!(v["mode"], "mixed", "{fault}: {v}");
        assert!(v["drift"].is_string(), "{fault}: {v}");
        assert_eq!(reported_attached(&v), seen, "{fault}: status lies");
        ok(shortpath(&["mode", "--name", &lab.name, "bridge"]));
        assert_clean_bridge(&lab);
    }
}

#[test]
fn fault_between_nodes_then_bridge_detaches_everything_tcx() {
    root_or_skip!();
    fault_between_nodes("tcx");
}

#[test]
fn fault_between_nodes_then_bridge_detaches_everything_tc() {
    root_or_skip!();
    fault_between_nodes("tc");
}

/// Delays spread over a whole `mode peer` run, in a different order each
/// time the test runs.
fn delays() -> Vec<u64> {
    let mut v: Vec<u64> = vec![
        0, 1, 3, 5, 8, 12, 16, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80, 90, 100, 120, 150, 200,
        300,
    ];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
    v
}

#[test]
fn sigkill_at_any_point_of_a_switch_is_repaired_by_mode_bridge() {
    root_or_skip!();
    let lab = TestLab::up_with("kk", Some(TWO_BY_TWO), &[]);
    let nss = node_namespaces(&lab);
    let mut half = 0;
    for (i, delay) in delays().into_iter().enumerate() {
        let attach = if i % 2 == 0 { "tcx" } else { "tc" };
        let mut child = Command::new(BIN)
            .args(["mode", "--name", &lab.name, "peer", "--attach", attach])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();

        // Whatever the kill left, status reports exactly what the kernel has.
        let seen = kernel_attached(&nss);
        if !seen.is_empty() && seen.len() < 6 {
            half += 1;
        }
        let v = lab.status();
        assert_eq!(
            reported_attached(&v),
            seen,
            "killed after {delay} ms ({attach}): status lies"
        );
        if !seen.is_empty() {
            assert_ne!(v["mode"], "bridge", "killed after {delay} ms: {v}");
        }
        let o = shortpath(&["mode", "--name", &lab.name, "bridge"]);
        assert!(
            o.status.success(),
            "after a kill at {delay} ms: {}",
            stderr(&o)
        );
        assert_clean_bridge(&lab);
    }
    eprintln!("{half} kills left a half-switched node");
}

/// Sends `sig` to `child` once `after` has passed.
fn signal_after(child: &Child, sig: nix::sys::signal::Signal, after: Duration) {
    std::thread::sleep(after);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[track_caller]
fn assert_interrupted(child: Child, code: i32) -> String {
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(err.contains("interrupted by SIG"), "{err}");
    err
}

#[test]
fn sigint_during_lab_up_removes_the_lab_it_was_building() {
    root_or_skip!();
    let name = unique_name("ku");
    let child = spawn_shortpath(
        &["lab", "up", "--name", &name, "--mode", "peer"],
        &[("SHORTPATH_FAULT", "stall:pods:5000")],
    );
    signal_after(
        &child,
        nix::sys::signal::SIGINT,
        Duration::from_millis(1500),
    );
    let err = assert_interrupted(child, 130);
    assert!(err.contains(&format!("removed lab {name}")), "{err}");
    assert!(
        namespaces_of(&name).is_empty(),
        "{:?}",
        namespaces_of(&name)
    );
    assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
    assert!(!shortpath::dataplane::PinRoot::shortpath()
        .path()
        .join(&name)
        .exists());
}

#[test]
fn sigterm_during_a_switch_puts_the_mode_back() {
    root_or_skip!();
    let lab = TestLab::up_with("kr", None, &["--mode", "redirect", "--attach", "tc"]);
    let child = spawn_shortpath(
        &["mode", "--name", &lab.name, "peer", "--attach", "tcx"],
        &[("SHORTPATH_FAULT", "stall:mode-between-nodes:5000")],
    );
    signal_after(
        &child,
        nix::sys::signal::SIGTERM,
        Duration::from_millis(1500),
    );
    let err = assert_interrupted(child, 143);
    assert!(err.contains("back in redirect mode"), "{err}");
    let v = lab.status();
    assert_eq!(v["mode"], "redirect", "{v}");
    assert_eq!(v["dataplane"]["attach"], "tc", "{v}");
    assert_eq!(v["drift"], Value::Null, "{v}");
    let seen = kernel::attached_in(&node_namespaces(&lab));
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter().all(|(_, (_, kind, _, _))| *kind == "tc"),
        "{seen:?}"
    );
}

#[test]
fn signals_during_bench_and_trace_put_the_lab_back() {
    root_or_skip!();
    let lab = TestLab::up_with("kb", None, &["--mode", "redirect"]);
    for (args, sig, code) in [
        (
            vec![
                "bench",
                "--name",
                &lab.name,
                "--duration",
                "2",
                "--rounds",
                "3",
                "--tests",
                "udp_rr",
            ],
            nix::sys::signal::SIGINT,
            130,
        ),
        (
            vec![
                "trace",
                "--name",
                &lab.name,
                "--packets",
                "20000",
                "--rate",
                "2000",
            ],
            nix::sys::signal::SIGTERM,
            143,
        ),
    ] {
        let child = spawn_shortpath(&args, &[]);
        signal_after(&child, sig, Duration::from_millis(3000));
        let err = assert_interrupted(child, code);
        assert!(err.contains("back in redirect mode"), "{args:?}: {err}");
        let v = lab.status();
        assert_eq!(v["mode"], "redirect", "{args:?}: {v}");
        assert_eq!(v["drift"], Value::Null, "{args:?}: {v}");
    }
}

#[test]
fn signals_during_commands_that_built_their_lab_remove_it() {
    root_or_skip!();
    for (cmd, sig, code, after) in [
        ("bench", nix::sys::signal::SIGINT, 130, 3000),
        ("bench", nix::sys::signal::SIGTERM, 143, 300),
        ("report", nix::sys::signal::SIGINT, 130, 4000),
    ] {
        let name = unique_name("ko");
        let out = tempfile::tempdir().unwrap();
        let out_dir = out.path().join("r").to_string_lossy().into_owned();
        let mut args = vec![cmd, "--name", &name, "--duration", "2"];
        if cmd == "report" {
            args.extend(["--out", &out_dir]);
        }
        let started = Instant::now();
        let child = spawn_shortpath(&args, &[]);
        signal_after(&child, sig, Duration::from_millis(after));
        let err = assert_interrupted(child, code);
        assert!(err.contains(&format!("removed lab {name}")), "{cmd}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{cmd} took {:?} to stop",
            started.elapsed()
        );
        assert!(
            namespaces_of(&name).is_empty(),
            "{cmd}: {:?}",
            namespaces_of(&name)
        );
        assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
        assert!(!shortpath::dataplane::PinRoot::shortpath()
            .path()
            .join(&name)
            .exists());
    }
}

/// `BPF_PROG_ATTACH` of a program to `ifindex`'s TCX ingress in the calling
/// thread's namespace, without a link: how another tool could leave one of
/// our programs behind.
fn tcx_attach_without_link(prog_fd: i32, ifindex: u32) {
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_TCX_INGRESS: u32 = 46;
    let mut attr = [0u32; 12];
    attr[0] = ifindex;
    attr[1] = prog_fd as u32;
    attr[2] = BPF_TCX_INGRESS;
    // SAFETY: a zero-padded bpf_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_ATTACH: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn mode_bridge_also_detaches_programs_attached_without_a_link() {
    root_or_skip!();
    use std::os::fd::{AsFd as _, AsRawFd as _};

    let lab = TestLab::up("kl");
    let nss = node_namespaces(&lab);
    let ns = shortpath::netns::Netns::new(&nss[0]);
    let _guard = shortpath::netns::NetnsGuard::enter(&ns).unwrap();
    let mut obj =
        shortpath::dataplane::TcObject::load(shortpath_common::mode::FastPath::Peer, None).unwrap();
    let prog = obj.program(shortpath::dataplane::Hook::FromNic).unwrap();
    let ifindex = nix::net::if_::if_nametoindex("eth1").unwrap();
    tcx_attach_without_link(prog.fd().unwrap().as_fd().as_raw_fd(), ifindex);
    drop(obj);
    drop(_guard);

    let seen = kernel::attached(&nss[0]);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let v = lab.status();
    assert_eq!(v["mode"], "mixed", "{v}");
    assert!(v["drift"].is_string(), "{v}");
    ok(shortpath(&["mode", "--name", &lab.name, "bridge"]));
    assert_clean_bridge(&lab);
}
