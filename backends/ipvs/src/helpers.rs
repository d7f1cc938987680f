//! The firewall rules IPVS cannot do alone, in a table of kube-ferry's own per family
//! (`ip kube-ferry-ipvs`, `ip6 kube-ferry-ipvs`): masquerade of off-cluster traffic and
//! hairpin (B21, B22), load-balancer source ranges (B10), reject for frontends without
//! endpoints and for unused ports of service addresses (B11, B19), drop under a Local
//! policy without local endpoints (B16, B17).
//!
//! The rules are fixed: they match the sets of [`HelperSets`], so the rule count is the
//! same for one service or 30,000. A first sync replaces the table atomically (`add
//! table; delete table; table ... { ... }` in one `nft -f` transaction: packets see the
//! old table or the new one, never none); later syncs only add and delete set elements.
//!
//! Hook order this relies on: IPVS takes new connections at `input` priority 99-100
//! (and `output` for the node's own traffic), so the source-range drop runs before it
//! (priority -10) and the rejects after it (priority 200), where only what IPVS did not
//! take arrives.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ferry_model::IpFamily;

use crate::config::IpvsConfig;
use crate::desired::HelperSets;

/// The helper table's name (both families).
pub const TABLE: &str = "kube-ferry-ipvs";

/// The nft family keyword of `family`.
pub fn nft_family(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn set_types(family: IpFamily) -> [(&'static str, String); 13] {
    let a = match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    };
    let svc = format!("type {a} . inet_proto . inet_service;");
    let port = "type inet_proto . inet_service;".to_owned();
    [
        ("service-ips", format!("type {a};")),
        ("cluster-ports", svc.clone()),
        ("external-ports", svc.clone()),
        ("external-local-ports", svc.clone()),
        ("node-ports", port.clone()),
        ("node-local-ports", port.clone()),
        ("no-endpoint-reject", svc.clone()),
        ("no-endpoint-drop", svc.clone()),
        ("no-endpoint-nodeport-reject", port.clone()),
        ("no-endpoint-nodeport-drop", port),
        ("lb-filtered", svc),
        ("lb-allowed", format!("type {a} . inet_proto . inet_service . {a}; flags interval;")),
        ("hairpin", format!("type {a} . {a};")),
    ]
}

/// The rules of the helper table of `family`, chain by chain.
fn chains(family: IpFamily, config: &IpvsConfig) -> Vec<(String, Vec<String>)> {
    let ip = nft_family(family);
    let mark = config.mark();
    let svc = format!("{ip} daddr . meta l4proto . th dport");
    let nodeport_match = {
        let cidrs: Vec<String> = config
            .nodeport_cidrs
            .iter()
            .filter(|c| IpFamily::of(&c.addr()) == family)
            .map(ToString::to_string)
            .collect();
        if cidrs.is_empty() {
            "fib daddr type local".to_owned()
        } else {
            format!("fib daddr type local {ip} daddr {{ {} }}", cidrs.join(", "))
        }
    };
    let mut services = Vec::new();
    if config.masquerade_all {
        services.push(format!("{svc} @cluster-ports jump mark-for-masquerade"));
    } else if let Some(outside) = config.not_from_pods(family) {
        services.push(format!("{svc} @cluster-ports {outside} jump mark-for-masquerade"));
    }
    services.push(format!("{svc} @external-ports jump mark-for-masquerade"));
    services.push(format!("{nodeport_match} meta l4proto . th dport @node-ports jump mark-for-masquerade"));
    let output_only = vec![
        "jump services".to_owned(),
        // The node's own traffic to a Local-policy frontend is masqueraded (B17).
        format!("{svc} @external-local-ports jump mark-for-masquerade"),
        format!("{nodeport_match} meta l4proto . th dport @node-local-ports jump mark-for-masquerade"),
    ];
    vec![
        ("mark-for-masquerade".into(), vec![format!("meta mark set meta mark or {mark:#x}")]),
        ("services".into(), services),
        ("nat-prerouting".into(), base("nat", "prerouting", "-100", vec!["jump services".into()])),
        ("nat-output".into(), base("nat", "output", "-100", output_only)),
        (
            "nat-postrouting".into(),
            base(
                "nat",
                "postrouting",
                "100",
                vec![
                    // An endpoint that reached its own service and landed on itself (B21).
                    format!("{ip} saddr . {ip} daddr @hairpin masquerade"),
                    format!("meta mark & {mark:#x} == 0 return"),
                    format!("meta mark set meta mark xor {mark:#x}"),
                    "masquerade fully-random".into(),
                ],
            ),
        ),
        (
            "filter-input-before-ipvs".into(),
            base(
                "filter",
                "input",
                "-10",
                vec![format!("{svc} @lb-filtered {svc} . {ip} saddr != @lb-allowed drop")],
            ),
        ),
        (
            "filter-input-after-ipvs".into(),
            base(
                "filter",
                "input",
                "200",
                vec![
                    format!("ct state new {svc} @no-endpoint-drop drop"),
                    "ct state new meta l4proto . th dport @no-endpoint-nodeport-drop drop".into(),
                    format!("ct state new {svc} @no-endpoint-reject reject"),
                    "ct state new meta l4proto . th dport @no-endpoint-nodeport-reject reject".into(),
                    // A service address on a port (or protocol) no service uses (B11).
                    format!("ct state new {ip} daddr @service-ips reject"),
                ],
            ),
        ),
    ]
}

/// A base chain's first line, then its rules.
fn base(kind: &str, hook: &str, priority: &str, rules: Vec<String>) -> Vec<String> {
    let mut out = vec![format!("type {kind} hook {hook} priority {priority}; policy accept;")];
    out.extend(rules);
    out
}

/// The number of rules of one family's table (the same at any size).
pub fn rule_count(config: &IpvsConfig) -> usize {
    chains(IpFamily::V4, config).iter().map(|(_, r)| r.iter().filter(|l| !l.starts_with("type ")).count()).sum()
}

/// The transaction that replaces the table of `family` with one holding `sets`.
pub fn replace_table(family: IpFamily, config: &IpvsConfig, sets: &HelperSets) -> String {
    let fam = nft_family(family);
    let mut s = String::new();
    // `add` first so that `delete` cannot fail on a missing table.
    let _ = writeln!(s, "add table {fam} {TABLE}");
    let _ = writeln!(s, "delete table {fam} {TABLE}");
    let _ = writeln!(s, "table {fam} {TABLE} {{");
    let _ = writeln!(s, "  comment \"kube-ferry --mode ipvs: helper rules (masquerade, source ranges, rejects)\"");
    for ((name, ty), (_, elements)) in set_types(family).iter().zip(sets.named()) {
        let _ = write!(s, "  set {name} {{ {ty}");
        if !elements.is_empty() {
            let list: Vec<&str> = elements.iter().map(String::as_str).collect();
            let _ = write!(s, " elements = {{ {} }}", list.join(", "));
        }
        let _ = writeln!(s, " }}");
    }
    for (name, rules) in chains(family, config) {
        let _ = writeln!(s, "  chain {name} {{");
        for rule in rules {
            let _ = writeln!(s, "    {rule}");
        }
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// The transaction that turns the sets `from` into `to` (element adds and deletes only);
/// empty when they are equal.
pub fn update_elements(family: IpFamily, from: &HelperSets, to: &HelperSets) -> String {
    let fam = nft_family(family);
    let mut s = String::new();
    for ((name, old), (_, new)) in from.named().into_iter().zip(to.named()) {
        let gone: Vec<&str> = old.difference(new).map(String::as_str).collect();
        let added: Vec<&str> = new.difference(old).map(String::as_str).collect();
        if !gone.is_empty() {
            let _ = writeln!(s, "delete element {fam} {TABLE} {name} {{ {} }}", gone.join(", "));
        }
        if !added.is_empty() {
            let _ = writeln!(s, "add element {fam} {TABLE} {name} {{ {} }}", added.join(", "));
        }
    }
    s
}

/// The elements changed between `from` and `to` (for the sync report's operations).
pub fn changed_elements(from: &HelperSets, to: &HelperSets) -> usize {
    from.named()
        .into_iter()
        .zip(to.named())
        .map(|((_, a), (_, b))| a.symmetric_difference(b).count())
        .sum()
}

/// Removes the table of `family` (no error when it is not there).
pub fn delete_table(family: IpFamily) -> String {
    let fam = nft_family(family);
    format!("add table {fam} {TABLE}\ndelete table {fam} {TABLE}\n")
}

/// A set of element strings (for tests and callers building sets by hand).
pub fn elements<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_owned).collect()
}

/// The `addr . proto . port` elements of an `nft list set` listing, parsed.
pub fn parse_frontend_elements(listing: &str) -> Vec<(crate::genl::Protocol, std::net::IpAddr, u16)> {
    use crate::genl::Protocol;
    let Some(start) = listing.find("elements = {") else { return Vec::new() };
    let body = &listing[start + "elements = {".len()..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.split(',')
        .filter_map(|element| {
            // IPv4 addresses contain dots too: the protocol and port are the last two.
            let all: Vec<&str> = element.split('.').map(str::trim).collect();
            let (port, proto) = (all.last()?, all.get(all.len().checked_sub(2)?)?);
            let address: std::net::IpAddr = all[..all.len() - 2].join(".").trim().parse().ok()?;
            let protocol = match *proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return None,
            };
            Some((protocol, address, port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_listings_give_their_frontends() {
        let listing = "table ip kube-ferry-ipvs {\n\tset no-endpoint-reject {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\telements = { 10.96.0.11 . tcp . 80,\n\t\t\t     10.96.0.11 . udp . 53 }\n\t}\n}\n";
        let got = parse_frontend_elements(listing);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (crate::genl::Protocol::Tcp, "10.96.0.11".parse().unwrap(), 80));
        let v6 = "set x {\n elements = { fd00:10:96::41 . tcp . 80 }\n}";
        assert_eq!(parse_frontend_elements(v6)[0].1, "fd00:10:96::41".parse::<std::net::IpAddr>().unwrap());
        assert!(parse_frontend_elements("set x { type ipv4_addr; }").is_empty());
    }

    #[test]
    fn the_table_has_fixed_rules_and_the_sets_hold_the_services() {
        let config = IpvsConfig { cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()], ..IpvsConfig::default() };
        let mut sets = HelperSets::default();
        sets.cluster_ports = elements(["10.96.0.10 . tcp . 80"]);
        sets.service_ips = elements(["10.96.0.10"]);
        let script = replace_table(IpFamily::V4, &config, &sets);
        assert!(script.starts_with("add table ip kube-ferry-ipvs\ndelete table ip kube-ferry-ipvs\n"), "{script}");
        assert!(script.contains("set cluster-ports { type ipv4_addr . inet_proto . inet_service; elements = { 10.96.0.10 . tcp . 80 } }"), "{script}");
        assert!(script.contains("ip daddr . meta l4proto . th dport @cluster-ports ip saddr != 10.244.0.0/16 jump mark-for-masquerade"));
        assert!(script.contains("type filter hook input priority 200; policy accept;"));
        assert!(script.contains("meta mark set meta mark or 0x4000"));
        let many = HelperSets { cluster_ports: (0..1000).map(|i| format!("10.96.{}.{} . tcp . 80", i / 250, i % 250)).collect(), ..HelperSets::default() };
        let big = replace_table(IpFamily::V4, &config, &many);
        assert_eq!(
            script.lines().filter(|l| l.starts_with("    ")).count(),
            big.lines().filter(|l| l.starts_with("    ")).count(),
            "the rule count does not grow with the services"
        );
        let v6 = replace_table(IpFamily::V6, &IpvsConfig::default(), &HelperSets::default());
        assert!(v6.contains("table ip6 kube-ferry-ipvs") && v6.contains("ip6 saddr . ip6 daddr @hairpin masquerade"));
        assert!(!v6.contains("@cluster-ports ip6 saddr"), "no cluster CIDR: ClusterIP traffic is not masqueraded (B23)");
    }

    #[test]
    fn updates_are_element_changes_only() {
        let mut a = HelperSets::default();
        a.reject = elements(["10.96.0.11 . tcp . 80"]);
        let mut b = a.clone();
        b.reject.clear();
        b.cluster_ports = elements(["10.96.0.11 . tcp . 80"]);
        let script = update_elements(IpFamily::V4, &a, &b);
        assert_eq!(
            script,
            "add element ip kube-ferry-ipvs cluster-ports { 10.96.0.11 . tcp . 80 }\n\
             delete element ip kube-ferry-ipvs no-endpoint-reject { 10.96.0.11 . tcp . 80 }\n"
        );
        assert_eq!(changed_elements(&a, &b), 2);
        assert!(update_elements(IpFamily::V4, &b, &b).is_empty());
    }
}
