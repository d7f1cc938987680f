//! [`UserspaceBackend`]: the model's service ports as listening frontends.
//!
//! Each service port gets a balancer for internal traffic (its ClusterIP) and one for
//! external traffic (external IPs, LB IPs, NodePorts), over the endpoint sets the model
//! chose for each (B13-B18). A port with no endpoints for a frontend has no listener
//! there, so the kernel refuses connections at once (TCP RST, ICMP port unreachable for
//! UDP: B19). Endpoint changes update the balancers: established connections keep going.
//!
//! Service addresses are made local on the loopback link ([`crate::addresses`]) before the
//! frontends listen on them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_model::{
    Backend, BackendError, CleanupReport, Protocol, ProxyState, Refusal, ServicePort, ServicePortId, SyncReport,
    SyncRequest,
};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::addresses::AddressBinder;
use crate::balancer::Balancer;
use crate::listener::{Limits, TcpFrontend};
use crate::sources::SourceRanges;
use crate::tcp::{CopyMethod, TcpOptions};
use crate::udp::UdpFrontend;

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct UserspaceConfig {
    /// A TCP connection idle this long is closed.
    pub tcp_idle: Duration,
    /// How TCP bytes are moved (measured: docs/performance.md).
    pub tcp_copy: CopyMethod,
    /// A UDP flow idle this long ends.
    pub udp_idle: Duration,
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once, per service port.
    pub max_connections_per_service: usize,
    /// UDP flows per frontend.
    pub max_udp_flows: usize,
    /// Where NodePorts listen (default: every address of both families).
    pub node_port_addresses: Vec<IpAddr>,
    /// Only TCP NodePorts on `127.0.0.1`: the companion nftables mode runs with
    /// `--localhost-nodeports` (nftables cannot DNAT traffic to loopback, KEP-6032).
    pub localhost_node_ports_only: bool,
}

impl Default for UserspaceConfig {
    fn default() -> Self {
        UserspaceConfig {
            tcp_idle: Duration::from_secs(3600),
            tcp_copy: CopyMethod::default(),
            udp_idle: Duration::from_secs(30),
            max_connections: 100_000,
            max_connections_per_service: 10_000,
            max_udp_flows: 65_536,
            node_port_addresses: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
            localhost_node_ports_only: false,
        }
    }
}

/// A running frontend.
#[derive(Debug)]
enum Frontend {
    Tcp(TcpFrontend),
    Udp(UdpFrontend),
}

/// Stops a frontend and waits until its socket is closed.
async fn stop(frontend: Frontend) {
    match frontend {
        Frontend::Tcp(f) => f.stop().await,
        Frontend::Udp(f) => f.stop().await,
    }
}

/// What runs for one service port.
#[derive(Debug)]
struct PortProxy {
    internal: Arc<Mutex<Balancer>>,
    external: Arc<Mutex<Balancer>>,
    semaphore: Arc<Semaphore>,
    /// The load-balancer IPs' source ranges (B10).
    lb_sources: SourceRanges,
    frontends: BTreeMap<SocketAddr, Frontend>,
}

/// The userspace backend.
#[derive(Debug)]
pub struct UserspaceBackend {
    config: UserspaceConfig,
    binder: Option<Box<dyn AddressBinder>>,
    /// Service addresses kube-ferry made local (or adopted on start).
    bound: BTreeSet<IpAddr>,
    adopted: bool,
    runtime: tokio::runtime::Runtime,
    limits: Arc<Limits>,
    ports: HashMap<ServicePortId, PortProxy>,
    refused: BTreeMap<ServicePortId, String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the balancer stays consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The frontends a port wants, each marked internal (true) or external, given where
/// NodePorts listen. Only frontends with endpoints for their traffic are listed.
fn frontends(port: &ServicePort, config: &UserspaceConfig) -> Vec<(SocketAddr, bool)> {
    let node_port_addresses = &config.node_port_addresses;
    if config.localhost_node_ports_only {
        return match port.node_port {
            Some(np)
                if port.protocol == Protocol::Tcp
                    && port.cluster_ip.is_ipv4()
                    && port.external_endpoints().next().is_some() =>
            {
                vec![(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), np), false)]
            }
            _ => Vec::new(),
        };
    }
    let mut out = Vec::new();
    if port.internal_endpoints().next().is_some() {
        out.push((port.cluster_addr(), true));
    }
    if port.external_endpoints().next().is_some() {
        for ip in port.external_ips.iter().chain(&port.load_balancer_ips) {
            out.push((SocketAddr::new(*ip, port.port), false));
        }
        if let Some(np) = port.node_port {
            let family = port.cluster_ip.is_ipv4();
            for ip in node_port_addresses.iter().filter(|a| a.is_ipv4() == family) {
                out.push((SocketAddr::new(*ip, np), false));
            }
        }
    }
    out
}

