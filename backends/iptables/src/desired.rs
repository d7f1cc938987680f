//! The shared chains of one family, built from the counted contributions of all ports.

use std::collections::BTreeMap;

use ferry_model::IpFamily;

use crate::aggregate::SharedRules;
use crate::render::tree::{address_tree, port_tree};
use crate::render::{
    fixed_rules, nodeport_matches, IptConfig, Table, EXTERNAL_SERVICES, FIXED_CHAINS, HAIRPIN, MARK_MASQ, NODEPORTS,
    SERVICES,
};

/// Every chain that is not a port's own: fixed chains and the dispatch trees.
pub fn shared_chains(
    family: IpFamily,
    config: &IptConfig,
    shared: &SharedRules,
) -> BTreeMap<(Table, String), Vec<String>> {
    let mut out: BTreeMap<(Table, String), Vec<String>> = BTreeMap::new();
    for (table, chain) in FIXED_CHAINS {
        if chain == crate::render::LOCALNET_GUARD && !(family == IpFamily::V4 && config.localhost_nodeports) {
            continue;
        }
        out.insert((table, chain.to_owned()), fixed_rules(family, config, table, chain));
    }
    let to_nodeports: Vec<String> =
        nodeport_matches(family, config).iter().map(|m| format!("{m} -j {NODEPORTS}")).collect();
    for (name, rules) in address_tree(SERVICES, shared.dispatch.keys(), to_nodeports) {
        out.insert((Table::Nat, name), rules);
    }
    for (name, rules) in port_tree(NODEPORTS, shared.node_ports.keys()) {
        out.insert((Table::Nat, name), rules);
    }
    let to_external: Vec<String> =
        nodeport_matches(family, config).iter().map(|m| format!("{m} -j {EXTERNAL_SERVICES}")).collect();
    let drop_marked = format!("-m mark --mark {m:#x}/{m:#x} -j DROP", m = config.drop_mark());
    for (name, mut rules) in address_tree(SERVICES, shared.rejects.keys(), to_external) {
        if name == SERVICES {
            rules.insert(0, drop_marked.clone());
        }
        out.insert((Table::Filter, name), rules);
    }
    out.insert((Table::Filter, EXTERNAL_SERVICES.to_owned()), shared.node_port_rejects.keys().cloned().collect());
    let bits = if family == IpFamily::V4 { 32 } else { 128 };
    out.insert(
        (Table::Nat, HAIRPIN.to_owned()),
        shared.local_endpoints.keys().map(|ip| format!("-s {ip}/{bits} -d {ip}/{bits} -j {MARK_MASQ}")).collect(),
    );
    out
}
