//! `iptables-restore --noflush` input: only the chains named are flushed and rewritten,
//! so everything else in the tables stays as it was (B27).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::render::{Jump, Table};

/// The changes of one sync to one family's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreInput {
    /// Chains to create or flush and fill, with their rules.
    pub writes: BTreeMap<(Table, String), Vec<String>>,
    /// Chains to delete (flushed first, deleted after every write).
    pub deletes: Vec<(Table, String)>,
    /// Jump rules to insert into built-in chains (first sync only, when missing).
    pub jumps: Vec<Jump>,
    /// Jump rules to remove from built-in chains (cleanup), as `iptables-save` printed them.
    pub unjumps: Vec<Jump>,
}

impl RestoreInput {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.deletes.is_empty() && self.jumps.is_empty() && self.unjumps.is_empty()
    }

    /// The number of chains and rules written, deleted and jumps changed.
    pub fn operations(&self) -> usize {
        self.writes.values().map(|r| 1 + r.len()).sum::<usize>()
            + self.deletes.len()
            + self.jumps.len()
            + self.unjumps.len()
    }

    /// The text `iptables-restore --noflush` reads: per table, chain declarations (which
    /// flush existing chains), rules, deletions, `COMMIT`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for table in Table::ALL {
            let writes: Vec<_> = self.writes.iter().filter(|((t, _), _)| *t == table).collect();
            let deletes: Vec<_> = self.deletes.iter().filter(|(t, _)| *t == table).map(|(_, c)| c).collect();
            let jumps: Vec<_> = self.jumps.iter().filter(|j| j.table == table).collect();
            let unjumps: Vec<_> = self.unjumps.iter().filter(|j| j.table == table).collect();
            if writes.is_empty() && deletes.is_empty() && jumps.is_empty() && unjumps.is_empty() {
                continue;
            }
            // Writing into a String cannot fail.
            let _ = writeln!(out, "*{}", table.name());
            for ((_, chain), _) in &writes {
                let _ = writeln!(out, ":{chain} - [0:0]");
            }
            for chain in &deletes {
                let _ = writeln!(out, ":{chain} - [0:0]");
            }
            for j in &unjumps {
                let _ = writeln!(out, "-D {} {}", j.builtin, j.spec);
            }
            for ((_, chain), rules) in &writes {
                for rule in rules.iter() {
                    let _ = writeln!(out, "-A {chain} {rule}");
                }
            }
            for j in &jumps {
                let _ = writeln!(out, "-I {} 1 {}", j.builtin, j.spec);
            }
            for chain in &deletes {
                let _ = writeln!(out, "-X {chain}");
            }
            out.push_str("COMMIT\n");
        }
        out
    }
}

/// What `iptables-save` shows of one table: chain names and the rules of built-in chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedTable {
    /// Every chain declared (`:NAME POLICY [p:b]`).
    pub chains: Vec<String>,
    /// `(chain, spec)` of every `-A` line.
    pub rules: Vec<(String, String)>,
}

/// Parses `iptables-save` output into its tables.
pub fn parse_save(text: &str) -> BTreeMap<String, SavedTable> {
    let mut out: BTreeMap<String, SavedTable> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            current = Some(name.trim().to_owned());
            out.entry(name.trim().to_owned()).or_default();
        } else if let (Some(t), Some(decl)) = (&current, line.strip_prefix(':')) {
            if let Some(name) = decl.split_whitespace().next() {
                out.entry(t.clone()).or_default().chains.push(name.to_owned());
            }
        } else if let (Some(t), Some(rule)) = (&current, line.strip_prefix("-A ")) {
            if let Some((chain, spec)) = rule.split_once(' ') {
                out.entry(t.clone()).or_default().rules.push((chain.to_owned(), spec.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_declared_filled_and_deleted_in_that_order() {
        let mut input = RestoreInput::default();
        input.writes.insert((Table::Nat, "KUBE-SVC-A".into()), vec!["-j DNAT --to-destination 10.0.0.1:80".into()]);
        input.deletes.push((Table::Nat, "KUBE-SVC-B".into()));
        input.jumps.push(Jump { table: Table::Nat, builtin: "OUTPUT", spec: "-j KUBE-SERVICES".into() });
        assert_eq!(
            input.text(),
            "*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SVC-B - [0:0]\n-A KUBE-SVC-A -j DNAT --to-destination 10.0.0.1:80\n\
             -I OUTPUT 1 -j KUBE-SERVICES\n-X KUBE-SVC-B\nCOMMIT\n"
        );
        assert_eq!(input.operations(), 4);
        assert!(RestoreInput::default().text().is_empty());
    }

    #[test]
    fn save_output_is_read_per_table() {
        let saved = parse_save(
            "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment kube-ferry -j KUBE-SERVICES\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
        );
        assert_eq!(saved["nat"].chains, ["PREROUTING", "KUBE-SERVICES"]);
        assert_eq!(
            saved["nat"].rules,
            [("PREROUTING".to_owned(), "-m comment --comment kube-ferry -j KUBE-SERVICES".to_owned())]
        );
        assert!(saved["filter"].rules.is_empty());
    }
}
