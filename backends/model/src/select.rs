//! Endpoint selection: which endpoints each traffic policy uses (B13, B16-B18).
//!
//! - Usable endpoints are serving and not terminating. When none are usable, endpoints
//!   that are serving and terminating are used instead; `serving: false` never is. The
//!   fallback is decided separately for the cluster-wide set and for the local set (B13).
//! - The cluster-wide set honours topology hints (B18) for usable endpoints: when every
//!   usable endpoint has a `forNodes` hint and one names this node, only those; else when
//!   every usable endpoint has a `forZones` hint and one names this node's zone, only
//!   those; else all. The terminating fallback ignores hints (a best effort).
//! - The local set is this node's endpoints, with the same fallback.

use crate::state::Endpoint;

/// What an endpoint's topology hints say about this node (B18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HintMatch {
    /// The endpoint has at least one `forNodes` hint.
    pub has_node_hints: bool,
    /// One of its `forNodes` hints names this node.
    pub for_this_node: bool,
    /// The endpoint has at least one `forZones` hint.
    pub has_zone_hints: bool,
    /// One of its `forZones` hints names this node's zone.
    pub for_this_zone: bool,
}

/// Sets `in_cluster_set` and `in_local_set` on every endpoint. `hints[i]` belongs to
/// `endpoints[i]`.
pub fn select_endpoints(endpoints: &mut [Endpoint], hints: &[HintMatch]) {
    debug_assert_eq!(endpoints.len(), hints.len());
    let usable = |e: &Endpoint| e.is_usable();
    let fallback = |e: &Endpoint| e.serving && e.terminating;

    // Topology (B18) over usable endpoints.
    let mut all_node_hinted = true;
    let mut any_for_node = false;
    let mut all_zone_hinted = true;
    let mut any_for_zone = false;
    let mut any_usable = false;
    for (e, h) in endpoints.iter().zip(hints) {
        if !usable(e) {
            continue;
        }
        any_usable = true;
        all_node_hinted &= h.has_node_hints;
        any_for_node |= h.for_this_node;
        all_zone_hinted &= h.has_zone_hints;
        any_for_zone |= h.for_this_zone;
    }
    let topology: fn(&HintMatch) -> bool = if any_usable && all_node_hinted && any_for_node {
        |h| h.for_this_node
    } else if any_usable && all_zone_hinted && any_for_zone {
        |h| h.for_this_zone
    } else {
        |_| true
    };

    for (e, h) in endpoints.iter_mut().zip(hints) {
        e.in_cluster_set = usable(e) && topology(h);
    }
    if !endpoints.iter().any(|e| e.in_cluster_set) {
        for e in endpoints.iter_mut() {
            e.in_cluster_set = fallback(e);
        }
    }

    let any_local_usable = endpoints.iter().any(|e| e.is_local && usable(e));
    for e in endpoints.iter_mut() {
        e.in_local_set = e.is_local && if any_local_usable { usable(e) } else { fallback(e) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ep(last: u8, serving: bool, terminating: bool, is_local: bool) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port: 80,
            serving,
            terminating,
            is_local,
            in_cluster_set: false,
            in_local_set: false,
        }
    }

    fn chosen(eps: &[Endpoint], local: bool) -> Vec<u8> {
        eps.iter()
            .filter(|e| if local { e.in_local_set } else { e.in_cluster_set })
            .map(|e| match e.ip {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn b13_usable_first_then_serving_terminating_never_not_serving() {
        let mut eps = vec![ep(1, true, false, false), ep(2, true, true, false), ep(3, false, true, false)];
        select_endpoints(&mut eps, &[HintMatch::default(); 3]);
        assert_eq!(chosen(&eps, false), vec![1]);

        let mut eps = vec![ep(2, true, true, false), ep(3, false, true, false), ep(4, false, false, false)];
        select_endpoints(&mut eps, &[HintMatch::default(); 3]);
        assert_eq!(chosen(&eps, false), vec![2]);
    }

    #[test]
    fn b13_fallback_is_decided_per_set() {
        // Remote usable, local only terminating: cluster set uses the remote one, the
        // local set falls back to the local terminating one.
        let mut eps = vec![ep(1, true, false, false), ep(2, true, true, true)];
        select_endpoints(&mut eps, &[HintMatch::default(); 2]);
        assert_eq!(chosen(&eps, false), vec![1]);
        assert_eq!(chosen(&eps, true), vec![2]);
    }

    #[test]
    fn b18_node_hints_then_zone_hints_then_all() {
        let mine = HintMatch { has_node_hints: true, for_this_node: true, has_zone_hints: true, for_this_zone: true };
        let other =
            HintMatch { has_node_hints: true, for_this_node: false, has_zone_hints: true, for_this_zone: false };
        let zone_only = HintMatch { has_zone_hints: true, for_this_zone: true, ..HintMatch::default() };
        let mut eps = vec![ep(1, true, false, false), ep(2, true, false, false)];

        select_endpoints(&mut eps, &[mine, other]);
        assert_eq!(chosen(&eps, false), vec![1], "node hints win");

        select_endpoints(&mut eps, &[zone_only, other]);
        assert_eq!(chosen(&eps, false), vec![1], "not every ep has node hints: zone hints");

        select_endpoints(&mut eps, &[HintMatch::default(), other]);
        assert_eq!(chosen(&eps, false), vec![1, 2], "not every ep has hints: all");

        select_endpoints(&mut eps, &[other, other]);
        assert_eq!(chosen(&eps, false), vec![1, 2], "no hint names this node or zone: all");
    }

    #[test]
    fn b18_hints_ignore_unusable_endpoints() {
        let mine = HintMatch { has_zone_hints: true, for_this_zone: true, ..HintMatch::default() };
        // The terminating endpoint has no hints; it does not stop the usable ones' hints.
        let mut eps = vec![ep(1, true, false, false), ep(2, true, true, false), ep(3, true, false, false)];
        let other = HintMatch { has_zone_hints: true, ..HintMatch::default() };
        select_endpoints(&mut eps, &[mine, HintMatch::default(), other]);
        assert_eq!(chosen(&eps, false), vec![1]);
    }
}
