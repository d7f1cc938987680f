//! Incremental syncs: what each service port contributes to its table (its fragment) is
//! kept, so a change re-renders only the touched ports and sends only their difference,
//! whatever the number of services.
//!
//! Elements can be shared between fragments (every port of a service adds its ClusterIP
//! to `cluster-ips`; a pod endpoint of two services adds one hairpin pair): they are
//! counted, and an element leaves the kernel only when no fragment holds it any more.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferry_model::ServicePortId;

use crate::fragment::Fragment;
use crate::ruleset::{MapDecl, Op, Ruleset};

/// A set or map element's identity: its map and key.
type ElementKey = (&'static str, Arc<str>);

/// The fragments of one table and the count of every element they hold.
#[derive(Debug, Default)]
pub struct FragmentTable {
    fragments: HashMap<ServicePortId, Fragment>,
    /// Every element in the kernel: its value and how many fragments hold it. Keys and
    /// values are shared with the fragments, not copied.
    elements: HashMap<ElementKey, (Arc<str>, usize)>,
    objects: usize,
}

/// The operations for a set of fragment changes, and the changes to commit after the
/// kernel took them.
#[derive(Debug, Default)]
pub struct FragmentPlan {
    /// The operations, in an order the kernel accepts.
    pub ops: Vec<Op>,
    changes: Vec<(ServicePortId, Option<Fragment>)>,
}

impl FragmentTable {
    /// A table holding exactly `fragments` (after a full sync).
    pub fn from_fragments(fragments: impl IntoIterator<Item = (ServicePortId, Fragment)>) -> FragmentTable {
        let mut table = FragmentTable::default();
        for (id, fragment) in fragments {
            table.insert(id, fragment);
        }
        table
    }

    /// The chains, sets and elements all fragments hold together, as one ruleset (what
    /// the kernel holds besides the fixed part).
    pub fn snapshot(&self) -> Ruleset {
        let mut out = Ruleset::default();
        for fragment in self.fragments.values() {
            out.chains.extend(fragment.chains.iter().cloned());
            out.maps.extend(fragment.maps.iter().cloned());
        }
        for ((map, key), (value, _)) in &self.elements {
            out.elements.entry((*map).to_owned()).or_default().insert(key.to_string(), value.to_string());
        }
        out
    }

    /// Kernel objects held by all fragments.
    pub fn object_count(&self) -> usize {
        self.objects
    }

    fn insert(&mut self, id: ServicePortId, fragment: Fragment) {
        for e in &fragment.elements {
            let entry = self.elements.entry((e.map, e.key.clone())).or_insert_with(|| (e.value.clone(), 0));
            entry.0 = e.value.clone();
            entry.1 += 1;
        }
        self.objects += fragment.object_count();
        if let Some(old) = self.fragments.insert(id, fragment) {
            self.forget(&old);
        }
    }

    fn forget(&mut self, fragment: &Fragment) {
        self.objects -= fragment.object_count();
        for e in &fragment.elements {
            let k = (e.map, e.key.clone());
            if let Some(entry) = self.elements.get_mut(&k) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    self.elements.remove(&k);
                }
            }
        }
    }

    /// The operations that replace the fragments of `changes` (`None`: the port is gone).
    pub fn plan(&self, changes: Vec<(ServicePortId, Option<Fragment>)>) -> FragmentPlan {
        let empty = Fragment::default();
        let mut add_maps = Vec::new();
        let mut add_chains = Vec::new();
        let mut write_chains = Vec::new();
        let mut flush_removed = Vec::new();
        let mut del_chains = Vec::new();
        let mut del_maps = Vec::new();
        // (map, key) -> (value after, count after), starting from the current counts.
        let mut overlay: BTreeMap<ElementKey, (Option<Arc<str>>, usize)> = BTreeMap::new();
        let current = |k: &ElementKey| self.elements.get(k).map(|(v, n)| (Some(v.clone()), *n)).unwrap_or((None, 0));
        for (id, new) in &changes {
            let old = self.fragments.get(id).unwrap_or(&empty);
            let new = new.as_ref().unwrap_or(&empty);
            for (name, decl) in &new.maps {
                if old.map(name) != Some(decl) {
                    add_maps.push(Op::AddMap(name.clone(), decl.clone()));
                }
            }
            for (name, decl) in old.maps.iter().filter(|(n, _)| new.map(n).is_none()) {
                del_maps.push(Op::DeleteMap(name.clone(), map_keyword(decl)));
            }
            for (name, chain) in &new.chains {
                match old.chain(name) {
                    Some(before) if before.rules == chain.rules => {}
                    Some(_) => write_chains.push(Op::WriteChain(name.clone(), chain.rules.clone())),
                    None => {
                        add_chains.push(Op::AddChain(name.clone(), chain.base.clone(), chain.comment.clone()));
                        write_chains.push(Op::WriteChain(name.clone(), chain.rules.clone()));
                    }
                }
            }
            for (name, _) in old.chains.iter().filter(|(n, _)| new.chain(n).is_none()) {
                flush_removed.push(Op::WriteChain(name.clone(), Vec::new()));
                del_chains.push(Op::DeleteChain(name.clone()));
            }
            for e in &old.elements {
                let k = (e.map, e.key.clone());
                let entry = overlay.entry(k.clone()).or_insert_with(|| current(&k));
                entry.1 = entry.1.saturating_sub(1);
            }
            for e in &new.elements {
                let k = (e.map, e.key.clone());
                let entry = overlay.entry(k.clone()).or_insert_with(|| current(&k));
                entry.0 = Some(e.value.clone());
                entry.1 += 1;
            }
        }
        let mut del_elements = Vec::new();
        let mut add_elements = Vec::new();
        for ((map, key), (value, count)) in overlay {
            let before = self.elements.get(&(map, key.clone()));
            let (map, key_text) = (map.to_owned(), key.to_string());
            match (before, count) {
                (Some(_), 0) => del_elements.push(Op::DeleteElement(map, key_text)),
                (None, n) if n > 0 => {
                    add_elements.push(Op::AddElement(map, key_text, value.map(|v| v.to_string()).unwrap_or_default()))
                }
                (Some((old_value, _)), _) => {
                    let new_value = value.map(|v| v.to_string()).unwrap_or_default();
                    if **old_value != *new_value {
                        del_elements.push(Op::DeleteElement(map.clone(), key_text.clone()));
                        add_elements.push(Op::AddElement(map, key_text, new_value));
                    }
                }
                (None, _) => {}
            }
        }
        let mut ops = add_maps;
        ops.extend(add_chains);
        ops.extend(del_elements);
        ops.extend(flush_removed);
        ops.extend(write_chains);
        ops.extend(add_elements);
        ops.extend(del_chains);
        ops.extend(del_maps);
        FragmentPlan { ops, changes }
    }

    /// Records a plan's changes once the kernel took its operations.
    pub fn commit(&mut self, plan: FragmentPlan) {
        for (id, new) in plan.changes {
            match new {
                Some(fragment) => self.insert(id, fragment),
                None => {
                    if let Some(old) = self.fragments.remove(&id) {
                        self.forget(&old);
                    }
                }
            }
        }
    }
}

