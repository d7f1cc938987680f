//! [`NftablesBackend`]: renders the state, diffs it against what was committed, and
//! sends the difference to the kernel as one transaction per family.

use ferry_conntrack::StaleUdpCleaner;
use ferry_model::{
    find_refused, Backend, BackendError, CleanupReport, ProxyState, Refusal, ServicePortId, SyncReport, SyncRequest,
};
use tracing::{debug, warn};

use crate::adopt::{existing_objects, ExistingObjects};
use crate::netlink::ElementBatch;
use crate::nft::{NftRunner, NftTool};
use ferry_model::IpFamily;

use crate::fragment::Fragment;
use crate::full::write_full_script;
use crate::incremental::FragmentTable;
use crate::render::{base_ruleset, render, render_fragment, NftConfig};
use crate::ruleset::{script, transaction, Op, Ruleset, TableFamily};

/// The nftables backend. It keeps what it committed in memory, so an incremental sync
/// sends only what changed and never lists the table.
#[derive(Debug)]
pub struct NftablesBackend {
    config: NftConfig,
    tool: Box<dyn NftRunner>,
    refused: Vec<Refusal>,
    last_full: Option<std::time::Instant>,
    last_failed: bool,
    committed: Option<Committed>,
    stale_udp: StaleUdpCleaner,
    /// The fixed part of each family's table (v4, v6), with the layouts of its maps.
    bases: [Ruleset; 2],
}

impl NftablesBackend {
    /// A backend with this configuration, driving `nft` in the current network namespace.
    pub fn new(config: NftConfig) -> NftablesBackend {
        NftablesBackend::with_runner(config, Box::new(NftTool::find()))
    }

    /// A backend driving nf_tables through `runner` (tests use a fake).
    pub fn with_runner(config: NftConfig, runner: Box<dyn NftRunner>) -> NftablesBackend {
        NftablesBackend {
            tool: runner,
            refused: Vec::new(),
            last_full: None,
            last_failed: false,
            committed: None,
            stale_udp: StaleUdpCleaner::default(),
            bases: [base_ruleset(IpFamily::V4, &config), base_ruleset(IpFamily::V6, &config)],
            config,
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
        let mut fragments: [Vec<(ServicePortId, Fragment)>; 2] = [Vec::new(), Vec::new()];
        for (id, port) in state.ports() {
            let slot = usize::from(id.family == IpFamily::V6);
            fragments[slot].push((id.clone(), render_fragment(id, port, &self.config)));
        }
        self.refused.clear();
        match self.apply_full(fragments) {
            Ok(n) => Ok(n),
            Err((BackendError::Refused { detail }, mut fragments)) => {
                // One service port the kernel will not take must not keep every other
                // one from being programmed (B34): find it, leave it out, say so.
                warn!(%detail, "the kernel refused the full sync; looking for the service ports it refuses");
                for (slot, family) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
                    let base = base_ruleset(family, &self.config);
                    let bad = self.refused_fragments(family, &base, &fragments[slot]);
                    fragments[slot].retain(|(id, _)| !bad.iter().any(|(b, _)| b == id));
                    self.refused.extend(bad.into_iter().map(|(id, detail)| Refusal { object: id.to_string(), detail }));
                }
                if self.refused.is_empty() {
                    return Err(BackendError::Refused { detail });
                }
                self.apply_full(fragments).map_err(|(e, _)| e)
            }
            Err((e, _)) => Err(e),
        }
    }

