//! Dispatch trees: the first packet of a connection finds its service in a few dozen rules.
//!
//! Upstream's `KUBE-SERVICES` holds one rule per service port, walked in order: at 10,000
//! services the first packet to the last one walks 10,000 rules (3x the latency of one
//! service with the legacy variant, 7x with the nft variant, measured), and so does every
//! packet to an address no service has. Here a chain holding more than [`LEAF_SIZE`]
//! addresses is split by the next 4 bits of the destination address, from the lowest up
//! (`-d 0.0.0.5/0.0.0.15 -j KUBE-DST-5`, a non-contiguous mask both variants take), so a
//! lookup walks at most 16 rules a level, and the tree is about log16(n) levels deep.
//! A chain's name is the path of nibbles that leads to it, so adding a service rewrites only
//! the chains on its path. NodePorts are split the same way by port range.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::address_index::{reversed, AddressIndex};
use super::port::PortRule;

/// A chain holding at most this many distinct addresses (or ports) is not split.
pub const LEAF_SIZE: usize = 16;
/// Below this many levels the tree stops splitting (a longer leaf is still correct).
const MAX_DEPTH: usize = 5;

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The `-d ADDR/MASK` matching the low `4 * depth` bits of `value`.
fn low_bits_match(v6: bool, value: u128, depth: usize) -> String {
    let mask = (1u128 << (4 * depth)) - 1;
    if v6 {
        format!("-d {}/{}", std::net::Ipv6Addr::from(value & mask), std::net::Ipv6Addr::from(mask))
    } else {
        let (value, mask) = ((value & mask) as u32, mask as u32);
        format!("-d {}/{}", std::net::Ipv4Addr::from(value), std::net::Ipv4Addr::from(mask))
    }
}

/// What a computed tree node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// It holds the rules of its addresses; chains below it must not exist.
    Leaf,
    /// It jumps to its children by the next nibble.
    Split,
    /// No address is below it: its chain must not exist (never the root).
    Empty,
}

/// One computed tree node: its chain's name and rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// `root` or `KUBE-DST-<nibbles>`.
    pub name: String,
    /// Its rules (the root's with `head` first and `tail` last).
    pub rules: Vec<String>,
    /// Leaf, split or empty.
    pub kind: NodeKind,
}

/// The fixed rules of a tree's root: `head` before the tree's rules, `tail` after.
#[derive(Clone, Copy, Debug)]
pub struct Root<'a> {
    /// The root chain's name (`KUBE-SERVICES`).
    pub name: &'a str,
    /// Rules before the tree's own.
    pub head: &'a [String],
    /// Rules after them (the jump to NodePorts, say).
    pub tail: &'a [String],
}

/// Every node of the tree (a full sync).
pub fn address_tree(index: &AddressIndex, root: Root<'_>) -> Vec<TreeNode> {
    let v6 = index.is_v6();
    let mut out = Vec::new();
    let mut pending = vec![(0u128, 0usize)];
    while let Some((prefix, depth)) = pending.pop() {
        let node = node(index, root, prefix, depth, v6);
        if node.kind == NodeKind::Split {
            pending.extend(children(index, prefix, depth).into_iter().map(|(child, _)| (child, depth + 1)));
        }
        out.push(node);
    }
    out
}

/// Only the nodes on the paths to `addresses` (a partial sync): whatever changed for those
/// addresses, these are the only chains that can differ.
pub fn address_paths(index: &AddressIndex, root: Root<'_>, addresses: &[IpAddr]) -> Vec<TreeNode> {
    let v6 = index.is_v6() || addresses.first().is_some_and(IpAddr::is_ipv6);
    let mut out: BTreeMap<String, TreeNode> = BTreeMap::new();
    for addr in addresses {
        let key = reversed(*addr);
        for depth in 0..=MAX_DEPTH {
            let node = node(index, root, key, depth, v6);
            let kind = node.kind;
            out.insert(node.name.clone(), node);
            if kind != NodeKind::Split {
                break;
            }
        }
    }
    out.into_values().collect()
}