fn map_keyword(decl: &MapDecl) -> &'static str {
    decl.keyword
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::{IpFamily, Protocol, ServiceName};

    fn id(name: &str) -> ServicePortId {
        ServicePortId {
            service: ServiceName::new("ns", name),
            port_name: "".into(),
            protocol: Protocol::Tcp,
            family: IpFamily::V4,
        }
    }

    fn fragment(chain: &str, rules: &[&str], elements: &[(&'static str, &str, &str)]) -> Fragment {
        let mut f = Fragment::default();
        f.add_chain(chain.into(), rules.iter().map(|s| (*s).into()).collect());
        for (m, k, v) in elements {
            f.add_element(m, (*k).into(), (*v).into());
        }
        f.seal()
    }

    #[test]
    fn a_shared_element_stays_until_its_last_fragment_goes() {
        let a = fragment(
            "svc-a",
            &["dnat to 1.1.1.1:80"],
            &[("cluster-ips", "10.96.0.1", ""), ("service-ips", "10.96.0.1 . tcp . 80", "goto svc-a")],
        );
        let b = fragment(
            "svc-b",
            &["dnat to 1.1.1.2:81"],
            &[("cluster-ips", "10.96.0.1", ""), ("service-ips", "10.96.0.1 . tcp . 81", "goto svc-b")],
        );
        let mut table = FragmentTable::from_fragments([(id("a"), a), (id("b"), b)]);
        let plan = table.plan(vec![(id("a"), None)]);
        assert_eq!(
            plan.ops,
            vec![
                Op::DeleteElement("service-ips".into(), "10.96.0.1 . tcp . 80".into()),
                Op::WriteChain("svc-a".into(), vec![]),
                Op::DeleteChain("svc-a".into()),
            ],
            "the shared ClusterIP element stays"
        );
        table.commit(plan);
        let plan = table.plan(vec![(id("b"), None)]);
        assert!(plan.ops.contains(&Op::DeleteElement("cluster-ips".into(), "10.96.0.1".into())));
    }

    #[test]
    fn an_endpoint_change_rewrites_one_chain_and_nothing_else() {
        let a = fragment("svc-a", &["dnat to 1.1.1.1:80"], &[("service-ips", "10.96.0.1 . tcp . 80", "goto svc-a")]);
        let table = FragmentTable::from_fragments([(id("a"), a)]);
        let a2 = fragment("svc-a", &["dnat to 1.1.1.9:80"], &[("service-ips", "10.96.0.1 . tcp . 80", "goto svc-a")]);
        let plan = table.plan(vec![(id("a"), Some(a2))]);
        assert_eq!(plan.ops, vec![Op::WriteChain("svc-a".into(), vec!["dnat to 1.1.1.9:80".into()])]);
    }

    #[test]
    fn a_new_port_adds_its_chain_before_the_element_pointing_at_it() {
        let table = FragmentTable::default();
        let a = fragment("svc-a", &["dnat to 1.1.1.1:80"], &[("service-ips", "10.96.0.1 . tcp . 80", "goto svc-a")]);
        let plan = table.plan(vec![(id("a"), Some(a))]);
        assert_eq!(
            plan.ops,
            vec![
                Op::AddChain("svc-a".into(), None, None),
                Op::WriteChain("svc-a".into(), vec!["dnat to 1.1.1.1:80".into()]),
                Op::AddElement("service-ips".into(), "10.96.0.1 . tcp . 80".into(), "goto svc-a".into()),
            ]
        );
    }
}