fn endpoints(eps: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = eps.collect();
    v.sort();
    v
}

impl UserspaceBackend {
    /// UDP datagrams dropped (flow table full, no endpoint, no upstream socket) by the
    /// frontends running now.
    fn udp_dropped(&self) -> u64 {
        let frontends = self.ports.values().flat_map(|p| p.frontends.values());
        frontends.map(|f| if let Frontend::Udp(u) = f { u.dropped() } else { 0 }).sum()
    }

    /// A backend with its own runtime (two worker threads).
    pub fn new(config: UserspaceConfig) -> Result<UserspaceBackend, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-ferry-proxy")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the proxy's runtime: {e}")))?;
        let limits = Limits::new(config.max_connections, config.max_connections_per_service);
        Ok(UserspaceBackend {
            config,
            binder: None,
            bound: BTreeSet::new(),
            adopted: false,
            runtime,
            limits,
            ports: HashMap::new(),
            refused: BTreeMap::new(),
        })
    }

    /// Makes service addresses local through `binder` before listening on them (without
    /// one, the addresses must be local already, as loopback addresses are).
    pub fn with_binder(mut self, binder: Box<dyn AddressBinder>) -> UserspaceBackend {
        self.binder = Some(binder);
        self
    }

    /// Every ClusterIP, external IP and LB IP of the state: local, so that a port without
    /// endpoints (no listener) is refused at once rather than routed away (B19).
    fn bind_addresses(&mut self, state: &ProxyState) -> Result<(), BackendError> {
        let Some(binder) = &self.binder else { return Ok(()) };
        let wanted: BTreeSet<IpAddr> = state
            .ports()
            .flat_map(|(_, p)| {
                std::iter::once(p.cluster_ip)
                    .chain(p.external_ips.iter().copied())
                    .chain(p.load_balancer_ips.iter().copied())
            })
            .collect();
        if !self.adopted {
            // IPv6 addresses have no label: adopt only those that are service addresses.
            self.bound = binder.list()?.into_iter().filter(|ip| ip.is_ipv4() || wanted.contains(ip)).collect();
            self.adopted = true;
        }
        let add: Vec<IpAddr> = wanted.difference(&self.bound).copied().collect();
        let remove: Vec<IpAddr> = self.bound.difference(&wanted).copied().collect();
        binder.change(&add, &remove)?;
        self.bound = wanted;
        Ok(())
    }

    fn stop_all(&self, frontends: impl Iterator<Item = Frontend>) {
        for frontend in frontends {
            self.runtime.block_on(stop(frontend));
        }
    }

    /// Connections closed because a limit was reached.
    pub fn limit_refusals(&self) -> u64 {
        self.limits.refused()
    }

    /// Brings one port's frontends and balancers in line with `port` (`None`: gone).
    fn apply(&mut self, id: &ServicePortId, port: Option<&ServicePort>) {
        let Some(port) = port else {
            if let Some(proxy) = self.ports.remove(id) {
                self.stop_all(proxy.frontends.into_values());
            }
            self.refused.remove(id);
            return;
        };
        if port.protocol == Protocol::Sctp && !self.config.localhost_node_ports_only {
            if let Some(proxy) = self.ports.remove(id) {
                self.stop_all(proxy.frontends.into_values());
            }
            self.refused.insert(id.clone(), "the userspace proxy does not proxy SCTP".into());
            return;
        }
        let affinity = port.affinity.map(|a| u64::from(a.timeout_seconds));
        let internal = endpoints(port.internal_endpoints().map(|e| e.addr()));
        let external = endpoints(port.external_endpoints().map(|e| e.addr()));
        let limits = &self.limits;
        let proxy = self.ports.entry(id.clone()).or_insert_with(|| PortProxy {
            internal: Arc::new(Mutex::new(Balancer::new(Vec::new(), affinity))),
            external: Arc::new(Mutex::new(Balancer::new(Vec::new(), affinity))),
            semaphore: TcpFrontend::service_semaphore(limits),
            lb_sources: SourceRanges::default(),
            frontends: BTreeMap::new(),
        });
        proxy.lb_sources.set(port.load_balancer_source_ranges.clone());
        lock(&proxy.internal).update(internal, affinity);
        lock(&proxy.external).update(external, affinity);
        let wanted = frontends(port, &self.config);
        let wanted_addrs: BTreeSet<SocketAddr> = wanted.iter().map(|(a, _)| *a).collect();
        let gone: Vec<SocketAddr> = proxy.frontends.keys().filter(|a| !wanted_addrs.contains(*a)).copied().collect();
        let stopped: Vec<Frontend> = gone.iter().filter_map(|a| proxy.frontends.remove(a)).collect();
        for frontend in stopped {
            self.runtime.block_on(stop(frontend));
        }
        let Some(proxy) = self.ports.get_mut(id) else { return };
        let mut failures = Vec::new();
        for (addr, internal) in wanted {
            if proxy.frontends.contains_key(&addr) {
                continue;
            }
            let balancer = if internal { proxy.internal.clone() } else { proxy.external.clone() };
            let sources = port.load_balancer_ips.contains(&addr.ip()).then(|| proxy.lb_sources.clone());
            let started = match port.protocol {
                Protocol::Udp => self
                    .runtime
                    .block_on(UdpFrontend::start(addr, balancer, self.config.udp_idle, self.config.max_udp_flows, sources))
                    .map(Frontend::Udp),
                _ => self
                    .runtime
                    .block_on(TcpFrontend::start(
                        addr,
                        balancer,
                        proxy.semaphore.clone(),
                        self.limits.clone(),
                        TcpOptions { idle: self.config.tcp_idle, copy: self.config.tcp_copy, sources },
                    ))
                    .map(Frontend::Tcp),
            };
            match started {
                Ok(frontend) => {
                    proxy.frontends.insert(addr, frontend);
                }
                Err(e) => failures.push(format!("cannot listen on {addr}: {e}")),
            }
        }
        if failures.is_empty() {
            self.refused.remove(id);
        } else {
            warn!(port = %id, errors = ?failures, "some frontends of this service port could not listen");
            self.refused.insert(id.clone(), failures.join("; "));
        }
    }
}

