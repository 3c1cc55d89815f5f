use super::*;

fn err(text: &str) -> ConfigError {
    Config::parse(text, "lab.toml").expect_err("config should be rejected")
}

const TWO: &str = "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";

#[test]
fn default_is_the_article_topology() {
    let c = Config::default_lab();
    assert_eq!(c.mtu, 1500);
    assert_eq!(c.netfilter, Netfilter::CniBridge);
    assert_eq!(c.wire.name, "eth1");
    assert_eq!(c.wire.ipv4, Some("192.168.1.0/24".parse().unwrap()));
    assert_eq!(c.devices.bridge, "br0");
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes[0].name, "node-a");
    assert_eq!(c.nodes[0].pods, ["pod-a"]);
    assert_eq!(c.nodes[1].pod_ipv4, Some("172.17.2.0/24".parse().unwrap()));
    assert_eq!(
        c.nodes[1].pod_ipv6,
        Some("fd00:172:17:2::/64".parse().unwrap())
    );
}

#[test]
fn minimal_config_gets_defaults_and_pod_names() {
    let c = Config::parse(
        "[[node]]\nname = \"node-a\"\npods = 3\n[[node]]\nname = \"edge\"\npods = [\"web\", \"db\"]\n",
        "x.toml",
    )
    .unwrap();
    assert_eq!(c.nodes[0].pods, ["pod-a1", "pod-a2", "pod-a3"]);
    assert_eq!(c.nodes[1].pods, ["web", "db"]);
    assert_eq!(c.nodes[1].pod_ipv4, Some("172.17.2.0/24".parse().unwrap()));
    assert_eq!(c.wire.ipv6, Some("fd00:192:168:1::/64".parse().unwrap()));
}

#[test]
fn ipv4_only_lab() {
    let c = Config::parse(&format!("families = [\"ipv4\"]\n{TWO}"), "x").unwrap();
    assert!(c.wire.ipv6.is_none());
    assert!(c
        .nodes
        .iter()
        .all(|n| n.pod_ipv6.is_none() && n.pod_ipv4.is_some()));
}

#[test]
fn bad_subnet_names_line_and_field() {
    let e = err("[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\npod_ipv4 = \"172.17.2.0/33\"\n");
    assert_eq!(e.file, "lab.toml");
    assert_eq!(e.line, 5);
    assert_eq!(e.field, "node[1].pod_ipv4");
    assert!(e.message.contains("not a subnet"), "{e}");
    assert!(
        e.to_string().starts_with("lab.toml:5: node[1].pod_ipv4: "),
        "{e}"
    );
}

