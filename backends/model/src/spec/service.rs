//! Service admission (B1, B2, B4-B6, B9, B15-B17, B33).

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use super::{port_number, Admission};
use crate::addr::{parse_cidr, parse_ip};
use crate::name::{ObjectRef, ServiceName};
use crate::protocol::{IpFamily, Protocol};
use crate::reject::Rejection;

/// A Service carrying this label belongs to another proxy and is ignored (B2).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// The default `sessionAffinityConfig.clientIP.timeoutSeconds` (three hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;

/// The largest affinity timeout the API server accepts (one day).
pub const MAX_AFFINITY_TIMEOUT_SECONDS: u32 = 86_400;

/// What a proxy needs of one Service, validated and normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceSpec {
    /// The service's namespace and name.
    pub name: ServiceName,
    /// One cluster IP per family, from `spec.clusterIPs` (B4); the first is primary.
    pub cluster_ips: Vec<IpAddr>,
    /// The ports, each unique by protocol and port (B5).
    pub ports: Vec<ServicePortSpec>,
    /// `spec.externalIPs` (B9).
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`, except ingresses with `ipMode: Proxy` (B9).
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` (B10), only for LoadBalancer services.
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// `Some(timeout in seconds)` for `sessionAffinity: ClientIP` (B15).
    pub affinity_timeout_seconds: Option<u32>,
    /// `internalTrafficPolicy: Local` (B16).
    pub internal_policy_local: bool,
    /// `externalTrafficPolicy: Local`, for services reachable from outside (B17).
    pub external_policy_local: bool,
    /// `spec.healthCheckNodePort` of a LoadBalancer with a Local external policy (B30).
    pub health_check_node_port: Option<u16>,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServicePortSpec {
    /// The port's name (`""` when unnamed); slices' ports join on it (B5).
    pub name: Arc<str>,
    /// The service port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node port, for NodePort and LoadBalancer services that have one.
    pub node_port: Option<u16>,
}

impl ServiceSpec {
    /// Admits a Service: accepted, ignored (headless, ExternalName, another proxy's
    /// label) or rejected with a reason naming the field.
    pub fn admit(service: &Service) -> Admission<ServiceSpec> {
        let meta = &service.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let name = meta.name.as_deref().unwrap_or("");
        let object = ObjectRef::new(crate::ObjectKind::Service, namespace, name);
        if name.is_empty() {
            return Admission::Rejected(Rejection::new(object, "metadata.name is empty"));
        }
        let labels = meta.labels.as_ref();
        if labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL)) {
            return Admission::Ignored("labelled service.kubernetes.io/service-proxy-name");
        }
        let Some(spec) = service.spec.as_ref() else {
            return Admission::Rejected(Rejection::new(object, "spec is missing"));
        };
        let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        if service_type == "ExternalName" {
            return Admission::Ignored("type ExternalName");
        }
        match admit_spec(ServiceName::new(namespace, name), service, service_type) {
            Ok(Some(spec)) => Admission::accepted(spec),
            Ok(None) => Admission::Ignored("headless (clusterIP: None)"),
            Err(reason) => Admission::Rejected(Rejection::new(object, reason)),
        }
    }
}

