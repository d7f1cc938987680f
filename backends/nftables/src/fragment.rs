//! [`Fragment`]: what one service port adds to its family's table.
//!
//! The backend keeps the fragment of every service port it programmed, to diff the next
//! render against (it never lists the kernel). At 10,000 service ports that is the
//! backend's whole memory, so a fragment is compact: vectors instead of maps, element
//! keys and values shared (`Arc<str>`) with the element counts of
//! [`crate::incremental::FragmentTable`], and map names static.

use std::sync::{Arc, LazyLock};

use crate::ruleset::{Chain, MapDecl, Ruleset};

/// One set or map element a fragment holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The set or map (always one of the table's fixed ones).
    pub map: &'static str,
    /// The key, as nft writes it (`10.96.0.1 . tcp . 80`).
    pub key: Arc<str>,
    /// The value (`goto svc-...`, `10.128.0.1 . 8080`), empty for a set.
    pub value: Arc<str>,
}

/// The empty value, shared by every set element.
static NO_VALUE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

/// The chains, sets and elements of one service port. Built by the renderer; chains,
/// sets and elements are each sorted by name (key) with no duplicates once
/// [`Fragment::seal`] has run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Chains of this port alone, by name.
    pub chains: Vec<(String, Chain)>,
    /// Sets of this port alone (ClientIP affinity), by name.
    pub maps: Vec<(String, MapDecl)>,
    /// Elements in the table's fixed sets and maps; some are shared with other ports.
    pub elements: Vec<Element>,
}

impl Fragment {
    /// Adds a chain.
    pub fn add_chain(&mut self, name: String, rules: Vec<String>) {
        self.chains.push((name, Chain { base: None, rules, comment: None }));
    }

    /// Adds a set of this port's own.
    pub fn add_map(&mut self, name: String, decl: MapDecl) {
        self.maps.push((name, decl));
    }

    /// Adds an element to a map.
    pub fn add_element(&mut self, map: &'static str, key: String, value: String) {
        let value = if value.is_empty() { NO_VALUE.clone() } else { Arc::from(value) };
        self.elements.push(Element { map, key: Arc::from(key), value });
    }

    /// Adds an element to a set.
    pub fn add_to_set(&mut self, set: &'static str, key: String) {
        self.elements.push(Element { map: set, key: Arc::from(key), value: NO_VALUE.clone() });
    }

    /// Sorts everything and drops repeated elements (a hairpin pair of two ports of one
    /// endpoint, say); the last value of a repeated key wins, as in a map.
    pub fn seal(mut self) -> Fragment {
        self.chains.sort_by(|a, b| a.0.cmp(&b.0));
        self.chains.dedup_by(|later, earlier| later.0 == earlier.0);
        self.maps.sort_by(|a, b| a.0.cmp(&b.0));
        self.maps.dedup_by(|later, earlier| later.0 == earlier.0);
        self.elements.reverse();
        self.elements.sort_by(|a, b| (a.map, &a.key).cmp(&(b.map, &b.key)));
        self.elements.dedup_by(|later, earlier| later.map == earlier.map && later.key == earlier.key);
        self.chains.shrink_to_fit();
        self.maps.shrink_to_fit();
        self.elements.shrink_to_fit();
        self
    }

    /// A chain by name.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| &self.chains[i].1)
    }

    /// A set of this port's own, by name.
    pub fn map(&self, name: &str) -> Option<&MapDecl> {
        self.maps.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| &self.maps[i].1)
    }

    /// Kernel objects: chains, their rules, sets and elements.
    pub fn object_count(&self) -> usize {
        self.chains.iter().map(|(_, c)| 1 + c.rules.len()).sum::<usize>() + self.maps.len() + self.elements.len()
    }

    /// Adds this fragment's chains, sets and elements to `into`.
    pub fn merge_into(&self, into: &mut Ruleset) {
        into.chains.extend(self.chains.iter().cloned());
        into.maps.extend(self.maps.iter().cloned());
        for e in &self.elements {
            into.elements.entry(e.map.to_owned()).or_default().insert(e.key.to_string(), e.value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_sorts_and_keeps_one_of_each_element() {
        let mut f = Fragment::default();
        f.add_to_set("hairpin", "10.0.0.2 . 10.0.0.2".into());
        f.add_element("service-ips", "10.96.0.1 . tcp . 80".into(), "goto a".into());
        f.add_to_set("hairpin", "10.0.0.1 . 10.0.0.1".into());
        f.add_to_set("hairpin", "10.0.0.2 . 10.0.0.2".into());
        f.add_chain("svc-b".into(), vec!["drop".into()]);
        f.add_chain("svc-a".into(), vec![]);
        let f = f.seal();
        let keys: Vec<(&str, &str)> = f.elements.iter().map(|e| (e.map, &*e.key)).collect();
        assert_eq!(
            keys,
            [
                ("hairpin", "10.0.0.1 . 10.0.0.1"),
                ("hairpin", "10.0.0.2 . 10.0.0.2"),
                ("service-ips", "10.96.0.1 . tcp . 80")
            ]
        );
        assert_eq!(f.chain("svc-b").map(|c| c.rules.len()), Some(1));
        assert!(f.chain("svc-c").is_none());
        assert_eq!(f.object_count(), 2 + 1 + 3);
    }
}
