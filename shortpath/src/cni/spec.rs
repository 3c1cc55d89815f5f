//! The CNI spec's wire types (containernetworking/cni SPEC.md 0.3.1 – 1.1.0):
//! the network configuration on stdin, the result and error on stdout.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Versions this plugin speaks, oldest first.
pub const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Spec error codes used here.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin specific: the interface CNI_IFNAME already exists.
    pub const INTERFACE_EXISTS: u32 = 100;
    /// Plugin specific: the IPAM plugin failed.
    pub const IPAM: u32 = 101;
    /// Plugin specific: setting up the pod's network failed.
    pub const SETUP: u32 = 102;
}

/// An error as the spec prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }

    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({ "cniVersion": version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

/// The plugin's own section of a conflist (plus the fields every plugin
/// gets). Unknown fields are allowed: runtimes add their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Delegated IPAM: `{"type": "host-local", …}`.
    #[serde(default)]
    pub ipam: Option<Value>,
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// shortpathd's API socket.
    #[serde(default = "default_socket")]
    pub socket: String,
    /// One line per call goes here (none if absent).
    #[serde(default)]
    pub log_file: Option<String>,
    /// The pod interface MTU; default: the node NIC's, asked from the agent.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Where the agent pins (for DEL while the agent is down).
    #[serde(default = "default_pin_root")]
    pub pin_root: String,
    #[serde(default = "default_node")]
    pub node: String,
}

fn default_socket() -> String {
    crate::agent::DEFAULT_SOCKET.to_owned()
}

fn default_pin_root() -> String {
    "/sys/fs/bpf/shortpath".to_owned()
}

fn default_node() -> String {
    "node".to_owned()
}

impl NetConf {
    /// Parses stdin: not JSON → 6, JSON but not a config → 7, a version we
    /// do not speak → 1.
    pub fn parse(stdin: &[u8]) -> Result<(Self, Value), CniError> {
        let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(code::DECODE, "the network configuration is not JSON")
                .details(e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(raw.clone()).map_err(|e| {
            CniError::new(code::INVALID_CONFIG, "invalid network configuration")
                .details(e.to_string())
        })?;
        if !VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CNI version {:?} is not supported (supported: {})",
                    conf.cni_version,
                    VERSIONS.join(", ")
                ),
            ));
        }
        if conf.kind != "shortpath" {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("this plugin is type \"shortpath\", not {:?}", conf.kind),
            ));
        }
        Ok((conf, raw))
    }
}

/// The addresses and routes an IPAM result gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ipam {
    pub ips: Vec<IpNet>,
    pub dns: Option<Value>,
}

