//! One service port: its own chains and what it adds to the shared ones.

use std::net::{IpAddr, SocketAddr};

use ferry_model::{Endpoint, IpFamily, ServicePort, ServicePortId};

use super::{IptConfig, MARK_DROP, MARK_MASQ};
use crate::names::{comment, endpoint_hash, port_hash};

/// A rule in an address-dispatched chain (nat or filter `KUBE-SERVICES`): the tree puts
/// it in the leaf for `addr`; within a leaf rules sort by (`addr`, `order`, text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRule {
    /// The destination address the rule matches.
    pub addr: IpAddr,
    /// 0 for rules naming a port, 1 for an address-wide catch-all (after them).
    pub order: u8,
    /// The rule (`-d ... -j ...`).
    pub rule: String,
}

/// A rule in `KUBE-NODEPORTS`, dispatched by port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRule {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// The NodePort.
    pub port: u16,
    /// The rule.
    pub rule: String,
}

/// What one service port adds to its family's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRules {
    /// Its own nat chains (`KUBE-SVC-`, `KUBE-EXT-`, `KUBE-CLU-`, `KUBE-FW-`), by name.
    pub nat: Vec<(String, Vec<String>)>,
    /// nat `KUBE-SERVICES`: its ClusterIP, external and LB IPs.
    pub dispatch: Vec<AddressRule>,
    /// nat `KUBE-NODEPORTS`: its NodePort.
    pub node_ports: Vec<PortRule>,
    /// filter `KUBE-SERVICES`: rejects and drops for frontends without endpoints, and
    /// the reject of other ports on its ClusterIP (B11).
    pub rejects: Vec<AddressRule>,
    /// filter `KUBE-EXTERNAL-SERVICES`: its NodePort's reject or drop, if it needs one.
    pub node_port_rejects: Vec<String>,
    /// Its local endpoints (hairpin, B21).
    pub local_endpoints: Vec<IpAddr>,
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn dnat_target(ep: SocketAddr) -> String {
    match ep {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Renders one service port.
pub fn render_port(id: &ServicePortId, port: &ServicePort, config: &IptConfig) -> PortRules {
    let mut out = PortRules::default();
    let proto = port.protocol.as_str();
    let pm = format!("-p {proto} -m {proto}");
    // One hash for all of the port's chain names.
    let hash = port_hash(id);
    let svc = format!("KUBE-SVC-{hash}");
    let (from_pods, not_from_pods) = (config.from_pods(id.family), config.not_from_pods(id.family));
    let frontend = |addr: IpAddr| format!("-d {} {pm} --dport {}", host(addr), port.port);
    // Comments name the service port in `iptables-save`; above LARGE_CLUSTER_PORTS they are
    // left out, as kube-proxy does, since each costs the legacy variant ~300 bytes of table.
    let c = |what: &str| if config.comments { format!(" {}", comment(id, port.port, what)) } else { String::new() };

    // Internal traffic: masquerade what comes from outside the cluster network (B22,
    // B23), then choose among the internal endpoints (B13, B14, B16).
    let mut svc_rules = Vec::new();
    if config.masquerade_all {
        svc_rules.push(format!("-j {MARK_MASQ}"));
    } else if let Some(outside) = &not_from_pods {
        // No address or port match: only this port's traffic enters the chain (external
        // traffic coming through KUBE-EXT- is marked there already), and each match
        // costs the legacy variant table space it copies on every change.
        svc_rules.push(format!("{outside} -j {MARK_MASQ}"));
    }
    let internal: Vec<&Endpoint> = port.internal_endpoints().collect();
    svc_rules.extend(choice(id, port, &internal, "svc"));
    out.nat.push((svc.clone(), svc_rules));
    out.dispatch.push(AddressRule {
        addr: port.cluster_ip,
        order: 0,
        rule: format!("{}{} -j {svc}", frontend(port.cluster_ip), c("cluster IP")),
    });
    if internal.is_empty() {
        out.rejects.push(no_endpoints(port, port.cluster_ip, &frontend(port.cluster_ip), &c("no endpoints")));
    }
    // B11: other ports and protocols on a live ClusterIP.
    out.rejects.push(AddressRule {
        addr: port.cluster_ip,
        order: 1,
        rule: format!(
            "-d {} -m comment --comment \"kube-ferry: no such service port\" -j REJECT",
            host(port.cluster_ip)
        ),
    });
    out.local_endpoints = port.endpoints.iter().filter(|e| e.is_local).map(|e| e.ip).collect();

    if !port.externally_accessible() {
        return out;
    }
    let ext = format!("KUBE-EXT-{hash}");
    let clu = format!("KUBE-CLU-{hash}");
    let cluster_target = if port.internal_policy_local {
        let all: Vec<&Endpoint> = port.cluster_endpoints().collect();
        out.nat.push((clu.clone(), choice(id, port, &all, "clu")));
        clu
    } else {
        svc.clone()
    };
    let mut ext_rules = Vec::new();
    if port.external_policy_local {
        // B17: pods go to all endpoints as if from outside and back; the node itself is
        // masqueraded and goes to all; everything else to local endpoints, unmasqueraded.
        if let Some(pods) = &from_pods {
            ext_rules.push(format!("{pods} -j {cluster_target}"));
        }
        ext_rules.push(format!("-m addrtype --src-type LOCAL -j {MARK_MASQ}"));
        ext_rules.push(format!("-m addrtype --src-type LOCAL -j {cluster_target}"));
        let local: Vec<&Endpoint> = port.local_endpoints().collect();
        ext_rules.extend(choice(id, port, &local, "ext"));
    } else {
        ext_rules.push(format!("-j {MARK_MASQ}"));
        ext_rules.push(format!("-j {cluster_target}"));
    }
    out.nat.push((ext.clone(), ext_rules));
    let external_empty = port.external_endpoints().next().is_none();
    // B10: a load-balancer IP with source ranges goes through its KUBE-FW- chain first:
    // sources inside go on to KUBE-EXT-, the rest are marked, and dropped in filter.
    let fw = format!("KUBE-FW-{hash}");
    let firewalled = !port.load_balancer_source_ranges.is_empty() && !port.load_balancer_ips.is_empty();
    if firewalled {
        let mut rules: Vec<String> = port
            .load_balancer_source_ranges
            .iter()
            .filter(|r| IpFamily::of(&r.addr()) == id.family)
            .map(|r| format!("-s {r} -j {ext}"))
            .collect();
        rules.push(format!("{} -j {MARK_DROP}", c("outside the source ranges").trim_start()));
        out.nat.push((fw.clone(), rules));
    }
    for addr in port.external_ips.iter().chain(&port.load_balancer_ips) {
        let target = if firewalled && port.load_balancer_ips.contains(addr) { &fw } else { &ext };
        out.dispatch.push(AddressRule {
            addr: *addr,
            order: 0,
            rule: format!("{}{} -j {target}", frontend(*addr), c("external")),
        });
        if external_empty {
            out.rejects.push(no_endpoints(port, *addr, &frontend(*addr), &c("no endpoints")));
        }
    }
    if let Some(np) = port.node_port {
        out.node_ports.push(PortRule {
            protocol: proto,
            port: np,
            rule: format!("{pm} --dport {np}{} -j {ext}", c("node port")),
        });
        if external_empty {
            let verdict = if port.has_serving_endpoints() { "DROP" } else { "REJECT" };
            out.node_port_rejects.push(format!("{pm} --dport {np}{} -j {verdict}", c("no endpoints")));
        }
    }
    out
}

/// The reject (no endpoint can serve, B19) or drop (some can, not for this policy: B16,
/// B17) of one frontend.
fn no_endpoints(port: &ServicePort, addr: IpAddr, frontend: &str, comment: &str) -> AddressRule {
    let verdict = if port.has_serving_endpoints() { "DROP" } else { "REJECT" };
    AddressRule { addr, order: 0, rule: format!("{frontend}{comment} -j {verdict}") }
}

/// The rules that DNAT to one of `eps`, evenly at random (B14): rule k of N fires with
/// probability 1/(N-k), the last always. With ClientIP affinity (B15) each endpoint has a
/// `recent` list: a client seen within the timeout goes back to its endpoint (and is seen
/// again), and the choice rules record the client.
fn choice(id: &ServicePortId, port: &ServicePort, eps: &[&Endpoint], role: &str) -> Vec<String> {
    let proto = port.protocol.as_str();
    let mut rules = Vec::new();
    let lists: Vec<String> = match port.affinity {
        Some(_) => eps.iter().map(|ep| format!("KUBE-SEP-{}-{role}", endpoint_hash(id, ep.ip, ep.port))).collect(),
        None => vec![String::new(); eps.len()],
    };
    if let Some(affinity) = port.affinity {
        for (ep, list) in eps.iter().zip(&lists) {
            rules.push(format!(
                "-p {proto} -m recent --name {list} --update --seconds {} --reap -j DNAT --to-destination {}",
                affinity.timeout_seconds,
                dnat_target(ep.addr())
            ));
        }
    }
    let n = eps.len();
    for (k, (ep, list)) in eps.iter().zip(&lists).enumerate() {
        let remaining = n - k;
        let statistic = if remaining > 1 {
            format!("-m statistic --mode random --probability {:.10} ", 1.0 / remaining as f64)
        } else {
            String::new()
        };
        let remember = if port.affinity.is_some() { format!("-m recent --name {list} --set ") } else { String::new() };
        rules.push(format!("-p {proto} {statistic}{remember}-j DNAT --to-destination {}", dnat_target(ep.addr())));
    }
    rules
}