impl Backend for UserspaceBackend {
    fn mode(&self) -> &'static str {
        "userspace"
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let ids: Vec<ServicePortId> = match request {
            SyncRequest::Full => {
                let gone: Vec<ServicePortId> =
                    self.ports.keys().filter(|id| state.get(id).is_none()).cloned().collect();
                state.ports().map(|(id, _)| id.clone()).chain(gone).collect()
            }
            SyncRequest::Changes(diff) => {
                diff.added.iter().chain(diff.changed.iter().map(|c| &c.id)).chain(&diff.removed).cloned().collect()
            }
        };
        let operations = ids.len();
        // Frontends of ports gone stop before their addresses go; new addresses come
        // before the listeners that need them.
        for id in ids.iter().filter(|id| state.get(id).is_none()) {
            self.apply(id, None);
        }
        self.bind_addresses(state)?;
        for id in ids.iter().filter(|id| state.get(id).is_some()) {
            self.apply(id, state.get(id));
        }
        let kernel_objects = self.ports.values().map(|p| p.frontends.len()).sum();
        Ok(SyncReport {
            service_ports: state.len(),
            endpoints: state.endpoint_count(),
            operations,
            kernel_objects,
            refused: self.refused.iter().map(|(id, d)| Refusal { object: id.to_string(), detail: d.clone() }).collect(),
            events: vec![
                ("connections_refused_at_limit", self.limits.refused()),
                ("udp_datagrams_dropped", self.udp_dropped()),
            ],
        })
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        let mut report = CleanupReport::default();
        for (id, proxy) in self.ports.drain() {
            report.removed.push(format!("{} listeners of {id}", proxy.frontends.len()));
        }
        if let Some(binder) = &self.binder {
            let ours: Vec<IpAddr> =
                binder.list()?.into_iter().filter(|ip| ip.is_ipv4() || self.bound.contains(ip)).collect();
            binder.change(&[], &ours)?;
            report.removed.extend(ours.iter().map(|ip| format!("address {ip} on lo")));
        }
        self.bound.clear();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_fixtures::{service, slice};
    use ferry_model::{ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};
    use std::io::{Read, Write};

