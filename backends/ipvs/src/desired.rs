//! What the IPVS mode wants in the kernel for a [`ProxyState`], computed without I/O:
//! the virtual services with their real servers, the addresses of `kube-ipvs0`, and the
//! elements of the helper sets ([`HelperSets`]) the fixed firewall rules match against.
//!
//! Guarantees:
//! - One virtual service per frontend that has endpoints for its traffic: the ClusterIP
//!   (internal endpoints, B16), each external IP and load-balancer IP, and the NodePort
//!   on each node address (external endpoints, B17). A frontend without such endpoints
//!   has no virtual service; its key is in a reject set (no serving endpoint anywhere,
//!   B19) or a drop set (a Local policy with no local endpoint, B16/B17).
//! - Every ClusterIP, external IP and load-balancer IP is an address of `kube-ipvs0`
//!   (also when it has no endpoints, so the reject rule sees the packet).
//! - Virtual services whose address is inside `exclude_cidrs` are neither wanted nor
//!   ever deleted (`--ipvs-exclude-cidrs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferry_model::{IpFamily, ProxyState, ServicePort, ServicePortId};

use crate::config::IpvsConfig;
use crate::genl::{Protocol, RealServer, VirtualService};

/// A virtual service's identity: protocol, address, port (as `ipvsadm -Ln` sorts them).
pub type ServiceKey = (Protocol, IpAddr, u16);

/// The key of a virtual service.
pub fn key_of(service: &VirtualService) -> ServiceKey {
    (service.protocol, service.address, service.port)
}

/// One virtual service kube-ferry wants, with its real servers and the service port it
/// comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedService {
    /// The virtual service (scheduler and persistence included).
    pub service: VirtualService,
    /// Its real servers (weight 1, masquerade), sorted by address and port.
    pub servers: Vec<RealServer>,
    /// The service port it serves (for logs and refusals).
    pub owner: ServicePortId,
}

/// The elements of the helper sets of one family, as nft element text (`10.96.0.10 . tcp
/// . 80`). The rules that use them are fixed (`helpers.rs`): their number does not grow
/// with the number of services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperSets {
    /// Every ClusterIP, external IP and LB IP: `addr`.
    pub service_ips: BTreeSet<String>,
    /// ClusterIP frontends: `addr . proto . port`; masqueraded when off-cluster (B22).
    pub cluster_ports: BTreeSet<String>,
    /// External IP and LB frontends under a Cluster policy: always masqueraded.
    pub external_ports: BTreeSet<String>,
    /// External IP and LB frontends under a Local policy: masqueraded only from the node.
    pub external_local_ports: BTreeSet<String>,
    /// NodePorts under a Cluster policy: `proto . port`.
    pub node_ports: BTreeSet<String>,
    /// NodePorts under a Local policy: `proto . port`.
    pub node_local_ports: BTreeSet<String>,
    /// Frontends with no serving endpoint: rejected (B19). `addr . proto . port`.
    pub reject: BTreeSet<String>,
    /// Frontends whose policy's endpoint set is empty: dropped (B16, B17).
    pub drop: BTreeSet<String>,
    /// NodePorts with no serving endpoint: `proto . port`, rejected.
    pub node_port_reject: BTreeSet<String>,
    /// NodePorts under a Local policy with no local endpoint: dropped.
    pub node_port_drop: BTreeSet<String>,
    /// LB frontends with source ranges: `addr . proto . port`.
    pub lb_filtered: BTreeSet<String>,
    /// The ranges allowed for them: `addr . proto . port . cidr`.
    pub lb_allowed: BTreeSet<String>,
    /// Local endpoints, `ep . ep`: a connection from an endpoint to itself is
    /// masqueraded (hairpin, B21).
    pub hairpin: BTreeSet<String>,
}

