//! Privileges every command needs, checked before anything else runs, with
//! the same message everywhere.

/// Capabilities shortpath uses: namespaces and mounts (CAP_SYS_ADMIN),
/// devices, routes and tc (CAP_NET_ADMIN), eBPF (CAP_BPF, implied by
/// CAP_SYS_ADMIN on older kernels).
const NEEDED: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

#[derive(Debug, thiserror::Error)]
#[error("shortpath needs root (missing {missing}: it creates namespaces, devices and eBPF programs); run it with sudo")]
pub struct NotPrivileged {
    pub missing: String,
}

/// Effective capability bits of this process, from `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

fn missing_from(caps: u64) -> Vec<&'static str> {
    NEEDED
        .iter()
        .filter(|(bit, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Fails unless the process is root with what shortpath uses: what it
/// creates must be root's (see [`crate::securefs`]), so capabilities alone
/// are not enough.
pub fn require() -> Result<(), NotPrivileged> {
    let caps = effective_caps().unwrap_or(0);
    let mut missing = missing_from(caps);
    if !nix::unistd::geteuid().is_root() {
        missing.insert(0, "uid 0");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        assert!(missing_from(u64::MAX).is_empty());
        assert_eq!(missing_from(0), ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]);
        assert_eq!(missing_from(1 << 21), ["CAP_NET_ADMIN"]);
        let e = NotPrivileged {
            missing: "CAP_NET_ADMIN".into(),
        };
        assert!(e.to_string().starts_with("shortpath needs root"));
    }
}
