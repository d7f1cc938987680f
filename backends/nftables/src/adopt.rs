//! What a kube-ferry table already holds when kube-ferry starts (B26): the names of its
//! chains, sets and maps, so the first sync can delete what belongs to services that went
//! away while it was down. Listed once per start; never on the sync path.

use std::collections::BTreeSet;

use ferry_model::BackendError;

use crate::nft::NftRunner;
use crate::ruleset::TableFamily;

/// Chain and set names found in `FAMILY TABLE`; both empty when the table does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingObjects {
    /// Chain names.
    pub chains: BTreeSet<String>,
    /// Set names.
    pub sets: BTreeSet<String>,
    /// Map names (those an older kube-ferry declared and this one does not are deleted).
    pub maps: BTreeSet<String>,
}

/// Lists the chains and sets of one table. A missing table is not an error.
pub fn existing_objects(
    tool: &dyn NftRunner,
    family: TableFamily,
    table: &str,
) -> Result<ExistingObjects, BackendError> {
    let chains = tool.output(&["-j", "list", "chains", family.keyword()])?;
    let sets = tool.output(&["-j", "list", "sets", family.keyword()])?;
    let maps = tool.output(&["-j", "list", "maps", family.keyword()])?;
    Ok(ExistingObjects {
        chains: names_of(&chains, "chain", family, table)?,
        sets: names_of(&sets, "set", family, table)?,
        maps: names_of(&maps, "map", family, table)?,
    })
}

/// The `name`s of the `kind` objects of one table in `nft -j` output. Parsed as plain
/// JSON values: only three fields are read, and they are stable across nft versions.
fn names_of(json: &str, kind: &str, family: TableFamily, table: &str) -> Result<BTreeSet<String>, BackendError> {
    if json.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| BackendError::Other(format!("nft -j printed what is not JSON: {e}")))?;
    let objects = value.get("nftables").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    Ok(objects
        .iter()
        .filter_map(|o| o.get(kind))
        .filter(|o| o.get("family").and_then(|f| f.as_str()) == Some(family.keyword()))
        .filter(|o| o.get("table").and_then(|t| t.as_str()) == Some(table))
        .filter_map(|o| o.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_tables_objects_are_read() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "ip", "table": "kube-ferry", "name": "svc-A-x/y/tcp/80", "handle": 3}},
            {"chain": {"family": "ip", "table": "foreign", "name": "input", "handle": 1}},
            {"chain": {"family": "ip6", "table": "kube-ferry", "name": "svc-B", "handle": 2}}]}"#;
        let names = names_of(json, "chain", TableFamily::Ip, "kube-ferry").unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["svc-A-x/y/tcp/80"]);
        assert!(names_of("", "chain", TableFamily::Ip, "kube-ferry").unwrap().is_empty());
        assert!(names_of("not json", "chain", TableFamily::Ip, "kube-ferry").is_err());
    }
}
