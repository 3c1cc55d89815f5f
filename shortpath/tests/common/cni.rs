//! Running the CNI plugin as a runtime does: the binary exec'd (in a node's
//! namespace) with a crafted CNI_* environment and a config on stdin.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use serde_json::{json, Value};

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