impl HelperSets {
    /// The sets by name, in a fixed order, as the helper table declares them.
    pub fn named(&self) -> [(&'static str, &BTreeSet<String>); 13] {
        [
            ("service-ips", &self.service_ips),
            ("cluster-ports", &self.cluster_ports),
            ("external-ports", &self.external_ports),
            ("external-local-ports", &self.external_local_ports),
            ("node-ports", &self.node_ports),
            ("node-local-ports", &self.node_local_ports),
            ("no-endpoint-reject", &self.reject),
            ("no-endpoint-drop", &self.drop),
            ("no-endpoint-nodeport-reject", &self.node_port_reject),
            ("no-endpoint-nodeport-drop", &self.node_port_drop),
            ("lb-filtered", &self.lb_filtered),
            ("lb-allowed", &self.lb_allowed),
            ("hairpin", &self.hairpin),
        ]
    }

    /// Elements in all sets.
    pub fn len(&self) -> usize {
        self.named().iter().map(|(_, s)| s.len()).sum()
    }

    /// Whether every set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the IPVS mode wants, for one state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredIpvs {
    /// Virtual services by key.
    pub services: BTreeMap<ServiceKey, WantedService>,
    /// The addresses of `kube-ipvs0`.
    pub addresses: BTreeSet<IpAddr>,
    /// The helper sets, IPv4 and IPv6.
    pub sets_v4: HelperSets,
    /// The helper sets of IPv6.
    pub sets_v6: HelperSets,
}

impl DesiredIpvs {
    /// The helper sets of `family`.
    pub fn sets(&self, family: IpFamily) -> &HelperSets {
        match family {
            IpFamily::V4 => &self.sets_v4,
            IpFamily::V6 => &self.sets_v6,
        }
    }