    fn server(name: &'static str) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let _ = s.write_all(name.as_bytes());
            }
        });
        addr
    }

    fn ask(addr: SocketAddr) -> std::io::Result<String> {
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out)
    }

    fn set(b: &mut StateBuilder, eps: &[SocketAddr]) -> ferry_model::StateDiff {
        // The ClusterIP is a loopback address: local without binding anything.
        let svc = service("demo", "web").cluster_ip("127.0.0.77").port("http", 18080, "TCP").build();
        let mut s = slice("demo", "web-1", "web", "IPv4");
        for ep in eps {
            s = s.port("http", i32::from(ep.port()), "TCP").ready(&ep.ip().to_string(), "node-a");
        }
        b.set_service(ServiceName::new("demo", "web"), Some(ServiceSpec::admit(&svc)));
        b.set_slice(SliceName::new("demo", "web-1"), Some(SliceSpec::admit(&s.build())));
        b.rebuild()
    }

    #[test]
    fn a_service_port_listens_while_it_has_endpoints_and_follows_them() {
        let a = server("pod-a");
        let mut backend = UserspaceBackend::new(UserspaceConfig::default()).unwrap();
        let mut b = StateBuilder::new("node-a");
        set(&mut b, &[a]);
        let report = backend.sync(b.state(), SyncRequest::Full).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        let vip: SocketAddr = "127.0.0.77:18080".parse().unwrap();
        assert_eq!(ask(vip).unwrap(), "pod-a");
        // No endpoints: no listener, so connections are refused at once (B19).
        let diff = set(&mut b, &[]);
        backend.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
        let err = ask(vip).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // Back, and deleted.
        let diff = set(&mut b, &[a]);
        backend.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
        assert_eq!(ask(vip).unwrap(), "pod-a");
        b.set_service(ServiceName::new("demo", "web"), None);
        let diff = b.rebuild();
        backend.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
        assert!(ask(vip).is_err(), "a removed service closes its listeners");
    }

    #[test]
    fn a_port_that_cannot_listen_is_refused_by_name_and_the_others_run() {
        let a = server("pod-a");
        // Someone else holds 127.0.0.78:18080 (B34: the "kernel" refuses this port).
        let squatter = std::net::TcpListener::bind("127.0.0.78:18080").unwrap();
        let mut backend = UserspaceBackend::new(UserspaceConfig::default()).unwrap();
        let mut b = StateBuilder::new("node-a");
        let free = service("demo", "free").cluster_ip("127.0.0.79").port("http", 18080, "TCP").build();
        let s = slice("demo", "free-1", "free", "IPv4").port("http", i32::from(a.port()), "TCP").ready("127.0.0.1", "node-a");
        b.set_service(ServiceName::new("demo", "free"), Some(ServiceSpec::admit(&free)));
        b.set_slice(SliceName::new("demo", "free-1"), Some(SliceSpec::admit(&s.build())));
        let taken = service("demo", "taken").cluster_ip("127.0.0.78").port("http", 18080, "TCP").build();
        let s = slice("demo", "taken-1", "taken", "IPv4").port("http", i32::from(a.port()), "TCP").ready("127.0.0.1", "node-a");
        b.set_service(ServiceName::new("demo", "taken"), Some(ServiceSpec::admit(&taken)));
        b.set_slice(SliceName::new("demo", "taken-1"), Some(SliceSpec::admit(&s.build())));
        b.rebuild();
        let report = backend.sync(b.state(), SyncRequest::Full).unwrap();
        assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
        assert!(report.refused[0].object.contains("demo/taken"), "{:?}", report.refused);
        assert!(report.refused[0].detail.contains("127.0.0.78:18080"), "{:?}", report.refused);
        assert_eq!(ask("127.0.0.79:18080".parse().unwrap()).unwrap(), "pod-a", "the other service runs");
        drop(squatter);
        let report = backend.sync(b.state(), SyncRequest::Full).unwrap();
        assert!(report.refused.is_empty(), "retried and taken once free: {:?}", report.refused);
    }
}
