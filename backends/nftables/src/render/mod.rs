//! The model rendered into a [`Ruleset`]: pure, no kernel.
//!
//! The shape (see docs/nftables.md for why): verdict maps keyed on
//! `address . protocol . port` dispatch each packet in O(1) to one chain per service
//! port; endpoint choice is a short run of `numgen random mod N == 0` rules that DNAT
//! directly; only local endpoints get a chain of their own (hairpin), and only services
//! with ClientIP affinity get per-endpoint sets. Rejects and drops for services without
//! usable endpoints live in the filter hooks after DNAT, keyed by the same maps.

mod base;
mod port;

use ferry_model::{IpFamily, ProxyState};
use ipnet::IpNet;

use crate::fragment::Fragment;
use crate::ruleset::{Ruleset, TableFamily};

/// How the backend renders, from kube-ferry's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftConfig {
    /// The table's name in both families.
    pub table: String,
    /// `--cluster-cidr`: traffic from outside these to a ClusterIP is masqueraded (B22);
    /// empty means no local-traffic detector (B23).
    pub cluster_cidrs: Vec<IpNet>,
    /// `--detect-local-mode BridgeInterface|InterfaceNamePrefix`: pods are told by the
    /// link they send from, instead of by `cluster_cidrs`.
    pub pod_interfaces: Option<ferry_model::PodInterfaces>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// The mark bit meaning "masquerade this packet".
    pub masquerade_mark: u32,
    /// `--nodeport-addresses` as CIDRs; empty means every local address.
    pub nodeport_cidrs: Vec<IpNet>,
    /// How often a full sync rewrites the whole table (drift repair).
    pub full_sync_period: std::time::Duration,
}

impl Default for NftConfig {
    fn default() -> Self {
        NftConfig {
            table: "kube-ferry".into(),
            cluster_cidrs: Vec::new(),
            pod_interfaces: None,
            masquerade_all: false,
            masquerade_mark: 0x4000,
            nodeport_cidrs: Vec::new(),
            full_sync_period: std::time::Duration::from_secs(3600),
        }
    }
}

impl NftConfig {
    fn cluster_cidr(&self, family: IpFamily) -> Option<IpNet> {
        self.cluster_cidrs.iter().copied().find(|c| IpFamily::of(&c.addr()) == family)
    }

    /// The match for traffic from this node's pods (or the cluster network), if any.
    fn from_pods(&self, family: IpFamily) -> Option<String> {
        match &self.pod_interfaces {
            Some(interfaces) => Some(interfaces.nft_from_pods()),
            None => self.cluster_cidr(family).map(|cidr| format!("{} saddr {cidr}", ip_kw(family))),
        }
    }

    /// The match for traffic from outside this node's pods (to be masqueraded), or
    /// `None` when there is no local-traffic detector (B23).
    fn not_from_pods(&self, family: IpFamily) -> Option<String> {
        match &self.pod_interfaces {
            Some(interfaces) => Some(interfaces.nft_not_from_pods()),
            None => self.cluster_cidr(family).map(|cidr| format!("{} saddr != {cidr}", ip_kw(family))),
        }
    }
}

/// The rulesets of both families.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rulesets {
    /// `ip kube-ferry`.
    pub v4: Ruleset,
    /// `ip6 kube-ferry`.
    pub v6: Ruleset,
}

impl Rulesets {
    /// The ruleset of a family.
    pub fn get(&self, family: TableFamily) -> &Ruleset {
        match family {
            TableFamily::Ip => &self.v4,
            TableFamily::Ip6 => &self.v6,
        }
    }
}

/// The fixed part of a family's table (base chains, helper chains, maps).
pub fn base_ruleset(family: IpFamily, config: &NftConfig) -> Ruleset {
    base::ruleset(family, config)
}

/// What one service port adds to its family's table.
pub fn render_fragment(
    id: &ferry_model::ServicePortId,
    port: &ferry_model::ServicePort,
    config: &NftConfig,
) -> Fragment {
    let mut f = Fragment::default();
    port::render_port(&mut f, id, port, config);
    f.seal()
}

/// Adds a fragment's chains, sets and elements to `into`.
pub fn merge(into: &mut Ruleset, fragment: &Fragment) {
    fragment.merge_into(into);
}

/// Renders the whole state.
pub fn render(state: &ProxyState, config: &NftConfig) -> Rulesets {
    let mut out = Rulesets { v4: base::ruleset(IpFamily::V4, config), v6: base::ruleset(IpFamily::V6, config) };
    for (id, port) in state.ports() {
        let ruleset = match id.family {
            IpFamily::V4 => &mut out.v4,
            IpFamily::V6 => &mut out.v6,
        };
        render_fragment(id, port, config).merge_into(ruleset);
    }
    out
}

/// The nft spelling of an address family in expressions (`ip`, `ip6`).
pub(crate) fn ip_kw(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// The nft type of an address (`ipv4_addr`, `ipv6_addr`).
pub(crate) fn addr_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    }
}
