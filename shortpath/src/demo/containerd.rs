//! containerd 1.6 (Debian's, with runc) in a lab node's namespace, on the
//! CNI configuration the node's shortpathd wrote (`lab up --cni`). Its
//! root, state, socket, CNI directories and a busybox rootfs live in
//! `/run/shortpath/<lab>/containerd/<node>/`; containers are started with
//! `ctr run --rm --cni --rootfs`, with ctr's fixed CNI directories
//! (`/etc/cni/net.d`, `/opt/cni/bin`) bound to ours in a private mount
//! namespace. Dropping a [`Containerd`] kills its containers (each `ctr
//! run` then calls the plugin's DEL), stops the daemon, kills its shims and
//! removes the directory; [`Containerd::keep`] leaves it all running, and
//! [`Containerd::adopt`] finds it again to remove it later.
//!
//! Used by `shortpath demo` and by the runtime tests.

use std::{
    net::IpAddr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use serde_json::Value;

use crate::{control::agents, names::LabName, runtime};

/// Environment variable naming the CNI plugin binary (default:
/// `shortpath-cni` beside the running executable).
pub const PLUGIN_ENV: &str = "SHORTPATH_CNI";
/// The reference plugins the agent's conflist uses, where Debian's
/// containernetworking-plugins installs them.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
/// The conflist the node's agent writes.
const CONFLIST: &str = "05-shortpath.conflist";
/// What the busybox rootfs offers as commands.
const APPLETS: [&str; 7] = ["sh", "ip", "ping", "nc", "sleep", "cat", "echo"];
const START_WITHIN: Duration = Duration::from_secs(15);
const ADDRESS_WITHIN: Duration = Duration::from_secs(20);
/// How long a killed container's `ctr run` may take for its DEL.
const DEL_WITHIN: Duration = Duration::from_secs(10);
const STOP_WITHIN: Duration = Duration::from_secs(5);
const SETUP: &str = "run scripts/setup.sh";

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{bin} not found: {SETUP} (it installs containerd, runc, busybox-static and containernetworking-plugins)")]
    Missing { bin: String },
    #[error("the CNI plugin {} is missing: {source} (cargo build --release builds shortpath-cni beside shortpath, or set {PLUGIN_ENV})", path.display())]
    Plugin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is missing: ctr run --cni binds its CNI directories over it; {SETUP} (or mkdir -p /etc/cni/net.d /opt/cni/bin)", path.display())]
    CniDir { path: PathBuf },
    #[error("lab {lab}, node {node}: no CNI configuration at {}: {source} (build the lab with `shortpath lab up --cni`)", path.display())]
    NoConflist {
        lab: LabName,
        node: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not the agent's conflist for node {node}: {why}", path.display())]
    Conflist {
        path: PathBuf,
        node: String,
        why: String,
    },
    #[error("lab {lab}, node {node}: a containerd already runs in {} (pid {pid}): remove it first (shortpath demo --name {lab} --down)", dir.display())]
    Running {
        lab: LabName,
        node: String,
        dir: PathBuf,
        pid: i32,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd in {ns} did not answer within {START_WITHIN:?}; its log ({}) ends with:\n{tail}", log.display())]
    NotStarted {
        ns: String,
        log: PathBuf,
        tail: String,
    },
    #[error("container {id} in {ns} has no IPv4 address after {ADDRESS_WITHIN:?} ({detail}); the CNI log ({}) ends with:\n{tail}", log.display())]
    NoAddress {
        id: String,
        ns: String,
        detail: String,
        log: PathBuf,
        tail: String,
    },
    #[error("in {ns}, the `ctr run` of {ids} did not end within {DEL_WITHIN:?} of its container's kill (killed; its DEL may not have run)")]
    RunStuck { ns: String, ids: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerdError {
    let what = what.into();
    move |source| ContainerdError::Io { what, source }
}

/// The last `n` lines of a file (empty if it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `shortpath-cni`: `$SHORTPATH_CNI`, else beside the running executable.
pub fn plugin_path() -> PathBuf {
    match std::env::var_os(PLUGIN_ENV) {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map(|e| e.with_file_name("shortpath-cni"))
            .unwrap_or_else(|_| PathBuf::from("shortpath-cni")),
    }
}

/// Where node `node`'s containerd keeps everything.
pub fn dir(lab: &LabName, node: &str) -> PathBuf {
    runtime::lab_dir(lab).join("containerd").join(node)
}

/// The nodes of `lab` whose containerd directory exists (a demo kept with
/// `--keep`, or one that was stopped before it cleaned up).
pub fn present(lab: &LabName) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(runtime::lab_dir(lab).join("containerd"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Processes whose command line names a path inside `dir`: the daemon,
/// its shims, the `ctr` calls. (A zombie's command line is empty: it does
/// not count.)
pub fn processes_naming(dir: &Path) -> Vec<(i32, String)> {
    let me = format!("{}/", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&me)
                .then_some((pid, cmd.trim_end().to_owned()))
        })
        .collect()
}

fn is_daemon(cmd: &str) -> bool {
    cmd.split(' ')
        .next()
        .is_some_and(|a| a == "containerd" || a.ends_with("/containerd"))
}

fn is_run(cmd: &str) -> bool {
    cmd.contains(" run --rm --cni ")
}

/// containerd in a node's namespace. Dropping it removes its containers,
/// the daemon, its shims and its directory.
pub struct Containerd {
    dir: PathBuf,
    node: String,
    ns: String,
    ipam_dir: PathBuf,
    cni_log: PathBuf,
    /// The daemon, when this process started it.
    daemon: Option<Child>,
    /// `ctr run --rm --cni` in the foreground of a child: it calls DEL
    /// when the container ends.
    runs: Vec<(String, Child)>,
    /// Set by [`Containerd::keep`]: drop leaves everything running.
    kept: bool,
}

impl Containerd {
    /// Starts containerd in node `node` of `lab` (built with `--cni`), with
    /// the plugin from [`plugin_path`] and `extra_cri_toml` appended to the
    /// CRI plugin's section of its configuration.
    pub fn start(lab: &LabName, node: &str, extra_cri_toml: &str) -> Result<Self, ContainerdError> {
        Self::start_with_plugin(lab, node, extra_cri_toml, &plugin_path())
    }

    /// As [`Containerd::start`], with the CNI plugin at `plugin`.
    pub fn start_with_plugin(
        lab: &LabName,
        node: &str,
        extra_cri_toml: &str,
        plugin: &Path,
    ) -> Result<Self, ContainerdError> {
        check_host(plugin)?;
        let d = dir(lab, node);
        if let Some((pid, _)) = processes_naming(&d).into_iter().find(|(_, c)| is_daemon(c)) {
            return Err(ContainerdError::Running {
                lab: lab.clone(),
                node: node.to_owned(),
                dir: d,
                pid,
            });
        }
        // What a run that could not clean up left (no daemon any more).
        drop(Self::adopt(lab, node));
        let (ipam_dir, cni_log) = prepare_dir(lab, node, &d, extra_cri_toml, plugin)
            .inspect_err(|_| drop(std::fs::remove_dir_all(&d)))?;
        let ns = format!("{lab}-{node}");
        let log_path = d.join("containerd.log");
        let log = std::fs::File::create(&log_path).map_err(io(log_path.display().to_string()))?;
        let log2 = log.try_clone().map_err(io("containerd.log"))?;
        let daemon = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log)
            // Not in the terminal's process group: Ctrl-C is for shortpath,
            // which then removes everything in order.
            .process_group(0)
            .spawn()
            .map_err(io(format!("starting containerd in {ns}")))?;
        let mut c = Self {
            dir: d,
            node: node.to_owned(),
            ns,
            ipam_dir,
            cni_log,
            daemon: Some(daemon),
            runs: Vec::new(),
            kept: false,
        };
        let t = Instant::now();
        loop {
            if c.ctr(&["version"]).is_ok_and(|o| o.status.success()) {
                return Ok(c);
            }
            let exited = c
                .daemon
                .as_mut()
                .is_some_and(|d| d.try_wait().ok().flatten().is_some());
            if exited || t.elapsed() > START_WITHIN {
                return Err(ContainerdError::NotStarted {
                    ns: c.ns.clone(),
                    tail: tail(&log_path, 10),
                    log: log_path,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The containerd a kept demo left in node `node` of `lab`, to remove
    /// it (drop it); `None` if there is none.
    pub fn adopt(lab: &LabName, node: &str) -> Option<Self> {
        let d = dir(lab, node);
        if !d.is_dir() {
            return None;
        }
        let conflist: Value = std::fs::read_to_string(d.join("cni-conf").join(CONFLIST))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let plugin = &conflist["plugins"][0];
        let path = |v: &Value| PathBuf::from(v.as_str().unwrap_or_default());
        Some(Self {
            ipam_dir: path(&plugin["ipam"]["dataDir"]),
            cni_log: path(&plugin["logFile"]),
            dir: d,
            node: node.to_owned(),
            ns: format!("{lab}-{node}"),
            daemon: None,
            runs: Vec::new(),
            kept: false,
        })
    }

    /// Leaves containerd and its containers running when dropped.
    pub fn keep(mut self) {
        self.kept = true;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's network namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// A file of its directory (a log), empty if unreadable.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `ctr` against our containerd, in the node's namespace, with its
    /// fixed CNI directories bound to ours in a private mount namespace.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.display().to_string();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {d}/cni-conf /etc/cni/net.d && mount --bind {d}/cni-bin /opt/cni/bin && \
                 exec nsenter --net=/run/netns/{} ctr --address {d}/containerd.sock \"$@\"",
                self.ns
            ))
            .arg("ctr")
            .args(args)
            .process_group(0);
        c
    }

    /// Runs `ctr args`; its output, also when it fails.
    pub fn ctr(&self, args: &[&str]) -> Result<Output, ContainerdError> {
        self.ctr_cmd(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("running ctr (unshare, nsenter)"))
    }

    /// Starts container `id` running `cmd` from the busybox rootfs, in the
    /// background; `ctr run --rm --cni` removes its network when it ends.
    /// Its output goes to `<id>.out` in the directory.
    pub fn run(&mut self, id: &str, cmd: &[&str]) -> Result<(), ContainerdError> {
        let rootfs = self.path("rootfs").display().to_string();
        let mut args = vec!["run", "--rm", "--cni", "--rootfs", &rootfs, id];
        args.extend(cmd);
        let out_path = self.path(&format!("{id}.out"));
        let out = std::fs::File::create(&out_path).map_err(io(out_path.display().to_string()))?;
        let err = out
            .try_clone()
            .map_err(io(out_path.display().to_string()))?;
        let child = self
            .ctr_cmd(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("ctr run {id}")))?;
        self.runs.push((id.to_owned(), child));
        Ok(())
    }

    /// Runs `cmd` in container `id` (`ctr task exec`); its output, also
    /// when it fails.
    pub fn exec(&self, id: &str, cmd: &[&str]) -> Result<Output, ContainerdError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let e = format!("x{}", N.fetch_add(1, Ordering::Relaxed));
        let mut args = vec!["task", "exec", "--exec-id", &e, id];
        args.extend(cmd);
        self.ctr(&args)
    }

    /// The container's IPv4 address, once its network is up.
    pub fn ip(&self, id: &str) -> Result<IpAddr, ContainerdError> {
        let t = Instant::now();
        loop {
            let o = self.exec(id, &["/bin/ip", "-o", "-4", "addr", "show", "eth0"])?;
            let text = String::from_utf8_lossy(&o.stdout);
            let addr = text
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next()?.parse().ok());
            if let Some(a) = addr {
                return Ok(a);
            }
            if t.elapsed() > ADDRESS_WITHIN {
                return Err(ContainerdError::NoAddress {
                    id: id.to_owned(),
                    ns: self.ns.clone(),
                    detail: format!(
                        "{} {}; ctr run says: {}",
                        text.trim(),
                        String::from_utf8_lossy(&o.stderr).trim(),
                        self.log(&format!("{id}.out")).trim()
                    ),
                    log: self.cni_log.clone(),
                    tail: tail(&self.cni_log, 5),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills every container and waits for each `ctr run` to finish (its
    /// DEL), also those a kept demo left.
    pub fn remove_all(&mut self) -> Result<(), ContainerdError> {
        let ls = match self.daemon_alive() {
            true => self.ctr(&["task", "ls", "-q"]).ok(),
            false => None,
        };
        if let Some(ls) = ls {
            for id in String::from_utf8_lossy(&ls.stdout).split_whitespace() {
                let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            }
        }
        let t = Instant::now();
        let mut stuck = Vec::new();
        for (id, mut c) in self.runs.drain(..) {
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < DEL_WITHIN {
                std::thread::sleep(Duration::from_millis(20));
            }
            if c.try_wait().ok().flatten().is_none() {
                stuck.push(id);
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        // Those of an earlier process (not our children).
        loop {
            let others: Vec<_> = processes_naming(&self.dir)
                .into_iter()
                .filter(|(_, c)| is_run(c))
                .collect();
            if others.is_empty() {
                break;
            }
            if t.elapsed() > DEL_WITHIN {
                for (pid, cmd) in others {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    stuck.push(cmd);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(ContainerdError::RunStuck {
                ns: self.ns.clone(),
                ids: stuck.join(", "),
            })
        }
    }

    /// The shortpath plugin's log (one line per call).
    pub fn cni_log(&self) -> String {
        std::fs::read_to_string(&self.cni_log).unwrap_or_default()
    }

    /// Address leases host-local holds for the agent's network.
    pub fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.ipam_dir.join("shortpath"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains('.') && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The plugin's host-side veths (`sp…`) in the node's namespace.
    pub fn veths(&self) -> Result<Vec<String>, ContainerdError> {
        let o = Command::new("ip")
            .args(["-n", &self.ns, "-j", "link", "show"])
            .output()
            .map_err(io(format!("ip -n {} link show", self.ns)))?;
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| n.starts_with("sp"))
            .map(str::to_owned)
            .collect())
    }

    /// Whether the daemon still runs.
    fn daemon_alive(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(d) => d.try_wait().ok().flatten().is_none(),
            None => processes_naming(&self.dir)
                .iter()
                .any(|(_, c)| is_daemon(c)),
        }
    }

    /// Stops the daemon and kills what is left of it; removes the directory.
    fn stop(&mut self) {
        let _ = self.remove_all();
        let t = Instant::now();
        if let Some(d) = self.daemon.as_mut() {
            let _ = kill(Pid::from_raw(d.id() as i32), Signal::SIGTERM);
            while d.try_wait().ok().flatten().is_none() && t.elapsed() < STOP_WITHIN {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        } else {
            for (pid, _) in processes_naming(&self.dir)
                .into_iter()
                .filter(|(_, c)| is_daemon(c))
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            while self.daemon_alive() && t.elapsed() < STOP_WITHIN {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Shims outlive containerd; ours are the ones naming our directory.
        let t = Instant::now();
        loop {
            let left = processes_naming(&self.dir);
            if left.is_empty() || t.elapsed() > STOP_WITHIN {
                break;
            }
            for (pid, _) in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(parent) = self.dir.parent() {
            // Only when no other node's is left.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if !self.kept {
            self.stop();
        }
    }
}

/// Checks what containerd and `ctr run --cni` need on the host, with the
/// CNI plugin at `plugin`.
pub fn check_host(plugin: &Path) -> Result<(), ContainerdError> {
    for bin in ["containerd", "ctr", "runc", "busybox", "nsenter", "unshare"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
        if !found {
            return Err(ContainerdError::Missing { bin: bin.into() });
        }
    }
    for p in ["host-local", "loopback", "portmap"] {
        let path = Path::new(REFERENCE_PLUGINS).join(p);
        if !path.is_file() {
            return Err(ContainerdError::Missing {
                bin: path.display().to_string(),
            });
        }
    }
    std::fs::metadata(plugin).map_err(|source| ContainerdError::Plugin {
        path: plugin.into(),
        source,
    })?;
    for p in ["/etc/cni/net.d", "/opt/cni/bin"] {
        if !Path::new(p).is_dir() {
            return Err(ContainerdError::CniDir { path: p.into() });
        }
    }
    Ok(())
}

/// Fills `d`: the busybox rootfs, the plugins, the agent's conflist and
/// containerd's configuration. Returns the IPAM data directory and the
/// plugin's log file, from the conflist.
fn prepare_dir(
    lab: &LabName,
    node: &str,
    d: &Path,
    extra_cri_toml: &str,
    plugin: &Path,
) -> Result<(PathBuf, PathBuf), ContainerdError> {
    for sub in [
        "root",
        "state",
        "cni-conf",
        "cni-bin",
        "rootfs/bin",
        "rootfs/proc",
        "rootfs/sys",
        "rootfs/dev",
        "rootfs/tmp",
        "rootfs/etc",
    ] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p).map_err(io(p.display().to_string()))?;
    }
    let busybox = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|p| p.join("busybox"))
        .find(|p| p.is_file())
        .ok_or_else(|| ContainerdError::Missing {
            bin: "busybox".into(),
        })?;
    let copy = |from: &Path, to: PathBuf| {
        std::fs::copy(from, &to).map(drop).map_err(io(format!(
            "copying {} to {}",
            from.display(),
            to.display()
        )))
    };
    copy(&busybox, d.join("rootfs/bin/busybox"))?;
    for applet in APPLETS {
        let link = d.join("rootfs/bin").join(applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(io(link.display().to_string()))?;
    }
    copy(plugin, d.join("cni-bin/shortpath"))?;
    for p in ["host-local", "loopback", "portmap"] {
        copy(
            &Path::new(REFERENCE_PLUGINS).join(p),
            d.join("cni-bin").join(p),
        )?;
    }
    // The conflist the node's agent wrote once it was ready.
    let written = agents::cni_conf_dir(lab, node).join(CONFLIST);
    let text = std::fs::read_to_string(&written).map_err(|source| ContainerdError::NoConflist {
        lab: lab.clone(),
        node: node.to_owned(),
        path: written.clone(),
        source,
    })?;
    let bad = |why: String| ContainerdError::Conflist {
        path: written.clone(),
        node: node.to_owned(),
        why,
    };
    let conflist: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let first = &conflist["plugins"][0];
    if first["type"] != "shortpath" || first["node"] != node {
        return Err(bad(format!(
            "its first plugin is {} for node {}",
            first["type"], first["node"]
        )));
    }
    let path = |v: &Value, what: &str| {
        v.as_str()
            .map(PathBuf::from)
            .ok_or_else(|| bad(format!("no {what}")))
    };
    let ipam_dir = path(&first["ipam"]["dataDir"], "ipam.dataDir")?;
    let cni_log = path(&first["logFile"], "logFile")?;
    let conf = d.join("cni-conf").join(CONFLIST);
    std::fs::write(&conf, text).map_err(io(conf.display().to_string()))?;
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n{1}\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"{0}/cni-bin\"\n    conf_dir = \"{0}/cni-conf\"\n",
            d.display(),
            extra_cri_toml,
        ),
    )
    .map_err(io(config.display().to_string()))?;
    Ok((ipam_dir, cni_log))
}
