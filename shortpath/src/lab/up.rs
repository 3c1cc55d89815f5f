//! Building and removing a lab.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{
    config::{Config, Netfilter},
    netfilter,
    plan::{NodePlan, Plan, PodPlan},
    state, LabError,
};
use crate::{
    fault,
    names::LabName,
    netns::{self, Netns},
    nl::Netlink,
    runtime::LabLock,
    sysctl,
};

/// ifindex of a node's NIC. The kernel treats a veth carrier change as
/// non-urgent when the peer has the same ifindex (the usual 2 and 2 of two
/// fresh namespaces) and delays it up to a second, during which IPv6 input
/// on that device drops everything (IP_INNOROUTES). A fixed, high index on
/// the node side keeps the two ends distinct.
const NIC_IFINDEX: u32 = 100;

fn preflight(cfg: &Config) -> Result<(), LabError> {
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(LabError::Preflight(
            "this kernel has no network namespaces (CONFIG_NET_NS)".into(),
        ));
    }
    if cfg.netfilter == Netfilter::CniBridge && which("nft").is_none() {
        return Err(LabError::Preflight(
            "netfilter = \"cni-bridge\" needs the nft tool: install nftables (scripts/setup.sh) or set netfilter = \"none\"".into(),
        ));
    }
    Ok(())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Builds the lab of `lock` from `cfg`. A failure half-way removes what
/// was made.
pub async fn up(lock: &LabLock, cfg: &Config) -> Result<Plan, LabError> {
    let name = lock.lab();
    preflight(cfg)?;
    if state::load(name).map_err(LabError::State)?.is_some() {
        return Err(LabError::Exists(name.clone()));
    }
    let plan = Plan::new(name, cfg);
    if let Some(ns) = plan.namespaces().into_iter().find(Netns::exists) {
        return Err(LabError::NamespaceTaken {
            ns: ns.name().to_owned(),
        });
    }
    state::create(lock, &plan).map_err(LabError::State)?;
    match build(&plan).await {
        Ok(()) => {
            state::mark_ready(lock, &plan).map_err(LabError::State)?;
            Ok(plan)
        }
        Err(e) => {
            if let Err(cleanup) = teardown(lock, &plan) {
                log::error!("cleanup after failed `lab up` also failed: {cleanup}");
            }
            Err(e)
        }
    }
}

/// Removes everything of the lab of `lock`; succeeds if there is nothing.
pub async fn down(lock: &LabLock) -> Result<(), LabError> {
    if let Some(s) = state::load(lock.lab()).map_err(LabError::State)? {
        teardown(lock, &s.plan)?;
    }
    state::remove(lock).map_err(LabError::State)
}

/// Deletes the lab's namespaces (their devices and rules go with them),
/// pods first, and its state.
fn teardown(lock: &LabLock, plan: &Plan) -> Result<(), LabError> {
    let mut first_err = None;
    for ns in plan.namespaces().iter().rev() {
        if let Err(e) = ns.delete() {
            first_err.get_or_insert(LabError::from(e));
        }
    }
    // The state file is how the next `lab down` finds what is left: it
    // goes only once everything else has.
    match first_err {
        Some(e) => Err(e),
        None => state::remove(lock).map_err(LabError::State),
    }
}

async fn build(plan: &Plan) -> Result<(), LabError> {
    let mut nl: HashMap<String, Netlink> = HashMap::new();
    for ns in plan.namespaces() {
        ns.create()?;
        // Addresses are usable at once: no duplicate address detection on
        // the lab's private segments (it delays the first IPv6 packets ~1 s).
        let name = ns.name().to_owned();
        netns::run_in(&ns, || -> std::io::Result<()> {
            sysctl::set("net.ipv6.conf.all.accept_dad", "0")?;
            sysctl::set("net.ipv6.conf.default.accept_dad", "0")
        })
        .await?
        .map_err(|source| LabError::Sysctl {
            netns: name,
            source,
        })?;
        let h = Netlink::connect(&ns).await?;
        let lo = h.link("lo").await?;
        h.set_up(lo.index).await?;
        nl.insert(ns.name().to_owned(), h);
    }
    fault::point("namespaces").await?;
    build_wire(plan, &nl).await?;
    for node in &plan.nodes {
        build_node(plan, node, &nl).await?;
    }
    fault::point("pods").await?;
    if plan.netfilter == Netfilter::CniBridge {
        for node in &plan.nodes {
            netfilter::apply(&Netns::new(&node.netns), &netfilter::ruleset(plan, node)).await?;
        }
    }
    Ok(())
}

async fn build_wire(plan: &Plan, nl: &HashMap<String, Netlink>) -> Result<(), LabError> {
    match &plan.wire.switch {
        None => {
            let (a, b) = (&plan.nodes[0], &plan.nodes[1]);
            let peer = Netns::new(&b.netns).open()?;
            // node-b's end is renamed-free and gets its ifindex from the
            // kernel; node-a's is pinned so the two ends never share one.
            nl[&a.netns]
                .add_veth(&a.nic, NIC_IFINDEX, &b.nic, Some(&peer), plan.mtu)
                .await?;
        }
        Some(sw) => {
            let h = &nl[&sw.netns];
            h.add_bridge(&sw.bridge, plan.mtu, false).await?;
            let bridge = h.link(&sw.bridge).await?.index;
            h.set_up(bridge).await?;
            let sw_fd = Netns::new(&sw.netns).open()?;
            for node in &plan.nodes {
                let port = node.switch_port.as_deref().expect("switch port planned");
                nl[&node.netns]
                    .add_veth(&node.nic, NIC_IFINDEX, port, Some(&sw_fd), plan.mtu)
                    .await?;
                let idx = h.link(port).await?.index;
                h.set_controller(idx, bridge).await?;
                h.set_up(idx).await?;
            }
        }
    }
    Ok(())
}

