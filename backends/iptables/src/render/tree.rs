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

use super::port::{AddressRule, PortRule};

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

/// The chains of an address tree: `root` (which gets `tail` appended, e.g. the jump to
/// NodePorts) and `KUBE-DST-<nibbles>` below it. `rules` must be sorted (they are a
/// `BTreeMap`'s keys).
pub fn address_tree<'a>(
    root: &str,
    rules: impl IntoIterator<Item = &'a AddressRule>,
    tail: Vec<String>,
) -> Vec<(String, Vec<String>)> {
    let rules: Vec<&AddressRule> = rules.into_iter().collect();
    let v6 = rules.first().is_some_and(|r| r.addr.is_ipv6());
    let mut out = Vec::new();
    split(root.to_owned(), String::new(), &rules, 0, v6, &mut out);
    if let Some(first) = out.first_mut() {
        first.1.extend(tail);
    }
    out
}

fn split(
    name: String,
    path: String,
    rules: &[&AddressRule],
    depth: usize,
    v6: bool,
    out: &mut Vec<(String, Vec<String>)>,
) {
    let mut addresses: Vec<IpAddr> = rules.iter().map(|r| r.addr).collect();
    addresses.dedup();
    if addresses.len() <= LEAF_SIZE || depth == MAX_DEPTH {
        let mut sorted = rules.to_vec();
        sorted.sort_by(|a, b| (bits(a.addr), a.order, &a.rule).cmp(&(bits(b.addr), b.order, &b.rule)));
        out.push((name, sorted.into_iter().map(|r| r.rule.clone()).collect()));
        return;
    }
    let mut buckets: BTreeMap<u8, Vec<&AddressRule>> = BTreeMap::new();
    for r in rules {
        let nibble = ((bits(r.addr) >> (4 * depth)) & 0xf) as u8;
        buckets.entry(nibble).or_default().push(r);
    }
    let at = out.len();
    out.push((name, Vec::new()));
    for (nibble, part) in buckets {
        let child_path = format!("{path}{nibble:X}");
        let child = format!("KUBE-DST-{child_path}");
        let value = bits(part[0].addr);
        out[at].1.push(format!("{} -j {child}", low_bits_match(v6, value, depth + 1)));
        split(child, child_path, &part, depth + 1, v6, out);
    }
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

    fn rule(addr: &str, port: u16) -> AddressRule {
        AddressRule { addr: addr.parse().unwrap(), order: 0, rule: format!("-d {addr} --dport {port} -j X") }
    }

    #[test]
    fn a_small_set_stays_in_the_root() {
        let rules: Vec<_> = (0..16).map(|i| rule(&format!("10.96.0.{i}"), 80)).collect();
        let chains = address_tree("KUBE-SERVICES", &rules, vec!["-j TAIL".into()]);
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].1.len(), 17);
        assert_eq!(chains[0].1.last().unwrap(), "-j TAIL");
    }

    #[test]
    fn a_large_set_is_split_by_low_nibbles_and_every_rule_is_kept_once() {
        let rules: Vec<_> =
            (0..1000u32).map(|i| rule(&std::net::Ipv4Addr::from(0x0a60_0000 + i).to_string(), 80)).collect();
        let chains = address_tree("KUBE-SERVICES", &rules, Vec::new());
        let root = &chains[0].1;
        assert_eq!(root.len(), 16, "{root:?}");
        assert_eq!(root[5], "-d 0.0.0.5/0.0.0.15 -j KUBE-DST-5");
        let leaves: usize = chains.iter().map(|(_, r)| r.iter().filter(|r| !r.contains("KUBE-DST-")).count()).sum();
        assert_eq!(leaves, 1000);
        // The deepest walk: one rule per level, then a leaf of at most 16 addresses.
        let longest = chains.iter().map(|(_, r)| r.len()).max().unwrap();
        assert!(longest <= LEAF_SIZE, "{longest}");
        assert!(chains
            .iter()
            .any(|(n, r)| n == "KUBE-DST-5" && r.iter().any(|x| x.contains("/0.0.0.255 -j KUBE-DST-5"))));
        assert!(chains.iter().all(|(n, _)| n.len() <= 28));
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
