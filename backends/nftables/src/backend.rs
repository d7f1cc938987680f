//! [`NftablesBackend`]: renders the state, diffs it against what was committed, and
//! sends the difference to the kernel as one transaction per family.

use ferry_conntrack::{ConntrackTool, UdpFlows};
use ferry_model::{Backend, BackendError, CleanupReport, ProxyState, SyncReport, SyncRequest};
use tracing::debug;

use crate::adopt::{existing_objects, ExistingObjects};
use crate::nft::NftTool;
use ferry_model::IpFamily;

use crate::incremental::FragmentTable;
use crate::render::{base_ruleset, merge, render, render_fragment, NftConfig};
use crate::ruleset::{script, transaction, Op, Ruleset, TableFamily};

/// The nftables backend. It keeps what it committed in memory, so an incremental sync
/// sends only what changed and never lists the table.
#[derive(Debug)]
pub struct NftablesBackend {
    config: NftConfig,
    tool: NftTool,
    committed: Option<Committed>,
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

/// What the backend knows is in the kernel after its last successful sync.
#[derive(Debug)]
struct Committed {
    v4: FragmentTable,
    v6: FragmentTable,
    base_objects: usize,
}

impl Committed {
    fn family(&self, family: IpFamily) -> &FragmentTable {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    fn object_count(&self) -> usize {
        self.base_objects + self.v4.object_count() + self.v6.object_count()
    }
}

fn table_family(family: IpFamily) -> TableFamily {
    match family {
        IpFamily::V4 => TableFamily::Ip,
        IpFamily::V6 => TableFamily::Ip6,
    }
}

impl NftablesBackend {
    /// Every chain and element, rewritten in one transaction (first sync, periodic
    /// resync, after a failure).
    fn sync_full(&mut self, state: &ProxyState) -> Result<usize, BackendError> {
        let starting = self.committed.is_none();
        let mut fragments: [Vec<(ferry_model::ServicePortId, Ruleset)>; 2] = [Vec::new(), Vec::new()];
        for (id, port) in state.ports() {
            let slot = usize::from(id.family == IpFamily::V6);
            fragments[slot].push((id.clone(), render_fragment(id, port, &self.config)));
        }
        let mut text = String::new();
        let mut operations = 0;
        let mut base_objects = 0;
        for (slot, family) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
            let mut desired = base_ruleset(family, &self.config);
            base_objects += desired.object_count();
            for (_, fragment) in &fragments[slot] {
                merge(&mut desired, fragment);
            }
            let mut ops = full_rewrite(transaction(None, &desired), &desired);
            if starting {
                // Adopt the table as found (B26): what it holds for services gone while
                // kube-ferry was down is removed in the same transaction.
                let found = existing_objects(&self.tool, table_family(family), &self.config.table)?;
                ops.extend(remove_stale(&found, &desired));
            }
            operations += ops.len();
            text.push_str(&script(table_family(family), &self.config.table, &ops));
        }
        self.tool.apply(&text)?;
        let [v4, v6] = fragments;
        self.committed = Some(Committed {
            v4: FragmentTable::from_fragments(v4),
            v6: FragmentTable::from_fragments(v6),
            base_objects,
        });
        Ok(operations)
    }

    /// Only the touched service ports, re-rendered and diffed against their fragments.
    fn sync_changes(&mut self, state: &ProxyState, diff: &ferry_model::StateDiff) -> Result<usize, BackendError> {
        let Some(committed) = self.committed.as_mut() else {
            return self.sync_full(state);
        };
        let mut changes: [Vec<(ferry_model::ServicePortId, Option<Ruleset>)>; 2] = [Vec::new(), Vec::new()];
        let touched = diff.added.iter().chain(diff.changed.iter().map(|c| &c.id)).chain(&diff.removed);
        for id in touched {
            let fragment = state.get(id).map(|port| render_fragment(id, port, &self.config));
            changes[usize::from(id.family == IpFamily::V6)].push((id.clone(), fragment));
        }
        let [c4, c6] = changes;
        let plans = [committed.family(IpFamily::V4).plan(c4), committed.family(IpFamily::V6).plan(c6)];
        let mut text = String::new();
        let mut operations = 0;
        for (plan, family) in plans.iter().zip([TableFamily::Ip, TableFamily::Ip6]) {
            operations += plan.ops.len();
            text.push_str(&script(family, &self.config.table, &plan.ops));
        }
        if !text.is_empty() {
            self.tool.apply(&text)?;
        }
        let [p4, p6] = plans;
        committed.v4.commit(p4);
        committed.v6.commit(p6);
        Ok(operations)
    }
}

impl Backend for NftablesBackend {
    fn mode(&self) -> &'static str {
        "nftables"
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let operations = match request {
            SyncRequest::Full => self.sync_full(state)?,
            SyncRequest::Changes(diff) => self.sync_changes(state, diff)?,
        };
        debug!(operations, "nft transaction applied");
        // After the rules changed, not before: a flow deleted earlier could be
        // re-created through the old rules (B25).
        let stale = self.udp_flows.update(state);
        if !stale.is_empty() {
            let deleted = self.conntrack.delete(&stale);
            debug!(filters = stale.len(), deleted, "stale UDP conntrack entries deleted");
        }
        let kernel_objects = self.committed.as_ref().map_or(0, Committed::object_count);
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
