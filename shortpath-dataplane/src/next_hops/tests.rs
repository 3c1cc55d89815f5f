use super::*;

const NIC: u32 = 2;
const NIC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn via(dst: &str, gw: &str) -> Route {
    Route {
        table: TABLE_MAIN,
        dst: net(dst),
        unicast: true,
        tos: 0,
        gateway: Some(gw.parse().unwrap()),
        oif: Some(NIC),
        priority: 0,
        mtu: None,
        special: false,
    }
}

fn neigh(addr: &str, mac: [u8; 6], valid: bool) -> Neighbour {
    Neighbour {
        ifindex: NIC,
        addr: addr.parse().unwrap(),
        lladdr: Some(mac),
        valid,
        managed: false,
        configured: false,
    }
}

fn lab() -> Observed {
    Observed {
        default_rules: true,
        routes: vec![
            Route {
                gateway: None,
                oif: Some(9),
                ..via("172.17.1.0/24", "0.0.0.0")
            },
            via("172.17.2.0/24", "192.168.1.2"),
            via("fd00:172:17:2::/64", "fd00:192:168:1::2"),
            Route {
                gateway: None,
                ..via("192.168.1.0/24", "0.0.0.0")
            },
        ],
        neighbours: vec![
            neigh("192.168.1.2", GW_MAC, true),
            neigh("fd00:192:168:1::2", GW_MAC, true),
        ],
        nic: Nic {
            ifindex: NIC,
            mac: NIC_MAC,
            mtu: 1500,
            up: true,
        },
    }
}

fn cluster() -> Vec<IpNet> {
    vec![net("172.17.0.0/16"), net("fd00:172:17::/48")]
}

#[test]
fn remote_pod_cidrs_via_the_nic_are_cached_with_the_gateway_mac() {
    let p = plan(&cluster(), &lab());
    assert_eq!(p.disabled, None);
    let want = NextHop {
        ifindex: NIC,
        mtu: 1500,
        smac: NIC_MAC,
        dmac: GW_MAC,
    };
    assert_eq!(
        p.entries,
        BTreeMap::from([
            (net("172.17.2.0/24"), want),
            (net("fd00:172:17:2::/64"), want)
        ]),
        "the local pod CIDR (br0, no gateway) and the node network (outside the cluster) are left out"
    );
    assert_eq!(p.cached(), 2);
}

#[test]
fn an_unresolved_or_invalid_neighbour_is_not_cached() {
    let mut o = lab();
    o.neighbours[0].valid = false;
    o.neighbours[1].lladdr = None;
    assert!(plan(&cluster(), &o).entries.is_empty());
    // A neighbour on another device does not count either.
    let mut o = lab();
    o.neighbours[0].ifindex = 7;
    assert_eq!(plan(&cluster(), &o).cached(), 1);
}

#[test]
fn a_new_gateway_mac_changes_the_entry() {
    let mut o = lab();
    o.neighbours[0].lladdr = Some([2, 0, 0, 0, 0, 9]);
    let p = plan(&cluster(), &o);
    assert_eq!(p.entries[&net("172.17.2.0/24")].dmac, [2, 0, 0, 0, 0, 9]);
}

#[test]
fn policy_rules_or_a_down_nic_turn_the_cache_off() {
    let mut o = lab();
    o.default_rules = false;
    let p = plan(&cluster(), &o);
    assert!(p.entries.is_empty());
    assert!(p.disabled.unwrap().contains("policy"));
    let mut o = lab();
    o.nic.up = false;
    assert!(plan(&cluster(), &o).entries.is_empty());
}

#[test]
fn routes_the_cache_cannot_reproduce_are_left_to_the_fib() {
    for (what, change) in [
        (
            "multipath",
            Box::new(|r: &mut Route| r.special = true) as Box<dyn Fn(&mut Route)>,
        ),
        ("other device", Box::new(|r: &mut Route| r.oif = Some(5))),
        ("no gateway", Box::new(|r: &mut Route| r.gateway = None)),
        ("blackhole", Box::new(|r: &mut Route| r.unicast = false)),
        ("tos", Box::new(|r: &mut Route| r.tos = 4)),
        (
            "outside the cluster",
            Box::new(|r: &mut Route| r.dst = net("10.9.0.0/24")),
        ),
    ] {
        let mut o = lab();
        change(&mut o.routes[1]);
        let p = plan(&cluster(), &o);
        assert!(
            !p.entries.contains_key(&net("172.17.2.0/24")),
            "{what}: {:?}",
            p.entries
        );
    }
}