#[test]
fn unknown_field_is_named() {
    let e = err(
        "[wire]\nname = \"eth1\"\nspeed = 10\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n",
    );
    assert_eq!(e.line, 3);
    assert_eq!(e.field, "wire.speed");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn wrong_type_is_named() {
    let e = err(&format!("mtu = \"big\"\n{TWO}"));
    assert_eq!((e.line, e.field.as_str()), (1, "mtu"));
}

#[test]
fn overlapping_subnets_are_rejected() {
    let e = err("[[node]]\nname = \"a\"\npod_ipv4 = \"10.0.0.0/16\"\n[[node]]\nname = \"b\"\npod_ipv4 = \"10.0.1.0/24\"\n");
    assert_eq!((e.line, e.field.as_str()), (6, "node[1].pod_ipv4"));
    assert!(e.message.contains("overlaps a's pod_ipv4"), "{e}");
}

#[test]
fn default_subnets_take_part_in_the_overlap_check() {
    // Node a gets 172.17.1.0/24 by default; b asks for it explicitly.
    let e = err("[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\npod_ipv4 = \"172.17.1.0/24\"\n");
    assert_eq!((e.line, e.field.as_str()), (5, "node[1].pod_ipv4"));
    assert!(e.message.contains("overlaps a's default pod_ipv4"), "{e}");
    // The other way round: b's default (172.17.2.0/24) is inside a's /16.
    let e = err("[[node]]\nname = \"a\"\npod_ipv4 = \"172.17.0.0/16\"\n[[node]]\nname = \"b\"\n");
    assert_eq!((e.line, e.field.as_str()), (5, "node[1].name"));
    assert!(
        e.message
            .contains("172.17.2.0/24 (b's default pod_ipv4) overlaps a's pod_ipv4"),
        "{e}"
    );
    // A pod subnet inside the default wire.
    let e = err("[[node]]\nname = \"a\"\npod_ipv4 = \"192.168.1.0/25\"\n[[node]]\nname = \"b\"\n");
    assert!(e.message.contains("overlaps default wire.ipv4"), "{e}");
    let e =
        err("[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\npod_ipv6 = \"fd00:172:17:1::/64\"\n");
    assert!(e.message.contains("overlaps a's default pod_ipv6"), "{e}");
}

#[test]
fn namespace_collisions_name_both_parties() {
    // Node a's pod b and node a-b would both be <lab>-a-b.
    let e = err("[[node]]\nname = \"a\"\npods = [\"b\"]\n[[node]]\nname = \"a-b\"\n");
    assert_eq!(e.field, "node[1].name");
    assert!(
        e.message.contains(
            "node \"a-b\" and pod \"b\" of node \"a\" would share the namespace <lab>-a-b"
        ),
        "{e}"
    );
    // The other order is caught too.
    let e = err("[[node]]\nname = \"a-b\"\n[[node]]\nname = \"a\"\npods = [\"b\"]\n");
    assert!(
        e.message
            .contains("pod \"b\" of node \"a\" and node \"a-b\""),
        "{e}"
    );
    // A node named like the lab's own switch namespace.
    let e = err("[[node]]\nname = \"switch\"\n[[node]]\nname = \"b\"\n");
    assert!(
        e.message.contains("node \"switch\" and the lab's switch"),
        "{e}"
    );
    // Names from the file are checked as names.
    let e = err("[[node]]\nname = \"a\"\npods = [\"../x\"]\n[[node]]\nname = \"b\"\n");
    assert!(e.message.contains("invalid pod name \"../x\""), "{e}");
}

#[test]
fn host_bits_get_a_suggestion() {
    let e =
        err("[wire]\nipv4 = \"192.168.1.1/24\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
    assert_eq!(e.field, "wire.ipv4");
    assert!(e.message.contains("did you mean 192.168.1.0/24"), "{e}");
}

#[test]
fn duplicate_names_are_rejected() {
    let e = err("[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n");
    assert_eq!((e.line, e.field.as_str()), (4, "node[1].name"));
    let e = err("[[node]]\nname = \"a\"\npods = [\"x\"]\n[[node]]\nname = \"b\"\npods = [\"x\"]\n");
    assert!(e.message.contains("duplicate pod name"), "{e}");
}

#[test]
fn one_node_is_not_a_lab() {
    let e = err("[[node]]\nname = \"a\"\n");
    assert!(e.message.contains("at least two nodes"), "{e}");
    assert!(err("").message.contains("at least two nodes"));
}

#[test]
fn names_and_limits_are_checked() {
    assert_eq!(
        err(&format!(
            "[devices]\nbridge = \"a-very-long-bridge-name\"\n{TWO}"
        ))
        .field,
        "devices.bridge"
    );
    assert_eq!(
        err(&format!(
            "[devices]\nhost_if_prefix = \"toolongpfx\"\n{TWO}"
        ))
        .field,
        "devices.host_if_prefix"
    );
    assert_eq!(
        err("[[node]]\nname = \"a/b\"\n[[node]]\nname = \"b\"\n").field,
        "node[0].name"
    );
    assert_eq!(err(&format!("mtu = 1000\n{TWO}")).field, "mtu");
    assert!(Config::parse(&format!("families = [\"ipv4\"]\nmtu = 1000\n{TWO}"), "x").is_ok());
    assert_eq!(
        err(&format!("netfilter = \"iptables\"\n{TWO}")).field,
        "netfilter"
    );
    assert_eq!(
        err(&format!("families = [\"ipx\"]\n{TWO}")).field,
        "families"
    );
    let e = err("[[node]]\nname = \"a\"\npods = 0\n[[node]]\nname = \"b\"\n");
    assert_eq!(e.field, "node[0].pods");
}

#[test]
fn family_consistency() {
    let e = err(&format!(
        "families = [\"ipv6\"]\n[wire]\nipv4 = \"10.1.0.0/24\"\n{TWO}"
    ));
    assert_eq!(e.field, "wire.ipv4");
    assert!(e.message.contains("not in `families`"));
}

#[test]
fn subnet_capacity() {
    let e = err(
        "[[node]]\nname = \"a\"\npod_ipv4 = \"10.0.0.0/30\"\npods = 3\n[[node]]\nname = \"b\"\n",
    );
    assert!(e.message.contains("no room"), "{e}");
    assert_eq!(e.field, "node[0].pod_ipv4");
}

#[test]
fn host_addresses() {
    assert_eq!(
        host("172.17.1.0/24".parse().unwrap(), 1).to_string(),
        "172.17.1.1"
    );
    assert_eq!(
        host("fd00:172:17:1::/64".parse().unwrap(), 2).to_string(),
        "fd00:172:17:1::2"
    );
}
