//! The agent's footprint on a lab built with agents: API latency, idle
//! memory and CPU, and restart-to-ready while adopting N endpoints.
//! A measurement command, not a test: it prints figures.

use std::{
    io::Write as _,
    net::IpAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::json;

use crate::{
    agent::api::{Client, EndpointRequest, Request},
    control::agents,
    lab::{self, NodeInfo},
    runtime::LabLock,
};

/// Endpoints added after the switch to tc attachment.
const TC_ADDS: usize = 100;

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct Footprint {
    pub endpoints: usize,
    /// p50 / p99 / max per API op, in microseconds.
    pub api_us: Vec<OpLatency>,
    pub idle_seconds: f64,
    pub idle_cpu_percent: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    /// SIGKILL, start again, until the API answers ready (adopting all).
    pub restart_to_ready_ms: f64,
    pub endpoints_after_restart: u64,
    pub adopted: bool,
}

#[derive(Debug, Serialize)]
pub struct OpLatency {
    pub op: &'static str,
    pub calls: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

fn latency(op: &'static str, mut us: Vec<f64>) -> OpLatency {
    us.sort_by(f64::total_cmp);
    let q = |p: f64| us[((us.len() as f64 - 1.0) * p).round() as usize];
    OpLatency {
        op,
        calls: us.len(),
        p50_us: q(0.50),
        p99_us: q(0.99),
        max_us: *us.last().expect("at least one call"),
    }
}

fn timed(c: &mut Client, req: &Request) -> anyhow::Result<(serde_json::Value, f64)> {
    let t = Instant::now();
    let v = c.call(req)?;
    Ok((v, t.elapsed().as_secs_f64() * 1e6))
}

/// `/proc/<pid>/status` field in kB.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// `n` veth pairs `spd<i>`/`spe<i>` in the node's namespace, both ends
/// there: stand-ins for pods' host veths.
fn add_devices(netns: &str, n: usize) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    for i in 0..n {
        writeln!(stdin, "link add spd{i} type veth peer name spe{i}")?;
        writeln!(stdin, "link set spd{i} up")?;
    }
    drop(stdin);
    anyhow::ensure!(child.wait()?.success(), "ip -batch failed in {netns}");
    Ok(())
}

fn address(node: &NodeInfo, i: usize) -> anyhow::Result<IpAddr> {
    if let Some(v6) = node.pod_ipv6.as_deref() {
        let net: ipnet::Ipv6Net = v6.parse()?;
        let base = u128::from(net.network());
        return Ok(IpAddr::V6((base + 0x1_0000 + i as u128).into()));
    }
    let v4: ipnet::Ipv4Net = node
        .pod_ipv4
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("node {} has no pod CIDR", node.name))?
        .parse()?;
    let a = u32::from(v4.network()) + 100 + i as u32;
    anyhow::ensure!(
        v4.contains(&std::net::Ipv4Addr::from(a)),
        "the IPv4 pod CIDR is too small for {i} endpoints: give the node an IPv6 pod CIDR"
    );
    Ok(IpAddr::V4(a.into()))
}

fn add_request(node: &NodeInfo, i: usize) -> anyhow::Result<Request> {
    Ok(Request::EndpointAdd {
        endpoint: EndpointRequest {
            id: format!("bench-{i}"),
            host_if: format!("spd{i}"),
            addrs: vec![address(node, i)?.to_string()],
            pod_mac: format!(
                "02:5b:{:02x}:{:02x}:{:02x}:01",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ),
            mtu: None,
        },
    })
}

