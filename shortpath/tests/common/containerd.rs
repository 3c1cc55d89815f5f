//! The library's containerd runner ([`shortpath::demo::containerd`]) for
//! the runtime tests: started with this build's CNI plugin, on a
//! [`TestLab`] built with `--cni`; its errors become panics.

use std::{path::Path, process::Output};

use serde_json::Value;
pub use shortpath::demo::containerd::Containerd;
use shortpath::{
    agent::api::Request,
    demo::{self, containerd::ContainerdError},
    names::LabName,
};

use super::TestLab;

const PLUGIN: &str = env!("CARGO_BIN_EXE_shortpath-cni");

pub fn lab_name(lab: &TestLab) -> LabName {
    lab.name.parse().expect("a valid lab name")
}

/// containerd in `node`, with `cri` appended to the CRI plugin's section
/// of its configuration.
pub fn start(lab: &TestLab, node: &str, cri: &str) -> Containerd {
    let c = Containerd::start_with_plugin(&lab_name(lab), node, cri, Path::new(PLUGIN))
        .unwrap_or_else(|e| panic!("{e}"));
    // The agent's conflist chains portmap after us.
    let conflist: Value =
        serde_json::from_str(&c.log("cni-conf/05-shortpath.conflist")).expect("the conflist");
    assert_eq!(conflist["plugins"][1]["type"], "portmap", "{conflist}");
    c
}

/// The output of a command that must have succeeded.
#[track_caller]
pub fn must(o: Result<Output, ContainerdError>, what: &str) -> Output {
    let o = o.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn agent(lab: &TestLab, node: &str, req: Request) -> Value {
    demo::agent(&lab_name(lab), node, &req).unwrap()
}

/// Packets a node's from_nic delivered into pods with redirect_peer.
pub fn peer_delivered(lab: &TestLab, node: &str) -> u64 {
    demo::peer_delivered(&lab_name(lab), node).unwrap()
}
