use std::path::PathBuf;

use crate::netns::NetnsError;

/// Environment variable: `full` prints the whole verifier log when a
/// program is rejected (default: the last lines, where the reason is).
pub const VERIFIER_LOG_ENV: &str = "SHORTPATH_VERIFIER_LOG";
const VERIFIER_TAIL: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("loading the eBPF object: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    #[error("the eBPF object has no program {0:?} (build mismatch: rebuild shortpath)")]
    NoProgram(&'static str),
    #[error("the eBPF object has no map {0:?} (build mismatch: rebuild shortpath)")]
    NoMap(&'static str),
    #[error("the kernel verifier rejected {program}: {io_error}\n{log}\n(set {VERIFIER_LOG_ENV}=full for the whole log)")]
    Verifier {
        program: &'static str,
        io_error: std::io::Error,
        log: String,
    },
    #[error("{program}: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("netns {netns}: attaching {program} to {ifname} (ifindex {ifindex}) with {attach}: {source}")]
    Attach {
        netns: String,
        program: &'static str,
        ifname: String,
        ifindex: u32,
        attach: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "netns {netns}: reading routes, neighbours and rules for the next-hop cache: {source}"
    )]
    NextHops {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{count} pod CIDRs: the pod CIDR map holds at most {max}")]
    TooManyPodCidrs { count: usize, max: u32 },
    #[error("bpffs at {path}: {source} (mount it: mount -t bpf bpf /sys/fs/bpf)")]
    Bpffs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    UnsafePinDir(Box<crate::securefs::SecureDirError>),
    #[error("pin {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("this kernel has no TCX links (Linux ≥ 6.6): use --attach tc")]
    NoTcx,
    #[error("dataplane state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: reading what is attached to {ifname}: {source}")]
    Query {
        netns: String,
        ifname: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netns {netns}: detaching {what} from {ifname} (ifindex {ifindex}): {source}")]
    Detach {
        netns: String,
        what: String,
        ifname: String,
        ifindex: u32,
        #[source]
        source: std::io::Error,
    },
}

impl DataplaneError {
    /// Wraps a program load/attach error, keeping verifier rejections short
    /// unless the user asked for the full log.
    pub fn program(program: &'static str, e: aya::programs::ProgramError) -> Self {
        match e {
            aya::programs::ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                let full = verifier_log.to_string();
                let log = if std::env::var(VERIFIER_LOG_ENV).is_ok_and(|v| v == "full") {
                    full
                } else {
                    tail(&full, VERIFIER_TAIL)
                };
                Self::Verifier {
                    program,
                    io_error,
                    log,
                }
            }
            source => Self::Program {
                program,
                source: Box::new(source),
            },
        }
    }

    pub fn map(map: &'static str, source: aya::maps::MapError) -> Self {
        Self::Map { map, source }
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("  … {skip} lines of verifier log omitted\n"));
    }
    for l in &lines[skip..] {
        out.push_str("  ");
        out.push_str(l);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_last_lines_and_says_how_many_were_cut() {
        let log = (1..=20)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail(&log, 3);
        assert!(t.starts_with("  … 17 lines"), "{t}");
        assert!(t.ends_with("line 20"), "{t}");
        assert!(!t.contains("line 17\n"), "{t}");
        assert_eq!(tail("a\n\nb", 5), "  a\n  b");
    }
}