#[test]
fn the_lowest_priority_route_wins_and_a_tie_is_not_guessed() {
    let mut o = lab();
    o.neighbours
        .push(neigh("192.168.1.3", [2, 0, 0, 0, 0, 3], true));
    let mut other = via("172.17.2.0/24", "192.168.1.3");
    other.priority = 10;
    o.routes.push(other.clone());
    assert_eq!(
        plan(&cluster(), &o).entries[&net("172.17.2.0/24")].dmac,
        GW_MAC
    );
    other.priority = 0;
    o.routes.pop();
    o.routes.push(other);
    assert!(!plan(&cluster(), &o)
        .entries
        .contains_key(&net("172.17.2.0/24")));
}

#[test]
fn exceptions_inside_a_cached_route_ask_the_fib() {
    let mut o = lab();
    // A pod of that range moved behind another device, and a local
    // address inside it: both must reach the FIB.
    o.routes.push(Route {
        gateway: None,
        oif: Some(12),
        ..via("172.17.2.9/32", "0.0.0.0")
    });
    o.routes.push(Route {
        table: TABLE_LOCAL,
        unicast: false,
        gateway: None,
        ..via("172.17.2.77/32", "0.0.0.0")
    });
    let p = plan(&cluster(), &o);
    assert!(p.entries[&net("172.17.2.0/24")].is_cached());
    assert_eq!(p.entries[&net("172.17.2.9/32")], NextHop::ASK_FIB);
    assert_eq!(p.entries[&net("172.17.2.77/32")], NextHop::ASK_FIB);
    // Exceptions outside every cached route are not stored.
    assert!(!p.entries.contains_key(&net("172.17.1.0/24")));
}

#[test]
fn a_local_route_covering_the_prefix_prevents_caching() {
    let mut o = lab();
    o.routes.push(Route {
        table: TABLE_LOCAL,
        unicast: false,
        gateway: None,
        ..via("172.17.0.0/16", "0.0.0.0")
    });
    assert!(!plan(&cluster(), &o)
        .entries
        .contains_key(&net("172.17.2.0/24")));
}

#[test]
fn the_route_mtu_caps_the_device_mtu() {
    let mut o = lab();
    o.routes[1].mtu = Some(1400);
    assert_eq!(
        plan(&cluster(), &o).entries[&net("172.17.2.0/24")].mtu,
        1400
    );
    o.routes[1].mtu = Some(9000);
    assert_eq!(
        plan(&cluster(), &o).entries[&net("172.17.2.0/24")].mtu,
        1500
    );
}

#[test]
fn a_family_mismatch_between_route_and_gateway_is_not_cached() {
    // IPv4 routes via IPv6 gateways (RFC 5549) use RTA_VIA; not reproduced.
    let mut o = lab();
    o.routes[1].gateway = Some("fd00:192:168:1::2".parse().unwrap());
    assert!(!plan(&cluster(), &o)
        .entries
        .contains_key(&net("172.17.2.0/24")));
}

#[test]
fn the_gateways_of_cached_routes_are_to_be_managed_until_they_are() {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (v4, v6) = ((NIC, ip("192.168.1.2")), (NIC, ip("fd00:192:168:1::2")));
    // The gateways to manage after `change` to the lab's kernel state.
    let unmanaged = |change: fn(&mut Observed)| {
        let mut obs = lab();
        change(&mut obs);
        plan(&cluster(), &obs).unmanaged
    };
    assert_eq!(unmanaged(|_| {}), BTreeSet::from([v4, v6]));
    // Managed already: nothing to do for it.
    assert_eq!(
        unmanaged(|o| o.neighbours[0].managed = true),
        BTreeSet::from([v6])
    );
    // A route that is not cached (its gateway unresolved) asks for nothing.
    assert_eq!(
        unmanaged(|o| o.neighbours[1].valid = false),
        BTreeSet::from([v4])
    );
    // Someone's static (or daemon-learned) entry is left as it is.
    assert_eq!(
        unmanaged(|o| o.neighbours[0].configured = true),
        BTreeSet::from([v6])
    );
    // Nothing cached, nothing managed.
    assert!(unmanaged(|o| o.default_rules = false).is_empty());
}
