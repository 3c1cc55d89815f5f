//! The CNI configuration the agent writes once it is ready
//! (`05-shortpath.conflist`): runtimes see shortpath only when the node
//! can take pods. It is left in place when the agent stops, so DEL keeps
//! working while the agent is down (the plugin cleans up without it).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::Config;
use crate::cni::spec::VERSIONS;

/// Its file name: first in lexical order (containerd 1.6 loads only the
/// first conflist of the directory).
pub const FILE: &str = "05-shortpath.conflist";
/// The network's name (host-local keeps leases under it).
pub const NETWORK: &str = "shortpath";

/// What the operator asked for with the `--cni-*` flags.
#[derive(Clone, Debug, Default)]
pub struct CniConf {
    /// The runtime's CNI configuration directory (`/etc/cni/net.d`).
    pub dir: PathBuf,
    /// An `ipam` section to use as is; default: host-local over the pod
    /// CIDRs.
    pub ipam: Option<Value>,
    /// The plugin's one-line-per-call log.
    pub log_file: Option<PathBuf>,
    /// Chain the reference `portmap` plugin after shortpath (hostPort).
    pub portmap: bool,
}

/// The conflist for this node.
pub fn render(cfg: &Config, cni: &CniConf) -> Value {
    let ipam = cni.ipam.clone().unwrap_or_else(|| {
        let ranges: Vec<Value> = cfg
            .pod_cidrs
            .nets()
            .iter()
            .map(|n| json!([{ "subnet": n.to_string() }]))
            .collect();
        json!({ "type": "host-local", "ranges": ranges })
    });
    let mut plugin = json!({
        "type": "shortpath",
        "socket": cfg.socket,
        "pinRoot": cfg.pin_root.to_string(),
        "node": cfg.node.as_str(),
        "ipam": ipam,
    });
    if let Some(l) = &cni.log_file {
        plugin["logFile"] = l.display().to_string().into();
    }
    let mut plugins = vec![plugin];
    if cni.portmap {
        plugins.push(json!({ "type": "portmap", "capabilities": { "portMappings": true } }));
    }
    // 1.0.0 for the reference plugins (1.1.x refuse 1.1.0); runtimes that
    // read `cniVersions` may pick the newest.
    json!({
        "cniVersion": "1.0.0",
        "cniVersions": VERSIONS,
        "name": NETWORK,
        "plugins": plugins,
    })
}

/// Writes the conflist atomically (a temporary file renamed over it) into
/// the configuration directory, which is created if missing.
pub fn write(cfg: &Config, cni: &CniConf) -> std::io::Result<PathBuf> {
    let dir =
        super::store::ensure_dir("CNI configuration", &cni.dir).map_err(std::io::Error::other)?;
    let text = serde_json::to_vec_pretty(&render(cfg, cni)).expect("serializes");
    crate::securefs::write_atomic(&dir, FILE, &text)?;
    // Runtimes read it as any user may: 0644 like the rest of net.d.
    let path = Path::new(&dir.path).join(FILE);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            iface: "eth1".into(),
            pod_cidrs: "10.1.0.0/24,fd00:1::/64".parse().unwrap(),
            cluster_cidrs: None,
            mode: None,
            attach: None,
            state_dir: "/run/shortpathd".into(),
            socket: "/run/shortpathd/api.sock".into(),
            metrics: None,
            pin_root: crate::dataplane::PinRoot::shortpath(),
            node: "node".parse().unwrap(),
            cni: None,
        }
    }

    #[test]
    fn the_conflist_names_the_agent_and_the_node_and_parses_as_a_plugin_config() {
        let c = render(
            &cfg(),
            &CniConf {
                portmap: true,
                ..Default::default()
            },
        );
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["plugins"][1]["type"], "portmap");
        let p = &c["plugins"][0];
        assert_eq!(p["socket"], "/run/shortpathd/api.sock");
        assert_eq!(p["ipam"]["ranges"][1][0]["subnet"], "fd00:1::/64");
        // What a runtime hands the plugin: the plugin's section plus the
        // network's name and version.
        let mut conf = p.clone();
        conf["cniVersion"] = c["cniVersion"].clone();
        conf["name"] = c["name"].clone();
        let (parsed, _) = crate::cni::spec::NetConf::parse(conf.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.node, "node");
        assert_eq!(parsed.pin_root, "/sys/fs/bpf/shortpath");
    }
}
