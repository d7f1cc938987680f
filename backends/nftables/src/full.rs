//! The script of a full sync, written straight from the base ruleset and the service
//! ports' fragments: no merged copy of the table is ever held, so the peak memory of a
//! full sync is the fragments plus the script text.

use std::collections::HashSet;

use ferry_model::ServicePortId;

use crate::fragment::Fragment;
use crate::ruleset::{script, Op, Ruleset, TableFamily};

/// Writes the full-sync script of one table into `out` and returns its operation
/// count: every set and chain declared, the static maps flushed and refilled, every
/// chain rewritten, then `tail` (the removal of stale objects). Affinity sets (dynamic)
/// are declared but never flushed: they hold the datapath's own state.
pub fn write_full_script(
    out: &mut dyn std::io::Write,
    family: TableFamily,
    table: &str,
    base: &Ruleset,
    fragments: &[(ServicePortId, Fragment)],
    tail: &[Op],
) -> std::io::Result<usize> {
    let parts = || fragments.iter().map(|(_, f)| f);
    let mut count = 0;
    let mut emit = |out: &mut dyn std::io::Write, ops: Vec<Op>| {
        count += ops.len();
        out.write_all(script(family, table, &ops).as_bytes())
    };
    emit(out, vec![Op::AddTable])?;
    emit(out, base.maps.iter().map(|(n, d)| Op::AddMap(n.clone(), d.clone())).collect())?;
    for part in parts() {
        emit(out, part.maps.iter().map(|(n, d)| Op::AddMap(n.clone(), d.clone())).collect())?;
    }
    emit(out, base.chains.iter().map(|(n, c)| Op::AddChain(n.clone(), c.base.clone(), c.comment.clone())).collect())?;
    for part in parts() {
        emit(
            out,
            part.chains.iter().map(|(n, c)| Op::AddChain(n.clone(), c.base.clone(), c.comment.clone())).collect(),
        )?;
    }
    emit(
        out,
        base.maps
            .iter()
            .filter(|(_, d)| !d.spec.contains("dynamic"))
            .map(|(n, d)| Op::FlushMap(n.clone(), d.keyword))
            .collect(),
    )?;
    emit(out, base.chains.iter().map(|(n, c)| Op::WriteChain(n.clone(), c.rules.clone())).collect())?;
    for part in parts() {
        emit(out, part.chains.iter().map(|(n, c)| Op::WriteChain(n.clone(), c.rules.clone())).collect())?;
    }
    // Shared elements (a ClusterIP of several ports, a hairpin pair) are added once.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for part in parts() {
        let mut ops = Vec::new();
        for e in &part.elements {
            if seen.insert((e.map, &e.key)) {
                ops.push(Op::AddElement(e.map.to_owned(), e.key.to_string(), e.value.to_string()));
            }
        }
        emit(out, ops)?;
    }
    emit(out, tail.to_vec())?;
    Ok(count)
}
