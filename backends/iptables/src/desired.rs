//! The shared chains of one family, built from the counted contributions of all ports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferry_model::IpFamily;

use crate::aggregate::SharedRules;
use crate::render::tree::{address_paths, address_tree, port_tree, NodeKind, Root, TreeNode};
use crate::render::{
    fixed_rules, nodeport_matches, IptConfig, Table, EXTERNAL_SERVICES, FIXED_CHAINS, HAIRPIN, MARK_MASQ, NODEPORTS,
    SERVICES,
};

/// The shared chains a sync computed.
#[derive(Debug, Default)]
pub struct SharedChains {
    /// Chains that must exist, with their rules.
    pub chains: BTreeMap<(Table, String), Vec<String>>,
    /// Tree nodes that must not exist (no address below them any more).
    pub empty: Vec<(Table, String)>,
    /// Tree leaves and empty nodes: no chain below them may exist (their names are
    /// prefixes of those).
    pub leaves: Vec<(Table, String)>,
    /// Tables whose whole tree was built: their tree chains not in `chains` must go.
    pub rebuilt: Vec<Table>,
}

/// The chains last committed, by table and name.
pub type Committed = BTreeMap<(Table, String), Vec<String>>;

/// The shared chains: fixed chains, NodePorts, hairpin, and the address trees, all of them
/// (`only: None`, a full sync) or only the tree nodes on the paths to `only`'s addresses.
/// When a split node on those paths changed (it split, or gained or lost a child), its
/// other children may be new too: that tree is then built whole.
pub fn shared_chains(
    family: IpFamily,
    config: &IptConfig,
    shared: &SharedRules,
    only: Option<(&[IpAddr], &Committed)>,
) -> SharedChains {
    let mut out = SharedChains::default();
    for (table, chain) in FIXED_CHAINS {
        if chain == crate::render::LOCALNET_GUARD && !(family == IpFamily::V4 && config.localhost_nodeports) {
            continue;
        }
        out.chains.insert((table, chain.to_owned()), fixed_rules(family, config, table, chain));
    }
    let to_nodeports: Vec<String> =
        nodeport_matches(family, config).iter().map(|m| format!("{m} -j {NODEPORTS}")).collect();
    let to_external: Vec<String> =
        nodeport_matches(family, config).iter().map(|m| format!("{m} -j {EXTERNAL_SERVICES}")).collect();
    let drop_marked = vec![format!("-m mark --mark {m:#x}/{m:#x} -j DROP", m = config.drop_mark())];
    let trees = [
        (Table::Nat, &shared.dispatch, Root { name: SERVICES, head: &[], tail: &to_nodeports }),
        (Table::Filter, &shared.rejects, Root { name: SERVICES, head: &drop_marked, tail: &to_external }),
    ];
    for (table, index, root) in trees {
        let nodes: Vec<TreeNode> = match only {
            None => {
                out.rebuilt.push(table);
                address_tree(index, root)
            }
            Some((addresses, committed)) => {
                let nodes = address_paths(index, root, addresses);
                let reshaped = nodes
                    .iter()
                    .any(|n| n.kind == NodeKind::Split && committed.get(&(table, n.name.clone())) != Some(&n.rules));
                if reshaped {
                    out.rebuilt.push(table);
                    address_tree(index, root)
                } else {
                    nodes
                }
            }
        };
        let mut root_seen = false;
        for node in nodes {
            root_seen |= node.name == SERVICES;
            match node.kind {
                NodeKind::Empty => {
                    out.leaves.push((table, node.name.clone()));
                    out.empty.push((table, node.name));
                }
                kind => {
                    if kind == NodeKind::Leaf {
                        out.leaves.push((table, node.name.clone()));
                    }
                    out.chains.insert((table, node.name), node.rules);
                }
            }
        }
        if !root_seen {
            // No address changed in this tree: its root is as committed; the head and tail
            // rules are fixed, so nothing to do.
            out.chains.remove(&(table, SERVICES.to_owned()));
        }
    }
    for (name, rules) in port_tree(NODEPORTS, shared.node_ports.keys()) {
        out.chains.insert((Table::Nat, name), rules);
    }
    out.chains
        .insert((Table::Filter, EXTERNAL_SERVICES.to_owned()), shared.node_port_rejects.keys().cloned().collect());
    let bits = if family == IpFamily::V4 { 32 } else { 128 };
    out.chains.insert(
        (Table::Nat, HAIRPIN.to_owned()),
        shared.local_endpoints.keys().map(|ip| format!("-s {ip}/{bits} -d {ip}/{bits} -j {MARK_MASQ}")).collect(),
    );
    out
}
