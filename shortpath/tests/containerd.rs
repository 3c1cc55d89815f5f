//! A real container runtime creates pods on the fast path: containerd 1.6
//! (Debian's, with runc) runs inside each lab node's namespace with its own
//! root, state and socket in a temp directory, and `ctr run --cni` calls
//! shortpath's plugin. Containers on two nodes reach each other (ICMP and
//! TCP) on the peer fast path, and removing them leaves nothing behind.

mod common;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::TestLab;
use serde_json::Value;
use shortpath::agent::api::{self, Request};

const PLUGIN: &str = env!("CARGO_BIN_EXE_shortpath-cni");
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// containerd in a node namespace, and everything it needs, in a temp dir.
struct Containerd {
    dir: tempfile::TempDir,
    ipam_dir: PathBuf,
    cni_log: PathBuf,
    ns: String,
    daemon: Child,
    /// `ctr run --rm --cni` in the foreground of a child: it calls DEL
    /// when the container exits.
    runs: Vec<Child>,
}

fn must(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl Containerd {
    fn start(lab: &TestLab, node: &str) -> Self {
        for bin in ["containerd", "ctr", "runc", "busybox"] {
            assert!(
                Command::new("which")
                    .arg(bin)
                    .output()
                    .unwrap()
                    .status
                    .success(),
                "{bin} missing: run scripts/setup.sh"
            );
        }
        let dir = tempfile::Builder::new().prefix("spctrd").tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "root",
            "state",
            "cni-conf",
            "cni-bin",
            "ipam",
            "rootfs/bin",
            "rootfs/proc",
            "rootfs/sys",
            "rootfs/dev",
            "rootfs/tmp",
            "rootfs/etc",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", d.join("rootfs/bin/busybox")).unwrap();
        for applet in ["sh", "ip", "ping", "nc", "sleep", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", d.join("rootfs/bin").join(applet)).unwrap();
        }
        std::fs::copy(PLUGIN, d.join("cni-bin/shortpath")).unwrap();
        for p in ["host-local", "loopback", "portmap"] {
            std::fs::copy(
                Path::new(REFERENCE_PLUGINS).join(p),
                d.join("cni-bin").join(p),
            )
            .unwrap();
        }
        // The conflist the node's agent wrote once it was ready.
        let written = format!(
            "/run/shortpath/{}/agents/{node}/cni/net.d/05-shortpath.conflist",
            lab.name
        );
        let text = std::fs::read_to_string(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
        let conflist: Value = serde_json::from_str(&text).unwrap();
        let plugin = &conflist["plugins"][0];
        assert_eq!(plugin["type"], "shortpath");
        assert_eq!(plugin["node"], node);
        assert_eq!(conflist["plugins"][1]["type"], "portmap");
        let ipam_dir = PathBuf::from(plugin["ipam"]["dataDir"].as_str().unwrap());
        let cni_log = PathBuf::from(plugin["logFile"].as_str().unwrap());
        std::fs::write(d.join("cni-conf/05-shortpath.conflist"), text).unwrap();
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"{0}/cni-bin\"\n    conf_dir = \"{0}/cni-conf\"\n",
                d.display()
            ),
        )
        .unwrap();
        let ns = format!("{}-{node}", lab.name);
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Self {
            dir,
            ipam_dir,
            cni_log,
            ns,
            daemon,
            runs: Vec::new(),
        };
        let t = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "containerd did not start: {}",
                c.log("containerd.log")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `ctr` against our containerd, in the node's namespace, with its
    /// fixed CNI directories bound to ours in a private mount namespace.
    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path().display().to_string();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {d}/cni-conf /etc/cni/net.d && mount --bind {d}/cni-bin /opt/cni/bin && \
                 exec nsenter --net=/run/netns/{} ctr --address {d}/containerd.sock \"$@\"",
                self.ns
            ))
            .arg("ctr")
            .args(args);
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// Starts container `id` running `cmd` (in the background; `ctr run
    /// --rm --cni` removes its network when the container ends).
    fn run(&mut self, id: &str, cmd: &[&str]) {
        let rootfs = self.path("rootfs").display().to_string();
        let mut args = vec!["run", "--rm", "--cni", "--rootfs", &rootfs, id];
        args.extend(cmd);
        let out = std::fs::File::create(self.path(&format!("{id}.out"))).unwrap();
        let child = self
            .ctr_cmd(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.runs.push(child);
    }

    fn exec(&self, id: &str, cmd: &[&str]) -> Output {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let e = format!("x{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut args = vec!["task", "exec", "--exec-id", &e, id];
        args.extend(cmd);
        self.ctr(&args)
    }

    /// The container's IPv4 address, once its network is up.
    fn ip(&self, id: &str) -> IpAddr {
        let t = Instant::now();
        loop {
            let o = self.exec(id, &["/bin/ip", "-o", "-4", "addr", "show", "eth0"]);
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(a) = text.split_whitespace().skip_while(|w| *w != "inet").nth(1) {
                return a.split('/').next().unwrap().parse().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{id} has no address: {text} {}\nCNI log: {}",
                String::from_utf8_lossy(&o.stderr),
                self.cni_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills every container and waits for its `ctr run` to finish (DEL).
    fn remove_all(&mut self) {
        for c in &self.runs {
            let _ = c.id();
        }
        let ls = self.ctr(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&ls.stdout).split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
        }
        for mut c in self.runs.drain(..) {
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cni_log(&self) -> String {
        std::fs::read_to_string(&self.cni_log).unwrap_or_default()
    }

    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.ipam_dir.join("shortpath"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains('.') && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_all();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.daemon.wait();
        // Shims outlive containerd; ours are the ones naming our directory.
        let me = self.dir.path().display().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains(&me) {
                    if let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
    }
}

fn agent(lab: &TestLab, node: &str, req: Request) -> Value {
    let s = PathBuf::from(format!(
        "/run/shortpath/{}/agents/{node}/api.sock",
        lab.name
    ));
    api::call(&s, &req).unwrap()
}

/// Packets a node's from_nic delivered into pods with redirect_peer.
fn peer_delivered(lab: &TestLab, node: &str) -> u64 {
    let st = agent(lab, node, Request::Status);
    st["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hook"] == "from_nic")
        .map(|p| p["counters"]["redirect_peer"].as_u64().unwrap_or(0))
        .sum()
}

fn sp_veths(ns: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("sp"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ctr_run_cni_containers_on_two_nodes_talk_on_the_fast_path_and_leave_nothing() {
    common::root_or_skip!();
    let lab = TestLab::up_with("cr", None, &["--cni", "--mode", "peer"]);
    let mut a = Containerd::start(&lab, "node-a");
    let mut b = Containerd::start(&lab, "node-b");
    a.run("c1", &["/bin/sleep", "600"]);
    a.run("c2", &["/bin/sleep", "600"]);
    b.run("c3", &["/bin/nc", "-ll", "-p", "7777", "-e", "/bin/cat"]);
    let (ip1, ip2, ip3) = (a.ip("c1"), a.ip("c2"), b.ip("c3"));
    for (ip, net) in [(ip1, "172.17.1."), (ip2, "172.17.1."), (ip3, "172.17.2.")] {
        assert!(
            ip.to_string().starts_with(net),
            "{ip} not from its node's pod CIDR"
        );
    }
    let before = peer_delivered(&lab, "node-b");
    // ICMP: across nodes both ways, and on one node.
    for (c, from, to) in [
        (&a, "c1", ip3),
        (&b, "c3", ip1),
        (&a, "c2", ip1),
        (&a, "c1", ip2),
    ] {
        let o = c.exec(from, &["/bin/ping", "-c", "3", "-W", "2", &to.to_string()]);
        must(o, &format!("{from} ping {to}"));
    }
    // TCP across nodes: c3 echoes.
    let o = must(
        a.exec(
            "c1",
            &[
                "/bin/sh",
                "-c",
                &format!("echo hello-over-tcp | /bin/nc -w 2 {ip3} 7777"),
            ],
        ),
        "c1 → c3 tcp",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello-over-tcp");
    let delivered = peer_delivered(&lab, "node-b") - before;
    assert!(
        delivered >= 6,
        "node-b's from_nic put only {delivered} packets straight into pods"
    );
    // The agents know each container, in the kernel.
    for (node, n) in [("node-a", 2), ("node-b", 1)] {
        let l = agent(&lab, node, Request::EndpointList);
        let cnt = l["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["endpoint"]["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("default-c")
            })
            .count();
        assert_eq!(cnt, n, "{node}: {l}");
        assert!(
            l["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["in_kernel"] == true),
            "{l}"
        );
    }
    // Remove: nothing left (veths, endpoints, leases).
    a.remove_all();
    b.remove_all();
    for (c, node) in [(&a, "node-a"), (&b, "node-b")] {
        assert!(
            sp_veths(&c.ns).is_empty(),
            "{node}: veths left {:?}",
            sp_veths(&c.ns)
        );
        assert!(
            c.leases().is_empty(),
            "{node}: leases left {:?}\nCNI log: {}",
            c.leases(),
            c.cni_log()
        );
        let l = agent(&lab, node, Request::EndpointList);
        assert!(!l.to_string().contains("default-c"), "{node}: {l}");
        let log = c.cni_log();
        assert!(
            log.contains("command=ADD") && log.contains("command=DEL"),
            "{log}"
        );
        assert!(!log.contains("result=error"), "{log}");
    }
}