impl Ipam {
    /// Reads any version's IPAM result (0.3.x–1.1 share `ips[].address`).
    pub fn from_result(v: &Value) -> Result<Self, CniError> {
        let bad =
            |m: &str| CniError::new(code::IPAM, format!("IPAM result: {m}")).details(v.to_string());
        let ips = v
            .get("ips")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no ips"))?
            .iter()
            .map(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<IpNet>().ok())
                    .ok_or_else(|| bad("an ip without a valid address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ips.is_empty() {
            return Err(bad("no addresses"));
        }
        Ok(Self {
            ips,
            dns: v.get("dns").cloned(),
        })
    }
}

/// The gateway a pod's routes point at: an address every host veth has
/// itself, link-scoped (169.254.1.1/32 and fe80::1/64), so the host side
/// answers ARP and ND for it.
pub fn gateway(addr: &IpAddr) -> IpAddr {
    if addr.is_ipv4() {
        IpAddr::from([169, 254, 1, 1])
    } else {
        "fe80::1".parse().expect("valid")
    }
}

/// One interface of the result.
#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// The ADD result in `version`'s shape.
pub fn add_result(
    version: &str,
    host: &Interface,
    pod: &Interface,
    addrs: &[IpAddr],
    dns: Option<&Value>,
) -> Value {
    let old = version.starts_with("0.");
    let mut host = serde_json::to_value(host).expect("serializes");
    let mut pod = serde_json::to_value(pod).expect("serializes");
    if old || version == "1.0.0" {
        // `mtu` on interfaces is a 1.1.0 field.
        host.as_object_mut().expect("object").remove("mtu");
        pod.as_object_mut().expect("object").remove("mtu");
    }
    let ips: Vec<Value> = addrs
        .iter()
        .map(|a| {
            let prefix = if a.is_ipv4() { 32 } else { 128 };
            let mut ip = json!({
                "address": format!("{a}/{prefix}"),
                "gateway": gateway(a).to_string(),
                "interface": 1,
            });
            if old {
                ip["version"] = if a.is_ipv4() { "4" } else { "6" }.into();
            }
            ip
        })
        .collect();
    let routes: Vec<Value> = addrs
        .iter()
        .map(|a| {
            let dst = if a.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            json!({ "dst": dst, "gw": gateway(a).to_string() })
        })
        .collect();
    let mut out = json!({
        "cniVersion": version,
        "interfaces": [host, pod],
        "ips": ips,
        "routes": routes,
    });
    if let Some(d) = dns {
        out["dns"] = d.clone();
    }
    out
}

/// The pod addresses a previous result names (for DEL and CHECK).
pub fn result_addrs(prev: &Value) -> Vec<IpAddr> {
    prev.get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str()?.parse::<IpNet>().ok())
        .map(|n| n.addr())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(v: &str) -> String {
        format!(
            r#"{{"cniVersion":"{v}","name":"n","type":"shortpath","ipam":{{"type":"host-local"}}}}"#
        )
    }

    #[test]
    fn configs_are_decoded_checked_and_versioned() {
        for v in VERSIONS {
            let (c, _) = NetConf::parse(conf(v).as_bytes()).unwrap();
            assert_eq!(c.cni_version, v);
            assert_eq!(c.socket, crate::agent::DEFAULT_SOCKET);
        }
        assert_eq!(NetConf::parse(b"{nope").unwrap_err().code, code::DECODE);
        assert_eq!(
            NetConf::parse(b"[]").unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(br#"{"name":"n"}"#).unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(conf("0.2.0").as_bytes()).unwrap_err().code,
            code::INCOMPATIBLE_VERSION
        );
        let other = conf("1.0.0").replace("shortpath", "bridge");
        assert_eq!(
            NetConf::parse(other.as_bytes()).unwrap_err().code,
            code::INVALID_CONFIG
        );
        let e = CniError::new(11, "agent down").details("socket x");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion":"1.0.0","code":11,"msg":"agent down","details":"socket x"})
        );
    }

    #[test]
    fn results_take_each_versions_shape() {
        let host = Interface {
            name: "sp0".into(),
            mac: "02:00:00:00:00:01".into(),
            sandbox: None,
            mtu: Some(1500),
        };
        let pod = Interface {
            name: "eth0".into(),
            mac: "02:00:00:00:00:02".into(),
            sandbox: Some("/proc/1/ns/net".into()),
            mtu: Some(1500),
        };
        let addrs: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let old = add_result("0.4.0", &host, &pod, &addrs, None);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["address"], "fd00::5/128");
        assert!(old["interfaces"][1].get("mtu").is_none());
        let new = add_result(
            "1.1.0",
            &host,
            &pod,
            &addrs,
            Some(&json!({"nameservers":["10.0.0.10"]})),
        );
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["ips"][0]["gateway"], "169.254.1.1");
        assert_eq!(new["routes"][1], json!({"dst":"::/0","gw":"fe80::1"}));
        assert_eq!(new["interfaces"][1]["mtu"], 1500);
        assert_eq!(new["dns"]["nameservers"][0], "10.0.0.10");
        assert_eq!(result_addrs(&new), addrs);
        let ipam =
            Ipam::from_result(&json!({"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}))
                .unwrap();
        assert_eq!(ipam.ips, vec!["10.1.0.5/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            Ipam::from_result(&json!({"ips":[]})).unwrap_err().code,
            code::IPAM
        );
    }
}
