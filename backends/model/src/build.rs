//! The incremental builder: object summaries in, [`ProxyState`] and [`StateDiff`] out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::diff::{diff_ports, StateDiff};
use crate::name::{ObjectRef, ServiceName, ServicePortId, SliceName};
use crate::protocol::IpFamily;
use crate::reject::Rejection;
use crate::select::{select_endpoints, HintMatch};
use crate::spec::{Admission, NodeSpec, ServiceSpec, SliceEndpoint, SliceSpec};
use crate::state::{ClientIpAffinity, Endpoint, ProxyState, ServicePort};

/// Keeps every admitted Service and EndpointSlice and the [`ProxyState`] they make, and
/// recomputes only the services touched since the last [`StateBuilder::rebuild`].
///
/// Guarantees:
/// - Setting an object to what it already is changes nothing (a relist that finds the
///   same objects produces an empty diff).
/// - A rejected or ignored object only removes itself; every other service is built.
/// - `rebuild` returns exactly the service ports added, removed and changed.
#[derive(Debug)]
pub struct StateBuilder {
    node_name: Arc<str>,
    node: Option<NodeSpec>,
    services: HashMap<ServiceName, ServiceSpec>,
    /// Services that exist but produce nothing (headless, ExternalName, other proxy).
    not_proxied: HashSet<ServiceName>,
    slices: HashMap<SliceName, SliceSpec>,
    slices_of: HashMap<ServiceName, BTreeSet<SliceName>>,
    /// Rejections from admission, by object.
    admission_rejections: BTreeMap<ObjectRef, Vec<Rejection>>,
    /// Slices whose service is unknown, by service (B33).
    orphan_rejections: BTreeMap<ServiceName, Vec<Rejection>>,
    dirty: BTreeSet<ServiceName>,
    node_dirty: bool,
    state: ProxyState,
}

impl StateBuilder {
    /// An empty builder for the node called `node_name` (endpoints whose `nodeName` is
    /// this are local).
    pub fn new(node_name: &str) -> StateBuilder {
        StateBuilder {
            node_name: node_name.into(),
            node: None,
            services: HashMap::new(),
            not_proxied: HashSet::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            admission_rejections: BTreeMap::new(),
            orphan_rejections: BTreeMap::new(),
            dirty: BTreeSet::new(),
            node_dirty: false,
            state: ProxyState::default(),
        }
    }

    /// Records a Service as admitted (`Some`) or deleted (`None`).
    pub fn set_service(&mut self, name: ServiceName, admission: Option<Admission<ServiceSpec>>) {
        set_rejections(&mut self.admission_rejections, ObjectRef::from(&name), admission.as_ref());
        let (new_spec, not_proxied) = match admission {
            Some(Admission::Accepted { spec, .. }) => (Some(spec), false),
            Some(Admission::Ignored(_) | Admission::Rejected(_)) => (None, true),
            None => (None, false),
        };
        let spec_changed = self.services.get(&name) != new_spec.as_ref();
        let flag_changed = self.not_proxied.contains(&name) != not_proxied;
        if spec_changed {
            match new_spec {
                Some(spec) => self.services.insert(name.clone(), spec),
                None => self.services.remove(&name),
            };
        }
        if flag_changed {
            if not_proxied {
                self.not_proxied.insert(name.clone());
            } else {
                self.not_proxied.remove(&name);
            }
        }
        if spec_changed || flag_changed {
            self.dirty.insert(name);
        }
    }

    /// Records an EndpointSlice as admitted (`Some`) or deleted (`None`).
    pub fn set_slice(&mut self, name: SliceName, admission: Option<Admission<SliceSpec>>) {
        set_rejections(&mut self.admission_rejections, ObjectRef::from(&name), admission.as_ref());
        let new = match admission {
            Some(Admission::Accepted { spec, .. }) => Some(spec),
            _ => None,
        };
        if self.slices.get(&name) == new.as_ref() {
            return;
        }
        if let Some(old) = self.slices.remove(&name) {
            if let Some(set) = self.slices_of.get_mut(&old.service) {
                set.remove(&name);
                if set.is_empty() {
                    self.slices_of.remove(&old.service);
                }
            }
            self.dirty.insert(old.service);
        }
        if let Some(spec) = new {
            self.slices_of.entry(spec.service.clone()).or_default().insert(name.clone());
            self.dirty.insert(spec.service.clone());
            self.slices.insert(name, spec);
        }
    }

