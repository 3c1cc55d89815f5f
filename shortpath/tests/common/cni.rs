//! Running the CNI plugin as a runtime does: the binary exec'd (in a node's
//! namespace) with a crafted CNI_* environment and a config on stdin.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{json, Value};

use super::TestLab;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_shortpath-cni");
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// One plugin run: exit status and parsed stdout (Null when empty).
pub struct Run {
    pub ok: bool,
    pub out: Value,
}

impl Run {
    /// The error code, if it failed.
    pub fn code(&self) -> Option<u64> {
        if self.ok {
            None
        } else {
            self.out["code"].as_u64()
        }
    }
}

/// Runs the plugin in namespace `ns` (`None`: here) with `env` and `conf`.
pub fn plugin(ns: Option<&str>, env: &[(&str, &str)], conf: &Value) -> Run {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(PLUGIN);
            c
        }
        None => Command::new(PLUGIN),
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A plugin that exits without reading stdin shows in its result.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes());
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "stdout": text }))
    };
    if !o.status.success() && !out.is_object() {
        out =
            json!({ "status": o.status.to_string(), "stderr": String::from_utf8_lossy(&o.stderr) });
    }
    Run {
        ok: o.status.success(),
        out,
    }
}

/// A container network namespace the test owns (removed on drop).
pub struct PodNs(pub String);

impl PodNs {
    pub fn new(name: String) -> Self {
        let o = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Self(name)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The CNI_* environment of one call (interface `eth0`, the reference
/// plugins on CNI_PATH).
pub fn env<'a>(command: &'a str, id: &'a str, netns: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", REFERENCE_PLUGINS),
    ]
}

/// The host-side veths the plugin made in namespace `ns` (`sp…`).
pub fn host_veths(ns: &str) -> Vec<String> {
    super::kernel::devices(ns)
        .into_iter()
        .filter(|n| n.starts_with("sp"))
        .collect()
}

/// The leases `host-local` holds in `dir` (its data directory for one
/// network): one file per address.
pub fn leases(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains('.') || n.contains(':'))
                .filter(|n| !n.starts_with("last_reserved_ip") && n != "lock")
                .collect()
        })
        .unwrap_or_default()
}

/// A lab with agents in peer mode, and what a runtime hands the plugin on
/// node-a: a `host-local` data directory and a log file, for the network
/// `network`.
pub struct NodeA {
    pub lab: TestLab,
    /// node-a's namespace.
    pub ns: String,
    pub ipam_dir: tempfile::TempDir,
    pub log: tempfile::NamedTempFile,
    network: &'static str,
}

impl NodeA {
    pub fn new(prefix: &str, network: &'static str) -> Self {
        let lab = TestLab::up_with(prefix, None, &["--agent", "--mode", "peer"]);
        let ns = format!("{}-node-a", lab.name);
        Self {
            lab,
            ns,
            ipam_dir: tempfile::tempdir().unwrap(),
            log: tempfile::NamedTempFile::new().unwrap(),
            network,
        }
    }

    /// node-a's agent directory (its socket, its log).
    pub fn agent_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/shortpath/{}/agents/node-a", self.lab.name))
    }

    pub fn sock(&self) -> PathBuf {
        self.agent_dir().join("api.sock")
    }

    /// The plugin's config: `cniVersion` `version`, addresses `first` to
    /// `last` (the last byte / group) of node-a's pod CIDRs, both families.
    pub fn conf(&self, version: &str, first: u8, last: u8) -> Value {
        json!({
            "cniVersion": version,
            "name": self.network,
            "type": "shortpath",
            "socket": self.sock(),
            "pinRoot": format!("/sys/fs/bpf/shortpath/{}", self.lab.name),
            "node": "node-a",
            "logFile": self.log.path(),
            "ipam": {
                "type": "host-local",
                "dataDir": self.ipam_dir.path(),
                "ranges": [
                    [{"subnet": "172.17.1.0/24", "rangeStart": format!("172.17.1.{first}"), "rangeEnd": format!("172.17.1.{last}")}],
                    [{"subnet": "fd00:172:17:1::/64", "rangeStart": format!("fd00:172:17:1::{first}"), "rangeEnd": format!("fd00:172:17:1::{last}")}]
                ]
            }
        })
    }

    /// Runs the plugin in node-a's namespace.
    pub fn run(&self, command: &str, id: &str, netns: &str, conf: &Value) -> Run {
        plugin(Some(&self.ns), &env(command, id, netns), conf)
    }

    /// Leases `host-local` holds for the network.
    pub fn ipam_files(&self) -> Vec<String> {
        leases(&self.ipam_dir.path().join(self.network))
    }

    pub fn host_veths(&self) -> Vec<String> {
        host_veths(&self.ns)
    }
}
