//! The bridge baseline's netfilter: what a node running the CNI bridge and
//! firewall plugins has — conntrack, per-pod FORWARD accepts, masquerade of
//! traffic leaving the cluster — as one nftables table per node, plus a
//! named counter at the top of the forward hook that shows whether packets
//! still go through it (the eBPF fast path bypasses it). The counter skips
//! broadcast and multicast: with bridge netfilter on, the neighbour
//! discovery the bridge floods between pods of one node also crosses the
//! forward hook, in every mode, and it is not the traffic being measured.

use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;

use ipnet::IpNet;

use super::plan::{NodePlan, Plan};
use crate::netns::{self, Netns};

pub const TABLE: &str = "shortpath_cni";
pub const FORWARD_COUNTER: &str = "forwarded";

#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    #[error("netns {netns}: cannot run nft ({source}); install nftables (scripts/setup.sh) or set netfilter = \"none\"")]
    Spawn {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netns {netns}: nft {what} failed: {stderr}")]
    Nft {
        netns: String,
        what: &'static str,
        stderr: String,
    },
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
}

/// The ruleset of one node.
pub fn ruleset(plan: &Plan, node: &NodePlan) -> String {
    let mut cluster4: Vec<IpNet> = plan
        .nodes
        .iter()
        .filter_map(|n| n.pod_ipv4.map(Into::into))
        .collect();
    let mut cluster6: Vec<IpNet> = plan
        .nodes
        .iter()
        .filter_map(|n| n.pod_ipv6.map(Into::into))
        .collect();
    cluster4.extend(plan.wire.ipv4.map(IpNet::from));
    cluster6.extend(plan.wire.ipv6.map(IpNet::from));
    let set = |v: &[IpNet]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };

    let mut fwd = String::new();
    let mut masq = String::new();
    for pod in &node.pods {
        if let Some(a) = pod.ipv4 {
            let a = a.addr();
            fwd += &format!(
                "\t\tip daddr {a} ct state related,established accept\n\t\tip saddr {a} accept\n"
            );
            masq += &format!("\t\tip saddr {a} jump cni_masq\n");
        }
        if let Some(a) = pod.ipv6 {
            let a = a.addr();
            fwd += &format!(
                "\t\tip6 daddr {a} ct state related,established accept\n\t\tip6 saddr {a} accept\n"
            );
            masq += &format!("\t\tip6 saddr {a} jump cni_masq\n");
        }
    }
    let mut masq_rules = String::new();
    if !cluster4.is_empty() {
        masq_rules += &format!(
            "\t\tip daddr {{ {} }} accept\n\t\tip daddr != 224.0.0.0/4 masquerade\n",
            set(&cluster4)
        );
    }
    if !cluster6.is_empty() {
        masq_rules += &format!(
            "\t\tip6 daddr {{ {} }} accept\n\t\tip6 daddr != ff00::/8 masquerade\n",
            set(&cluster6)
        );
    }
    format!(
        "table inet {TABLE} {{
\tcounter {FORWARD_COUNTER} {{
\t}}
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\tmeta pkttype != {{ broadcast, multicast }} counter name \"{FORWARD_COUNTER}\"
\t\tjump cni_forward
\t}}
\tchain cni_forward {{
\t\tjump cni_admin
{fwd}\t}}
\tchain cni_admin {{
\t}}
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
{masq}\t}}
\tchain cni_masq {{
{masq_rules}\t}}
}}
"
    )
}

/// Runs `nft` with `args` inside `ns`, feeding `stdin`.
async fn nft(
    ns: &Netns,
    args: &[&str],
    stdin: &str,
    what: &'static str,
) -> Result<String, NetfilterError> {
    let fd = ns.open()?;
    let mut cmd = tokio::process::Command::new("nft");
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only setns(2) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || netns::enter_in_child(&fd));
    }
    let spawn_err = |source| NetfilterError::Spawn {
        netns: ns.name().to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).await.map_err(spawn_err)?;
    }
    let out = child.wait_with_output().await.map_err(spawn_err)?;
    if !out.status.success() {
        return Err(NetfilterError::Nft {
            netns: ns.name().to_owned(),
            what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads the node's ruleset atomically (one nft transaction).
pub async fn apply(ns: &Netns, ruleset: &str) -> Result<(), NetfilterError> {
    nft(ns, &["-f", "-"], ruleset, "load ruleset")
        .await
        .map(|_| ())
}

/// Unicast packets counted at the top of the node's forward hook.
pub async fn forwarded_packets(ns: &Netns) -> Result<u64, NetfilterError> {
    let out = nft(
        ns,
        &["-j", "list", "counter", "inet", TABLE, FORWARD_COUNTER],
        "",
        "list counter",
    )
    .await?;
    parse_counter(&out).ok_or_else(|| NetfilterError::Nft {
        netns: ns.name().to_owned(),
        what: "list counter",
        stderr: format!("unexpected output: {out}"),
    })
}

fn parse_counter(json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("nftables")?
        .as_array()?
        .iter()
        .find_map(|e| e.get("counter")?.get("packets")?.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::config::Config;

    #[test]
    fn ruleset_has_per_pod_rules_and_cluster_exemption() {
        let plan = Plan::new(&"sp".parse().unwrap(), &Config::default_lab());
        let r = ruleset(&plan, &plan.nodes[0]);
        assert!(r.contains("ip daddr 172.17.1.2 ct state related,established accept"));
        assert!(r.contains("ip6 saddr fd00:172:17:1::2 accept"));
        assert!(r.contains("ip daddr { 172.17.1.0/24, 172.17.2.0/24, 192.168.1.0/24 } accept"));
        assert!(r.contains("counter name \"forwarded\""));
        assert!(
            !r.contains("172.17.2.2"),
            "node-a has no rules for node-b's pod"
        );
    }

    #[test]
    fn counter_json() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "forwarded", "table": "shortpath_cni", "handle": 1, "packets": 42, "bytes": 4200}}]}"#;
        assert_eq!(parse_counter(j), Some(42));
        assert_eq!(parse_counter("{}"), None);
    }
}
