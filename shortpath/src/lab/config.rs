//! The lab's TOML configuration: parsing, defaults and validation.
//!
//! Every error names the file, the line and the field, and is found before
//! anything is created.

use std::{fmt, net::IpAddr, ops::Range, path::Path};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use toml::Spanned;

use crate::names::{NodeName, PodName};

/// The default topology, also printed by `shortpath lab config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Longest Linux interface name.
const IFNAMSIZ: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.field, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Netfilter installed on the nodes (the bridge baseline's firewall).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Netfilter {
    CniBridge,
    None,
}

impl Netfilter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CniBridge => "cni-bridge",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mtu: u32,
    pub netfilter: Netfilter,
    pub wire: Wire,
    pub devices: Devices,
    pub nodes: Vec<NodeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub name: String,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    pub bridge: String,
    pub pod_if: String,
    pub host_if_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: NodeName,
    pub pod_ipv4: Option<Ipv4Net>,
    pub pod_ipv6: Option<Ipv6Net>,
    pub pods: Vec<PodName>,
}

impl Config {
    pub fn default_lab() -> Self {
        Self::parse(DEFAULT_TOML, "<default>").expect("the built-in default config is valid")
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let src = Source { text, file };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            src.error(span, e.message().trim_end().to_owned())
        })?;
        Validator { src }.validate(raw)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    families: Option<Spanned<Vec<String>>>,
    mtu: Option<Spanned<i64>>,
    netfilter: Option<Spanned<String>>,
    #[serde(default)]
    wire: RawWire,
    #[serde(default)]
    devices: RawDevices,
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWire {
    name: Option<Spanned<String>>,
    ipv4: Option<Spanned<String>>,
    ipv6: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    bridge: Option<Spanned<String>>,
    pod_if: Option<Spanned<String>>,
    host_if_prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    pod_ipv4: Option<Spanned<String>>,
    pod_ipv6: Option<Spanned<String>>,
    pods: Option<Spanned<toml::Value>>,
}

struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].matches('\n').count() + 1
    }

    /// `table.key` (with `node[i]` for the i-th `[[node]]`) of the line
    /// holding `offset`.
    fn field_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = &self.text[line_start..line_end];
        let key = line.split_once('=').map(|(k, _)| k.trim().to_owned());
        let mut table = String::new();
        let mut nodes = 0usize;
        for l in self.text[..line_start].lines() {
            let l = l.trim();
            if l == "[[node]]" {
                nodes += 1;
                table = format!("node[{}]", nodes - 1);
            } else if l.starts_with('[') {
                table = l.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            }
        }
        match (table.is_empty(), key) {
            (_, None) if !table.is_empty() => table,
            (true, Some(k)) => k,
            (false, Some(k)) => format!("{table}.{k}"),
            _ => "(top level)".to_owned(),
        }
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: if self.text.is_empty() {
                0
            } else {
                self.line_of(span.start)
            },
            field: self.field_at(span.start),
            message: message.into(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(s.span(), message)
    }

    /// An error about something absent from the file.
    fn missing(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: 0,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

struct Validator<'a> {
    src: Source<'a>,
}

type R<T> = Result<T, ConfigError>;

