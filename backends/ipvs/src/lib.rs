//! # ferry-ipvs: kube-ferry's IPVS backend
//!
//! IPVS virtual services and real servers over the kernel's generic netlink family
//! `IPVS` ([`genl`]), service addresses on the `kube-ipvs0` dummy link, and the helper
//! rules IPVS cannot do alone in kube-ferry's own nftables table.
#![warn(missing_docs)]

pub use backend::IpvsBackend;
pub use config::IpvsConfig;
pub use real::ConnectError;

pub mod backend;
pub mod config;
pub mod desired;
pub mod genl;
pub mod link;
pub mod listing;
mod real;
pub mod helpers;
pub mod image;
pub mod kernel;

/// What a first sync of `state` programs, as text: the virtual services in `ipvsadm -Ln`
/// layout (NodePorts on `node_addresses`), the addresses of `kube-ipvs0`, and the helper
/// table's transaction per family. Pure: reads no kernel.
pub fn render(state: &ferry_model::ProxyState, config: &IpvsConfig, node_addresses: &[std::net::IpAddr]) -> String {
    use ferry_model::IpFamily;
    let want = desired::desired(state, config, node_addresses);
    let mut out = String::from("# ipvsadm -Ln after a first sync:\n");
    out.push_str(&listing::ipvsadm_listing(want.services.values().map(|w| (&w.service, &w.servers[..]))));
    let addresses: Vec<String> = want.addresses.iter().map(ToString::to_string).collect();
    out.push_str(&format!("# addresses on {}: {}\n", link::LINK_NAME, addresses.join(" ")));
    if node_addresses.is_empty() {
        out.push_str("# (no node addresses known: NodePort virtual services are made on the node's addresses)\n");
    }
    out.push_str("# the helper table (nft -f -):\n");
    for family in [IpFamily::V4, IpFamily::V6] {
        out.push_str(&helpers::replace_table(family, config, want.sets(family)));
    }
    out
}
