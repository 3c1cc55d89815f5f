//! Reading routes, neighbours, rules and the NIC from the kernel (the
//! calling thread's namespace) into the planner's terms.

use std::{io, net::IpAddr};

use ipnet::IpNet;
use netlink_packet_route::{
    link::{LinkAttribute, LinkFlags, LinkMessage},
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
        NeighbourState,
    },
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType},
    rule::{RuleAction, RuleAttribute, RuleMessage},
};

use super::{Neighbour, Nic, Observed, Route, TABLE_LOCAL, TABLE_MAIN};
use crate::nl::blocking;

/// The table behind `lookup default`.
const TABLE_DEFAULT: u32 = 253;

/// What the kernel has now, for the NIC `nic`.
pub fn observe(nic: u32) -> io::Result<Observed> {
    Ok(Observed {
        default_rules: blocking::rules()?.iter().all(default_rule),
        routes: blocking::routes()?.iter().filter_map(route).collect(),
        neighbours: blocking::neighbours()?
            .iter()
            .filter_map(neighbour)
            .collect(),
        nic: link(&blocking::link(nic)?),
    })
}

/// `lookup local|main|default` without any selector.
fn default_rule(r: &RuleMessage) -> bool {
    let h = &r.header;
    let table = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    let plain = r.attributes.iter().all(|a| {
        matches!(
            a,
            RuleAttribute::Table(_)
                | RuleAttribute::Priority(_)
                | RuleAttribute::Protocol(_)
                // -1: not set (the kernel reports it anyway).
                | RuleAttribute::SuppressPrefixLen(u32::MAX)
                | RuleAttribute::SuppressIfGroup(u32::MAX)
        )
    });
    h.action == RuleAction::ToTable
        && h.src_len == 0
        && h.dst_len == 0
        && h.tos == 0
        && plain
        && matches!(table, TABLE_LOCAL | TABLE_MAIN | TABLE_DEFAULT)
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route(r: &RouteMessage) -> Option<Route> {
    let h = &r.header;
    let mut dst = None;
    let mut out = Route {
        table: u32::from(h.table),
        dst: IpNet::default(),
        unicast: h.kind == RouteType::Unicast,
        tos: h.tos,
        gateway: None,
        oif: None,
        priority: 0,
        mtu: None,
        special: h.source_prefix_length != 0,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => out.gateway = route_addr(g),
            RouteAttribute::Oif(i) => out.oif = Some(*i),
            RouteAttribute::Priority(p) => out.priority = *p,
            RouteAttribute::Table(t) => out.table = *t,
            RouteAttribute::Metrics(ms) => {
                out.mtu = ms.iter().find_map(|m| match m {
                    RouteMetric::Mtu(v) => Some(*v),
                    _ => None,
                })
            }
            RouteAttribute::MultiPath(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::NhId(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Encap(_) => out.special = true,
            _ => {}
        }
    }
    let dst = match dst {
        Some(a) => a,
        // A default route: no RTA_DST.
        None if h.address_family == netlink_packet_route::AddressFamily::Inet => {
            IpAddr::from([0u8; 4])
        }
        None => IpAddr::from([0u8; 16]),
    };
    out.dst = IpNet::new(dst, h.destination_prefix_length).ok()?;
    Some(out)
}

/// `NUD_VALID`: the states `bpf_fib_lookup` returns SUCCESS for.
fn valid(s: NeighbourState) -> bool {
    matches!(
        s,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

fn neighbour(n: &NeighbourMessage) -> Option<Neighbour> {
    let mut addr = None;
    let mut lladdr = None;
    let mut managed = false;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                addr = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                addr = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(l) => lladdr = <[u8; 6]>::try_from(&l[..]).ok(),
            NeighbourAttribute::ExtFlags(f) => managed = f.contains(NeighbourExtFlags::Managed),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: n.header.ifindex,
        addr: addr?,
        lladdr,
        valid: valid(n.header.state),
        managed,
        configured: matches!(
            n.header.state,
            NeighbourState::Permanent | NeighbourState::Noarp
        ) || n.header.flags.contains(NeighbourFlags::ExtLearned),
    })
}

fn link(l: &LinkMessage) -> Nic {
    let mut nic = Nic {
        ifindex: l.header.index,
        mac: [0; 6],
        mtu: 0,
        up: l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::Running),
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::Address(m) => {
                if let Ok(m) = <[u8; 6]>::try_from(&m[..]) {
                    nic.mac = m;
                }
            }
            LinkAttribute::Mtu(m) => nic.mtu = *m,
            _ => {}
        }
    }
    nic.up &= nic.mtu > 0 && nic.mac != [0; 6];
    nic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(table: u32, extra: Vec<RuleAttribute>) -> RuleMessage {
        let mut r = RuleMessage::default();
        r.header.action = RuleAction::ToTable;
        r.header.table = table as u8;
        r.attributes = vec![
            RuleAttribute::Table(table),
            RuleAttribute::SuppressPrefixLen(u32::MAX),
            RuleAttribute::Priority(32766),
        ];
        r.attributes.extend(extra);
        r
    }

    #[test]
    fn only_selector_free_lookups_of_the_standard_tables_are_default() {
        for t in [TABLE_LOCAL, TABLE_MAIN, TABLE_DEFAULT] {
            assert!(default_rule(&rule(t, vec![])), "table {t}");
        }
        assert!(!default_rule(&rule(100, vec![])), "another table");
        assert!(!default_rule(&rule(
            TABLE_MAIN,
            vec![RuleAttribute::FwMark(1)]
        )));
        assert!(!default_rule(&rule(
            TABLE_MAIN,
            vec![RuleAttribute::Iifname("eth0".into())]
        )));
        assert!(!default_rule(&rule(
            TABLE_MAIN,
            vec![RuleAttribute::SuppressPrefixLen(0)]
        )));
        let mut from = rule(TABLE_MAIN, vec![]);
        from.header.src_len = 24;
        assert!(!default_rule(&from), "a source selector");
    }
}
