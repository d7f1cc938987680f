//! `kube-ferry render`: what a mode would program, printed, with no kernel involved.

use std::fmt::Write;

use ferry_model::{Endpoint, ProxyState, Rejection, ServicePort};

/// The model as a readable table: one block per service port, one line per endpoint,
/// then every object that was skipped and why.
pub fn model_table(state: &ProxyState, rejections: &[Rejection]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} service ports, {} endpoints", state.len(), state.endpoint_count());
    for (id, port) in state.ports() {
        let _ = writeln!(out, "\n{id}");
        let _ = writeln!(out, "  catch    {}", catch_line(port));
        let _ = writeln!(out, "  policy   {}", policy_line(port));
        if port.endpoints.is_empty() {
            let _ = writeln!(out, "  (no endpoints: connections are rejected)");
        }
        for ep in &port.endpoints {
            let _ = writeln!(
                out,
                "  -> {:<24} {:<6} {:<22} {}",
                ep.addr().to_string(),
                where_(ep),
                condition(ep),
                used_for(ep)
            );
        }
    }
    if !rejections.is_empty() {
        let _ = writeln!(out, "\nskipped:");
        for r in rejections {
            let _ = writeln!(out, "  {r}");
        }
    }
    out
}

fn catch_line(p: &ServicePort) -> String {
    let mut parts = vec![format!("clusterIP {}", p.cluster_addr())];
    if let Some(np) = p.node_port {
        parts.push(format!("nodePort {np}"));
    }
    for ip in &p.external_ips {
        parts.push(format!("externalIP {ip}"));
    }
    for ip in &p.load_balancer_ips {
        parts.push(format!("loadBalancer {ip}"));
    }
    if !p.load_balancer_source_ranges.is_empty() {
        let ranges: Vec<String> = p.load_balancer_source_ranges.iter().map(ToString::to_string).collect();
        parts.push(format!("from {}", ranges.join(",")));
    }
    parts.join("  ")
}

fn policy_line(p: &ServicePort) -> String {
    let name = |local: bool| if local { "Local" } else { "Cluster" };
    let mut line = format!("internal={} external={}", name(p.internal_policy_local), name(p.external_policy_local));
    match p.affinity {
        Some(a) => {
            let _ = write!(line, "  affinity ClientIP {}s", a.timeout_seconds);
        }
        None => line.push_str("  affinity None"),
    }
    if let Some(hc) = p.health_check_node_port {
        let _ = write!(line, "  healthCheckNodePort {hc}");
    }
    line
}

fn where_(e: &Endpoint) -> &'static str {
    if e.is_local {
        "local"
    } else {
        "remote"
    }
}

fn condition(e: &Endpoint) -> &'static str {
    match (e.serving, e.terminating) {
        (true, false) => "ready",
        (true, true) => "serving, terminating",
        (false, true) => "terminating",
        (false, false) => "not serving",
    }
}

fn used_for(e: &Endpoint) -> &'static str {
    match (e.in_cluster_set, e.in_local_set) {
        (true, true) => "used: cluster, local",
        (true, false) => "used: cluster",
        (false, true) => "used: local",
        (false, false) => "unused",
    }
}
