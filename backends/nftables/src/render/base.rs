//! The fixed part of a table: base chains, helper chains, dispatch maps.

use ferry_model::IpFamily;

use super::{addr_type, ip_kw, NftConfig};
use crate::element::{ElementData, ElementLayout, Field};
use crate::ruleset::{BaseHook, Chain, MapDecl, Ruleset};

/// Map: `address . protocol . port` -> the service port's chain (ClusterIP, external IP,
/// load-balancer IP).
pub const SERVICE_IPS: &str = "service-ips";
/// Map: `protocol . port` -> the service port's external chain (NodePorts, B8).
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Set of `address . protocol . port` of service ports no endpoint can serve: new
/// connections are rejected (B19).
pub const NO_ENDPOINT_REJECT: &str = "no-endpoint-reject";
/// Set of `address . protocol . port` of service ports with endpoints, none of them for
/// this traffic's policy: new connections are dropped (B16, B17).
pub const NO_ENDPOINT_DROP: &str = "no-endpoint-drop";
/// Set of `protocol . port`: [`NO_ENDPOINT_REJECT`] for NodePorts.
pub const NO_ENDPOINT_NODEPORT_REJECT: &str = "no-endpoint-nodeport-reject";
/// Set of `protocol . port`: [`NO_ENDPOINT_DROP`] for NodePorts.
pub const NO_ENDPOINT_NODEPORT_DROP: &str = "no-endpoint-nodeport-drop";
/// Set of `address . protocol . port` of the map-held service ports (see
/// [`endpoints_map`]), for the masquerade rule their chains would otherwise hold (B22).
pub const HELD_SERVICES: &str = "held-services";
/// The most endpoints a map-held service port can have (one `spread-` set per count).
pub const MAX_HELD_ENDPOINTS: usize = 16;
/// Map: `address . protocol . port` -> the source-range chain of a load-balancer IP (B10).
pub const FIREWALL_IPS: &str = "firewall-ips";
/// Set of every ClusterIP: a packet to one that no service port caught is rejected (B11).
pub const CLUSTER_IPS: &str = "cluster-ips";
/// Set of `endpoint . endpoint` pairs: traffic DNATed back to its own source (B21).
pub const HAIRPIN: &str = "hairpin";
/// Chain that marks a packet for masquerade.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// Chain that rejects.
pub const REJECT: &str = "reject-chain";

fn base(kind: &'static str, hook: &'static str, priority: i32, rules: Vec<String>) -> Chain {
    Chain { base: Some(BaseHook { kind, hook, priority }), rules, comment: None }
}

fn plain(rules: Vec<String>) -> Chain {
    Chain { base: None, rules, comment: None }
}

fn map(spec: String, layout: ElementLayout) -> MapDecl {
    MapDecl { keyword: "map", spec, layout: Some(layout) }
}

fn set(spec: String, key: &[Field]) -> MapDecl {
    MapDecl { keyword: "set", spec, layout: Some(ElementLayout::new(key, ElementData::None)) }
}

/// The map from `ClusterIP . port . slot` to the endpoint of that slot, for the map-held
/// service ports of `protocol`: ClusterIP-only ports without affinity or Local internal
/// policy, with at most [`MAX_HELD_ENDPOINTS`] endpoints. They need no chain of their own,
/// so adding one or changing its endpoints only changes elements: no chain is validated
/// and no `nft` cache is needed (docs/nftables.md).
pub fn endpoints_map(protocol: &str) -> &'static str {
    &HELD_NAMES[protocol_index(protocol)][0]
}

/// The set of the map-held service ports of `protocol` that have `count` endpoints
/// (1 to [`MAX_HELD_ENDPOINTS`]).
pub fn spread_set(protocol: &str, count: usize) -> &'static str {
    &HELD_NAMES[protocol_index(protocol)][count.clamp(1, MAX_HELD_ENDPOINTS)]
}

fn protocol_index(protocol: &str) -> usize {
    PROTOCOLS.iter().position(|p| *p == protocol).unwrap_or(0)
}

/// Per protocol: `endpoints-P`, then `spread-P-1` ... `spread-P-16`.
static HELD_NAMES: std::sync::LazyLock<Vec<Vec<String>>> = std::sync::LazyLock::new(|| {
    PROTOCOLS
        .iter()
        .map(|p| {
            std::iter::once(format!("endpoints-{p}"))
                .chain((1..=MAX_HELD_ENDPOINTS).map(|n| format!("spread-{p}-{n}")))
                .collect()
        })
        .collect()
});