impl Validator<'_> {
    fn validate(&self, raw: Raw) -> R<Config> {
        let (v4, v6) = self.families(raw.families.as_ref())?;
        let mtu = match &raw.mtu {
            None => 1500,
            Some(m) => {
                let min = if v6 { 1280 } else { 68 };
                let v = *m.get_ref();
                if !(min..=65535).contains(&v) {
                    return Err(self.src.at(m, format!("must be between {min} and 65535")));
                }
                v as u32
            }
        };
        let netfilter = match &raw.netfilter {
            None => Netfilter::CniBridge,
            Some(s) => match s.get_ref().as_str() {
                "cni-bridge" => Netfilter::CniBridge,
                "none" => Netfilter::None,
                other => {
                    return Err(self.src.at(
                        s,
                        format!("unknown netfilter {other:?}: use \"cni-bridge\" or \"none\""),
                    ))
                }
            },
        };
        let devices = Devices {
            bridge: self.ifname(raw.devices.bridge.as_ref(), "br0", 0)?,
            pod_if: self.ifname(raw.devices.pod_if.as_ref(), "ve0", 0)?,
            host_if_prefix: self.ifname(raw.devices.host_if_prefix.as_ref(), "lxc", 8)?,
        };
        let wire = Wire {
            name: self.ifname(raw.wire.name.as_ref(), "eth1", 0)?,
            ipv4: self.v4net(raw.wire.ipv4.as_ref(), v4, || "192.168.1.0/24".parse().ok())?,
            ipv6: self.v6net(raw.wire.ipv6.as_ref(), v6, || {
                "fd00:192:168:1::/64".parse().ok()
            })?,
        };
        if raw.node.len() < 2 {
            let msg = "a lab needs at least two nodes ([[node]] tables); the wire joins them";
            return Err(match raw.node.first() {
                Some(n) => self.src.at(&n.name, msg),
                None => self.src.missing("node", msg),
            });
        }
        let mut nodes = Vec::new();
        // Every subnet of the lab, explicit or default, is claimed once; an
        // overlap is reported where the later one is (or would be) written.
        let mut taken: Vec<(IpNet, String)> = Vec::new();
        let mut claim = |net: IpNet, what: String, at: &Spanned<String>| -> R<()> {
            if let Some((_, other)) = taken.iter().find(|(n, _)| overlaps(n, &net)) {
                return Err(self.src.at(at, format!("{net} ({what}) overlaps {other}")));
            }
            taken.push((net, what));
            Ok(())
        };
        for (net, field, span) in [
            (
                wire.ipv4.map(IpNet::from),
                "wire.ipv4",
                raw.wire.ipv4.as_ref(),
            ),
            (
                wire.ipv6.map(IpNet::from),
                "wire.ipv6",
                raw.wire.ipv6.as_ref(),
            ),
        ] {
            if let Some(net) = net {
                let what = match span {
                    Some(_) => field.to_owned(),
                    None => format!("default {field}"),
                };
                // The wire is claimed first, so it never overlaps anything yet.
                let at = Spanned::new(0..0, String::new());
                claim(net, what, span.unwrap_or(&at))?;
            }
        }
        let mut pod_names: Vec<PodName> = Vec::new();
        for (k, n) in raw.node.iter().enumerate() {
            let name = self.node_name(&n.name)?;
            if nodes.iter().any(|x: &NodeConfig| x.name == name) {
                return Err(self
                    .src
                    .at(&n.name, format!("duplicate node name {name:?}")));
            }
            let third = k + 1;
            let pod_ipv4 = self.v4net(n.pod_ipv4.as_ref(), v4, || {
                (third < 256)
                    .then(|| format!("172.17.{third}.0/24").parse().ok())
                    .flatten()
            })?;
            let pod_ipv6 = self.v6net(n.pod_ipv6.as_ref(), v6, || {
                format!("fd00:172:17:{third:x}::/64").parse().ok()
            })?;
            for (net, field, span) in [
                (pod_ipv4.map(IpNet::from), "pod_ipv4", n.pod_ipv4.as_ref()),
                (pod_ipv6.map(IpNet::from), "pod_ipv6", n.pod_ipv6.as_ref()),
            ] {
                if let Some(net) = net {
                    let what = match span {
                        Some(_) => format!("{name}'s {field}"),
                        None => format!("{name}'s default {field}"),
                    };
                    claim(net, what, span.unwrap_or(&n.name))?;
                }
            }
            let pods = self.pods(n, &name)?;
            for p in &pods {
                if pod_names.contains(p) {
                    let span = n.pods.as_ref().map_or(n.name.span(), |s| s.span());
                    return Err(self.src.error(
                        span,
                        format!("duplicate pod name {p:?} (pod names are unique in a lab)"),
                    ));
                }
                pod_names.push(p.clone());
            }
            // Room for the gateway (.1) and every pod.
            let need = pods.len() as u128 + 2;
            for (net, span) in [
                (pod_ipv4.map(IpNet::from), n.pod_ipv4.as_ref()),
                (pod_ipv6.map(IpNet::from), n.pod_ipv6.as_ref()),
            ] {
                if let Some(net) = net {
                    if hosts(&net) < need {
                        let msg =
                            format!("{net} has no room for a gateway and {} pods", pods.len());
                        return Err(match span {
                            Some(s) => self.src.at(s, msg),
                            None => self.src.at(&n.name, msg),
                        });
                    }
                }
            }
            nodes.push(NodeConfig {
                name,
                pod_ipv4,
                pod_ipv6,
                pods,
            });
        }
        self.namespace_names(&raw.node, &nodes)?;
        for (net, span) in [
            (wire.ipv4.map(IpNet::from), raw.wire.ipv4.as_ref()),
            (wire.ipv6.map(IpNet::from), raw.wire.ipv6.as_ref()),
        ] {
            if let Some(net) = net {
                if hosts(&net) < nodes.len() as u128 + 1 {
                    let msg = format!("{net} has no room for {} nodes", nodes.len());
                    return Err(match span {
                        Some(s) => self.src.at(s, msg),
                        None => self.src.missing("wire", msg),
                    });
                }
            }
        }
        Ok(Config {
            mtu,
            netfilter,
            wire,
            devices,
            nodes,
        })
    }

    fn families(&self, f: Option<&Spanned<Vec<String>>>) -> R<(bool, bool)> {
        let Some(f) = f else { return Ok((true, true)) };
        let (mut v4, mut v6) = (false, false);
        for fam in f.get_ref() {
            match fam.as_str() {
                "ipv4" => v4 = true,
                "ipv6" => v6 = true,
                other => {
                    return Err(self.src.at(
                        f,
                        format!("unknown family {other:?}: use \"ipv4\" and/or \"ipv6\""),
                    ))
                }
            }
        }
        if !v4 && !v6 {
            return Err(self.src.at(f, "at least one of \"ipv4\", \"ipv6\""));
        }
        Ok((v4, v6))
    }

    /// An interface name (or prefix leaving `reserve` characters).
    fn ifname(&self, s: Option<&Spanned<String>>, default: &str, reserve: usize) -> R<String> {
        let Some(s) = s else {
            return Ok(default.to_owned());
        };
        let v = s.get_ref();
        let max = IFNAMSIZ - reserve;
        if v.is_empty() || v.len() > max {
            return Err(self.src.at(
                s,
                format!(
                    "must be 1 to {max} characters (Linux interface names are at most {IFNAMSIZ})"
                ),
            ));
        }
        if v.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) || v == "." || v == ".." {
            return Err(self
                .src
                .at(s, format!("{v:?} is not a valid interface name")));
        }
        Ok(v.clone())
    }

    /// Node names end up in namespace names and pin paths.
    fn node_name(&self, s: &Spanned<String>) -> R<NodeName> {
        NodeName::new(s.get_ref()).map_err(|e| self.src.at(s, e.to_string()))
    }

    /// Pod names end up in namespace names.
    fn pod_name(&self, span: Range<usize>, name: &str) -> R<PodName> {
        PodName::new(name).map_err(|e| self.src.error(span, e.to_string()))
    }

    fn pods(&self, n: &RawNode, node: &str) -> R<Vec<PodName>> {
        let suffix = node.strip_prefix("node-").unwrap_or(node);
        let generated = |name: String| self.pod_name(n.name.span(), &name);
        let Some(p) = &n.pods else {
            return Ok(vec![generated(format!("pod-{suffix}"))?]);
        };
        match p.get_ref() {
            toml::Value::Integer(c) if (1..=250).contains(c) => {
                if *c == 1 {
                    Ok(vec![generated(format!("pod-{suffix}"))?])
                } else {
                    (1..=*c)
                        .map(|i| generated(format!("pod-{suffix}{i}")))
                        .collect()
                }
            }
            toml::Value::Integer(_) => Err(self.src.at(p, "pod count must be between 1 and 250")),
            toml::Value::Array(names) if !names.is_empty() => names
                .iter()
                .map(|v| match v.as_str() {
                    Some(name) => self.pod_name(p.span(), name),
                    None => Err(self.src.at(p, "pod names must be strings")),
                })
                .collect(),
            _ => Err(self
                .src
                .at(p, "expected a pod count (e.g. 3) or a list of pod names")),
        }
    }

    /// Every namespace of the lab is `<lab>-<suffix>`: nodes `<node>`,
    /// pods `<node>-<pod>`, and the lab's own `switch`. Two parties that
    /// would share one are refused here, before anything is created; so are
    /// two pods of a node whose host interface names would collide.
    fn namespace_names(&self, raw: &[RawNode], nodes: &[NodeConfig]) -> R<()> {
        let mut owners: Vec<(String, String)> =
            vec![("switch".to_owned(), "the lab's switch".to_owned())];
        for (n, rn) in nodes.iter().zip(raw) {
            let mut parties = vec![(n.name.to_string(), format!("node {:?}", n.name.as_str()))];
            parties.extend(n.pods.iter().map(|p| {
                (
                    format!("{}-{p}", n.name),
                    format!("pod {:?} of node {:?}", p.as_str(), n.name.as_str()),
                )
            }));
            for (suffix, who) in parties {
                if let Some((_, other)) = owners.iter().find(|(s, _)| *s == suffix) {
                    let span = rn.pods.as_ref().map_or(rn.name.span(), |p| p.span());
                    return Err(self.src.error(
                        span,
                        format!(
                            "{who} and {other} would share the namespace <lab>-{suffix}: rename one of them"
                        ),
                    ));
                }
                owners.push((suffix, who));
            }
            let mut host_ifs: Vec<(u32, &PodName)> = Vec::new();
            for p in &n.pods {
                let h = super::plan::fnv1a(&format!("{}/{p}", n.name));
                if let Some((_, other)) = host_ifs.iter().find(|(x, _)| *x == h) {
                    return Err(self.src.at(
                        &rn.name,
                        format!(
                            "pods {:?} and {:?} of node {:?} would get the same host interface name; rename one",
                            other.as_str(),
                            p.as_str(),
                            n.name.as_str()
                        ),
                    ));
                }
                host_ifs.push((h, p));
            }
        }
        Ok(())
    }

    fn net(&self, s: &Spanned<String>) -> R<IpNet> {
        let net: IpNet = s.get_ref().parse().map_err(|_| {
            self.src.at(
                s,
                format!(
                    "{:?} is not a subnet in CIDR form (e.g. 10.0.0.0/24)",
                    s.get_ref()
                ),
            )
        })?;
        if net.trunc() != net {
            return Err(self.src.at(
                s,
                format!("{net} has host bits set: did you mean {}?", net.trunc()),
            ));
        }
        Ok(net)
    }

    fn v4net(
        &self,
        s: Option<&Spanned<String>>,
        enabled: bool,
        default: impl FnOnce() -> Option<Ipv4Net>,
    ) -> R<Option<Ipv4Net>> {
        match (s, enabled) {
            (None, false) => Ok(None),
            (Some(s), false) => Err(self.src.at(s, "IPv4 is not in `families`")),
            (None, true) => Ok(default()),
            (Some(s), true) => match self.net(s)? {
                IpNet::V4(n) if n.prefix_len() <= 30 => Ok(Some(n)),
                IpNet::V4(_) => Err(self
                    .src
                    .at(s, "an IPv4 subnet needs a prefix of /30 or shorter")),
                IpNet::V6(_) => Err(self.src.at(s, "expected an IPv4 subnet")),
            },
        }
    }

    fn v6net(
        &self,
        s: Option<&Spanned<String>>,
        enabled: bool,
        default: impl FnOnce() -> Option<Ipv6Net>,
    ) -> R<Option<Ipv6Net>> {
        match (s, enabled) {
            (None, false) => Ok(None),
            (Some(s), false) => Err(self.src.at(s, "IPv6 is not in `families`")),
            (None, true) => Ok(default()),
            (Some(s), true) => match self.net(s)? {
                IpNet::V6(n) if n.prefix_len() <= 126 => Ok(Some(n)),
                IpNet::V6(_) => Err(self
                    .src
                    .at(s, "an IPv6 subnet needs a prefix of /126 or shorter")),
                IpNet::V4(_) => Err(self.src.at(s, "expected an IPv6 subnet")),
            },
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Usable host addresses of a subnet (network and broadcast excluded).
fn hosts(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if bits >= 127 {
        u128::MAX
    } else {
        (1u128 << bits).saturating_sub(2)
    }
}

/// The `index`-th host address of `net` (1 = first usable).
pub fn host(net: IpNet, index: u32) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + index).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + u128::from(index)).into()),
    }
}

#[cfg(test)]
mod tests;