fn node_name(root: &str, prefix: u128, depth: usize) -> String {
    if depth == 0 {
        return root.to_owned();
    }
    let path: String = (0..depth).map(|i| format!("{:X}", (prefix >> (124 - 4 * i)) & 0xf)).collect();
    format!("KUBE-DST-{path}")
}

/// The children present below a split node: (child prefix, one address below it).
fn children(index: &AddressIndex, prefix: u128, depth: usize) -> Vec<(u128, IpAddr)> {
    let shift = 124 - 4 * depth as u32;
    let base = if depth == 0 { 0 } else { (prefix >> (shift + 4)) << (shift + 4) };
    (0..16u128)
        .filter_map(|nibble| {
            let child = base | (nibble << shift);
            index.node(child, depth + 1).next().map(|(_, (addr, _))| (child, *addr))
        })
        .collect()
}

fn node(index: &AddressIndex, root: Root<'_>, prefix: u128, depth: usize, v6: bool) -> TreeNode {
    let name = node_name(root.name, prefix, depth);
    let distinct = index.node(prefix, depth).take(LEAF_SIZE + 1).count();
    let (kind, mut rules) = if distinct == 0 && depth > 0 {
        (NodeKind::Empty, Vec::new())
    } else if distinct <= LEAF_SIZE || depth == MAX_DEPTH {
        let rules =
            index.node(prefix, depth).flat_map(|(_, (_, rules))| rules.keys().map(|r| r.rule.clone())).collect();
        (NodeKind::Leaf, rules)
    } else {
        let rules = children(index, prefix, depth)
            .into_iter()
            .map(|(child, addr)| {
                format!("{} -j {}", low_bits_match(v6, bits(addr), depth + 1), node_name(root.name, child, depth + 1))
            })
            .collect();
        (NodeKind::Split, rules)
    };
    if depth == 0 {
        let mut all = root.head.to_vec();
        all.append(&mut rules);
        all.extend(root.tail.iter().cloned());
        rules = all;
    }
    TreeNode { name, rules, kind }
}

/// The chains of the NodePort tree: `root` and `KUBE-NP-<protocol>-<range>` below it,
/// split by the port's high bits (`--dport 30720:30975`), as ranges are what `--dport`
/// can match.
pub fn port_tree<'a>(root: &str, rules: impl IntoIterator<Item = &'a PortRule>) -> Vec<(String, Vec<String>)> {
    let mut by_protocol: BTreeMap<&str, Vec<&PortRule>> = BTreeMap::new();
    for r in rules {
        by_protocol.entry(r.protocol).or_default().push(r);
    }
    let mut out = vec![(root.to_owned(), Vec::new())];
    for (protocol, rules) in by_protocol {
        split_ports(0, protocol, &rules, 16, &mut out);
    }
    out
}