async fn build_node(
    plan: &Plan,
    node: &NodePlan,
    nl: &HashMap<String, Netlink>,
) -> Result<(), LabError> {
    let ns = Netns::new(&node.netns);
    let nf = if plan.netfilter == Netfilter::CniBridge {
        "1"
    } else {
        "0"
    };
    let netns_name = node.netns.clone();
    netns::run_in(&ns, move || -> std::io::Result<()> {
        sysctl::set("net.ipv4.ip_forward", "1")?;
        sysctl::set("net.ipv6.conf.all.forwarding", "1")?;
        sysctl::set("net.ipv4.conf.all.rp_filter", "0")?;
        match sysctl::set("net.bridge.bridge-nf-call-iptables", nf) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && nf == "0" => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(std::io::Error::new(
                    e.kind(),
                    "bridge netfilter is not available (modprobe br_netfilter, or set netfilter = \"none\")",
                ))
            }
            r => r?,
        }
        if nf == "1" {
            sysctl::set("net.bridge.bridge-nf-call-ip6tables", nf)?;
        }
        Ok(())
    })
    .await?
    .map_err(|source| LabError::Sysctl { netns: netns_name, source })?;

    let h = &nl[&node.netns];
    h.add_bridge(
        &node.bridge,
        plan.mtu,
        plan.netfilter == Netfilter::CniBridge,
    )
    .await?;
    let br = h.link(&node.bridge).await?.index;
    h.set_mac(br, node.bridge_mac).await?;
    add_addresses(h, br, [node.gw_ipv4, node.gw_ipv6]).await?;
    h.set_up(br).await?;

    let nic = h.link(&node.nic).await?.index;
    add_addresses(h, nic, [node.nic_ipv4, node.nic_ipv6]).await?;
    h.set_up(nic).await?;

    for pod in &node.pods {
        build_pod(plan, node, pod, br, nl).await?;
    }
    for r in &node.routes {
        h.add_route(r.dest, r.via).await?;
    }
    Ok(())
}

async fn build_pod(
    plan: &Plan,
    node: &NodePlan,
    pod: &PodPlan,
    bridge: u32,
    nl: &HashMap<String, Netlink>,
) -> Result<(), LabError> {
    let h = &nl[&node.netns];
    let pod_fd = Netns::new(&pod.netns).open()?;
    h.add_veth(&pod.host_if, 0, &pod.ifname, Some(&pod_fd), plan.mtu)
        .await?;
    let host = h.link(&pod.host_if).await?.index;
    h.set_controller(host, bridge).await?;
    h.set_up(host).await?;

    let p = &nl[&pod.netns];
    let ve = p.link(&pod.ifname).await?.index;
    add_addresses(p, ve, [pod.ipv4, pod.ipv6]).await?;
    p.set_up(ve).await?;
    if let Some(gw) = node.gw_ipv4 {
        p.add_route("0.0.0.0/0".parse().expect("valid"), gw.addr())
            .await?;
    }
    if let Some(gw) = node.gw_ipv6 {
        p.add_route("::/0".parse().expect("valid"), gw.addr())
            .await?;
    }
    Ok(())
}

async fn add_addresses(h: &Netlink, index: u32, nets: [Option<IpNet>; 2]) -> Result<(), LabError> {
    for net in nets.into_iter().flatten() {
        h.add_address(index, net).await?;
    }
    Ok(())
}

/// Replaces this process with `cmd` running inside the network namespace of
/// `target` (node, pod or node/pod) of lab `name` (only the network
/// namespace: unlike `ip netns exec`, /sys and /etc are not remounted), so
/// signals reach the command itself and its exit status is the process's.
/// Returns only if that fails.
pub fn exec(name: &LabName, target: &str, cmd: &[String]) -> LabError {
    let st = match super::ready_state(name) {
        Ok(st) => st,
        Err(e) => return e,
    };
    let Some(ns) = st.plan.target(target) else {
        return LabError::NoTarget {
            lab: name.clone(),
            target: target.to_owned(),
        };
    };
    let Some((prog, args)) = cmd.split_first() else {
        return LabError::Exec {
            cmd: String::new(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no command given after --",
            ),
        };
    };
    let (prog, args, line) = (prog.clone(), args.to_vec(), cmd.join(" "));
    // A thread of its own enters the namespace and execs: on success the
    // whole process becomes the command; on failure the guard takes the
    // thread back and the error comes home.
    let run = std::thread::spawn(move || -> LabError {
        let _guard = match netns::NetnsGuard::enter(&ns) {
            Ok(g) => g,
            Err(e) => return e.into(),
        };
        use std::os::unix::process::CommandExt as _;
        let source = std::process::Command::new(&prog).args(&args).exec();
        LabError::Exec { cmd: line, source }
    });
    run.join().unwrap_or_else(|_| LabError::Exec {
        cmd: cmd.join(" "),
        source: std::io::Error::other("the exec thread panicked"),
    })
}
