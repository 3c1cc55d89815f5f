//! The CNI plugin under load, as a runtime drives it: 100 pods on node-a
//! created and removed by parallel workers (the binary exec'd in the node's
//! namespace with crafted CNI_* environments, `host-local` IPAM), with the
//! node's shortpathd SIGKILLed midway and started again. ADDs during the
//! outage answer 11 and are retried until they succeed; DELs during it still
//! succeed. Afterwards nothing is left: no veth, no lease, no map entry, no
//! link pin.

mod common;

use std::{
    collections::{BTreeSet, VecDeque},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use common::{
    cni::{self, PodNs, REFERENCE_PLUGINS},
    kill9,
};
use serde_json::Value;
use shortpath::{
    agent::api::{self, Request},
    netns::{self, Netns},
};

const PODS: usize = 100;
const WORKERS: usize = 8;
/// Pods a worker keeps up before it removes its oldest one: so there are
/// pods to remove while the agent is down.
const KEEP: usize = 2;
/// The agent is killed once this many ADDs succeeded.
const KILL_AFTER_ADDS: usize = 35;
/// A worker gives up retrying one ADD after this long.
const RETRY_FOR: Duration = Duration::from_secs(30);
const T: Duration = Duration::from_secs(3);
/// DELs go on while the new agent starts, as a runtime's would. `false`
/// holds them from just before the restart until it is ready (and lets
/// those under way finish first): the rest of the test without that race.
const DELS_WHILE_AGENT_STARTS: bool = true;

/// Where the agent is, from the workers' point of view. Moves forward
/// only: a call's phases at start and end bound when it ran.
mod phase {
    pub const BEFORE: u8 = 0;
    /// SIGKILL sent; the process may still be exiting.
    pub const KILLING: u8 = 1;
    /// Every thread of the old agent is gone; no new one yet.
    pub const DOWN: u8 = 2;
    /// The new agent is spawned, not yet ready.
    pub const STARTING: u8 = 3;
    pub const AFTER: u8 = 4;
}

/// One pod of the load: its namespace, container id and ADD result.
struct Pod {
    ns: PodNs,
    id: String,
    result: Value,
}

type Fixture = cni::NodeA;

impl Fixture {
    fn fixture(prefix: &str) -> Self {
        Self::new(prefix, "shortpath-load")
    }

    fn links_dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "/sys/fs/bpf/shortpath/{}/node-a/links",
            self.lab.name
        ))
    }

    /// Room for 231 pods in node-a's pod CIDR, both families.
    fn config(&self) -> Value {
        self.conf("1.1.0", 20, 250)
    }

    fn link_pins(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.links_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn call(&self, req: &Request) -> Value {
        api::call(&self.sock(), req).unwrap_or_else(|e| panic!("{req:?}: {e}"))
    }

    /// The running agent: pid and argv.
    fn agent_process(&self) -> (i32, Vec<String>) {
        let pid = self.call(&Request::Health)["pid"].as_i64().unwrap() as i32;
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv = argv
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (pid, argv)
    }

    /// Starts the agent again with the same argv in node-a's namespace (as
    /// the lab does: own session, output to its log) and waits until it is
    /// ready. Returns its pid, or why it did not come back.
    fn restart(&self, argv: &[String]) -> Result<u32, String> {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.agent_dir().join("agent.log"))
            .unwrap();
        let fd = Netns::new(&self.ns).open().unwrap();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: setns and setsid only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                netns::enter_in_child(&fd)?;
                nix::unistd::setsid()?;
                Ok(())
            });
        }
        let t = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        loop {
            if let Ok(h) = api::call(&self.sock(), &Request::Health) {
                if h["ready"] == true && h["pid"] == pid {
                    // Reaped as soon as it exits (lab down stops it), so
                    // no zombie makes it look alive.
                    std::thread::spawn(move || child.wait());
                    return Ok(pid);
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(self.agent_dir().join("agent.log")).unwrap_or_default();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                return Err(format!(
                    "the restarted agent exited ({status}) before it was ready:\n{}",
                    errors[errors.len().saturating_sub(3)..].join("\n")
                ));
            }
            if t.elapsed() > Duration::from_secs(10) {
                std::thread::spawn(move || child.wait());
                return Err("the restarted agent was not ready within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What the workers saw, shared with the thread that kills the agent.
#[derive(Default)]
struct Tally {
    phase: AtomicU8,
    /// The agent did not come back: workers stop.
    abort: AtomicBool,
    adds_ok: AtomicUsize,
    /// ADDs answered 11 (each retried).
    adds_try_again: AtomicUsize,
    dels: AtomicUsize,
    /// DELs under way (counted only when they are held while the agent
    /// starts).
    dels_in_flight: AtomicUsize,
    /// DELs that ran entirely while no agent process existed.
    dels_while_down: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

fn del(f: &Fixture, tally: &Tally, pod: Pod) {
    let mut conf = f.config();
    conf["prevResult"] = pod.result;
    let before = loop {
        if DELS_WHILE_AGENT_STARTS {
            break tally.phase();
        }
        tally.dels_in_flight.fetch_add(1, Ordering::SeqCst);
        let p = tally.phase();
        if p != phase::STARTING {
            break p;
        }
        tally.dels_in_flight.fetch_sub(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
    };
    let r = f.run("DEL", &pod.id, &pod.ns.path(), &conf);
    let after = tally.phase();
    if !DELS_WHILE_AGENT_STARTS {
        tally.dels_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    if !r.ok {
        tally.fail(format!(
            "DEL {} (agent phase {before}..{after}): {}",
            pod.id, r.out
        ));
    }
    if before == phase::DOWN && after == phase::DOWN {
        tally.dels_while_down.fetch_add(1, Ordering::SeqCst);
    }
    tally.dels.fetch_add(1, Ordering::SeqCst);
    // The runtime removes the namespace after DEL.
    drop(pod.ns);
}

/// One worker: ADDs its pods one after the other, keeping [`KEEP`] up and
/// removing the oldest beyond that. An ADD answered 11 is retried (after
/// removing the oldest pod, as a runtime's other work goes on).
fn worker(f: &Fixture, tally: &Tally, pods: Vec<usize>) {
    let mut live: VecDeque<Pod> = VecDeque::new();
    for i in pods {
        if tally.abort.load(Ordering::SeqCst) {
            break;
        }
        let ns = PodNs::new(format!("{}-q{i}", f.lab.name));
        let id = format!("load{i}");
        let conf = f.config();
        let started = Instant::now();
        loop {
            let before = tally.phase();
            let r = f.run("ADD", &id, &ns.path(), &conf);
            let after = tally.phase();
            if r.ok {
                tally.adds_ok.fetch_add(1, Ordering::SeqCst);
                live.push_back(Pod {
                    ns,
                    id,
                    result: r.out,
                });
                break;
            }
            if r.code() == Some(11) {
                if tally.abort.load(Ordering::SeqCst) {
                    break;
                }
                tally.adds_try_again.fetch_add(1, Ordering::SeqCst);
                // 11 only while the agent is away.
                if before > phase::STARTING || after < phase::KILLING {
                    tally.fail(format!(
                        "ADD {id} said 11 with the agent up (phase {before}..{after}): {}",
                        r.out
                    ));
                }
                if started.elapsed() > RETRY_FOR {
                    tally.fail(format!("ADD {id}: still 11 after {RETRY_FOR:?}"));
                    break;
                }
                if let Some(old) = live.pop_front() {
                    del(f, tally, old);
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            tally.fail(format!(
                "ADD {id} (agent phase {before}..{after}): {}",
                r.out
            ));
            // A runtime calls DEL after a failed ADD.
            del(
                f,
                tally,
                Pod {
                    ns,
                    id,
                    result: Value::Null,
                },
            );
            break;
        }
        while live.len() > KEEP {
            del(f, tally, live.pop_front().unwrap());
        }
    }
    for pod in live {
        del(f, tally, pod);
    }
}

/// Waits until `done` or `within` passed; false if it timed out.
fn wait_for(within: Duration, done: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Prints the agent's log and the plugin's call log if the test fails.
struct LogsOnPanic<'a>(&'a Fixture);

impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in [
                self.0.agent_dir().join("agent.log"),
                self.0.log.path().into(),
            ] {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} (last 40 lines, newest first)", p.display());
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

#[test]
fn a_hundred_pods_in_parallel_through_an_agent_restart_leave_nothing_behind() {
    common::root_or_skip!();
    assert!(
        Path::new(REFERENCE_PLUGINS).join("host-local").exists(),
        "run scripts/setup.sh (containernetworking-plugins)"
    );
    let f = Fixture::fixture("cl");
    let _logs = LogsOnPanic(&f);
    // What is pinned before any pod of ours: the NIC's and the lab pod's
    // host veth's links.
    let pins_before = f.link_pins();
    assert_eq!(pins_before.len(), 2, "{pins_before:?}");
    assert!(
        pins_before.iter().all(|p| !p.starts_with("sp")),
        "{pins_before:?}"
    );
    let (old_pid, argv) = f.agent_process();

    let tally = Tally {
        phase: AtomicU8::new(phase::BEFORE),
        ..Tally::default()
    };
    let started = Instant::now();
    let mut outage = Duration::ZERO;
    let new_pid = std::thread::scope(|s| {
        for w in 0..WORKERS {
            let pods: Vec<usize> = (w..PODS).step_by(WORKERS).collect();
            let (f, tally) = (&f, &tally);
            s.spawn(move || worker(f, tally, pods));
        }
        // Midway: SIGKILL the agent, keep it down until ADDs were refused
        // and pods were removed without it, then start it again.
        if !wait_for(Duration::from_secs(120), || {
            tally.adds_ok.load(Ordering::SeqCst) >= KILL_AFTER_ADDS
        }) {
            tally.fail(format!("fewer than {KILL_AFTER_ADDS} ADDs in 120 s"));
        }
        tally.phase.store(phase::KILLING, Ordering::SeqCst);
        let t = Instant::now();
        kill9(old_pid);
        tally.phase.store(phase::DOWN, Ordering::SeqCst);
        if !wait_for(Duration::from_secs(20), || {
            tally.adds_try_again.load(Ordering::SeqCst) >= WORKERS
                && tally.dels_while_down.load(Ordering::SeqCst) >= WORKERS
        }) {
            tally.fail(format!(
                "in 20 s without the agent: {} ADDs answered 11, {} DELs",
                tally.adds_try_again.load(Ordering::SeqCst),
                tally.dels_while_down.load(Ordering::SeqCst)
            ));
        }
        tally.phase.store(phase::STARTING, Ordering::SeqCst);
        if !DELS_WHILE_AGENT_STARTS {
            wait_for(T, || tally.dels_in_flight.load(Ordering::SeqCst) == 0);
        }
        let pid = f.restart(&argv);
        if let Err(e) = &pid {
            tally.fail(e.clone());
            tally.abort.store(true, Ordering::SeqCst);
        }
        tally.phase.store(phase::AFTER, Ordering::SeqCst);
        outage = t.elapsed();
        pid
    });
    let took = started.elapsed();
    let failures = tally.failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let new_pid = new_pid.expect("no failure: the agent came back");
    let (adds, retried, dels, down_dels) = (
        tally.adds_ok.into_inner(),
        tally.adds_try_again.into_inner(),
        tally.dels.into_inner(),
        tally.dels_while_down.into_inner(),
    );
    eprintln!(
        "{PODS} pods, {WORKERS} workers, {took:?}: {adds} ADDs ok, {retried} answered 11 and retried, \
         {dels} DELs ({down_dels} with no agent); agent down for {outage:?}"
    );
    assert_eq!(adds, PODS, "every pod came up in the end");
    assert_eq!(dels, PODS);
    assert!(retried >= WORKERS && down_dels >= WORKERS);

    // Nothing left. The agent removes endpoints whose veth went while it
    // was down when it starts, and later ones from netlink events: give
    // those a moment.
    let h = f.call(&Request::Health);
    assert_eq!(h["pid"], new_pid, "the restarted agent answers: {h}");
    let settled = wait_for(T, || {
        let l = f.call(&Request::EndpointList);
        l["map_entries"] == 2 && l["endpoints"].as_array().is_some_and(|e| e.len() == 1)
    });
    let list = f.call(&Request::EndpointList);
    let ids: Vec<&str> = list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["endpoint"]["id"].as_str())
        .collect();
    assert!(settled, "endpoints left: {ids:?} ({list})");
    assert_eq!(ids, ["pod-a"], "only the lab's pod: {list}");
    assert_eq!(list["map_entries"], 2, "only the lab's pod: {list}");
    assert!(
        f.host_veths().is_empty(),
        "veths left: {:?}",
        f.host_veths()
    );
    assert!(
        f.ipam_files().is_empty(),
        "leases left: {:?}",
        f.ipam_files()
    );
    assert_eq!(f.link_pins(), pins_before, "link pins left");
    let ours = format!("{}-q", f.lab.name);
    assert!(
        common::namespaces_of(&f.lab.name)
            .iter()
            .all(|n| !n.starts_with(&ours)),
        "pod namespaces left"
    );
}
