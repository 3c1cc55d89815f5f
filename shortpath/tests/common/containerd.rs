//! containerd 1.6 in a lab node's namespace, for the runtime tests: its own
//! root, state and socket in a temp directory, its CNI configuration the
//! one the node's agent wrote (`lab up --cni`), `ctr` with its fixed CNI
//! directories bound to ours in a private mount namespace.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use shortpath::agent::api::{self, Request};

use super::TestLab;

const PLUGIN: &str = env!("CARGO_BIN_EXE_shortpath-cni");
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// containerd in a node namespace, and everything it needs, in a temp dir.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    ipam_dir: PathBuf,
    cni_log: PathBuf,
    pub ns: String,
    daemon: Child,
    /// `ctr run --rm --cni` in the foreground of a child: it calls DEL
    /// when the container exits.
    runs: Vec<Child>,
}

pub fn must(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl Containerd {
    pub fn start(lab: &TestLab, node: &str) -> Self {
        Self::start_with(lab, node, "")
    }

    /// With `cri` appended to the CRI plugin's section of the config.
    pub fn start_with(lab: &TestLab, node: &str, cri: &str) -> Self {
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
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n{1}\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"{0}/cni-bin\"\n    conf_dir = \"{0}/cni-conf\"\n",
                d.display(),
                cri,
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

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `ctr` against our containerd, in the node's namespace, with its
    /// fixed CNI directories bound to ours in a private mount namespace.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
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

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// Starts container `id` running `cmd` (in the background; `ctr run
    /// --rm --cni` removes its network when the container ends).
    pub fn run(&mut self, id: &str, cmd: &[&str]) {
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

    pub fn exec(&self, id: &str, cmd: &[&str]) -> Output {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let e = format!("x{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut args = vec!["task", "exec", "--exec-id", &e, id];
        args.extend(cmd);
        self.ctr(&args)
    }

    /// The container's IPv4 address, once its network is up.
    pub fn ip(&self, id: &str) -> IpAddr {
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
    pub fn remove_all(&mut self) {
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

    pub fn cni_log(&self) -> String {
        std::fs::read_to_string(&self.cni_log).unwrap_or_default()
    }

    pub fn leases(&self) -> Vec<String> {
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

pub fn agent(lab: &TestLab, node: &str, req: Request) -> Value {
    let s = PathBuf::from(format!(
        "/run/shortpath/{}/agents/{node}/api.sock",
        lab.name
    ));
    api::call(&s, &req).unwrap()
}

/// Packets a node's from_nic delivered into pods with redirect_peer.
pub fn peer_delivered(lab: &TestLab, node: &str) -> u64 {
    let st = agent(lab, node, Request::Status);
    st["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hook"] == "from_nic")
        .map(|p| p["counters"]["redirect_peer"].as_u64().unwrap_or(0))
        .sum()
}

pub fn sp_veths(ns: &str) -> Vec<String> {
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
