//! What changed between two states: service ports added, removed and changed, and for
//! each changed port, which endpoints.

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::name::ServicePortId;
use crate::state::{ProxyState, ServicePort};

/// The difference between two [`ProxyState`]s, each list sorted by id.
///
/// Applying `removed`, then `added` and `changed` (reading the new values from the new
/// state) to a backend that holds the old state yields the new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDiff {
    /// Ports only in the new state.
    pub added: Vec<ServicePortId>,
    /// Ports only in the old state.
    pub removed: Vec<ServicePortId>,
    /// Ports in both that differ.
    pub changed: Vec<PortChange>,
    /// The node's own summary changed (addresses, zone, pod CIDRs, deletion).
    pub node_changed: bool,
}

impl StateDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty() && !self.node_changed
    }

    /// How many service ports the diff touches.
    pub fn touched_ports(&self) -> usize {
        self.added.len() + self.removed.len() + self.changed.len()
    }

    pub(crate) fn sort(&mut self) {
        self.added.sort();
        self.removed.sort();
        self.changed.sort_by(|a, b| a.id.cmp(&b.id));
    }
}

/// How one service port changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortChange {
    /// The port.
    pub id: ServicePortId,
    /// Something besides the endpoints changed (addresses, node port, policies, ...).
    pub frontend_changed: bool,
    /// How the endpoints changed.
    pub endpoints: EndpointChanges,
}

/// How the endpoints of one service port changed, by address and port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    /// Endpoints that appeared.
    pub added: Vec<SocketAddr>,
    /// Endpoints that disappeared (for UDP, their conntrack entries are stale: B25).
    pub removed: Vec<SocketAddr>,
    /// Endpoints whose conditions or selection changed.
    pub updated: Vec<SocketAddr>,
}

impl EndpointChanges {
    /// Whether no endpoint changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }
}

/// The change from `old` to `new` for one port, or `None` when they are equal.
pub(crate) fn diff_ports(id: &ServicePortId, old: &ServicePort, new: &ServicePort) -> Option<PortChange> {
    let frontend_changed = !old.same_frontend(new);
    let mut endpoints = EndpointChanges::default();
    // Both endpoint lists are sorted by (ip, port) and unique: a merge walk.
    let (mut i, mut j) = (0, 0);
    while i < old.endpoints.len() || j < new.endpoints.len() {
        let (a, b) = (old.endpoints.get(i), new.endpoints.get(j));
        let order = match (a, b) {
            (Some(a), Some(b)) => (a.ip, a.port).cmp(&(b.ip, b.port)),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match (order, a, b) {
            (Ordering::Less, Some(a), _) => {
                endpoints.removed.push(a.addr());
                i += 1;
            }
            (Ordering::Greater, _, Some(b)) => {
                endpoints.added.push(b.addr());
                j += 1;
            }
            (_, Some(a), Some(b)) => {
                if a != b {
                    endpoints.updated.push(a.addr());
                }
                i += 1;
                j += 1;
            }
            _ => break, // Unreachable: the loop condition keeps one side present.
        }
    }
    if !frontend_changed && endpoints.is_empty() {
        return None;
    }
    Some(PortChange { id: id.clone(), frontend_changed, endpoints })
}

/// The full difference between two states (used to check the incremental diffs, and
/// by backends that compare what they committed with what they must now program).
pub fn diff(old: &ProxyState, new: &ProxyState) -> StateDiff {
    let mut out = StateDiff { node_changed: old.node != new.node, ..StateDiff::default() };
    let mut a = old.ports.iter().peekable();
    let mut b = new.ports.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (Some((ia, _)), Some((ib, _))) => ia.cmp(ib),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => {
                if let Some((id, _)) = a.next() {
                    out.removed.push(id.clone());
                }
            }
            Ordering::Greater => {
                if let Some((id, _)) = b.next() {
                    out.added.push(id.clone());
                }
            }
            Ordering::Equal => {
                if let (Some((id, pa)), Some((_, pb))) = (a.next(), b.next()) {
                    if !Arc::ptr_eq(pa, pb) {
                        if let Some(change) = diff_ports(id, pa, pb) {
                            out.changed.push(change);
                        }
                    }
                }
            }
        }
    }
    out
}
