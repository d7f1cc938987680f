//! The IPVS backend's configuration (from `--ipvs-*`, `--cluster-cidr`,
//! `--masquerade-all` and `--nodeport-addresses`).

use std::time::Duration;

use ipnet::IpNet;

use crate::genl::{Scheduler, Timeouts};

/// How the IPVS backend programs the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsConfig {
    /// The scheduler of every virtual service (`--ipvs-scheduler`).
    pub scheduler: Scheduler,
    /// The pod network, one CIDR per family: traffic from outside it to a ClusterIP is
    /// masqueraded (B22). None of a family: never, unless `masquerade_all` (B23).
    pub cluster_cidrs: Vec<IpNet>,
    /// Masquerade all service traffic.
    pub masquerade_all: bool,
    /// `--detect-local-mode BridgeInterface|InterfaceNamePrefix`: pods are told by the
    /// link they send from, instead of by `cluster_cidrs`.
    pub pod_interfaces: Option<ferry_model::PodInterfaces>,
    /// NodePorts answer on the node's addresses inside these (all when empty).
    pub nodeport_cidrs: Vec<IpNet>,
    /// Virtual services on these addresses are never touched (`--ipvs-exclude-cidrs`).
    pub exclude_cidrs: Vec<IpNet>,
    /// The kernel's session timeouts; 0 leaves one as it is.
    pub timeouts: Timeouts,
    /// Set `arp_ignore=1`, `arp_announce=2` (`--ipvs-strict-arp`).
    pub strict_arp: bool,
    /// The packet-mark bit meaning "masquerade" (as `--iptables-masquerade-bit`).
    pub masquerade_bit: u8,
    /// How long a removed TCP real server is kept at weight 0 for its connections to
    /// drain before it is deleted anyway.
    pub graceful_period: Duration,
}

impl Default for IpvsConfig {
    fn default() -> Self {
        IpvsConfig {
            scheduler: Scheduler::RoundRobin,
            cluster_cidrs: Vec::new(),
            masquerade_all: false,
            pod_interfaces: None,
            nodeport_cidrs: Vec::new(),
            exclude_cidrs: Vec::new(),
            timeouts: Timeouts::default(),
            strict_arp: false,
            masquerade_bit: 14,
            graceful_period: Duration::from_secs(15 * 60),
        }
    }
}

impl IpvsConfig {
    /// The cluster CIDR of `family`, if configured.
    pub fn cluster_cidr(&self, family: ferry_model::IpFamily) -> Option<IpNet> {
        self.cluster_cidrs.iter().copied().find(|c| ferry_model::IpFamily::of(&c.addr()) == family)
    }

    /// The nftables match for traffic from outside this node's pods, if there is a
    /// local-traffic detector.
    pub fn not_from_pods(&self, family: ferry_model::IpFamily) -> Option<String> {
        let ip = match family {
            ferry_model::IpFamily::V4 => "ip",
            ferry_model::IpFamily::V6 => "ip6",
        };
        match &self.pod_interfaces {
            Some(interfaces) => Some(interfaces.nft_not_from_pods()),
            None => self.cluster_cidr(family).map(|cidr| format!("{ip} saddr != {cidr}")),
        }
    }

    /// The masquerade mark.
    pub fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }
}
