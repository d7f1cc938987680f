//! The desired state: every service port a backend must program, with its endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::name::{ServiceName, ServicePortId};
use crate::protocol::Protocol;
use crate::spec::NodeSpec;

/// Everything the node must program: one [`ServicePort`] per service, port, protocol
/// and family, in a stable order (by [`ServicePortId`]).
///
/// A `ProxyState` is a value: two equal states program the same rules. It is built and
/// kept up to date by [`crate::StateBuilder`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyState {
    pub(crate) ports: BTreeMap<ServicePortId, Arc<ServicePort>>,
    pub(crate) node: Option<Arc<NodeSpec>>,
}

impl ProxyState {
    /// Every service port, in id order.
    pub fn ports(&self) -> impl Iterator<Item = (&ServicePortId, &ServicePort)> + '_ {
        self.ports.iter().map(|(id, port)| (id, port.as_ref()))
    }

    /// One service port.
    pub fn get(&self, id: &ServicePortId) -> Option<&ServicePort> {
        self.ports.get(id).map(Arc::as_ref)
    }

    /// Every port of one service, in id order.
    pub fn ports_of<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> impl Iterator<Item = (&'a ServicePortId, &'a ServicePort)> + 'a {
        self.ports
            .range(ServicePortId::first_of(service)..)
            .take_while(move |(id, _)| &id.service == service)
            .map(|(id, port)| (id, port.as_ref()))
    }

    /// The number of service ports.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether there is no service port at all.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The number of endpoints over all service ports.
    pub fn endpoint_count(&self) -> usize {
        self.ports.values().map(|p| p.endpoints.len()).sum()
    }

    /// This node, once its Node object has been seen.
    pub fn node(&self) -> Option<&NodeSpec> {
        self.node.as_deref()
    }

    /// The health-check node ports to serve (B30), one per service, with the number of
    /// usable local endpoints (distinct addresses; terminating-only ones count 0).
    pub fn health_checks(&self) -> Vec<HealthCheck> {
        let mut checks: BTreeMap<&ServiceName, (u16, Vec<IpAddr>)> = BTreeMap::new();
        for (id, port) in &self.ports {
            let Some(node_port) = port.health_check_node_port else { continue };
            let entry = checks.entry(&id.service).or_insert((node_port, Vec::new()));
            for ep in port.endpoints.iter().filter(|e| e.is_local && e.is_usable()) {
                if !entry.1.contains(&ep.ip) {
                    entry.1.push(ep.ip);
                }
            }
        }
        checks
            .into_iter()
            .map(|(service, (node_port, ips))| HealthCheck {
                service: service.clone(),
                node_port,
                local_endpoints: ips.len(),
            })
            .collect()
    }
}

/// A health-check node port to serve for one service (B30).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HealthCheck {
    /// The service.
    pub service: ServiceName,
    /// `spec.healthCheckNodePort`.
    pub node_port: u16,
    /// Usable (serving, not terminating) endpoints on this node.
    pub local_endpoints: usize,
}

/// `sessionAffinity: ClientIP` (B15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClientIpAffinity {
    /// Seconds of inactivity after which a client may move to another endpoint.
    pub timeout_seconds: u32,
}

/// One service port in one family: where traffic is caught and where it may go.
///
/// Every address here is of the port's family. Endpoint selection (B13, B16-B18) is
/// already applied: [`ServicePort::cluster_endpoints`] and
/// [`ServicePort::local_endpoints`] are the sets backends load-balance over.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServicePort {
    /// The cluster IP of this family.
    pub cluster_ip: IpAddr,
    /// The service port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node port, if any (B8).
    pub node_port: Option<u16>,
    /// External IPs of this family (B9).
    pub external_ips: Vec<IpAddr>,
    /// Load-balancer ingress IPs of this family (B9).
    pub load_balancer_ips: Vec<IpAddr>,
    /// Source ranges of this family allowed to reach the load-balancer IPs (B10); empty
    /// means every source.
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// Client-IP affinity (B15).
    pub affinity: Option<ClientIpAffinity>,
    /// `internalTrafficPolicy: Local` (B16).
    pub internal_policy_local: bool,
    /// `externalTrafficPolicy: Local` (B17).
    pub external_policy_local: bool,
    /// The service's health-check node port (B30).
    pub health_check_node_port: Option<u16>,
    /// All known endpoints, unique by address and port, sorted, with their selection.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// Endpoints for cluster-wide traffic policy (B13, B18).
    pub fn cluster_endpoints(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.endpoints.iter().filter(|e| e.in_cluster_set)
    }

    /// Endpoints for Local traffic policy: this node's (B13, B16, B17).
    pub fn local_endpoints(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.endpoints.iter().filter(|e| e.in_local_set)
    }

    /// The endpoints ClusterIP traffic goes to: local ones under `internalTrafficPolicy:
    /// Local`, else the cluster set.
    pub fn internal_endpoints(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        let local = self.internal_policy_local;
        self.endpoints.iter().filter(move |e| if local { e.in_local_set } else { e.in_cluster_set })
    }

    /// The endpoints outside traffic goes to (NodePort, external IP, LB IP): local ones
    /// under `externalTrafficPolicy: Local`, else the cluster set.
    pub fn external_endpoints(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        let local = self.external_policy_local;
        self.endpoints.iter().filter(move |e| if local { e.in_local_set } else { e.in_cluster_set })
    }

    /// Whether any endpoint anywhere can serve: when not, traffic is rejected (B19);
    /// when it can but the policy's set is empty, traffic is dropped (B16, B17).
    pub fn has_serving_endpoints(&self) -> bool {
        self.endpoints.iter().any(|e| e.serving)
    }

    /// Whether the port can be reached from outside the cluster network (a node port,
    /// an external IP or a load-balancer IP).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// The cluster IP and port as a socket address.
    pub fn cluster_addr(&self) -> SocketAddr {
        SocketAddr::new(self.cluster_ip, self.port)
    }

    /// Whether everything but the endpoints is equal.
    pub fn same_frontend(&self, other: &ServicePort) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let ServicePort {
            cluster_ip,
            port,
            protocol,
            node_port,
            external_ips,
            load_balancer_ips,
            load_balancer_source_ranges,
            affinity,
            internal_policy_local,
            external_policy_local,
            health_check_node_port,
            endpoints: _,
        } = self;
        *cluster_ip == other.cluster_ip
            && *port == other.port
            && *protocol == other.protocol
            && *node_port == other.node_port
            && *external_ips == other.external_ips
            && *load_balancer_ips == other.load_balancer_ips
            && *load_balancer_source_ranges == other.load_balancer_source_ranges
            && *affinity == other.affinity
            && *internal_policy_local == other.internal_policy_local
            && *external_policy_local == other.external_policy_local
            && *health_check_node_port == other.health_check_node_port
    }
}

/// One endpoint of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// The endpoint's address.
    pub ip: IpAddr,
    /// The port it listens on for this service port.
    pub port: u16,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The endpoint runs on this node.
    pub is_local: bool,
    /// Chosen for cluster-wide traffic policy.
    pub in_cluster_set: bool,
    /// Chosen for Local traffic policy.
    pub in_local_set: bool,
}

impl Endpoint {
    /// The address and port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// Serving and not terminating (B13).
    pub fn is_usable(&self) -> bool {
        self.serving && !self.terminating
    }
}
