//! `shortpath-cni`: the CNI plugin (type `shortpath`). A thin client of
//! the node agent: it wires the pod (veth, addresses, routes; see [`pod`]),
//! delegates addresses to the IPAM plugin ([`ipam`]), and registers the
//! endpoint with shortpathd, which attaches `from_pod` and fills the map.
//!
//! Spec: containernetworking/cni SPEC.md 0.3.1–1.1.0 ([`spec`]).

pub mod env;
pub mod ipam;
pub mod pod;
pub mod spec;

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::agent::api::{self, ClientError, EndpointRequest, ErrorCode, Request};
use env::{Command, Env};
use spec::{code, CniError, NetConf};

/// What the binary prints and exits with.
pub struct Outcome {
    pub exit: i32,
    pub stdout: String,
}

/// The endpoint id the agent knows this attachment by.
pub fn endpoint_id(container_id: &str, ifname: &str) -> String {
    let full = format!("{container_id}_{ifname}");
    let id: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.len() <= 128 {
        return id;
    }
    // Too long for the agent: a prefix and a hash of the whole, so two
    // interfaces of one long container id stay apart.
    format!("{}-{:08x}", &id[..119], crc32fast::hash(full.as_bytes()))
}

fn agent_error(socket: &str, e: ClientError) -> CniError {
    match e {
        ClientError::Connect { .. } | ClientError::Io { .. } => CniError::new(
            code::TRY_AGAIN_LATER,
            format!("shortpathd is not reachable at {socket}: start it (systemctl start shortpathd) and retry"),
        )
        .details(e.to_string()),
        ClientError::Api(a) if a.code == ErrorCode::NotReady => {
            CniError::new(code::TRY_AGAIN_LATER, "shortpathd is starting: retry").details(a.message)
        }
        other => CniError::new(code::SETUP, "shortpathd refused the endpoint").details(other.to_string()),
    }
}

