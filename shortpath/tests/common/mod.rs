//! Helpers for the integration tests: labs with unique names that are
//! removed even when a test fails, and running the real binary.
#![allow(dead_code)]

pub mod cni;
pub mod containerd;
pub mod kernel;
#[path = "../../../shortpath-dataplane/tests/support/packet.rs"]
pub mod packet;

use std::{
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use shortpath::{
    lab::{self, plan::Plan},
    netns::Netns,
    probe::Endpoint,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_shortpath");

static NEXT: AtomicU32 = AtomicU32::new(0);

#[path = "../../../shortpath-dataplane/tests/support/root.rs"]
mod root;
#[allow(unused_imports)] // not every test binary has root-only tests
pub(crate) use root::root_or_skip;

/// For helpers that need root (`TestLab::up`): a test that reaches one as
/// another user forgot to start with `root_or_skip!()`.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: start it with root_or_skip!() (the integration tests build network namespaces)"
    );
}

/// A lab name no other test (or test run) uses.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn shortpath(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run shortpath")
}

pub fn shortpath_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run shortpath")
}

/// Starts the binary in the background with piped output.
pub fn spawn_shortpath(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start shortpath")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "shortpath failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    o
}

/// A lab that is torn down when dropped (also when the test panics).
pub struct TestLab {
    pub name: String,
    config: Option<tempfile::NamedTempFile>,
}

impl TestLab {
    pub fn up(prefix: &str) -> Self {
        Self::up_with(prefix, None, &[])
    }

    pub fn up_with(prefix: &str, config: Option<&str>, extra: &[&str]) -> Self {
        require_root();
        let name = unique_name(prefix);
        let config = config.map(|text| {
            let f = tempfile::Builder::new()
                .suffix(".toml")
                .tempfile()
                .expect("temp file");
            std::fs::write(f.path(), text).expect("write config");
            f
        });
        let lab = TestLab { name, config };
        let mut args = vec!["lab", "up", "--name", &lab.name];
        let path = lab
            .config
            .as_ref()
            .map(|f| f.path().to_string_lossy().into_owned());
        if let Some(p) = &path {
            args.extend(["--config", p]);
        }
        args.extend(extra);
        ok(shortpath(&args));
        lab
    }

    /// `lab status --json` of this lab.
    pub fn status(&self) -> serde_json::Value {
        let o = ok(shortpath(&[
            "lab", "status", "--json", "--name", &self.name,
        ]));
        serde_json::from_str(&stdout(&o)).expect("status JSON")
    }

    /// The lab's pin directory (`/sys/fs/bpf/shortpath/<lab>`).
    pub fn pin_dir(&self) -> std::path::PathBuf {
        shortpath::dataplane::PinRoot::shortpath()
            .path()
            .join(&self.name)
    }

    pub fn plan(&self) -> Plan {
        lab::load_state(&self.name.parse().expect("a valid lab name"))
            .expect("state")
            .expect("lab recorded")
            .plan
    }

    pub fn pod_endpoints(&self) -> Vec<Endpoint> {
        self.plan()
            .pods()
            .map(|p| Endpoint {
                name: p.name.to_string(),
                netns: Netns::new(&p.netns),
                ipv4: p.ipv4.map(|a| a.addr()),
                ipv6: p.ipv6.map(|a| a.addr()),
            })
            .collect()
    }

    pub fn node_endpoints(&self) -> Vec<Endpoint> {
        self.plan()
            .nodes
            .iter()
            .map(|n| Endpoint {
                name: n.name.to_string(),
                netns: Netns::new(&n.netns),
                ipv4: n.nic_ipv4.map(|a| a.addr()),
                ipv6: n.nic_ipv6.map(|a| a.addr()),
            })
            .collect()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let o = shortpath(&["lab", "down", "--name", &self.name]);
        if !o.status.success() && !std::thread::panicking() {
            panic!("lab down {} failed: {}", self.name, stderr(&o));
        }
    }
}

/// Namespaces whose name starts with `<lab>-`.
pub fn namespaces_of(lab: &str) -> Vec<String> {
    shortpath::netns::list()
        .expect("list namespaces")
        .into_iter()
        .filter(|n| n.starts_with(&format!("{lab}-")))
        .collect()
}

/// Names of the links in the test's own (root) namespace, read-only.
pub fn root_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
        })
        .collect();
    v.sort();
    v
}

pub fn assert_all_ok(results: &[shortpath::probe::Probe]) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|p| {
            p.outcome
                .as_ref()
                .err()
                .map(|e| format!("{} -> {} {} {}: {e}", p.from, p.to, p.dst, p.proto.name()))
        })
        .collect();
    assert!(!results.is_empty(), "no probes ran");
    assert!(
        failed.is_empty(),
        "{} of {} probes failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

/// SIGKILL, then wait until every thread of `pid` is gone (the last one
/// closes its files: a socket, a lock). A zombie leader can outlive
/// running threads.
pub fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let alive = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
            tasks.flatten().any(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|st| {
                    st.rsplit_once(')')
                        .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
                })
            })
        })
    };
    while alive() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "agent {pid} does not die"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
