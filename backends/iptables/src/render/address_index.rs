//! The entries of an address tree, indexed so that any tree node is a range query.
//!
//! The tree splits by the destination address's nibbles from the lowest up (see
//! [`super::tree`]). Keying entries by the address with its nibbles in reverse order makes
//! every node's entries (the addresses sharing its low nibbles) one contiguous range, so a
//! node's chain can be rebuilt without looking at the rest: a sync rebuilds only the nodes on
//! the paths of the addresses it changed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;

use super::port::AddressRule;

/// The address with its nibbles reversed, left-aligned in 128 bits (IPv4 uses the top 32).
pub fn reversed(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => {
            let v = u32::from(v4);
            let mut r = 0u32;
            for i in 0..8 {
                r |= ((v >> (4 * i)) & 0xf) << (4 * (7 - i));
            }
            u128::from(r) << 96
        }
        IpAddr::V6(v6) => {
            let v = u128::from(v6);
            let mut r = 0u128;
            for i in 0..32 {
                r |= ((v >> (4 * i)) & 0xf) << (4 * (31 - i));
            }
            r
        }
    }
}

/// Counted address rules, grouped by address, in reversed-nibble order.
#[derive(Debug, Default)]
pub struct AddressIndex {
    entries: BTreeMap<u128, (IpAddr, BTreeMap<AddressRule, usize>)>,
}

impl AddressIndex {
    /// Counts `rule` in.
    pub fn add(&mut self, rule: &AddressRule) {
        let (_, rules) = self.entries.entry(reversed(rule.addr)).or_insert_with(|| (rule.addr, BTreeMap::new()));
        *rules.entry(rule.clone()).or_insert(0) += 1;
    }

    /// Counts `rule` out.
    pub fn remove(&mut self, rule: &AddressRule) {
        let key = reversed(rule.addr);
        if let Some((_, rules)) = self.entries.get_mut(&key) {
            if let Some(n) = rules.get_mut(rule) {
                *n -= 1;
                if *n == 0 {
                    rules.remove(rule);
                }
            }
            if rules.is_empty() {
                self.entries.remove(&key);
            }
        }
    }

    /// The entries whose low `4 * depth` address bits equal those of `prefix` (a reversed
    /// key): one tree node's.
    pub fn node(
        &self,
        prefix: u128,
        depth: usize,
    ) -> impl Iterator<Item = (&u128, &(IpAddr, BTreeMap<AddressRule, usize>))> {
        let (low, high) = node_range(prefix, depth);
        self.entries.range((Bound::Included(low), high))
    }

    /// Whether the index holds IPv6 addresses (an empty one: no).
    pub fn is_v6(&self) -> bool {
        self.entries.values().next().is_some_and(|(a, _)| a.is_ipv6())
    }
}

/// The key range of a node: keys whose top `4 * depth` bits equal `prefix`'s.
fn node_range(prefix: u128, depth: usize) -> (u128, Bound<u128>) {
    if depth == 0 {
        return (0, Bound::Unbounded);
    }
    let shift = 128 - 4 * depth as u32;
    let low = (prefix >> shift) << shift;
    match low.checked_add(1u128 << shift) {
        Some(high) => (low, Bound::Excluded(high)),
        None => (low, Bound::Unbounded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_keys_group_addresses_by_their_low_nibbles() {
        let a: IpAddr = "10.96.0.21".parse().unwrap(); // low nibbles 5, 1
        assert_eq!(reversed(a) >> 120, 0x51);
        let mut index = AddressIndex::default();
        for last in [0x15u8, 0x25, 0x16, 0x05] {
            let addr = IpAddr::from([10, 96, 0, last]);
            index.add(&AddressRule { addr, order: 0, rule: format!("-d {addr}") });
        }
        let low5: Vec<IpAddr> = index.node(reversed("0.0.0.5".parse().unwrap()), 1).map(|(_, (a, _))| *a).collect();
        assert_eq!(low5.len(), 3, "{low5:?}");
        assert_eq!(index.node(0, 0).count(), 4);
        let addr = IpAddr::from([10, 96, 0, 0x16]);
        index.remove(&AddressRule { addr, order: 0, rule: "-d 10.96.0.99".into() });
        assert_eq!(index.node(0, 0).count(), 4, "removing a rule it does not hold changes nothing");
        index.remove(&AddressRule { addr, order: 0, rule: "-d 10.96.0.22".into() });
        assert_eq!(index.node(0, 0).count(), 3, "an address whose last rule went is gone");
    }
}