    /// Sends the full-sync script; on success the fragments become the committed state.
    /// On failure the fragments come back with the error, for a second attempt.
    #[allow(clippy::type_complexity)]
    fn apply_full(
        &mut self,
        fragments: [Vec<(ServicePortId, Fragment)>; 2],
    ) -> Result<usize, (BackendError, [Vec<(ServicePortId, Fragment)>; 2])> {
        let starting = self.committed.is_none();
        let mut tails: [Vec<Op>; 2] = [Vec::new(), Vec::new()];
        let bases = [base_ruleset(IpFamily::V4, &self.config), base_ruleset(IpFamily::V6, &self.config)];
        let base_objects = bases.iter().map(Ruleset::object_count).sum();
        if starting {
            // Adopt the table as found (B26): what it holds for services gone while
            // kube-ferry was down is removed in the same transaction.
            for (slot, family) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
                let found = match existing_objects(self.tool.as_ref(), table_family(family), &self.config.table) {
                    Ok(found) => found,
                    Err(e) => return Err((e, fragments)),
                };
                tails[slot] = remove_stale(&found, &bases[slot], &fragments[slot]);
            }
        }
        let mut operations = 0;
        let table = self.config.table.clone();
        let applied = self.tool.apply_streamed(&mut |out| {
            operations = 0;
            for (slot, family) in [IpFamily::V4, IpFamily::V6].into_iter().enumerate() {
                operations +=
                    write_full_script(out, table_family(family), &table, &bases[slot], &fragments[slot], &tails[slot])?;
            }
            Ok(())
        });
        if let Err(e) = applied {
            return Err((e, fragments));
        }
        let [v4, v6] = fragments;
        self.committed = Some(Committed {
            v4: FragmentTable::from_fragments(v4),
            v6: FragmentTable::from_fragments(v6),
            base_objects,
        });
        Ok(operations)
    }

    /// The fragments the kernel refuses, found by halving (a few `nft -c` checks even
    /// at thousands of services), each with the kernel's words.
    fn refused_fragments(
        &self,
        family: IpFamily,
        base: &Ruleset,
        fragments: &[(ServicePortId, Fragment)],
    ) -> Vec<(ServicePortId, String)> {
        let check = |part: &[(ServicePortId, Fragment)]| {
            let mut text = Vec::new();
            write_full_script(&mut text, table_family(family), &self.config.table, base, part, &[])
                .map_err(|e| BackendError::Other(format!("writing the script: {e}")))?;
            self.tool.check(&String::from_utf8_lossy(&text))
        };
        find_refused(fragments, check).into_iter().map(|((id, _), detail)| (id.clone(), detail)).collect()
    }

    /// Only the touched service ports, re-rendered and diffed against their fragments.
    fn sync_changes(&mut self, state: &ProxyState, diff: &ferry_model::StateDiff) -> Result<usize, BackendError> {
        let Some(committed) = self.committed.as_mut() else {
            return self.sync_full(state);
        };
        let mut changes: [Vec<(ferry_model::ServicePortId, Option<Fragment>)>; 2] = [Vec::new(), Vec::new()];
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
            // Element-only transactions (endpoint changes of map-held ports, frontends
            // gaining or losing endpoints) skip the tool; the rest goes through `nft`.
            let elements = ElementBatch::from_ops(
                &self.config.table,
                &[
                    (TableFamily::Ip, &plans[0].ops, &self.bases[0].maps),
                    (TableFamily::Ip6, &plans[1].ops, &self.bases[1].maps),
                ],
            );
            match elements {
                Some(batch) => self.tool.apply_elements(&text, &batch)?,
                None => self.tool.apply(&text)?,
            }
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
        // A full rewrite costs seconds at 10,000 services: it runs on start, after a
        // failure, and every `full_sync_period` (like upstream's hourly full sync);
        // the sync loop's more frequent full requests are answered from the committed
        // state, which an incremental sync keeps exact.
        let rewrite_due = self.committed.is_none()
            || self.last_failed
            || self.last_full.is_none_or(|t| t.elapsed() >= self.config.full_sync_period);
        let result = match request {
            SyncRequest::Full if rewrite_due => self.sync_full(state),
            SyncRequest::Full => Ok(0),
            SyncRequest::Changes(diff) => self.sync_changes(state, diff),
        };
        self.last_failed = result.is_err();
        if matches!(request, SyncRequest::Full) && rewrite_due && result.is_ok() {
            self.last_full = Some(std::time::Instant::now());
        }
        let operations = result?;
        debug!(operations, "nft transaction applied");
        // After the rules changed, not before: a flow deleted earlier could be
        // re-created through the old rules (B25).
        self.stale_udp.after_sync(state);
        let kernel_objects = self.committed.as_ref().map_or(0, Committed::object_count);
        Ok(SyncReport {
            service_ports: state.len(),
            endpoints: state.endpoint_count(),
            operations,
            kernel_objects,
            refused: self.refused.clone(),
            events: Vec::new(),
        })
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

    fn status(&mut self) -> Result<Vec<ferry_model::ProgrammedFrontend>, BackendError> {
        // Read from the kernel (both families' tables), never from `self.committed`.
        crate::status::read_status(self.tool.as_ref(), &self.config.table)
    }
}

/// Operations removing chains and sets found in the kernel that `desired` lacks.
fn remove_stale(found: &ExistingObjects, base: &Ruleset, fragments: &[(ServicePortId, Fragment)]) -> Vec<Op> {
    let chains: std::collections::HashSet<&str> = base
        .chains
        .keys()
        .chain(fragments.iter().flat_map(|(_, f)| f.chains.iter().map(|(n, _)| n)))
        .map(String::as_str)
        .collect();
    let sets: std::collections::HashSet<&str> = base
        .maps
        .keys()
        .chain(fragments.iter().flat_map(|(_, f)| f.maps.iter().map(|(n, _)| n)))
        .map(String::as_str)
        .collect();
    let has_chain = |c: &String| chains.contains(c.as_str());
    let has_set = |s: &String| sets.contains(s.as_str());
    let stale: Vec<&String> = found.chains.iter().filter(|c| !has_chain(c)).collect();
    let mut ops: Vec<Op> = stale.iter().map(|c| Op::WriteChain((*c).clone(), Vec::new())).collect();
    ops.extend(stale.into_iter().map(|c| Op::DeleteChain(c.clone())));
    ops.extend(found.sets.iter().filter(|s| !has_set(s)).map(|s| Op::DeleteMap(s.clone(), "set")));
    ops.extend(found.maps.iter().filter(|m| !has_set(m)).map(|m| Op::DeleteMap(m.clone(), "map")));
    ops
}