/// Puts `rules` (ports whose bits above `shift` are equal) into chain `out[parent]`,
/// directly or through children split by the next 4 bits.
fn split_ports(parent: usize, protocol: &str, rules: &[&PortRule], shift: u32, out: &mut Vec<(String, Vec<String>)>) {
    let mut ports: Vec<u16> = rules.iter().map(|r| r.port).collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.len() <= LEAF_SIZE || shift <= 4 {
        let mut sorted = rules.to_vec();
        sorted.sort();
        out[parent].1.extend(sorted.into_iter().map(|r| r.rule.clone()));
        return;
    }
    let next = shift - 4;
    let mut buckets: BTreeMap<u16, Vec<&PortRule>> = BTreeMap::new();
    for r in rules {
        buckets.entry(r.port >> next).or_default().push(r);
    }
    for (high, part) in buckets {
        let (low, top) = (high << next, (high << next) | ((1u16 << next) - 1));
        let child = format!("KUBE-NP-{}-{:X}", protocol.to_uppercase(), high);
        out[parent].1.push(format!("-p {protocol} -m {protocol} --dport {low}:{top} -j {child}"));
        out.push((child, Vec::new()));
        let at = out.len() - 1;
        split_ports(at, protocol, &part, next, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::port::AddressRule;

    fn index(addresses: impl IntoIterator<Item = u32>) -> AddressIndex {
        let mut index = AddressIndex::default();
        for a in addresses {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(a));
            index.add(&AddressRule { addr, order: 0, rule: format!("-d {addr} -j X") });
        }
        index
    }

    const ROOT: Root<'static> = Root { name: "KUBE-SERVICES", head: &[], tail: &[] };

    #[test]
    fn a_small_set_stays_in_the_root() {
        let tail = vec!["-j TAIL".to_owned()];
        let nodes = address_tree(&index((0..16).map(|i| 0x0a60_0000 + i)), Root { tail: &tail, ..ROOT });
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].rules.len(), 17);
        assert_eq!(nodes[0].rules.last().unwrap(), "-j TAIL");
    }

    #[test]
    fn a_large_set_is_split_by_low_nibbles_and_every_rule_is_kept_once() {
        let nodes = address_tree(&index((0..1000).map(|i| 0x0a60_0000 + i)), ROOT);
        let root = nodes.iter().find(|n| n.name == "KUBE-SERVICES").unwrap();
        assert_eq!(root.rules.len(), 16, "{:?}", root.rules);
        assert_eq!(root.rules[5], "-d 0.0.0.5/0.0.0.15 -j KUBE-DST-5");
        let leaves: usize = nodes.iter().filter(|n| n.kind == NodeKind::Leaf).map(|n| n.rules.len()).sum();
        assert_eq!(leaves, 1000);
        assert!(nodes.iter().all(|n| n.rules.len() <= LEAF_SIZE && n.name.len() <= 28));
        let five = nodes.iter().find(|n| n.name == "KUBE-DST-5").unwrap();
        assert!(five.rules.iter().any(|r| r == "-d 0.0.0.165/0.0.0.255 -j KUBE-DST-5A"), "{:?}", five.rules);
    }

    #[test]
    fn the_paths_of_some_addresses_are_exactly_those_nodes_of_the_full_tree() {
        let idx = index((0..1000).map(|i| 0x0a60_0000 + i * 7));
        let full = address_tree(&idx, ROOT);
        let some: Vec<IpAddr> = [0x0a60_0000u32 + 21, 0x0a60_0000 + 700].map(|a| IpAddr::V4(a.into())).to_vec();
        let paths = address_paths(&idx, ROOT, &some);
        assert!(paths.len() >= 3);
        for node in &paths {
            assert!(full.contains(node), "{} differs from the full tree", node.name);
        }
        // An address no longer there: its path ends in an empty node.
        let gone = address_paths(&idx, ROOT, &[IpAddr::V4(0x0a60_0001.into())]);
        assert!(gone.iter().any(|n| n.kind == NodeKind::Empty || n.kind == NodeKind::Leaf));
    }

    #[test]
    fn ipv6_masks_are_written_as_addresses() {
        assert_eq!(low_bits_match(true, 0x1234, 2), "-d ::34/::ff");
        assert_eq!(low_bits_match(false, 0x0a60_0105, 1), "-d 0.0.0.5/0.0.0.15");
    }

    #[test]
    fn node_ports_split_by_range() {
        let rules: Vec<PortRule> =
            (0..40u16).map(|i| PortRule { protocol: "tcp", port: 30000 + i * 7, rule: format!("np {i}") }).collect();
        let chains = port_tree("KUBE-NODEPORTS", &rules);
        assert!(chains.len() > 1);
        let kept: usize = chains.iter().map(|(_, r)| r.iter().filter(|r| r.starts_with("np ")).count()).sum();
        assert_eq!(kept, 40);
        assert!(
            chains[0].1.iter().all(|r| r.contains("--dport") && r.contains("-j KUBE-NP-TCP-")),
            "{:?}",
            chains[0].1
        );
    }
}
