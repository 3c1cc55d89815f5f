//! Delegated IPAM, as the spec defines it: the plugin named by
//! `ipam.type` is found in CNI_PATH and run with the same environment and
//! the whole configuration on stdin.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command as Proc, Stdio},
};

use serde_json::Value;

use super::{
    env::{Command, Env},
    spec::{code, CniError, NetConf},
};

/// The IPAM plugin's binary, from CNI_PATH.
fn find(env: &Env, conf: &NetConf) -> Result<PathBuf, CniError> {
    let kind = conf
        .ipam
        .as_ref()
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "the configuration has no ipam.type"))?;
    if kind.is_empty() || kind.contains('/') || kind.starts_with('.') {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam.type {kind:?} is not a plugin name"),
        ));
    }
    env.path
        .iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "IPAM plugin {kind:?} not found in CNI_PATH ({})",
                    env.path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ),
            )
        })
}

/// Whether the IPAM plugin speaks CNI 1.1.0 (STATUS and GC exist only
/// there), asked with VERSION.
pub fn speaks_1_1(env: &Env, conf: &NetConf) -> bool {
    let Ok(bin) = find(env, conf) else {
        return false;
    };
    let out = Proc::new(&bin)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut s) = c.stdin.take() {
                let _ = s.write_all(br#"{"cniVersion":"1.0.0"}"#);
            }
            c.wait_with_output()
        });
    out.ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v.get("supportedVersions")?.as_array().cloned())
        .is_some_and(|vs| vs.iter().any(|v| v == "1.1.0"))
}

/// The version the IPAM plugin is spoken to in: 1.1.0 configs go down to
/// 1.0.0, which the reference plugins (1.1.x) accept and whose results
/// have the same shape.
pub fn version_for(conf: &NetConf) -> &str {
    if conf.cni_version == "1.1.0" {
        "1.0.0"
    } else {
        &conf.cni_version
    }
}

/// Runs the IPAM plugin for `command`; its stdout parsed on success.
pub fn run(env: &Env, conf: &NetConf, raw: &Value, command: Command) -> Result<Value, CniError> {
    let bin = find(env, conf)?;
    let mut stdin = raw.clone();
    stdin["cniVersion"] = version_for(conf).into();
    let path = std::env::join_paths(&env.path).unwrap_or_default();
    let mut child = Proc::new(&bin)
        .env_clear()
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &env.container_id)
        .env(
            "CNI_NETNS",
            env.netns
                .as_deref()
                .map(|p| p.as_os_str())
                .unwrap_or_default(),
        )
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", &env.args)
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO,
                format!("cannot run IPAM plugin {}", bin.display()),
            )
            .details(e.to_string())
        })?;
    let input = serde_json::to_vec(&stdin).expect("serializes");
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(&input);
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(code::IO, format!("IPAM plugin {}", bin.display())).details(e.to_string())
    })?;
    if out.status.success() {
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&out.stdout).map_err(|e| {
            CniError::new(code::IPAM, "the IPAM plugin's answer is not JSON").details(e.to_string())
        });
    }
    // Its error, as the spec shapes it, passed on with its code.
    let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let msg = err
        .get("msg")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned());
    let c = err
        .get("code")
        .and_then(Value::as_u64)
        .map_or(code::IPAM, |c| c as u32);
    Err(
        CniError::new(c, format!("IPAM {}: {msg}", command.as_str())).details(
            err.get("details")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
    )
}
