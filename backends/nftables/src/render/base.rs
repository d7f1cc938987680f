//! The fixed part of a table: base chains, helper chains, dispatch maps.

use ferry_model::IpFamily;

use super::{addr_type, ip_kw, NftConfig};
use crate::ruleset::{BaseHook, Chain, MapDecl, Ruleset};

/// Map: `address . protocol . port` -> the service port's chain (ClusterIP, external IP,
/// load-balancer IP).
pub const SERVICE_IPS: &str = "service-ips";
/// Map: `protocol . port` -> the service port's external chain (NodePorts, B8).
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Map: `address . protocol . port` -> reject or drop, for service ports with no usable
/// endpoint for that traffic (B16, B17, B19).
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// Map: `protocol . port` -> reject or drop, the same for NodePorts.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
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

fn map(spec: String) -> MapDecl {
    MapDecl { keyword: "map", spec }
}

/// The empty table of one family: every base chain and map, no service.
pub fn ruleset(family: IpFamily, config: &NftConfig) -> Ruleset {
    let ip = ip_kw(family);
    let addr = addr_type(family);
    let mark = config.masquerade_mark;
    let mut r = Ruleset::default();
    let svc_key = format!("type {addr} . inet_proto . inet_service : verdict;");
    let port_key = "type inet_proto . inet_service : verdict;".to_owned();
    r.maps.insert(SERVICE_IPS.into(), map(svc_key.clone()));
    r.maps.insert(SERVICE_NODEPORTS.into(), map(port_key.clone()));
    r.maps.insert(NO_ENDPOINT_SERVICES.into(), map(svc_key.clone()));
    r.maps.insert(NO_ENDPOINT_NODEPORTS.into(), map(port_key));
    r.maps.insert(FIREWALL_IPS.into(), map(svc_key));
    r.maps.insert(CLUSTER_IPS.into(), MapDecl { keyword: "set", spec: format!("type {addr};") });
    r.maps.insert(HAIRPIN.into(), MapDecl { keyword: "set", spec: format!("type {addr} . {addr};") });

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
    let dispatch = vec![
        format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
    ];
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
        format!("ct state new {ip} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
        format!("ct state new {nodeport_match} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
    ];
    let mut with_cluster_ips = endpoints_check.clone();
    with_cluster_ips.push(format!("ct state new {ip} daddr @{CLUSTER_IPS} goto {REJECT}"));
    r.chains.insert("filter-input".into(), base("filter", "input", 0, endpoints_check));
    r.chains.insert("filter-forward".into(), base("filter", "forward", 0, with_cluster_ips.clone()));
    r.chains.insert("filter-output".into(), base("filter", "output", 0, with_cluster_ips));
    r
}
