//! The CNI_* environment, checked into a type (code 4 when it is wrong).

use std::{collections::BTreeMap, path::PathBuf};

use super::spec::{code, CniError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }
}

/// What one invocation was given.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// May be empty on DEL.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
}

fn invalid(m: String) -> CniError {
    CniError::new(code::INVALID_ENV, m)
}

/// A container id as the spec allows: alphanumerics, `_`, `.`, `-`, at
/// least one character, starting alphanumeric.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.len() <= 256
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "CNI_CONTAINERID {id:?} is not a valid container id"
        )))
    }
}

impl Env {
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, CniError> {
        let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
        let command = Command::parse(get("CNI_COMMAND")).ok_or_else(|| {
            invalid(format!(
                "CNI_COMMAND {:?} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION",
                get("CNI_COMMAND")
            ))
        })?;
        let path: Vec<PathBuf> = get("CNI_PATH")
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        let mut env = Env {
            command,
            container_id: get("CNI_CONTAINERID").to_owned(),
            netns: Some(get("CNI_NETNS"))
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ifname: get("CNI_IFNAME").to_owned(),
            args: get("CNI_ARGS").to_owned(),
            path,
        };
        match command {
            Command::Version => {}
            Command::Status | Command::Gc => {}
            Command::Add | Command::Check | Command::Del => {
                let need = |k: &str, v: bool| {
                    if v {
                        Ok(())
                    } else {
                        Err(invalid(format!("{k} is required for {}", command.as_str())))
                    }
                };
                need("CNI_CONTAINERID", !env.container_id.is_empty())?;
                check_container_id(&env.container_id)?;
                need("CNI_IFNAME", !env.ifname.is_empty())?;
                shortpath_common_ifname(&env.ifname)?;
                if command != Command::Del {
                    need("CNI_NETNS", env.netns.is_some())?;
                }
                if let Some(ns) = &env.netns {
                    if !ns.is_absolute() {
                        return Err(invalid(format!("CNI_NETNS {ns:?} is not an absolute path")));
                    }
                }
            }
        }
        if matches!(
            command,
            Command::Add | Command::Check | Command::Del | Command::Gc | Command::Status
        ) && env.path.is_empty()
        {
            env.path = vec![PathBuf::from("/opt/cni/bin")];
        }
        Ok(env)
    }

    /// `K8S_POD_NAMESPACE=…;K8S_POD_NAME=…` pairs from CNI_ARGS.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

fn shortpath_common_ifname(s: &str) -> Result<(), CniError> {
    crate::agent::endpoint::check_ifname(s).map_err(|m| invalid(format!("CNI_IFNAME: {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_command_gets_what_it_needs() {
        let add = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-1"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni:/opt/cni/bin"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ];
        let e = Env::from_vars(&vars(&add)).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.path.len(), 2);
        assert_eq!(e.arg("K8S_POD_NAME"), Some("web"));
        for (drop, want) in [
            ("CNI_CONTAINERID", "CNI_CONTAINERID"),
            ("CNI_NETNS", "CNI_NETNS"),
            ("CNI_IFNAME", "CNI_IFNAME"),
        ] {
            let v: Vec<_> = add.iter().copied().filter(|(k, _)| *k != drop).collect();
            let err = Env::from_vars(&vars(&v)).unwrap_err();
            assert_eq!(err.code, code::INVALID_ENV);
            assert!(err.msg.contains(want), "{}", err.msg);
        }
        // DEL may have an empty CNI_NETNS.
        let mut del = add.to_vec();
        del[0] = ("CNI_COMMAND", "DEL");
        del[2] = ("CNI_NETNS", "");
        assert!(Env::from_vars(&vars(&del)).unwrap().netns.is_none());
        assert!(Env::from_vars(&vars(&[("CNI_COMMAND", "VERSION")])).is_ok());
        for bad in [
            ("CNI_COMMAND", "FROB"),
            ("CNI_CONTAINERID", "../x"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_NETNS", "rel/path"),
        ] {
            let mut v = add.to_vec();
            v.retain(|(k, _)| *k != bad.0);
            v.push(bad);
            assert_eq!(
                Env::from_vars(&vars(&v)).unwrap_err().code,
                code::INVALID_ENV,
                "{bad:?}"
            );
        }
    }
}