/// The protocols a service port can have, as nft names them.
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// The empty table of one family: every base chain and map, no service.
pub fn ruleset(family: IpFamily, config: &NftConfig) -> Ruleset {
    let ip = ip_kw(family);
    let addr = addr_type(family);
    let mark = config.masquerade_mark;
    let mut r = Ruleset::default();
    let address = match family {
        IpFamily::V4 => Field::Ipv4Addr,
        IpFamily::V6 => Field::Ipv6Addr,
    };
    let svc_fields = [address, Field::InetProto, Field::InetService];
    let port_fields = [Field::InetProto, Field::InetService];
    let svc_vmap = || {
        map(
            format!("type {addr} . inet_proto . inet_service : verdict;"),
            ElementLayout::new(&svc_fields, ElementData::Verdict),
        )
    };
    let port_vmap =
        map("type inet_proto . inet_service : verdict;".into(), ElementLayout::new(&port_fields, ElementData::Verdict));
    let svc_set = || set(format!("type {addr} . inet_proto . inet_service;"), &svc_fields);
    let port_set = || set("type inet_proto . inet_service;".into(), &port_fields);
    r.maps.insert(SERVICE_IPS.into(), svc_vmap());
    r.maps.insert(SERVICE_NODEPORTS.into(), port_vmap);
    r.maps.insert(FIREWALL_IPS.into(), svc_vmap());
    r.maps.insert(NO_ENDPOINT_REJECT.into(), svc_set());
    r.maps.insert(NO_ENDPOINT_DROP.into(), svc_set());
    r.maps.insert(NO_ENDPOINT_NODEPORT_REJECT.into(), port_set());
    r.maps.insert(NO_ENDPOINT_NODEPORT_DROP.into(), port_set());
    r.maps.insert(HELD_SERVICES.into(), svc_set());
    r.maps.insert(CLUSTER_IPS.into(), set(format!("type {addr};"), &[address]));
    r.maps.insert(HAIRPIN.into(), set(format!("type {addr} . {addr};"), &[address, address]));
    let mut held_rules = Vec::new();
    if config.masquerade_all {
        held_rules.push(format!("{ip} daddr . meta l4proto . th dport @{HELD_SERVICES} jump {MARK_FOR_MASQUERADE}"));
    } else if let Some(outside) = config.not_from_pods(family) {
        held_rules.push(format!(
            "{ip} daddr . meta l4proto . th dport @{HELD_SERVICES} {outside} jump {MARK_FOR_MASQUERADE}"
        ));
    }
    for protocol in PROTOCOLS {
        let endpoints = endpoints_map(protocol);
        r.maps.insert(
            endpoints.to_owned(),
            map(
                format!("typeof {ip} daddr . {protocol} dport . numgen random mod {MAX_HELD_ENDPOINTS} : {ip} daddr . {protocol} dport;"),
                ElementLayout::new(
                    &[address, Field::InetService, Field::HostU32],
                    ElementData::Fields(vec![address, Field::InetService]),
                ),
            ),
        );
        for count in 1..=MAX_HELD_ENDPOINTS {
            let spread = spread_set(protocol, count);
            r.maps.insert(
                spread.to_owned(),
                set(format!("typeof {ip} daddr . {protocol} dport;"), &[address, Field::InetService]),
            );
            // Each endpoint owns one slot of `count`: the same chance for each (B14).
            held_rules.push(format!(
                "meta l4proto {protocol} {ip} daddr . {protocol} dport @{spread} dnat {ip} to {ip} daddr . {protocol} dport . numgen random mod {count} map @{endpoints}"
            ));
        }
    }

    // NodePorts answer on local addresses (all, or those in --nodeport-addresses), never
    // on loopback (B8, B12).
    let nodeport_match = match config.nodeport_cidrs.iter().filter(|c| IpFamily::of(&c.addr()) == family).count() {
        0 => {
            let lo = if family == IpFamily::V4 { "127.0.0.0/8" } else { "::1" };
            format!("fib daddr type local {ip} daddr != {lo}")
        }
        _ => {
            let cidrs: Vec<String> = config
                .nodeport_cidrs
                .iter()
                .filter(|c| IpFamily::of(&c.addr()) == family)
                .map(ToString::to_string)
                .collect();
            format!("fib daddr type local {ip} daddr {{ {} }}", cidrs.join(", "))
        }
    };
    let mut dispatch = vec![format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}")];
    dispatch.extend(held_rules);
    dispatch.push(format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"));
    r.chains.insert("services".into(), plain(dispatch));
    r.chains.insert("nat-prerouting".into(), base("nat", "prerouting", -100, vec!["jump services".into()]));
    r.chains.insert("nat-output".into(), base("nat", "output", -100, vec!["jump services".into()]));
    r.chains.insert(
        "nat-postrouting".into(),
        base(
            "nat",
            "postrouting",
            100,
            vec![
                format!("ct status dnat {ip} saddr . {ip} daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
                format!("meta mark & {mark:#x} == 0 return"),
                format!("meta mark set meta mark xor {mark:#x}"),
                "masquerade fully-random".into(),
            ],
        ),
    );
    r.chains.insert(MARK_FOR_MASQUERADE.into(), plain(vec![format!("meta mark set meta mark or {mark:#x}")]));
    r.chains.insert(REJECT.into(), plain(vec!["reject".into()]));

    // Before DNAT: load-balancer source ranges (B10).
    r.chains.insert(
        "filter-prerouting".into(),
        base(
            "filter",
            "prerouting",
            -110,
            vec![format!("ct state new {ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}")],
        ),
    );
    // After DNAT: what no endpoint caught is rejected or dropped (B11, B16, B17, B19).
    let endpoints_check = vec![
        format!("ct state new {ip} daddr . meta l4proto . th dport @{NO_ENDPOINT_REJECT} goto {REJECT}"),
        format!("ct state new {ip} daddr . meta l4proto . th dport @{NO_ENDPOINT_DROP} drop"),
        format!("ct state new {nodeport_match} meta l4proto . th dport @{NO_ENDPOINT_NODEPORT_REJECT} goto {REJECT}"),
        format!("ct state new {nodeport_match} meta l4proto . th dport @{NO_ENDPOINT_NODEPORT_DROP} drop"),
    ];
    let mut with_cluster_ips = endpoints_check.clone();
    with_cluster_ips.push(format!("ct state new {ip} daddr @{CLUSTER_IPS} goto {REJECT}"));
    r.chains.insert("filter-input".into(), base("filter", "input", 0, endpoints_check));
    r.chains.insert("filter-forward".into(), base("filter", "forward", 0, with_cluster_ips.clone()));
    r.chains.insert("filter-output".into(), base("filter", "output", 0, with_cluster_ips));
    r
}
