//! The model rendered into iptables chains: pure, no kernel.
//!
//! The shape (docs/iptables.md has the measurements): kube-proxy's chain names, but no
//! per-endpoint chains (iptables-nft-restore took 88 s for 10,000 services with them, 2.8 s
//! without); DNAT straight from the service chain with `statistic` rules, ClientIP affinity
//! with the `recent` match on the same rules, hairpin by one rule per local endpoint. The
//! dispatch from `KUBE-SERVICES` is a tree of chains on the destination address
//! ([`tree`]), so the first packet of a connection walks a few dozen rules, not one per
//! service.

pub mod address_index;
pub mod port;
pub mod tree;

use ferry_model::IpFamily;
use ipnet::IpNet;

/// How the backend renders, from kube-ferry's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IptConfig {
    /// `--cluster-cidr`: traffic from outside to a ClusterIP is masqueraded (B22).
    pub cluster_cidrs: Vec<IpNet>,
    /// `--detect-local-mode BridgeInterface|InterfaceNamePrefix`: pods are told by the
    /// link they send from, instead of by `cluster_cidrs`.
    pub pod_interfaces: Option<ferry_model::PodInterfaces>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `--iptables-masquerade-bit`: the mark bit meaning "masquerade this packet".
    pub masquerade_bit: u8,
    /// The mark bit meaning "drop this packet" (kube-proxy's `--iptables-drop-bit`, 15).
    pub drop_bit: u8,
    /// `--nodeport-addresses` as CIDRs; empty means every local address.
    pub nodeport_cidrs: Vec<IpNet>,
    /// `--iptables-localhost-nodeports`: NodePorts answer on 127.0.0.1 too (B12), with
    /// `route_localnet` and the martian-source guard.
    pub localhost_nodeports: bool,
    /// Whether rules carry `-m comment` naming their service port. The backend turns them
    /// off above [`LARGE_CLUSTER_PORTS`] service ports.
    pub comments: bool,
}

/// Above this many service ports rules carry no comments (kube-proxy's "large cluster
/// mode" does the same above 1,000 endpoints): with the legacy variant each comment is
/// ~300 bytes of the table the kernel copies on every change.
pub const LARGE_CLUSTER_PORTS: usize = 1000;

impl Default for IptConfig {
    fn default() -> Self {
        IptConfig {
            cluster_cidrs: Vec::new(),
            pod_interfaces: None,
            masquerade_all: false,
            masquerade_bit: 14,
            drop_bit: 15,
            nodeport_cidrs: Vec::new(),
            localhost_nodeports: true,
            comments: true,
        }
    }
}

impl IptConfig {
    pub(crate) fn cluster_cidr(&self, family: IpFamily) -> Option<IpNet> {
        self.cluster_cidrs.iter().copied().find(|c| IpFamily::of(&c.addr()) == family)
    }

    /// The match for traffic from this node's pods (`-s CIDR` or `-i LINK`), if any.
    pub(crate) fn from_pods(&self, family: IpFamily) -> Option<String> {
        match &self.pod_interfaces {
            Some(interfaces) => Some(interfaces.iptables_from_pods()),
            None => self.cluster_cidr(family).map(|cidr| format!("-s {cidr}")),
        }
    }

    /// The match for traffic from outside them (`! -s CIDR`, `! -i LINK`), if any.
    pub(crate) fn not_from_pods(&self, family: IpFamily) -> Option<String> {
        self.from_pods(family).map(|m| format!("! {m}"))
    }

    /// The masquerade mark (`0x4000` for bit 14).
    pub fn mark(&self) -> u32 {
        1u32 << self.masquerade_bit.min(31)
    }

    /// The drop mark (`0x8000` for bit 15).
    pub fn drop_mark(&self) -> u32 {
        1u32 << self.drop_bit.min(31)
    }
}

/// The tables kube-ferry writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `nat`: dispatch, DNAT, masquerade.
    Nat,
    /// `filter`: rejects and drops after DNAT, the localnet guard.
    Filter,
}

impl Table {
    /// Every table, in the order a restore input lists them.
    pub const ALL: [Table; 2] = [Table::Nat, Table::Filter];

