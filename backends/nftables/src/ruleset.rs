//! A ruleset as nft sees it (chains of rules, maps and their elements), and the
//! transaction that turns one ruleset into another.
//!
//! Rules are kept as nft statements (text): what `render --mode nftables` prints is
//! exactly what is sent. A transaction only touches what differs: a chain whose rules
//! are unchanged is not rewritten, an element that did not change is not resent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The nft address family of a table (`ip` or `ip6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableFamily {
    /// `ip`: IPv4.
    Ip,
    /// `ip6`: IPv6.
    Ip6,
}

impl TableFamily {
    /// The keyword nft uses.
    pub fn keyword(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
        }
    }
}

/// A base chain's hook, as in `{ type nat hook prerouting priority -100; policy accept; }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseHook {
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output` or `postrouting`.
    pub hook: &'static str,
    /// The priority (a number: nft 1.0.6 rejects some names on some hooks).
    pub priority: i32,
}

/// One chain: its hook (for base chains) and its rules, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// `Some` for a base chain.
    pub base: Option<BaseHook>,
    /// The rules, each one nft statement list (`ip saddr 10.0.0.1 dnat to ...`).
    pub rules: Vec<String>,
    /// A comment describing what the chain is for (service name, endpoint).
    pub comment: Option<String>,
}

/// A named set or map declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDecl {
    /// `set` or `map`.
    pub keyword: &'static str,
    /// What goes between the braces (`type ... ; flags ...;`).
    pub spec: String,
    /// How its elements are encoded for netlink; `None` for sets kube-ferry never writes
    /// elements into (the kernel fills affinity sets).
    pub layout: Option<crate::element::ElementLayout>,
}

/// Everything kube-ferry puts in one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Set and map declarations by name.
    pub maps: BTreeMap<String, MapDecl>,
    /// Elements by map (or set) name: key -> value (`""` for a set's elements).
    pub elements: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ruleset {
    /// The number of kernel objects: chains, rules, maps and elements.
    pub fn object_count(&self) -> usize {
        self.chains.values().map(|c| 1 + c.rules.len()).sum::<usize>()
            + self.maps.len()
            + self.elements.values().map(BTreeMap::len).sum::<usize>()
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `add table`.
    AddTable,
    /// `add set|map NAME { SPEC }`.
    AddMap(String, MapDecl),
    /// `add chain NAME [{ hook }]`.
    AddChain(String, Option<BaseHook>, Option<String>),
    /// `flush chain NAME` followed by its rules (none: just the flush).
    WriteChain(String, Vec<String>),
    /// `delete element MAP { KEY }`.
    DeleteElement(String, String),
    /// `add element MAP { KEY [: VALUE] }`.
    AddElement(String, String, String),
    /// `delete chain NAME`.
    DeleteChain(String),
    /// `delete set|map NAME`.
    DeleteMap(String, &'static str),
    /// `flush set|map NAME`.
    FlushMap(String, &'static str),
}

/// The operations that turn `committed` into `desired`, in an order the kernel
/// accepts: declarations first, deletions of what references a chain before the chain.
/// `committed: None` means nothing is known (a first sync): everything is written.
pub fn transaction(committed: Option<&Ruleset>, desired: &Ruleset) -> Vec<Op> {
    let empty = Ruleset::default();
    let old = committed.unwrap_or(&empty);
    let mut ops = Vec::new();
    if committed.is_none() {
        ops.push(Op::AddTable);
    }
    for (name, decl) in &desired.maps {
        if old.maps.get(name) != Some(decl) {
            ops.push(Op::AddMap(name.clone(), decl.clone()));
        }
    }
    for (name, chain) in &desired.chains {
        if !old.chains.contains_key(name) {
            ops.push(Op::AddChain(name.clone(), chain.base.clone(), chain.comment.clone()));
        }
    }
    let no_elements = BTreeMap::new();
    let mut additions = Vec::new();
    let map_names: BTreeSet<&String> = old.elements.keys().chain(desired.elements.keys()).collect();
    for map in map_names {
        let before = old.elements.get(map).unwrap_or(&no_elements);
        let after = desired.elements.get(map).unwrap_or(&no_elements);
        for (key, value) in before {
            if after.get(key) != Some(value) {
                ops.push(Op::DeleteElement(map.clone(), key.clone()));
            }
        }
        for (key, value) in after {
            if before.get(key) != Some(value) {
                additions.push(Op::AddElement(map.clone(), key.clone(), value.clone()));
            }
        }
    }
    for (name, chain) in &desired.chains {
        let unchanged = committed.is_some() && old.chains.get(name).is_some_and(|c| c.rules == chain.rules);
        if !unchanged {
            ops.push(Op::WriteChain(name.clone(), chain.rules.clone()));
        }
    }
    // Chains to delete are emptied first: a chain still holding a `goto` to another one
    // would keep that one busy.
    let removed: Vec<&String> = old.chains.keys().filter(|n| !desired.chains.contains_key(*n)).collect();
    for name in &removed {
        ops.push(Op::WriteChain((*name).clone(), Vec::new()));
    }
    ops.extend(additions);
    for name in removed {
        ops.push(Op::DeleteChain(name.clone()));
    }
    for (name, decl) in old.maps.iter().filter(|(n, _)| !desired.maps.contains_key(*n)) {
        ops.push(Op::DeleteMap(name.clone(), decl.keyword));
    }
    ops
}

/// The nft script (`nft -f -` input) of a transaction on table `FAMILY NAME`. One
/// script is one atomic kernel transaction.
pub fn script(family: TableFamily, table: &str, ops: &[Op]) -> String {
    let t = format!("{} {table}", family.keyword());
    let mut out = String::new();
    for op in ops {
        // Writing into a String cannot fail.
        let _ = match op {
            Op::AddTable => writeln!(out, "add table {t}"),
            Op::AddMap(name, decl) => writeln!(out, "add {} {t} {name} {{ {} }}", decl.keyword, decl.spec),
            Op::AddChain(name, base, comment) => {
                let comment =
                    comment.as_ref().map(|c| format!(" comment \"{}\";", c.replace('"', "'"))).unwrap_or_default();
                match base {
                    Some(h) => writeln!(
                        out,
                        "add chain {t} {name} {{ type {} hook {} priority {}; policy accept;{comment} }}",
                        h.kind, h.hook, h.priority
                    ),
                    None if comment.is_empty() => writeln!(out, "add chain {t} {name}"),
                    None => writeln!(out, "add chain {t} {name} {{{comment} }}"),
                }
            }
            Op::WriteChain(name, rules) => {
                let _ = writeln!(out, "flush chain {t} {name}");
                for rule in rules {
                    let _ = writeln!(out, "add rule {t} {name} {rule}");
                }
                Ok(())
            }
            Op::DeleteElement(map, key) => writeln!(out, "delete element {t} {map} {{ {key} }}"),
            Op::AddElement(map, key, value) if value.is_empty() => writeln!(out, "add element {t} {map} {{ {key} }}"),
            Op::AddElement(map, key, value) => writeln!(out, "add element {t} {map} {{ {key} : {value} }}"),
            Op::DeleteChain(name) => writeln!(out, "delete chain {t} {name}"),
            Op::DeleteMap(name, keyword) => writeln!(out, "delete {keyword} {t} {name}"),
            Op::FlushMap(name, keyword) => writeln!(out, "flush {keyword} {t} {name}"),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruleset(chains: &[(&str, &[&str])], elements: &[(&str, &str)]) -> Ruleset {
        let mut r = Ruleset::default();
        r.maps.insert(
            "services".into(),
            MapDecl {
                keyword: "map",
                spec: "type ipv4_addr . inet_proto . inet_service : verdict;".into(),
                layout: None,
            },
        );
        for (name, rules) in chains {
            r.chains.insert(
                (*name).into(),
                Chain { rules: rules.iter().map(|s| (*s).to_owned()).collect(), ..Chain::default() },
            );
        }
        let map = r.elements.entry("services".into()).or_default();
        for (k, v) in elements {
            map.insert((*k).into(), (*v).into());
        }
        r
    }

    #[test]
    fn no_change_sends_nothing() {
        let a = ruleset(&[("svc-a", &["dnat to 10.244.1.5:80"])], &[("10.96.0.1 . tcp . 80", "goto svc-a")]);
        assert!(transaction(Some(&a), &a).is_empty());
    }

    #[test]
    fn adding_one_service_is_a_handful_of_operations_in_a_valid_order() {
        let a = ruleset(&[("svc-a", &["dnat to 10.244.1.5:80"])], &[("10.96.0.1 . tcp . 80", "goto svc-a")]);
        let b = ruleset(
            &[("svc-a", &["dnat to 10.244.1.5:80"]), ("svc-b", &["dnat to 10.244.1.6:80"])],
            &[("10.96.0.1 . tcp . 80", "goto svc-a"), ("10.96.0.2 . tcp . 80", "goto svc-b")],
        );
        let script = script(TableFamily::Ip, "kube-ferry", &transaction(Some(&a), &b));
        assert_eq!(
            script,
            "add chain ip kube-ferry svc-b\n\
             flush chain ip kube-ferry svc-b\n\
             add rule ip kube-ferry svc-b dnat to 10.244.1.6:80\n\
             add element ip kube-ferry services { 10.96.0.2 . tcp . 80 : goto svc-b }\n"
        );
    }

    #[test]
    fn removing_a_service_deletes_its_element_before_its_chain() {
        let a = ruleset(&[("svc-a", &["dnat to 10.244.1.5:80"])], &[("10.96.0.1 . tcp . 80", "goto svc-a")]);
        let empty = ruleset(&[], &[]);
        let ops = transaction(Some(&a), &empty);
        assert_eq!(
            ops,
            vec![
                Op::DeleteElement("services".into(), "10.96.0.1 . tcp . 80".into()),
                Op::WriteChain("svc-a".into(), vec![]),
                Op::DeleteChain("svc-a".into())
            ]
        );
    }

    #[test]
    fn a_changed_value_is_deleted_and_added_and_a_changed_chain_rewritten() {
        let a = ruleset(&[("svc-a", &["dnat to 10.244.1.5:80"])], &[("10.96.0.1 . tcp . 80", "goto svc-a")]);
        let b = ruleset(&[("svc-a", &["dnat to 10.244.1.6:80"])], &[("10.96.0.1 . tcp . 80", "jump reject")]);
        let ops = transaction(Some(&a), &b);
        assert_eq!(
            ops,
            vec![
                Op::DeleteElement("services".into(), "10.96.0.1 . tcp . 80".into()),
                Op::WriteChain("svc-a".into(), vec!["dnat to 10.244.1.6:80".into()]),
                Op::AddElement("services".into(), "10.96.0.1 . tcp . 80".into(), "jump reject".into()),
            ]
        );
    }

    #[test]
    fn a_first_sync_writes_everything_including_the_table() {
        let a = ruleset(&[("svc-a", &[])], &[]);
        let ops = transaction(None, &a);
        assert_eq!(ops[0], Op::AddTable);
        assert!(ops.iter().any(|o| matches!(o, Op::WriteChain(n, _) if n == "svc-a")));
    }
}
