//! The kubelet's path: pod sandboxes created over containerd's CRI socket
//! (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox) by
//! a small CRI client, with containerd's CRI plugin calling shortpath's CNI
//! plugin. No registry is reachable: the pause image is built here from
//! busybox and imported with `ctr -n k8s.io images import`.

mod common;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{
    containerd::{self, agent, must, peer_delivered},
    TestLab,
};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, LinuxPodSandboxConfig, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest, VersionRequest,
};
use shortpath::{agent::api::Request, netns::Netns, probe};
use tonic::transport::{Channel, Endpoint, Uri};

const PAUSE: &str = "localhost/shortpath-pause:1";

fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A docker-archive image whose only process sleeps: the sandbox's pause.
fn pause_image(dir: &Path) -> PathBuf {
    let root = dir.join("pause-root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sleep")).unwrap();
    let img = dir.join("pause-img");
    std::fs::create_dir_all(&img).unwrap();
    sh(&format!(
        "tar -C {} -cf {}/layer.tar bin",
        root.display(),
        img.display()
    ));
    let layer = std::fs::read(img.join("layer.tar")).unwrap();
    let out = Command::new("sha256sum")
        .arg(img.join("layer.tar"))
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(digest.len(), 64, "{layer:?}");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sleep", "2147483647"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    std::fs::write(img.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [PAUSE], "Layers": ["layer.tar"]}]);
    std::fs::write(img.join("manifest.json"), manifest.to_string()).unwrap();
    let tar = dir.join("pause.tar");
    sh(&format!(
        "tar -C {} -cf {} manifest.json config.json layer.tar",
        img.display(),
        tar.display()
    ));
    tar
}

async fn cri(sock: PathBuf) -> RuntimeServiceClient<Channel> {
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket");
    RuntimeServiceClient::new(channel)
}

fn sandbox(name: &str, logs: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        labels: HashMap::new(),
        annotations: HashMap::new(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

#[test]
fn cri_sandboxes_get_our_address_reach_other_nodes_and_leave_nothing() {
    common::root_or_skip!();
    let lab = TestLab::up_with("ci", None, &["--cni", "--mode", "peer"]);
    let mut ctrd = containerd::start(&lab, "node-a", &format!("  sandbox_image = \"{PAUSE}\"\n"));
    let tar = pause_image(ctrd.dir());
    must(
        ctrd.ctr(&[
            "-n",
            "k8s.io",
            "images",
            "import",
            &tar.display().to_string(),
        ]),
        "import the pause image",
    );
    let sock = ctrd.path("containerd.sock");
    let logs = ctrd.path("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = rt.block_on(cri(sock));
    let v = rt
        .block_on(c.version(VersionRequest {
            version: "v1".into(),
        }))
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "containerd");

    let cfg = sandbox("web", &logs);
    let id = rt
        .block_on(c.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: String::new(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\nCNI log: {}", ctrd.cni_log()))
        .into_inner()
        .pod_sandbox_id;
    let st = rt
        .block_on(c.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        }))
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip: std::net::IpAddr = st.network.unwrap().ip.parse().unwrap();
    assert!(
        ip.to_string().starts_with("172.17.1.1"),
        "{ip}: not from our IPAM range"
    );
    // Ours: the agent has the endpoint with that address, in the kernel.
    let l = agent(&lab, "node-a", Request::EndpointList);
    let ep = l["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["endpoint"]["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == &ip.to_string())
        })
        .unwrap_or_else(|| panic!("{ip} not an endpoint: {l}"));
    assert_eq!(ep["in_kernel"], true);
    // Reached from a pod on the other node, on the fast path.
    let before = peer_delivered(&lab, "node-a");
    let pod_b = Netns::new(format!("{}-node-b-pod-b", lab.name));
    probe::ping(&pod_b, ip, 56, Duration::from_secs(3)).expect("pod-b reaches the sandbox");
    assert!(
        peer_delivered(&lab, "node-a") > before,
        "node-a's from_nic did not deliver into the sandbox"
    );

    // Stop, then remove: two DELs, both fine; nothing left.
    rt.block_on(c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    }))
    .unwrap();
    rt.block_on(c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }))
        .unwrap();
    let log = ctrd.cni_log();
    assert_eq!(log.matches("command=ADD").count(), 1, "{log}");
    assert!(log.matches("command=DEL").count() >= 2, "{log}");
    assert!(!log.contains("result=error"), "{log}");
    let veths = ctrd.veths().unwrap();
    assert!(veths.is_empty(), "{veths:?}");
    assert!(ctrd.leases().is_empty(), "{:?}", ctrd.leases());
    let l = agent(&lab, "node-a", Request::EndpointList);
    assert_eq!(l["map_entries"], 2, "only the lab's pod: {l}");
    ctrd.remove_all().unwrap();
}