/// Runs the measurement on the first node of the lab of `lock` (built with
/// agents). Adds `endpoints` endpoints on veths of their own; the lab goes away
/// with them.
pub async fn run(lock: &LabLock, endpoints: usize, idle: Duration) -> anyhow::Result<Footprint> {
    let lab = lock.lab().clone();
    let inv = lab::inventory(&lab).await?;
    let node = inv.nodes.first().expect("a lab has nodes").clone();
    anyhow::ensure!(agents::enabled(&lab), "lab {lab} runs no agents");
    // 100 more for adds after a switch to tc.
    add_devices(&node.netns, endpoints + TC_ADDS)?;
    let sock = agents::socket(&lab, &node.name);
    let n2 = node.clone();
    let (api_us, pid) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut c = Client::connect(&sock)?;
        let mut adds = Vec::with_capacity(endpoints);
        let add = |i| add_request(&n2, i);
        for i in 0..endpoints {
            adds.push(timed(&mut c, &add(i)?)?.1);
        }
        let mut health = Vec::new();
        let mut pid = 0;
        for _ in 0..1000 {
            let (v, us) = timed(&mut c, &Request::Health)?;
            pid = v["pid"].as_u64().unwrap_or(0) as u32;
            health.push(us);
        }
        let mut list = Vec::new();
        let mut mode = Vec::new();
        for _ in 0..50 {
            list.push(timed(&mut c, &Request::EndpointList)?.1);
            mode.push(timed(&mut c, &Request::ModeGet)?.1);
        }
        let mut api = vec![
            latency("health", health),
            latency("endpoint_list", list),
            latency("mode_get", mode),
        ];
        if !adds.is_empty() {
            api.insert(0, latency("endpoint_add (tcx)", adds));
        }
        Ok((api, pid))
    })
    .await??;

    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    tokio::time::sleep(idle).await;
    let (secs, c1) = (t0.elapsed().as_secs_f64(), cpu_ticks(pid)?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let idle_cpu_percent = (c1 - c0) as f64 / hz / secs * 100.0;
    let rss_kib = status_kib(pid, "VmRSS:")?;
    let peak_rss_kib = status_kib(pid, "VmHWM:")?;

    // The same adds with tc filters: TCX link creation waits for an RCU
    // grace period in the kernel, a tc filter does not.
    let (sock, n2) = (agents::socket(&lab, &node.name), node.clone());
    let tc_part = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut c = Client::connect(&sock)?;
        let to_tc = Request::ModeSet {
            mode: crate::dataplane::Mode::Peer,
            attach: Some(crate::dataplane::AttachKind::Tc),
        };
        let (_, switch_us) = timed(&mut c, &to_tc)?;
        let mut tc_adds = Vec::new();
        for i in endpoints..endpoints + TC_ADDS {
            tc_adds.push(timed(&mut c, &add_request(&n2, i)?)?.1);
        }
        Ok([
            latency("mode_set (tcx → tc)", vec![switch_us]),
            latency("endpoint_add (tc)", tc_adds),
        ])
    })
    .await??;
    let mut api_us = api_us;
    api_us.extend(tc_part);

    let (new_pid, took) = agents::restart(&lab, &node).await?;
    let sock = agents::socket(&lab, &node.name);
    let h = tokio::task::spawn_blocking(move || crate::agent::api::call(&sock, &Request::Health))
        .await??;
    let log = std::fs::read_to_string(agents::dir(&lab, &node.name).join("agent.log"))?;
    let adopted = log
        .lines()
        .rfind(|l| l.contains(" ready "))
        .is_some_and(|l| l.contains("adopted=true"));
    anyhow::ensure!(h["pid"] == json!(new_pid), "the restarted agent answers");
    Ok(Footprint {
        endpoints,
        api_us,
        idle_seconds: secs,
        idle_cpu_percent,
        rss_kib,
        peak_rss_kib,
        restart_to_ready_ms: took.as_secs_f64() * 1e3,
        endpoints_after_restart: h["endpoints"].as_u64().unwrap_or(0),
        adopted,
    })
}

impl Footprint {
    pub fn text(&self) -> String {
        let mut out = format!(
            "shortpathd with {} endpoints (+ the lab's pod; {TC_ADDS} more after the switch to tc)\n\n",
            self.endpoints
        );
        let mut t = crate::table::Table::new(["API OP", "CALLS", "P50 µs", "P99 µs", "MAX µs"]);
        for l in &self.api_us {
            t.row([
                l.op.to_owned(),
                l.calls.to_string(),
                format!("{:.0}", l.p50_us),
                format!("{:.0}", l.p99_us),
                format!("{:.0}", l.max_us),
            ]);
        }
        out += &t.to_string();
        out += &format!(
            "\nidle {:.0} s: CPU {:.2} %, RSS {:.1} MiB (peak {:.1} MiB)\nrestart (SIGKILL → ready): {:.0} ms, adopted {}, {} endpoints after\n",
            self.idle_seconds,
            self.idle_cpu_percent,
            self.rss_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0,
            self.restart_to_ready_ms,
            self.adopted,
            self.endpoints_after_restart
        );
        out
    }
}
