//! One service port: its chains, dispatch elements and endpoint choice.

use std::net::{IpAddr, SocketAddr};

use ferry_model::{Endpoint, ServicePort, ServicePortId};

use super::base::{
    endpoints_map, spread_set, CLUSTER_IPS, FIREWALL_IPS, HAIRPIN, HELD_SERVICES, MARK_FOR_MASQUERADE,
    MAX_HELD_ENDPOINTS, NO_ENDPOINT_DROP, NO_ENDPOINT_NODEPORT_DROP, NO_ENDPOINT_NODEPORT_REJECT, NO_ENDPOINT_REJECT,
    SERVICE_IPS, SERVICE_NODEPORTS,
};
use super::{addr_type, ip_kw, NftConfig};
use crate::names::{endpoint_object, port_chain};
use crate::ruleset::{Chain, MapDecl, Ruleset};

fn key(ip: IpAddr, port: &ServicePort, number: u16) -> String {
    format!("{ip} . {} . {number}", port.protocol.as_str())
}

fn dnat_target(ep: SocketAddr) -> String {
    match ep {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

fn add_to_set(r: &mut Ruleset, set: &str, key: String) {
    add_element(r, set, key, String::new());
}

fn add_element(r: &mut Ruleset, map: &str, key: String, value: String) {
    r.elements.entry(map.to_owned()).or_default().insert(key, value);
}

fn add_chain(r: &mut Ruleset, name: &str, rules: Vec<String>) {
    r.chains.insert(name.to_owned(), Chain { base: None, rules, comment: None });
}

/// Renders one service port into `r`.
pub fn render_port(r: &mut Ruleset, id: &ServicePortId, port: &ServicePort, config: &NftConfig) {
    let family = id.family;
    let ip = ip_kw(family);
    let svc = port_chain("svc", id, port.port);
    let external = port.externally_accessible();
    let ext = port_chain("ext", id, port.port);
    let cluster_choice = port_chain("clu", id, port.port);
    let cluster_cidr = config.cluster_cidr(family);

    let internal: Vec<&Endpoint> = port.internal_endpoints().collect();
    add_element(r, CLUSTER_IPS, port.cluster_ip.to_string(), String::new());
    if internal.is_empty() {
        add_to_set(r, no_endpoint_set(port, false), key(port.cluster_ip, port, port.port));
    }
    // Hairpin (B21): a local endpoint reaching itself through the service is masqueraded.
    for ep in port.endpoints.iter().filter(|e| e.is_local) {
        add_element(r, HAIRPIN, format!("{} . {}", ep.ip, ep.ip), String::new());
    }
    if map_held(port, internal.len()) {
        render_held(r, port, &internal, config.masquerade_all || cluster_cidr.is_some());
        return;
    }

    // Internal (ClusterIP) traffic: masquerade what comes from outside the cluster
    // network (B22, B23), then choose among the internal endpoints.
    let mut svc_rules = Vec::new();
    if config.masquerade_all {
        svc_rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
    } else if let Some(cidr) = cluster_cidr {
        svc_rules.push(format!("{ip} saddr != {cidr} jump {MARK_FOR_MASQUERADE}"));
    }
    svc_rules.extend(choice(r, id, port, &internal, "svc"));
    add_chain(r, &svc, svc_rules);
    add_element(r, SERVICE_IPS, key(port.cluster_ip, port, port.port), format!("goto {svc}"));

    if !external {
        return;
    }
    // The chain choosing among the cluster-wide set, for external traffic under a
    // Cluster policy and for in-cluster sources under a Local one (B17).
    let cluster_target = if port.internal_policy_local {
        let all: Vec<&Endpoint> = port.cluster_endpoints().collect();
        let rules = choice(r, id, port, &all, "clu");
        add_chain(r, &cluster_choice, rules);
        cluster_choice
    } else {
        svc.clone()
    };
    let mut ext_rules = Vec::new();
    if port.external_policy_local {
        ext_rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
        ext_rules.push(format!("fib saddr type local goto {cluster_target}"));
        if let Some(cidr) = cluster_cidr {
            ext_rules.push(format!("{ip} saddr {cidr} goto {cluster_target}"));
        }
        let local: Vec<&Endpoint> = port.local_endpoints().collect();
        ext_rules.extend(choice(r, id, port, &local, "ext"));
    } else {
        ext_rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
        ext_rules.push(format!("goto {cluster_target}"));
    }
    add_chain(r, &ext, ext_rules);

    let external_empty = port.external_endpoints().next().is_none();
    let addresses: Vec<IpAddr> = port.external_ips.iter().chain(&port.load_balancer_ips).copied().collect();
    for addr in &addresses {
        add_element(r, SERVICE_IPS, key(*addr, port, port.port), format!("goto {ext}"));
        if external_empty {
            add_to_set(r, no_endpoint_set(port, false), key(*addr, port, port.port));
        }
    }
    if let Some(np) = port.node_port {
        let np_key = format!("{} . {np}", port.protocol.as_str());
        add_element(r, SERVICE_NODEPORTS, np_key.clone(), format!("goto {ext}"));
        if external_empty {
            add_to_set(r, no_endpoint_set(port, true), np_key);
        }
    }
    if !port.load_balancer_source_ranges.is_empty() && !port.load_balancer_ips.is_empty() {
        let fw = port_chain("fw", id, port.port);
        let ranges: Vec<String> = port.load_balancer_source_ranges.iter().map(ToString::to_string).collect();
        add_chain(r, &fw, vec![format!("{ip} saddr {{ {} }} return", ranges.join(", ")), "drop".into()]);
        for lb in &port.load_balancer_ips {
            add_element(r, FIREWALL_IPS, key(*lb, port, port.port), format!("goto {fw}"));
        }
    }
}

/// The set a frontend without endpoints for its traffic goes in: reject when no endpoint
/// can serve at all (B19); drop when some can, but not for this policy (B16, B17).
fn no_endpoint_set(port: &ServicePort, node_port: bool) -> &'static str {
    match (port.has_serving_endpoints(), node_port) {
        (true, false) => NO_ENDPOINT_DROP,
        (true, true) => NO_ENDPOINT_NODEPORT_DROP,
        (false, false) => NO_ENDPOINT_REJECT,
        (false, true) => NO_ENDPOINT_NODEPORT_REJECT,
    }
}

/// Whether a port's endpoints are held in map elements rather than in a chain of its own:
/// ClusterIP-only ports without affinity or a Local internal policy, with at most
/// [`MAX_HELD_ENDPOINTS`] endpoints. Their changes are element changes only, which the
/// kernel applies without validating the table's chains (docs/nftables.md).
fn map_held(port: &ServicePort, internal: usize) -> bool {
    port.affinity.is_none()
        && !port.internal_policy_local
        && !port.externally_accessible()
        && internal <= MAX_HELD_ENDPOINTS
}

/// A map-held port: its ClusterIP in the `spread-` set of its endpoint count, one
/// `endpoints-` element per endpoint slot, and (when its traffic may need masquerading)
/// its key in `held-services`. Without endpoints it is only in a `no-endpoint-` set.
fn render_held(r: &mut Ruleset, port: &ServicePort, internal: &[&Endpoint], masquerade: bool) {
    if internal.is_empty() {
        return;
    }
    let protocol = port.protocol.as_str();
    let frontend = format!("{} . {}", port.cluster_ip, port.port);
    add_to_set(r, &spread_set(protocol, internal.len()), frontend.clone());
    for (slot, ep) in internal.iter().enumerate() {
        add_element(r, &endpoints_map(protocol), format!("{frontend} . {slot}"), format!("{} . {}", ep.ip, ep.port));
    }
    if masquerade {
        add_to_set(r, HELD_SERVICES, key(port.cluster_ip, port, port.port));
    }
}

/// The rules that DNAT to one of `eps`, evenly at random (B14), with ClientIP affinity
/// when the service asks for it (B15). `role` keeps the affinity sets of different
/// choices apart.
fn choice(r: &mut Ruleset, id: &ServicePortId, port: &ServicePort, eps: &[&Endpoint], role: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let n = eps.len();
    let ip = ip_kw(id.family);
    // nft needs the protocol matched in the rule before a DNAT with a port.
    let l4 = format!("meta l4proto {}", port.protocol.as_str());
    let affinity = port.affinity.map(|a| a.timeout_seconds);
    let mut sets = Vec::new();
    if let Some(timeout) = affinity {
        for ep in eps {
            let set = endpoint_object(&format!("aff{role}"), id, ep.addr());
            r.maps.insert(
                set.clone(),
                MapDecl {
                    keyword: "set",
                    spec: format!("type {}; flags dynamic,timeout; timeout {timeout}s;", addr_type(id.family)),
                    layout: None,
                },
            );
            rules.push(format!("{l4} {ip} saddr @{set} dnat to {}", dnat_target(ep.addr())));
            sets.push(set);
        }
    }
    for (i, ep) in eps.iter().enumerate() {
        let remaining = n - i;
        let guard = if remaining > 1 { format!("numgen random mod {remaining} == 0 ") } else { String::new() };
        let remember = match sets.get(i) {
            Some(set) => format!("update @{set} {{ {ip} saddr }} "),
            None => String::new(),
        };
        rules.push(format!("{l4} {guard}{remember}dnat to {}", dnat_target(ep.addr())));
    }
    rules
}
