//! What the kernel has attached in a namespace, read without shortpath's
//! own code: aya's TCX query and iproute2's `tc -j filter show`.
#![allow(dead_code)]

use std::process::Command;

use aya::programs::{SchedClassifier, TcAttachType};
use shortpath::netns::{self, Netns};

/// One program on one device: (device, "tcx" or "tc", "ingress"/"egress",
/// program name).
pub type Attached = (String, &'static str, &'static str, String);

/// Devices of a namespace, by name.
pub fn devices(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show"])
        .output()
        .expect("ip link");
    assert!(out.status.success(), "ip -n {ns} link show failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v.as_array()
        .expect("link list")
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
        .collect()
}

fn names_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if (k == "name" || k == "bpf_name") && v.is_string() {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    names_in(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| names_in(v, out)),
        _ => {}
    }
}

/// shortpath programs (`from_nic`, `from_pod`) attached anywhere in `ns`.
pub fn attached(ns: &str) -> Vec<Attached> {
    let mut found = Vec::new();
    for dev in devices(ns) {
        for (dir, kind) in [
            ("ingress", TcAttachType::Ingress),
            ("egress", TcAttachType::Egress),
        ] {
            let out = Command::new("tc")
                .args(["-n", ns, "-j", "filter", "show", "dev", &dev, dir])
                .output()
                .expect("tc filter show");
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !text.trim().is_empty() {
                let v: serde_json::Value = serde_json::from_str(&text).expect("tc -j output");
                for f in v.as_array().into_iter().flatten() {
                    if f["kind"] != "bpf" {
                        continue;
                    }
                    let mut names = Vec::new();
                    names_in(&f["options"], &mut names);
                    if let Some(n) = names.iter().find(|n| n.starts_with("from_")) {
                        found.push((dev.clone(), "tc", dir, n.clone()));
                    }
                }
            }
            let d = dev.clone();
            let tcx: Vec<String> = netns::run_in_blocking(&Netns::new(ns), move || {
                SchedClassifier::query_tcx(&d, kind)
                    .map(|(_, progs)| {
                        progs
                            .iter()
                            .filter_map(|p| p.name_as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .expect("enter namespace");
            for n in tcx.into_iter().filter(|n| n.starts_with("from_")) {
                found.push((dev.clone(), "tcx", dir, n));
            }
        }
    }
    found.sort();
    found
}

/// Every shortpath program attached in any of `namespaces`.
pub fn attached_in(namespaces: &[String]) -> Vec<(String, Attached)> {
    namespaces
        .iter()
        .flat_map(|ns| attached(ns).into_iter().map(move |a| (ns.clone(), a)))
        .collect()
}
