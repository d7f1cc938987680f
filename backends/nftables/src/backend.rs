//! [`NftablesBackend`]: renders the state, diffs it against what was committed, and
//! sends the difference to the kernel as one transaction per family.

use ferry_conntrack::{ConntrackTool, UdpFlows};
use ferry_model::{Backend, BackendError, CleanupReport, ProxyState, SyncReport, SyncRequest};
use tracing::debug;

use crate::adopt::{existing_objects, ExistingObjects};
use crate::nft::NftTool;
use crate::render::{render, NftConfig, Rulesets};
use crate::ruleset::{script, transaction, Op, TableFamily};

/// The nftables backend. It keeps what it committed in memory, so an incremental sync
/// sends only what changed and never lists the table.
#[derive(Debug)]
pub struct NftablesBackend {
    config: NftConfig,
    tool: NftTool,
    committed: Option<Rulesets>,
    udp_flows: UdpFlows,
    conntrack: ConntrackTool,
}

impl NftablesBackend {
    /// A backend with this configuration, driving `nft` in the current network namespace.
    pub fn new(config: NftConfig) -> NftablesBackend {
        NftablesBackend {
            config,
            tool: NftTool::find(),
            committed: None,
            udp_flows: UdpFlows::new(),
            conntrack: ConntrackTool::default(),
        }
    }

    /// The scripts a sync from nothing would send: what `kube-ferry render --mode
    /// nftables` prints.
    pub fn render_scripts(state: &ProxyState, config: &NftConfig) -> String {
        let desired = render(state, config);
        let mut out = String::new();
        for family in [TableFamily::Ip, TableFamily::Ip6] {
            out.push_str(&script(family, &config.table, &transaction(None, desired.get(family))));
        }
        out
    }
}

impl Backend for NftablesBackend {
    fn mode(&self) -> &'static str {
        "nftables"
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let desired = render(state, &self.config);
        let full = matches!(request, SyncRequest::Full);
        let starting = self.committed.is_none();
        let mut text = String::new();
        let mut operations = 0;
        for family in [TableFamily::Ip, TableFamily::Ip6] {
            // A full sync re-sends every chain and element: it repairs drift.
            let committed = if full { None } else { self.committed.as_ref().map(|c| c.get(family)) };
            let mut ops = transaction(committed, desired.get(family));
            if full {
                // From nothing known: make sure maps hold exactly what is desired.
                ops = full_rewrite(ops, desired.get(family));
            }
            if starting {
                // Adopt the table as found (B26): what it holds for services gone while
                // kube-ferry was down is removed in the same transaction.
                let found = existing_objects(&self.tool, family, &self.config.table)?;
                ops.extend(remove_stale(&found, desired.get(family)));
            }
            operations += ops.len();
            text.push_str(&script(family, &self.config.table, &ops));
        }
        if !text.is_empty() {
            debug!(operations, "nft transaction");
            self.tool.apply(&text)?;
        }
        let kernel_objects = desired.v4.object_count() + desired.v6.object_count();
        self.committed = Some(desired);
        // After the rules changed, not before: a flow deleted earlier could be
        // re-created through the old rules (B25).
        let stale = self.udp_flows.update(state);
        if !stale.is_empty() {
            let deleted = self.conntrack.delete(&stale);
            debug!(filters = stale.len(), deleted, "stale UDP conntrack entries deleted");
        }
        Ok(SyncReport { service_ports: state.len(), endpoints: state.endpoint_count(), operations, kernel_objects })
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        let mut report = CleanupReport::default();
        for family in [TableFamily::Ip, TableFamily::Ip6] {
            let t = format!("{} {}", family.keyword(), self.config.table);
            // `add` first makes the delete succeed whether or not the table exists.
            self.tool.apply(&format!("add table {t}\ndelete table {t}\n"))?;
            report.removed.push(format!("table {t}"));
        }
        self.committed = None;
        Ok(report)
    }
}

/// Operations removing chains and sets found in the kernel that `desired` lacks.
fn remove_stale(found: &ExistingObjects, desired: &crate::ruleset::Ruleset) -> Vec<Op> {
    let stale: Vec<&String> = found.chains.iter().filter(|c| !desired.chains.contains_key(*c)).collect();
    let mut ops: Vec<Op> = stale.iter().map(|c| Op::WriteChain((*c).clone(), Vec::new())).collect();
    ops.extend(stale.into_iter().map(|c| Op::DeleteChain(c.clone())));
    ops.extend(found.sets.iter().filter(|s| !desired.maps.contains_key(*s)).map(|s| Op::DeleteMap(s.clone(), "set")));
    ops
}

/// A full sync on top of an unknown table: maps are flushed and refilled in the same
/// transaction (atomic: no packet sees them empty), chains are rewritten.
fn full_rewrite(ops: Vec<Op>, desired: &crate::ruleset::Ruleset) -> Vec<Op> {
    let mut out = Vec::with_capacity(ops.len() + desired.maps.len());
    let mut flushed = false;
    for op in ops {
        if !flushed && matches!(op, Op::WriteChain(..) | Op::AddElement(..)) {
            // Affinity sets are filled by the datapath itself: flushing them would move
            // every client to a new endpoint on each full sync.
            for (name, decl) in desired.maps.iter().filter(|(_, d)| !d.spec.contains("dynamic")) {
                out.push(Op::FlushMap(name.clone(), decl.keyword));
            }
            flushed = true;
        }
        out.push(op);
    }
    out
}
