//! One service port: its chains, dispatch elements and endpoint choice.

use std::net::{IpAddr, SocketAddr};

use ferry_model::{Endpoint, ServicePort, ServicePortId};

use super::base::{
    endpoints_map, spread_set, CLUSTER_IPS, FIREWALL_IPS, HAIRPIN, HELD_SERVICES, MARK_FOR_MASQUERADE,
    MAX_HELD_ENDPOINTS, NO_ENDPOINT_DROP, NO_ENDPOINT_NODEPORT_DROP, NO_ENDPOINT_NODEPORT_REJECT, NO_ENDPOINT_REJECT,
    SERVICE_IPS, SERVICE_NODEPORTS,
};
use super::{addr_type, ip_kw, NftConfig};
use crate::fragment::Fragment;
use crate::names::{endpoint_object, port_chain};
use crate::ruleset::MapDecl;

fn key(ip: IpAddr, port: &ServicePort, number: u16) -> String {
    format!("{ip} . {} . {number}", port.protocol.as_str())
}

fn dnat_target(ep: SocketAddr) -> String {
    match ep {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Renders one service port into `r`.
pub fn render_port(r: &mut Fragment, id: &ServicePortId, port: &ServicePort, config: &NftConfig) {
    let family = id.family;
    let ip = ip_kw(family);
    let svc = port_chain("svc", id, port.port);
    let external = port.externally_accessible();
    let ext = port_chain("ext", id, port.port);
    let cluster_choice = port_chain("clu", id, port.port);
    let not_from_pods = config.not_from_pods(family);

    let internal: Vec<&Endpoint> = port.internal_endpoints().collect();
    r.add_element(CLUSTER_IPS, port.cluster_ip.to_string(), String::new());
    if internal.is_empty() {
        r.add_to_set(no_endpoint_set(port, false), key(port.cluster_ip, port, port.port));
    }
    // Hairpin (B21): a local endpoint reaching itself through the service is masqueraded.
    for ep in port.endpoints.iter().filter(|e| e.is_local) {
        r.add_element(HAIRPIN, format!("{} . {}", ep.ip, ep.ip), String::new());
    }
    if map_held(port, internal.len()) {
        render_held(r, port, &internal, config.masquerade_all || not_from_pods.is_some());
        return;
    }

    // Internal (ClusterIP) traffic: masquerade what comes from outside the cluster
    // network (B22, B23), then choose among the internal endpoints.
    let mut svc_rules = Vec::new();
    if config.masquerade_all {
        svc_rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
    } else if let Some(outside) = &not_from_pods {
        svc_rules.push(format!("{outside} jump {MARK_FOR_MASQUERADE}"));
    }
    svc_rules.extend(choice(r, id, port, &internal, "svc"));
    r.add_chain(svc.clone(), svc_rules);
    r.add_element(SERVICE_IPS, key(port.cluster_ip, port, port.port), format!("goto {svc}"));

    if !external {
        return;
    }
    // The chain choosing among the cluster-wide set, for external traffic under a
    // Cluster policy and for in-cluster sources under a Local one (B17).
    let cluster_target = if port.internal_policy_local {
        let all: Vec<&Endpoint> = port.cluster_endpoints().collect();
        let rules = choice(r, id, port, &all, "clu");
        r.add_chain(cluster_choice.clone(), rules);
        cluster_choice
    } else {
        svc.clone()
    };
    let mut ext_rules = Vec::new();
    if port.external_policy_local {
        ext_rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
        ext_rules.push(format!("fib saddr type local goto {cluster_target}"));
        if let Some(from_pods) = config.from_pods(family) {
            ext_rules.push(format!("{from_pods} goto {cluster_target}"));
        }
        let local: Vec<&Endpoint> = port.local_endpoints().collect();
        ext_rules.extend(choice(r, id, port, &local, "ext"));
    } else {
        ext_rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
        ext_rules.push(format!("goto {cluster_target}"));
    }
    r.add_chain(ext.clone(), ext_rules);

    let external_empty = port.external_endpoints().next().is_none();
    let addresses: Vec<IpAddr> = port.external_ips.iter().chain(&port.load_balancer_ips).copied().collect();
    for addr in &addresses {
        r.add_element(SERVICE_IPS, key(*addr, port, port.port), format!("goto {ext}"));
        if external_empty {
            r.add_to_set(no_endpoint_set(port, false), key(*addr, port, port.port));
        }
    }
    if let Some(np) = port.node_port {
        let np_key = format!("{} . {np}", port.protocol.as_str());
        r.add_element(SERVICE_NODEPORTS, np_key.clone(), format!("goto {ext}"));
        if external_empty {
            r.add_to_set(no_endpoint_set(port, true), np_key);
        }
    }
    if !port.load_balancer_source_ranges.is_empty() && !port.load_balancer_ips.is_empty() {
        let fw = port_chain("fw", id, port.port);
        let ranges: Vec<String> = port.load_balancer_source_ranges.iter().map(ToString::to_string).collect();
        r.add_chain(fw.clone(), vec![format!("{ip} saddr {{ {} }} return", ranges.join(", ")), "drop".into()]);
        for lb in &port.load_balancer_ips {
            r.add_element(FIREWALL_IPS, key(*lb, port, port.port), format!("goto {fw}"));
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
fn render_held(r: &mut Fragment, port: &ServicePort, internal: &[&Endpoint], masquerade: bool) {
    if internal.is_empty() {
        return;
    }
    let protocol = port.protocol.as_str();
    let frontend = format!("{} . {}", port.cluster_ip, port.port);
    r.add_to_set(spread_set(protocol, internal.len()), frontend.clone());
    for (slot, ep) in internal.iter().enumerate() {
        r.add_element(endpoints_map(protocol), format!("{frontend} . {slot}"), format!("{} . {}", ep.ip, ep.port));
    }
    if masquerade {
        r.add_to_set(HELD_SERVICES, key(port.cluster_ip, port, port.port));
    }
}

/// The rules that DNAT to one of `eps`, evenly at random (B14), with ClientIP affinity
/// when the service asks for it (B15). `role` keeps the affinity sets of different
/// choices apart.
fn choice(r: &mut Fragment, id: &ServicePortId, port: &ServicePort, eps: &[&Endpoint], role: &str) -> Vec<String> {
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
            r.add_map(
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