    /// The name `iptables -t` takes.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// Chains with fixed names, per table. Only `nat` and `filter` are used: a table kube-ferry
/// created would outlive its cleanup (the nft variant keeps the table with its base chains).
pub const FIXED_CHAINS: [(Table, &str); 9] = [
    (Table::Nat, SERVICES),
    (Table::Nat, NODEPORTS),
    (Table::Nat, POSTROUTING),
    (Table::Nat, MARK_MASQ),
    (Table::Nat, MARK_DROP),
    (Table::Nat, HAIRPIN),
    (Table::Filter, SERVICES),
    (Table::Filter, EXTERNAL_SERVICES),
    (Table::Filter, LOCALNET_GUARD),
];

/// nat: the dispatch root (from PREROUTING and OUTPUT); filter: the reject root (from
/// INPUT, FORWARD and OUTPUT, new connections).
pub const SERVICES: &str = "KUBE-SERVICES";
/// nat: NodePorts on local addresses.
pub const NODEPORTS: &str = "KUBE-NODEPORTS";
/// nat: masquerade of marked packets (from POSTROUTING).
pub const POSTROUTING: &str = "KUBE-POSTROUTING";
/// nat: sets the masquerade mark.
pub const MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// nat: marks hairpin traffic (a local endpoint reaching itself).
pub const HAIRPIN: &str = "KUBE-HAIRPIN";
/// filter: NodePorts without endpoints for that traffic.
pub const EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// filter: drops martian 127.0.0.0/8 traffic `route_localnet` would let in (B12).
pub const LOCALNET_GUARD: &str = "KUBE-LOCALNET-GUARD";
/// nat: marks a packet to be dropped by filter `KUBE-SERVICES` (load-balancer source
/// ranges, B10: the nat table cannot drop).
pub const MARK_DROP: &str = "KUBE-MARK-DROP";

/// The comment on kube-ferry's jump rules in the built-in chains (how it finds them).
pub const JUMP_COMMENT: &str = "kube-ferry";

/// A rule kube-ferry puts in a built-in chain: `-A BUILTIN SPEC` (the spec as
/// `iptables-save` prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    /// Its table.
    pub table: Table,
    /// `PREROUTING`, `INPUT`, ...
    pub builtin: &'static str,
    /// Everything after the chain name.
    pub spec: String,
}

/// The jump rules of one family.
pub fn jumps(family: IpFamily, config: &IptConfig) -> Vec<Jump> {
    let j = |table, builtin, spec: String| Jump { table, builtin, spec };
    let new = "-m conntrack --ctstate NEW";
    let c = format!("-m comment --comment {JUMP_COMMENT}");
    let mut out = vec![
        j(Table::Nat, "PREROUTING", format!("{c} -j {SERVICES}")),
        j(Table::Nat, "OUTPUT", format!("{c} -j {SERVICES}")),
        j(Table::Nat, "POSTROUTING", format!("{c} -j {POSTROUTING}")),
        j(Table::Filter, "INPUT", format!("{new} {c} -j {SERVICES}")),
        j(Table::Filter, "FORWARD", format!("{new} {c} -j {SERVICES}")),
        j(Table::Filter, "OUTPUT", format!("{new} {c} -j {SERVICES}")),
    ];
    if family == IpFamily::V4 && config.localhost_nodeports {
        out.push(j(Table::Filter, "INPUT", format!("{c} -j {LOCALNET_GUARD}")));
    }
    out
}

/// The match selecting NodePort traffic: local destinations (all, or within the
/// `--nodeport-addresses` CIDRs); loopback only with localhost NodePorts (IPv4).
pub(crate) fn nodeport_matches(family: IpFamily, config: &IptConfig) -> Vec<String> {
    let local = "-m addrtype --dst-type LOCAL";
    let cidrs: Vec<&IpNet> = config.nodeport_cidrs.iter().filter(|c| IpFamily::of(&c.addr()) == family).collect();
    if !cidrs.is_empty() {
        return cidrs.iter().map(|c| format!("-d {c} {local}")).collect();
    }
    match family {
        IpFamily::V4 if config.localhost_nodeports => vec![local.to_owned()],
        IpFamily::V4 => vec![format!("! -d 127.0.0.0/8 {local}")],
        IpFamily::V6 => vec![format!("! -d ::1/128 {local}")],
    }
}

/// The fixed chains' own rules (the tree-built and per-endpoint parts are added by the
/// backend from the ports' fragments).
pub fn fixed_rules(family: IpFamily, config: &IptConfig, table: Table, chain: &str) -> Vec<String> {
    let mark = config.mark();
    match (table, chain) {
        (Table::Nat, MARK_MASQ) => vec![format!("-j MARK --or-mark {mark:#x}")],
        (Table::Nat, MARK_DROP) => vec![format!("-j MARK --or-mark {:#x}", config.drop_mark())],
        (Table::Nat, POSTROUTING) => vec![
            format!("-m conntrack --ctstate DNAT -j {HAIRPIN}"),
            format!("-m mark ! --mark {mark:#x}/{mark:#x} -j RETURN"),
            format!("-j MARK --xor-mark {mark:#x}"),
            "-m comment --comment \"kube-ferry: masquerade marked service traffic\" -j MASQUERADE --random-fully".into(),
        ],
        (Table::Filter, LOCALNET_GUARD) if family == IpFamily::V4 && config.localhost_nodeports => vec![
            "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"kube-ferry: block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP".into(),
        ],
        _ => Vec::new(),
    }
}