/// The body of [`ServiceSpec::admit`]; `Ok(None)` for a headless service.
fn admit_spec(name: ServiceName, service: &Service, service_type: &str) -> Result<Option<ServiceSpec>, String> {
    // The caller checked that spec is present.
    let Some(spec) = service.spec.as_ref() else { return Err("spec is missing".into()) };
    let (is_node_port, is_load_balancer) = match service_type {
        "ClusterIP" => (false, false),
        "NodePort" => (true, false),
        "LoadBalancer" => (true, true),
        other => return Err(format!("spec.type {other:?} is not ClusterIP, NodePort, LoadBalancer or ExternalName")),
    };

    let cluster_ip_texts: Vec<&str> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip.as_str()],
        _ => return Err("spec.clusterIPs is empty: the service has no cluster IP yet".into()),
    };
    if cluster_ip_texts.contains(&"None") {
        return Ok(None);
    }
    let mut cluster_ips = Vec::with_capacity(cluster_ip_texts.len());
    for (i, text) in cluster_ip_texts.iter().enumerate() {
        let ip = parse_ip(text).map_err(|e| format!("spec.clusterIPs[{i}]: {e}"))?;
        if cluster_ips.iter().any(|other: &IpAddr| IpFamily::of(other) == IpFamily::of(&ip)) {
            return Err(format!("spec.clusterIPs[{i}] {text:?}: a second address of the same family"));
        }
        cluster_ips.push(ip);
    }

    let mut ports: Vec<ServicePortSpec> = Vec::new();
    for (i, port) in spec.ports.iter().flatten().enumerate() {
        let number = port_number(&format!("spec.ports[{i}].port"), port.port)?;
        let protocol =
            Protocol::from_k8s(port.protocol.as_deref()).map_err(|e| format!("spec.ports[{i}].protocol: {e}"))?;
        let node_port = match port.node_port {
            Some(np) if is_node_port && np != 0 => Some(port_number(&format!("spec.ports[{i}].nodePort"), np)?),
            _ => None,
        };
        let port_name: Arc<str> = port.name.as_deref().unwrap_or("").into();
        if let Some(dup) = ports.iter().find(|p| p.protocol == protocol && (p.port == number || p.name == port_name)) {
            return Err(format!(
                "spec.ports[{i}] ({number}/{protocol}, name {port_name:?}) repeats port {}/{} (name {:?})",
                dup.port, dup.protocol, dup.name
            ));
        }
        ports.push(ServicePortSpec { name: port_name, port: number, protocol, node_port });
    }

    let mut external_ips = Vec::new();
    for (i, text) in spec.external_ips.iter().flatten().enumerate() {
        external_ips.push(parse_ip(text).map_err(|e| format!("spec.externalIPs[{i}]: {e}"))?);
    }

    let mut load_balancer_ips = Vec::new();
    let mut load_balancer_source_ranges = Vec::new();
    if is_load_balancer {
        let ingresses = service.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        for (i, ingress) in ingresses.and_then(|lb| lb.ingress.as_ref()).into_iter().flatten().enumerate() {
            if ingress.ip_mode.as_deref() == Some("Proxy") {
                continue; // B9: the load balancer proxies itself; the node must not catch it.
            }
            if let Some(text) = ingress.ip.as_deref().filter(|t| !t.is_empty()) {
                let ip = parse_ip(text).map_err(|e| format!("status.loadBalancer.ingress[{i}].ip: {e}"))?;
                load_balancer_ips.push(ip);
            }
        }
        for (i, text) in spec.load_balancer_source_ranges.iter().flatten().enumerate() {
            let net = parse_cidr(text.trim()).map_err(|e| format!("spec.loadBalancerSourceRanges[{i}]: {e}"))?;
            load_balancer_source_ranges.push(net);
        }
    }

    let affinity_timeout_seconds = match spec.session_affinity.as_deref() {
        None | Some("None") => None,
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => Some(DEFAULT_AFFINITY_TIMEOUT_SECONDS),
                Some(t) if t >= 1 && t as u32 <= MAX_AFFINITY_TIMEOUT_SECONDS => Some(t as u32),
                Some(t) => {
                    return Err(format!(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds {t} is not in 1-{MAX_AFFINITY_TIMEOUT_SECONDS}"
                ))
                }
            }
        }
        Some(other) => return Err(format!("spec.sessionAffinity {other:?} is not None or ClientIP")),
    };

    let internal_policy_local = match spec.internal_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => return Err(format!("spec.internalTrafficPolicy {other:?} is not Cluster or Local")),
    };
    let external_policy_requested = match spec.external_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => return Err(format!("spec.externalTrafficPolicy {other:?} is not Cluster or Local")),
    };
    // The external policy only means something for a service reachable from outside.
    let external_policy_local = external_policy_requested && (is_node_port || !external_ips.is_empty());
    let health_check_node_port = match spec.health_check_node_port {
        Some(p) if is_load_balancer && external_policy_local && p != 0 => {
            Some(port_number("spec.healthCheckNodePort", p)?)
        }
        _ => None,
    };

    Ok(Some(ServiceSpec {
        name,
        cluster_ips,
        ports,
        external_ips,
        load_balancer_ips,
        load_balancer_source_ranges,
        affinity_timeout_seconds,
        internal_policy_local,
        external_policy_local,
        health_check_node_port,
    }))
}
