//! What all service ports of a family add to the shared chains, counted: a rule two ports
//! share (the B11 reject of one ClusterIP, a hairpin endpoint of two services) stays
//! until the last of them goes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::render::address_index::AddressIndex;
use crate::render::port::{PortRule, PortRules};

/// Counted contributions to the shared chains.
#[derive(Debug, Default)]
pub struct SharedRules {
    /// nat `KUBE-SERVICES` entries.
    pub dispatch: AddressIndex,
    /// filter `KUBE-SERVICES` entries.
    pub rejects: AddressIndex,
    /// nat `KUBE-NODEPORTS` entries.
    pub node_ports: BTreeMap<PortRule, usize>,
    /// filter `KUBE-EXTERNAL-SERVICES` rules.
    pub node_port_rejects: BTreeMap<String, usize>,
    /// Local endpoints (hairpin).
    pub local_endpoints: BTreeMap<IpAddr, usize>,
}

fn add<K: Ord + Clone>(map: &mut BTreeMap<K, usize>, keys: &[K]) {
    for k in keys {
        *map.entry(k.clone()).or_insert(0) += 1;
    }
}

fn remove<K: Ord>(map: &mut BTreeMap<K, usize>, keys: &[K]) {
    for k in keys {
        if let Some(n) = map.get_mut(k) {
            *n -= 1;
            if *n == 0 {
                map.remove(k);
            }
        }
    }
}

impl SharedRules {
    /// Counts a port's contributions in.
    pub fn add(&mut self, p: &PortRules) {
        p.dispatch.iter().for_each(|r| self.dispatch.add(r));
        p.rejects.iter().for_each(|r| self.rejects.add(r));
        add(&mut self.node_ports, &p.node_ports);
        add(&mut self.node_port_rejects, &p.node_port_rejects);
        add(&mut self.local_endpoints, &p.local_endpoints);
    }

    /// Counts a port's contributions out.
    pub fn remove(&mut self, p: &PortRules) {
        p.dispatch.iter().for_each(|r| self.dispatch.remove(r));
        p.rejects.iter().for_each(|r| self.rejects.remove(r));
        remove(&mut self.node_ports, &p.node_ports);
        remove(&mut self.node_port_rejects, &p.node_port_rejects);
        remove(&mut self.local_endpoints, &p.local_endpoints);
    }
}