async fn agent(socket: &str, req: Request) -> Result<Value, ClientError> {
    let s = socket.to_owned();
    tokio::task::spawn_blocking(move || api::call(Path::new(&s), &req))
        .await
        .unwrap_or_else(|e| {
            Err(ClientError::Io {
                path: socket.into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

/// Is the agent up and ready?
async fn ready(conf: &NetConf) -> Result<Value, CniError> {
    let h = agent(&conf.socket, Request::Health)
        .await
        .map_err(|e| agent_error(&conf.socket, e))?;
    if h.get("ready") != Some(&Value::Bool(true)) {
        return Err(CniError::new(
            code::TRY_AGAIN_LATER,
            "shortpathd is starting: retry",
        ));
    }
    Ok(h)
}

/// The pod MTU: the config's, else the node NIC's (the agent names it).
/// The pod MTU: the config's, else the node NIC's (in the agent's health
/// answer, which ADD asks for anyway).
fn mtu(conf: &NetConf, health: &Value) -> Result<u32, CniError> {
    if let Some(m) = conf.mtu {
        return Ok(m);
    }
    health["nic"]["mtu"]
        .as_u64()
        .map(|m| m as u32)
        .ok_or_else(|| {
            CniError::new(code::SETUP, "shortpathd did not say the NIC's MTU")
                .details(health.to_string())
        })
}

/// Runs one invocation: `vars` is the environment, `stdin` the config.
pub async fn run(vars: &BTreeMap<String, String>, stdin: &[u8]) -> Outcome {
    let started = Instant::now();
    let env = Env::from_vars(vars);
    let parsed = NetConf::parse(stdin);
    let version = parsed
        .as_ref()
        .map(|(c, _)| c.cni_version.clone())
        .unwrap_or_else(|_| spec::VERSIONS[spec::VERSIONS.len() - 1].to_owned());
    let result = match (&env, &parsed) {
        (Ok(e), _) if e.command == Command::Version => Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": spec::VERSIONS,
        }))),
        (Err(e), _) => Err(e.clone()),
        (Ok(_), Err(e)) => Err(e.clone()),
        (Ok(e), Ok((conf, raw))) => dispatch(e, conf, raw).await,
    };
    if let (Ok(e), Ok((conf, _))) = (&env, &parsed) {
        log(conf, e, started.elapsed(), &result);
    }
    match result {
        Ok(out) => Outcome {
            exit: 0,
            stdout: out.map(|v| v.to_string()).unwrap_or_default(),
        },
        Err(e) => Outcome {
            exit: 1,
            stdout: e.to_json(&version).to_string(),
        },
    }
}

/// One line per call: time, container, command, duration, result.
fn log(conf: &NetConf, env: &Env, took: Duration, result: &Result<Option<Value>, CniError>) {
    let Some(path) = &conf.log_file else { return };
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error {} {}", e.code, e.msg),
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let line = format!(
        "{secs:.3} container={} ifname={} command={} took_ms={:.1} result={outcome}\n",
        if env.container_id.is_empty() {
            "-"
        } else {
            &env.container_id
        },
        if env.ifname.is_empty() {
            "-"
        } else {
            &env.ifname
        },
        env.command.as_str(),
        took.as_secs_f64() * 1e3,
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

async fn dispatch(env: &Env, conf: &NetConf, raw: &Value) -> Result<Option<Value>, CniError> {
    match env.command {
        Command::Version => unreachable!("handled before"),
        Command::Add => add(env, conf, raw).await.map(Some),
        Command::Del => del(env, conf, raw).await.map(|()| None),
        Command::Check => check(env, conf, raw).await.map(|()| None),
        Command::Status => {
            ready(conf).await.map_err(|e| {
                CniError::new(
                    code::NOT_AVAILABLE,
                    format!("shortpath is not ready: {}", e.msg),
                )
                .details(e.details)
            })?;
            // STATUS and GC are CNI 1.1.0: passed on to an IPAM plugin
            // that speaks it (the reference plugins 1.1.x do not).
            if ipam::speaks_1_1(env, conf) {
                ipam::run(env, conf, raw, Command::Status)?;
            }
            Ok(None)
        }
        Command::Gc => {
            gc(conf, raw).await?;
            if ipam::speaks_1_1(env, conf) {
                ipam::run(env, conf, raw, Command::Gc)?;
            }
            Ok(None)
        }
    }
}

async fn add(env: &Env, conf: &NetConf, raw: &Value) -> Result<Value, CniError> {
    let health = ready(conf).await?;
    let mtu = mtu(conf, &health)?;
    let ns_path = env.netns.as_ref().expect("checked for ADD");
    let ns = pod::open_netns(ns_path)?;
    let label = ns_path.display().to_string();
    if pod::pod_addresses(&ns, &label, &env.ifname).await.is_ok() {
        return Err(CniError::new(
            code::INTERFACE_EXISTS,
            format!("interface {} already exists in {label}", env.ifname),
        ));
    }
    let ipam_result = ipam::run(env, conf, raw, Command::Add)?;
    let addresses = spec::Ipam::from_result(&ipam_result);
    let undo_ipam = || {
        let _ = ipam::run(env, conf, raw, Command::Del);
    };
    let got = match addresses {
        Ok(a) => a,
        Err(e) => {
            undo_ipam();
            return Err(e);
        }
    };
    let addrs: Vec<IpAddr> = got.ips.iter().map(|n| n.addr()).collect();
    let wired = match pod::add(&ns, &label, &env.container_id, &env.ifname, mtu, &addrs).await {
        Ok(w) => w,
        Err(e) => {
            undo_ipam();
            return Err(e);
        }
    };
    let req = Request::EndpointAdd {
        endpoint: EndpointRequest {
            id: endpoint_id(&env.container_id, &env.ifname),
            host_if: wired.host.name.clone(),
            addrs: addrs.iter().map(ToString::to_string).collect(),
            pod_mac: wired.pod.mac.to_string(),
            mtu: Some(mtu),
        },
    };
    if let Err(e) = agent(&conf.socket, req).await {
        let _ = pod::del_host(&wired.host.name).await;
        undo_ipam();
        return Err(agent_error(&conf.socket, e));
    }
    let host = spec::Interface {
        name: wired.host.name.clone(),
        mac: wired.host.mac.to_string(),
        sandbox: None,
        mtu: Some(mtu),
    };
    let podif = spec::Interface {
        name: env.ifname.clone(),
        mac: wired.pod.mac.to_string(),
        sandbox: Some(label),
        mtu: Some(mtu),
    };
    let mut result = spec::add_result(&conf.cni_version, &host, &podif, &addrs, got.dns.as_ref());
    // Chaining: keep what earlier plugins reported (their interfaces and
    // addresses come first; ours are appended).
    if let Some(prev) = &conf.prev_result {
        result = merge_prev(prev, result);
    }
    Ok(result)
}

/// Appends our interfaces, ips and routes to a previous plugin's result.
fn merge_prev(prev: &Value, ours: Value) -> Value {
    let mut out = prev.clone();
    let n = prev["interfaces"].as_array().map_or(0, Vec::len);
    for key in ["interfaces", "ips", "routes"] {
        let mut items: Vec<Value> = prev[key].as_array().cloned().unwrap_or_default();
        for mut it in ours[key].as_array().cloned().unwrap_or_default() {
            if key == "ips" {
                if let Some(i) = it["interface"].as_u64() {
                    it["interface"] = (i + n as u64).into();
                }
            }
            items.push(it);
        }
        out[key] = items.into();
    }
    out["cniVersion"] = ours["cniVersion"].clone();
    if out.get("dns").is_none() {
        if let Some(d) = ours.get("dns") {
            out["dns"] = d.clone();
        }
    }
    out
}

async fn del(env: &Env, conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    let id = endpoint_id(&env.container_id, &env.ifname);
    match agent(&conf.socket, Request::EndpointRemove { id }).await {
        Ok(_) => {}
        Err(ClientError::Api(a)) if a.code == ErrorCode::NotFound => {}
        // The agent is down (or refused): DEL is best effort. Take the
        // addresses out of its pinned map ourselves, so nothing keeps
        // forwarding to a pod that is gone, and go on with the veth and
        // the lease; the agent reconciles the rest when it is back.
        Err(_) => {
            let addrs = conf
                .prev_result
                .as_ref()
                .map(spec::result_addrs)
                .unwrap_or_default();
            offline_remove(conf, &addrs)?;
        }
    }
    pod::del_host(&pod::host_ifname(&env.container_id, &env.ifname)).await?;
    ipam::run(env, conf, raw, Command::Del)?;
    Ok(())
}

/// Removes addresses from the node's pinned endpoint map without the agent.
fn offline_remove(conf: &NetConf, addrs: &[IpAddr]) -> Result<(), CniError> {
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    let root: crate::dataplane::PinRoot = conf
        .pin_root
        .parse()
        .map_err(|e| bad(format!("pinRoot: {e}")))?;
    let node: crate::dataplane::NodeName =
        conf.node.parse().map_err(|e| bad(format!("node: {e}")))?;
    crate::dataplane::remove_pinned_addresses(&root, &node, addrs)
        .map(drop)
        .map_err(|e| {
            CniError::new(
                code::IO,
                "removing the pod's addresses from the pinned endpoint map",
            )
            .details(e.to_string())
        })
}

async fn check(env: &Env, conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    if conf.cni_version == "0.3.1" {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "CHECK exists from CNI 0.4.0 on; this configuration says 0.3.1",
        ));
    }
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult"))?;
    ready(conf).await?;
    let want = spec::result_addrs(prev);
    let ns_path = env.netns.as_ref().expect("checked for CHECK");
    let ns = pod::open_netns(ns_path)?;
    let have = pod::pod_addresses(&ns, &ns_path.display().to_string(), &env.ifname).await?;
    if let Some(missing) = want.iter().find(|a| !have.contains(a)) {
        return Err(CniError::new(
            code::SETUP,
            format!("{missing} is not on {} any more", env.ifname),
        ));
    }
    let list = agent(&conf.socket, Request::EndpointList)
        .await
        .map_err(|e| agent_error(&conf.socket, e))?;
    let id = endpoint_id(&env.container_id, &env.ifname);
    let ep = list["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["endpoint"]["id"] == id.as_str())
        .ok_or_else(|| CniError::new(code::SETUP, format!("shortpathd has no endpoint {id}")))?;
    if ep["in_kernel"] != true {
        return Err(CniError::new(
            code::SETUP,
            format!("endpoint {id} is not in the kernel's map"),
        ));
    }
    ipam::run(env, conf, raw, Command::Check)?;
    Ok(())
}

/// GC: every endpoint of ours whose attachment the runtime does not list
/// as valid goes (with its veth).
async fn gc(conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    let valid: Vec<String> = raw
        .get("cni.dev/valid-attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(endpoint_id(
                a.get("containerID")?.as_str()?,
                a.get("ifname")?.as_str()?,
            ))
        })
        .collect();
    let list = agent(&conf.socket, Request::EndpointList)
        .await
        .map_err(|e| agent_error(&conf.socket, e))?;
    for e in list["endpoints"].as_array().into_iter().flatten() {
        let id = e["endpoint"]["id"].as_str().unwrap_or_default();
        let host = e["endpoint"]["host_if"].as_str().unwrap_or_default();
        // Only what this plugin made: host veths named sp<hex>.
        let ours = host.len() == 14
            && host.starts_with("sp")
            && host[2..].bytes().all(|c| c.is_ascii_hexdigit());
        if ours && !valid.iter().any(|v| v == id) {
            let _ = agent(&conf.socket, Request::EndpointRemove { id: id.to_owned() }).await;
            pod::del_host(host).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ids_are_valid_agent_names() {
        assert_eq!(endpoint_id("default-abc", "eth0"), "default-abc_eth0");
        assert_eq!(endpoint_id("a.b", "net1"), "a-b_net1");
        let long = "x".repeat(300);
        assert_eq!(endpoint_id(&long, "eth0").len(), 128);
        assert_ne!(endpoint_id(&long, "eth0"), endpoint_id(&long, "eth1"));
    }

    #[test]
    fn chained_results_keep_the_earlier_plugins_entries() {
        let prev = json!({"cniVersion":"1.0.0","interfaces":[{"name":"x"}],"ips":[{"address":"10.0.0.1/24","interface":0}],"routes":[]});
        let ours = json!({"cniVersion":"1.0.0","interfaces":[{"name":"h"},{"name":"eth0"}],"ips":[{"address":"10.1.0.5/32","interface":1}],"routes":[{"dst":"0.0.0.0/0"}]});
        let m = merge_prev(&prev, ours);
        assert_eq!(m["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(m["ips"][1]["interface"], 2);
        assert_eq!(m["routes"].as_array().unwrap().len(), 1);
    }
}