    /// Records this node's Node object (`None` when it is deleted). A zone change
    /// rebuilds every service (topology hints, B18).
    pub fn set_node(&mut self, node: Option<NodeSpec>) {
        if self.node == node {
            return;
        }
        let zone = |n: &Option<NodeSpec>| n.as_ref().and_then(|n| n.zone.clone());
        if zone(&self.node) != zone(&node) {
            self.dirty.extend(self.services.keys().cloned());
        }
        self.node = node;
        self.node_dirty = true;
    }

    /// Whether anything was set since the last rebuild that may change the state.
    pub fn has_pending_changes(&self) -> bool {
        !self.dirty.is_empty() || self.node_dirty
    }

    /// Applies everything set since the last rebuild and says what changed.
    pub fn rebuild(&mut self) -> StateDiff {
        let mut diff = StateDiff::default();
        if std::mem::take(&mut self.node_dirty) {
            self.state.node = self.node.clone().map(Arc::new);
            diff.node_changed = true;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for service in &dirty {
            self.rebuild_service(service, &mut diff);
        }
        diff.sort();
        diff
    }

    /// The state as of the last rebuild.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// Every standing rejection: objects (or parts) refused at admission and slices whose
    /// service does not exist, as of the last rebuild, in a stable order.
    pub fn rejections(&self) -> impl Iterator<Item = &Rejection> + '_ {
        self.admission_rejections.values().flatten().chain(self.orphan_rejections.values().flatten())
    }

    /// The number of proxied services and of admitted slices.
    pub fn object_counts(&self) -> (usize, usize) {
        (self.services.len(), self.slices.len())
    }

    fn rebuild_service(&mut self, service: &ServiceName, diff: &mut StateDiff) {
        let old: Vec<ServicePortId> = self.state.ports_of(service).map(|(id, _)| id.clone()).collect();
        let mut new = BTreeMap::new();
        self.orphan_rejections.remove(service);
        match self.services.get(service) {
            Some(spec) => {
                let slices: Vec<&SliceSpec> = self.slices_for(service).collect();
                build_ports(spec, &slices, self.node_context(), &mut new)
            }
            None if self.not_proxied.contains(service) => {}
            None => {
                let orphans: Vec<Rejection> = self
                    .slices_for(service)
                    .map(|s| {
                        Rejection::new(
                            ObjectRef::from(&s.name),
                            format!("its service {service} does not exist (yet); its endpoints are not programmed"),
                        )
                    })
                    .collect();
                if !orphans.is_empty() {
                    self.orphan_rejections.insert(service.clone(), orphans);
                }
            }
        }
        for id in old {
            if !new.contains_key(&id) {
                self.state.ports.remove(&id);
                diff.removed.push(id);
            }
        }
        for (id, port) in new {
            match self.state.ports.get(&id) {
                Some(existing) => {
                    if let Some(change) = diff_ports(&id, existing, &port) {
                        diff.changed.push(change);
                        self.state.ports.insert(id, Arc::new(port));
                    }
                }
                None => {
                    diff.added.push(id.clone());
                    self.state.ports.insert(id, Arc::new(port));
                }
            }
        }
    }

    fn slices_for<'a>(&'a self, service: &ServiceName) -> impl Iterator<Item = &'a SliceSpec> + 'a {
        self.slices_of.get(service).into_iter().flatten().filter_map(|n| self.slices.get(n))
    }

    fn node_context(&self) -> NodeContext<'_> {
        NodeContext { name: &self.node_name, zone: self.node.as_ref().and_then(|n| n.zone.as_deref()) }
    }
}