    /// Real servers over all virtual services.
    pub fn real_server_count(&self) -> usize {
        self.services.values().map(|s| s.servers.len()).sum()
    }
}

/// nft's name of a protocol.
fn nft_proto(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Builds what the IPVS mode wants for `state`, with NodePorts on `node_addresses` (the
/// node's own addresses inside `--nodeport-addresses`, of both families).
pub fn desired(state: &ProxyState, config: &IpvsConfig, node_addresses: &[IpAddr]) -> DesiredIpvs {
    let mut out = DesiredIpvs::default();
    for (id, port) in state.ports() {
        add_port(&mut out, id, port, config, node_addresses);
    }
    out
}

fn servers(endpoints: impl Iterator<Item = (IpAddr, u16)>) -> Vec<RealServer> {
    let mut servers: Vec<RealServer> = endpoints.map(|(ip, port)| RealServer::new(ip, port, 1)).collect();
    servers.sort_by_key(|s| (s.address, s.port));
    servers.dedup_by_key(|s| (s.address, s.port));
    servers
}

fn add_port(out: &mut DesiredIpvs, id: &ServicePortId, port: &ServicePort, config: &IpvsConfig, node_addresses: &[IpAddr]) {
    let family = IpFamily::of(&port.cluster_ip);
    let proto = nft_proto(port.protocol);
    let excluded = |ip: &IpAddr| config.exclude_cidrs.iter().any(|c| c.contains(ip));
    let internal = servers(port.internal_endpoints().map(|e| (e.ip, e.port)));
    let external = servers(port.external_endpoints().map(|e| (e.ip, e.port)));
    let serving = port.has_serving_endpoints();
    let want = |out: &mut DesiredIpvs, address: IpAddr, vport: u16, servers: &Vec<RealServer>| {
        if excluded(&address) || servers.is_empty() {
            return;
        }
        let mut service = VirtualService::new(address, port.protocol, vport);
        service.scheduler = config.scheduler.clone();
        service.persistence = port.affinity.map(|a| a.timeout_seconds);
        out.services.insert(
            key_of(&service),
            WantedService { service, servers: servers.clone(), owner: id.clone() },
        );
    };
    let sets = match family {
        IpFamily::V4 => &mut out.sets_v4,
        IpFamily::V6 => &mut out.sets_v6,
    };
    let frontend = |ip: &IpAddr, p: u16| format!("{ip} . {proto} . {p}");
    let empty_set = |sets: &mut HelperSets, element: String, policy_set_empty: bool| {
        if !serving {
            sets.reject.insert(element);
        } else if policy_set_empty {
            sets.drop.insert(element);
        }
    };

    // The ClusterIP.
    sets.service_ips.insert(port.cluster_ip.to_string());
    sets.cluster_ports.insert(frontend(&port.cluster_ip, port.port));
    empty_set(sets, frontend(&port.cluster_ip, port.port), internal.is_empty());
    // External IPs and load-balancer IPs.
    for ip in port.external_ips.iter().chain(&port.load_balancer_ips) {
        sets.service_ips.insert(ip.to_string());
        let element = frontend(ip, port.port);
        if port.external_policy_local {
            sets.external_local_ports.insert(element.clone());
        } else {
            sets.external_ports.insert(element.clone());
        }
        empty_set(sets, element, external.is_empty());
    }
    if !port.load_balancer_source_ranges.is_empty() {
        for ip in &port.load_balancer_ips {
            sets.lb_filtered.insert(frontend(ip, port.port));
            for range in &port.load_balancer_source_ranges {
                sets.lb_allowed.insert(format!("{} . {range}", frontend(ip, port.port)));
            }
        }
    }
    // The NodePort.
    if let Some(node_port) = port.node_port {
        let element = format!("{proto} . {node_port}");
        if port.external_policy_local {
            sets.node_local_ports.insert(element.clone());
        } else {
            sets.node_ports.insert(element.clone());
        }
        if !serving {
            sets.node_port_reject.insert(element);
        } else if external.is_empty() {
            sets.node_port_drop.insert(element);
        }
    }
    // Hairpin: every local endpoint may land on itself.
    for ep in port.endpoints.iter().filter(|e| e.is_local) {
        sets.hairpin.insert(format!("{} . {}", ep.ip, ep.ip));
    }

    for ip in std::iter::once(&port.cluster_ip).chain(&port.external_ips).chain(&port.load_balancer_ips) {
        if !excluded(ip) {
            out.addresses.insert(*ip);
        }
    }
    want(out, port.cluster_ip, port.port, &internal);
    for ip in port.external_ips.iter().chain(&port.load_balancer_ips) {
        want(out, *ip, port.port, &external);
    }
    if let Some(node_port) = port.node_port {
        for ip in node_addresses.iter().filter(|a| IpFamily::of(a) == family) {
            want(out, *ip, node_port, &external);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_fixtures::{service, slice};
    use ferry_model::{ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};

    fn state(extra: impl FnOnce(&mut StateBuilder)) -> ProxyState {
        let mut b = StateBuilder::new("node-a");
        extra(&mut b);
        b.rebuild();
        b.state().clone()
    }

    fn add(b: &mut StateBuilder, svc: k8s_openapi::api::core::v1::Service, sl: Option<k8s_openapi::api::discovery::v1::EndpointSlice>) {
        let name = ServiceName::new(
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default(),
        );
        b.set_service(name, Some(ServiceSpec::admit(&svc)));
        if let Some(sl) = sl {
            let sn = SliceName::new(
                sl.metadata.namespace.as_deref().unwrap_or_default(),
                sl.metadata.name.as_deref().unwrap_or_default(),
            );
            b.set_slice(sn, Some(SliceSpec::admit(&sl)));
        }
    }

    fn node() -> Vec<IpAddr> {
        vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()]
    }

    #[test]
    fn a_nodeport_service_has_one_virtual_service_per_frontend() {
        let s = state(|b| {
            let svc = service("demo", "web")
                .cluster_ip("10.96.0.10")
                .type_("NodePort")
                .node_port("http", 80, "TCP", 30080)
                .external_ip("198.51.100.10")
                .build();
            let sl = slice("demo", "web-1", "web", "IPv4")
                .port("http", 8080, "TCP")
                .ready("10.244.0.5", "node-a")
                .ready("10.244.1.5", "node-b")
                .build();
            add(b, svc, Some(sl));
        });
        let d = desired(&s, &IpvsConfig::default(), &node());
        let keys: Vec<String> = d.services.values().map(|w| w.service.to_string()).collect();
        assert_eq!(keys, ["TCP 10.96.0.10:80", "TCP 192.0.2.7:30080", "TCP 198.51.100.10:80"]);
        for w in d.services.values() {
            let eps: Vec<String> = w.servers.iter().map(|r| format!("{}:{}", r.address, r.port)).collect();
            assert_eq!(eps, ["10.244.0.5:8080", "10.244.1.5:8080"]);
        }
        let addrs: Vec<String> = d.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(addrs, ["10.96.0.10", "198.51.100.10"], "node addresses are not put on kube-ipvs0");
        assert!(d.sets_v4.cluster_ports.contains("10.96.0.10 . tcp . 80"));
        assert!(d.sets_v4.external_ports.contains("198.51.100.10 . tcp . 80"));
        assert!(d.sets_v4.node_ports.contains("tcp . 30080"));
        assert!(d.sets_v4.hairpin.contains("10.244.0.5 . 10.244.0.5"), "{:?}", d.sets_v4.hairpin);
        assert!(!d.sets_v4.hairpin.contains("10.244.1.5 . 10.244.1.5"), "remote endpoints cannot hairpin here");
        assert!(d.sets_v4.reject.is_empty() && d.sets_v4.drop.is_empty());
    }

    #[test]
    fn without_endpoints_there_is_no_virtual_service_and_the_frontends_are_rejected() {
        let s = state(|b| {
            let svc = service("demo", "empty")
                .cluster_ip("10.96.0.11")
                .type_("NodePort")
                .node_port("http", 80, "TCP", 30081)
                .build();
            add(b, svc, None);
        });
        let d = desired(&s, &IpvsConfig::default(), &node());
        assert!(d.services.is_empty());
        assert!(d.addresses.contains(&"10.96.0.11".parse::<IpAddr>().unwrap()), "the address stays, for the reject");
        assert!(d.sets_v4.reject.contains("10.96.0.11 . tcp . 80"));
        assert!(d.sets_v4.node_port_reject.contains("tcp . 30081"));
    }

    #[test]
    fn local_policies_use_local_endpoints_and_drop_without_them() {
        let s = state(|b| {
            let svc = service("demo", "int")
                .cluster_ip("10.96.0.20")
                .port("http", 80, "TCP")
                .internal_policy("Local")
                .build();
            let sl = slice("demo", "int-1", "int", "IPv4").port("http", 8080, "TCP").ready("10.244.1.5", "node-b").build();
            add(b, svc, Some(sl));
        });
        let d = desired(&s, &IpvsConfig::default(), &node());
        assert!(d.services.is_empty(), "no local endpoint: no virtual service");
        assert!(d.sets_v4.drop.contains("10.96.0.20 . tcp . 80"), "{:?}", d.sets_v4);
        assert!(d.sets_v4.reject.is_empty());
    }

    #[test]
    fn affinity_scheduler_and_exclusions() {
        let s = state(|b| {
            let svc = service("demo", "sticky")
                .cluster_ip("10.96.0.40")
                .port("http", 80, "TCP")
                .client_ip_affinity(Some(300))
                .build();
            let sl = slice("demo", "sticky-1", "sticky", "IPv4").port("http", 8080, "TCP").ready("10.244.0.5", "node-a").build();
            add(b, svc, Some(sl));
            let svc = service("demo", "other").cluster_ip("10.97.0.1").port("http", 80, "TCP").build();
            let sl = slice("demo", "other-1", "other", "IPv4").port("http", 8080, "TCP").ready("10.244.0.6", "node-a").build();
            add(b, svc, Some(sl));
        });
        let config = IpvsConfig {
            scheduler: crate::genl::Scheduler::WeightedLeastConnection,
            exclude_cidrs: vec!["10.97.0.0/16".parse().unwrap()],
            ..IpvsConfig::default()
        };
        let d = desired(&s, &config, &node());
        assert_eq!(d.services.len(), 1, "the excluded one is not wanted");
        let w = d.services.values().next().unwrap();
        assert_eq!(w.service.persistence, Some(300));
        assert_eq!(w.service.scheduler, crate::genl::Scheduler::WeightedLeastConnection);
        assert!(!d.addresses.contains(&"10.97.0.1".parse::<IpAddr>().unwrap()));
    }
}