fn set_rejections<T>(
    map: &mut BTreeMap<ObjectRef, Vec<Rejection>>,
    object: ObjectRef,
    admission: Option<&Admission<T>>,
) {
    match admission.map(Admission::rejections) {
        Some(list) if !list.is_empty() => {
            map.insert(object, list);
        }
        _ => {
            map.remove(&object);
        }
    }
}

#[derive(Clone, Copy)]
struct NodeContext<'a> {
    name: &'a str,
    zone: Option<&'a str>,
}

/// Every service port of one service, per family, with its endpoints selected.
fn build_ports(
    spec: &ServiceSpec,
    slices: &[&SliceSpec],
    node: NodeContext<'_>,
    out: &mut BTreeMap<ServicePortId, ServicePort>,
) {
    for cluster_ip in &spec.cluster_ips {
        let family = IpFamily::of(cluster_ip);
        let of_family = |ips: &[IpAddr]| ips.iter().copied().filter(|ip| IpFamily::of(ip) == family).collect();
        for port in &spec.ports {
            let mut candidates: Vec<(Endpoint, HintMatch)> = Vec::new();
            for slice in slices.iter().filter(|s| s.family == family) {
                let Some(slice_port) = slice.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol)
                else {
                    continue;
                };
                candidates.extend(slice.endpoints.iter().map(|ep| endpoint_of(ep, slice_port.port, node)));
            }
            dedup_candidates(&mut candidates);
            let hints: Vec<HintMatch> = candidates.iter().map(|(_, h)| *h).collect();
            let mut endpoints: Vec<Endpoint> = candidates.into_iter().map(|(e, _)| e).collect();
            select_endpoints(&mut endpoints, &hints);
            let id = ServicePortId {
                service: spec.name.clone(),
                port_name: port.name.clone(),
                protocol: port.protocol,
                family,
            };
            out.insert(
                id,
                ServicePort {
                    cluster_ip: *cluster_ip,
                    port: port.port,
                    protocol: port.protocol,
                    node_port: port.node_port,
                    external_ips: of_family(&spec.external_ips),
                    load_balancer_ips: of_family(&spec.load_balancer_ips),
                    load_balancer_source_ranges: spec
                        .load_balancer_source_ranges
                        .iter()
                        .copied()
                        .filter(|net| IpFamily::of(&net.addr()) == family)
                        .collect(),
                    affinity: spec.affinity_timeout_seconds.map(|timeout_seconds| ClientIpAffinity { timeout_seconds }),
                    internal_policy_local: spec.internal_policy_local,
                    external_policy_local: spec.external_policy_local,
                    health_check_node_port: spec.health_check_node_port,
                    endpoints,
                },
            );
        }
    }
}

fn endpoint_of(ep: &SliceEndpoint, port: u16, node: NodeContext<'_>) -> (Endpoint, HintMatch) {
    let endpoint = Endpoint {
        ip: ep.address,
        port,
        serving: ep.serving,
        terminating: ep.terminating,
        is_local: ep.node_name.as_deref() == Some(node.name),
        in_cluster_set: false,
        in_local_set: false,
    };
    let hints = HintMatch {
        has_node_hints: !ep.node_hints.is_empty(),
        for_this_node: ep.node_hints.iter().any(|n| **n == *node.name),
        has_zone_hints: !ep.zone_hints.is_empty(),
        for_this_zone: node.zone.is_some_and(|z| ep.zone_hints.iter().any(|h| **h == *z)),
    };
    (endpoint, hints)
}

/// Sorts by address and port and keeps one endpoint per address and port: the same
/// endpoint in two slices (as during a slice migration) is one endpoint, and the copy
/// with the better conditions wins (usable, then serving).
fn dedup_candidates(candidates: &mut Vec<(Endpoint, HintMatch)>) {
    candidates.sort_by_key(|(e, _)| (e.ip, e.port, std::cmp::Reverse((e.is_usable(), e.serving))));
    candidates.dedup_by_key(|(e, _)| (e.ip, e.port));
}
