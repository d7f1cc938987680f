//! [`IptablesBackend`]: renders the touched ports, rebuilds the shared chains, and sends
//! only the chains that differ from what it committed, with `iptables-restore --noflush`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferry_conntrack::StaleUdpCleaner;
use ferry_model::{
    find_refused, Backend, BackendError, CleanupReport, IpFamily, ProgrammedFrontend, ProxyState, Refusal,
    ServicePortId, StateDiff, SyncReport, SyncRequest,
};
use tracing::{debug, info, warn};

use crate::aggregate::SharedRules;
use crate::desired::shared_chains;
use crate::names::is_ours;
use crate::render::port::{render_port, PortRules};
use crate::render::{jumps, IptConfig, Jump, Table, JUMP_COMMENT, LARGE_CLUSTER_PORTS};
use crate::restore::{parse_save, RestoreInput};
use crate::tool::{IptablesRunner, IptablesTool, Variant};

/// What one family's tables hold, as far as kube-ferry knows (it never lists them on the
/// sync path).
#[derive(Debug, Default)]
struct FamilyTables {
    ports: HashMap<ServicePortId, PortRules>,
    shared: SharedRules,
    /// Every kube-ferry chain and its rules, as last committed.
    committed: BTreeMap<(Table, String), Vec<String>>,
}

/// The iptables backend (`--mode iptables`).
#[derive(Debug)]
pub struct IptablesBackend {
    config: IptConfig,
    tool: Box<dyn IptablesRunner>,
    families: [FamilyTables; 2],
    started: bool,
    last_failed: bool,
    stale_udp: StaleUdpCleaner,
    refused: Vec<Refusal>,
    /// Whether comments were asked for (the config's `comments` follows the state's size).
    comments_wanted: bool,
}

fn slot(family: IpFamily) -> usize {
    usize::from(family == IpFamily::V6)
}

const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

impl IptablesBackend {
    /// A backend using `variant`'s tools in the current network namespace.
    pub fn new(config: IptConfig, variant: Variant) -> IptablesBackend {
        IptablesBackend::with_runner(config, Box::new(IptablesTool { variant }))
    }

    /// A backend driving iptables through `runner` (tests use a fake).
    pub fn with_runner(config: IptConfig, runner: Box<dyn IptablesRunner>) -> IptablesBackend {
        IptablesBackend {
            comments_wanted: config.comments,
            config,
            tool: runner,
            families: Default::default(),
            started: false,
            last_failed: false,
            stale_udp: StaleUdpCleaner::default(),
            refused: Vec::new(),
        }
    }

    /// The restore input of a first sync into empty tables, per family: what `kube-ferry
    /// render --mode iptables` prints.
    pub fn render_inputs(state: &ProxyState, config: &IptConfig) -> String {
        let config = &IptConfig { comments: config.comments && state.len() <= LARGE_CLUSTER_PORTS, ..config.clone() };
        let mut out = String::new();
        for family in FAMILIES {
            let mut tables = FamilyTables::default();
            let changes = state
                .ports()
                .filter(|(id, _)| id.family == family)
                .map(|(id, p)| (id.clone(), Some(render_port(id, p, config))));
            let input = plan(&mut tables, family, config, changes.collect(), true);
            let mut input = input.0;
            input.jumps = jumps(family, config);
            let tool = if family == IpFamily::V4 { "iptables-restore" } else { "ip6tables-restore" };
            out.push_str(&format!("# {tool} --noflush\n{}", input.text()));
        }
        out
    }

    /// Every port rendered and every chain written (start, `--sync-period`, after a
    /// failure). On start, the tables are read once: kube-ferry chains of services gone
    /// meanwhile are deleted, and missing jump rules inserted.
    fn sync_full(&mut self, state: &ProxyState) -> Result<usize, BackendError> {
        let comments = self.comments_wanted && state.len() <= LARGE_CLUSTER_PORTS;
        if comments != self.config.comments {
            info!(
                service_ports = state.len(),
                comments,
                "rule comments {}",
                if comments { "on" } else { "off (large cluster)" }
            );
            self.config.comments = comments;
        }
        if !self.started && self.config.localhost_nodeports {
            // B12: 127.0.0.1:nodePort needs route_localnet (the guard chain drops martians).
            if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1") {
                warn!(error = %e, "cannot set net.ipv4.conf.all.route_localnet=1: localhost NodePorts will not answer");
            }
        }
        self.refused.clear();
        let mut operations = 0;
        for family in FAMILIES {
            let ports: Vec<(ServicePortId, PortRules)> = state
                .ports()
                .filter(|(id, _)| id.family == family)
                .map(|(id, p)| (id.clone(), render_port(id, p, &self.config)))
                .collect();
            operations += match self.full_family(family, ports.clone()) {
                Ok(n) => n,
                Err(BackendError::Refused { detail }) => {
                    // One service port the kernel will not take must not keep every other
                    // one from being programmed (B34): find it by halving, leave it out.
                    warn!(%detail, "iptables-restore refused the full sync; looking for the service ports it refuses");
                    let bad = self.refused_ports(family, &ports);
                    if bad.is_empty() {
                        return Err(BackendError::Refused { detail });
                    }
                    let kept = ports.into_iter().filter(|(id, _)| !bad.iter().any(|(b, _)| b == id)).collect();
                    self.refused.extend(bad.into_iter().map(|(id, detail)| Refusal { object: id.to_string(), detail }));
                    self.full_family(family, kept)?
                }
                Err(e) => return Err(e),
            };
        }
        self.started = true;
        Ok(operations)
    }

    /// One family's full restore; on success its ports become the committed state.
    fn full_family(&mut self, family: IpFamily, ports: Vec<(ServicePortId, PortRules)>) -> Result<usize, BackendError> {
        let mut fresh = FamilyTables::default();
        let changes = ports.into_iter().map(|(id, p)| (id, Some(p))).collect();
        let (mut input, _) = plan(&mut fresh, family, &self.config, changes, true);
        if self.started {
            // Chains committed before and no longer wanted.
            let old = &self.families[slot(family)].committed;
            input.deletes.extend(old.keys().filter(|k| !fresh.committed.contains_key(*k)).cloned());
        } else {
            adopt(&mut input, &parse_save(&self.tool.save(family)?), family, &self.config);
        }
        if !input.is_empty() {
            self.tool.restore(family, &input.text())?;
        }
        self.families[slot(family)] = fresh;
        Ok(input.operations())
    }

    /// The ports whose rules `iptables-restore --test` refuses, found by halving, each with
    /// the tool's words.
    fn refused_ports(&self, family: IpFamily, ports: &[(ServicePortId, PortRules)]) -> Vec<(ServicePortId, String)> {
        let check = |part: &[(ServicePortId, PortRules)]| {
            let mut scratch = FamilyTables::default();
            let changes = part.iter().map(|(id, p)| (id.clone(), Some(p.clone()))).collect();
            let (input, _) = plan(&mut scratch, family, &self.config, changes, true);
            self.tool.test(family, &input.text())
        };
        find_refused(ports, check).into_iter().map(|((id, _), detail)| (id.clone(), detail)).collect()
    }

    /// Only the touched ports re-rendered; only chains that changed sent.
    fn sync_changes(&mut self, state: &ProxyState, diff: &StateDiff) -> Result<usize, BackendError> {
        let mut operations = 0;
        for family in FAMILIES {
            let touched = diff.added.iter().chain(diff.changed.iter().map(|c| &c.id)).chain(&diff.removed);
            let changes: Vec<_> = touched
                .filter(|id| id.family == family)
                .map(|id| (id.clone(), state.get(id).map(|p| render_port(id, p, &self.config))))
                .collect();
            if changes.is_empty() {
                continue;
            }
            let tables = &mut self.families[slot(family)];
            let (input, undo) = plan(tables, family, &self.config, changes, false);
            operations += input.operations();
            if input.is_empty() {
                continue;
            }
            if let Err(e) = self.tool.restore(family, &input.text()) {
                undo.revert(tables);
                return Err(e);
            }
        }
        Ok(operations)
    }
}

/// How to take back a plan's changes to the in-memory tables when the kernel refused them:
/// the ports' old fragments and the old rules of each chain the plan wrote or deleted.
struct Undo {
    ports: Vec<(ServicePortId, Option<PortRules>)>,
    committed: Vec<(ChainKey, Option<Vec<String>>)>,
}

/// A chain: its table and name.
type ChainKey = (Table, String);

impl Undo {
    fn revert(self, tables: &mut FamilyTables) {
        for (id, old) in self.ports {
            if let Some(new) = tables.ports.remove(&id) {
                tables.shared.remove(&new);
            }
            if let Some(old) = old {
                tables.shared.add(&old);
                tables.ports.insert(id, old);
            }
        }
        for (key, old) in self.committed {
            match old {
                Some(rules) => tables.committed.insert(key, rules),
                None => tables.committed.remove(&key),
            };
        }
    }
}

/// Applies `changes` to `tables` and returns the restore input that brings the kernel
/// along (all chains when `full`), and how to undo it.
fn plan(
    tables: &mut FamilyTables,
    family: IpFamily,
    config: &IptConfig,
    changes: Vec<(ServicePortId, Option<PortRules>)>,
    full: bool,
) -> (RestoreInput, Undo) {
    let mut undo = Undo { ports: Vec::new(), committed: Vec::new() };
    let mut own_before: BTreeSet<(Table, String)> = BTreeSet::new();
    let mut own_after: BTreeMap<(Table, String), Vec<String>> = BTreeMap::new();
    let mut addresses: BTreeSet<std::net::IpAddr> = BTreeSet::new();
    for (id, new) in changes {
        let old = tables.ports.remove(&id);
        for p in old.iter().chain(new.iter()) {
            addresses.extend(p.dispatch.iter().chain(&p.rejects).map(|r| r.addr));
        }
        if let Some(old) = &old {
            tables.shared.remove(old);
            own_before.extend(own_chains(old).map(|(k, _)| k));
        }
        if let Some(new) = new {
            tables.shared.add(&new);
            own_after.extend(own_chains(&new).map(|(k, v)| (k, v.clone())));
            tables.ports.insert(id.clone(), new);
        }
        undo.ports.push((id, old));
    }
    let addresses: Vec<std::net::IpAddr> = addresses.into_iter().collect();
    let shared =
        shared_chains(family, config, &tables.shared, if full { None } else { Some((&addresses, &tables.committed)) });
    let mut desired = shared.chains;
    desired.extend(own_after);
    let mut input = RestoreInput::default();
    if full {
        // Everything is written: the desired chains become the committed ones as they are.
        input.writes = desired.clone();
        tables.committed = desired;
        return (input, undo);
    }
    for (key, rules) in &desired {
        if tables.committed.get(key) != Some(rules) {
            input.writes.insert(key.clone(), rules.clone());
        }
    }
    {
        // Chains that must go: own chains of changed ports, tree nodes left empty, nodes
        // below a node that became a leaf, NodePort tree nodes no longer built.
        let mut gone: BTreeSet<(Table, String)> = own_before.into_iter().filter(|k| !desired.contains_key(k)).collect();
        gone.extend(shared.empty.into_iter().filter(|k| tables.committed.contains_key(k)));
        for (table, leaf) in &shared.leaves {
            let prefix = if leaf == crate::render::SERVICES { "KUBE-DST-".to_owned() } else { leaf.clone() };
            let below = tables
                .committed
                .range((*table, prefix.clone())..)
                .take_while(|((t, n), _)| t == table && n.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .filter(|k| &k.1 != leaf && !desired.contains_key(k));
            gone.extend(below.collect::<Vec<_>>());
        }
        // A tree built whole (its shape changed) and the NodePort tree (always built
        // whole): their chains not built any more.
        let rebuilt = |t: &Table, n: &str| n.starts_with("KUBE-DST-") && shared.rebuilt.contains(t);
        gone.extend(
            tables
                .committed
                .keys()
                .filter(|(t, n)| (*t == Table::Nat && n.starts_with("KUBE-NP-")) || rebuilt(t, n))
                .filter(|k| !desired.contains_key(*k))
                .cloned()
                .collect::<Vec<_>>(),
        );
        input.deletes.extend(gone);
        for k in &input.deletes {
            let old = tables.committed.remove(k);
            undo.committed.push((k.clone(), old));
        }
    }
    for (key, rules) in &input.writes {
        let old = tables.committed.insert(key.clone(), rules.clone());
        undo.committed.push((key.clone(), old));
    }
    (input, undo)
}

fn own_chains(p: &PortRules) -> impl Iterator<Item = ((Table, String), &Vec<String>)> + '_ {
    p.nat.iter().map(|(n, r)| ((Table::Nat, n.clone()), r))
}

/// On start (B26): chains of ours found in the kernel and not wanted are deleted (after
/// every write, in the same restore), and jump rules not found are inserted. Nothing is
/// flushed that is not rewritten at once.
fn adopt(
    input: &mut RestoreInput,
    found: &BTreeMap<String, crate::restore::SavedTable>,
    family: IpFamily,
    config: &IptConfig,
) {
    for table in Table::ALL {
        let Some(saved) = found.get(table.name()) else { continue };
        for chain in saved.chains.iter().filter(|c| is_ours(c)) {
            let key = (table, chain.clone());
            if !input.writes.contains_key(&key) {
                input.deletes.push(key);
            }
        }
    }
    let wanted = jumps(family, config);
    // Jumps of ours no longer wanted (the configuration changed across the restart) go
    // first: the chains they point at may be deleted below.
    for table in Table::ALL {
        let Some(saved) = found.get(table.name()) else { continue };
        for (chain, spec) in &saved.rules {
            let ours = spec.contains(JUMP_COMMENT) && spec.split_whitespace().last().is_some_and(is_ours);
            if ours && !wanted.iter().any(|j| j.table == table && j.builtin == chain && same_jump(spec, &j.spec)) {
                input.unjumps.push(Jump { table, builtin: builtin_name(chain), spec: spec.clone() });
            }
        }
    }
    for jump in wanted {
        let present = found
            .get(jump.table.name())
            .is_some_and(|t| t.rules.iter().any(|(c, spec)| c == jump.builtin && same_jump(spec, &jump.spec)));
        if !present {
            input.jumps.push(jump);
        }
    }
}

/// Whether a saved rule is the jump `spec` (iptables-save may reorder or quote parts: the
/// comment and the target decide).
fn same_jump(saved: &str, spec: &str) -> bool {
    let target = |s: &str| s.rsplit("-j ").next().map(str::trim).map(str::to_owned);
    saved.contains(JUMP_COMMENT)
        && target(saved) == target(spec)
        && saved.contains("--ctstate NEW") == spec.contains("--ctstate NEW")
}

impl Backend for IptablesBackend {
    fn mode(&self) -> &'static str {
        "iptables"
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let result = match request {
            SyncRequest::Changes(diff) if self.started && !self.last_failed => self.sync_changes(state, diff),
            _ => self.sync_full(state),
        };
        self.last_failed = result.is_err();
        let operations = result?;
        debug!(operations, "iptables restore applied");
        self.stale_udp.after_sync(state);
        let kernel_objects =
            self.families.iter().map(|f| f.committed.values().map(|r| 1 + r.len()).sum::<usize>()).sum();
        Ok(SyncReport {
            service_ports: state.len(),
            endpoints: state.endpoint_count(),
            operations,
            kernel_objects,
            refused: self.refused.clone(),
            events: Vec::new(),
        })
    }

    /// Read from the kernel (`iptables-save` and `ip6tables-save` of the variant), not
    /// from what was committed: src/status.rs says how the tables are read.
    fn status(&mut self) -> Result<Vec<ProgrammedFrontend>, BackendError> {
        let mut out = Vec::new();
        for family in FAMILIES {
            out.extend(crate::status::frontends(&self.tool.save(family)?));
        }
        out.sort();
        Ok(out)
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        let mut report = CleanupReport::default();
        for family in FAMILIES {
            let found = parse_save(&self.tool.save(family)?);
            let mut input = RestoreInput::default();
            for table in Table::ALL {
                let Some(saved) = found.get(table.name()) else { continue };
                for (chain, spec) in &saved.rules {
                    if spec.contains(JUMP_COMMENT) && spec.split_whitespace().last().is_some_and(is_ours) {
                        input.unjumps.push(Jump { table, builtin: builtin_name(chain), spec: spec.clone() });
                    }
                }
                for chain in saved.chains.iter().filter(|c| is_ours(c)) {
                    input.deletes.push((table, chain.clone()));
                    report.removed.push(format!("chain {chain} ({} {})", family_tool(family), table.name()));
                }
            }
            if !input.is_empty() {
                self.tool.restore(family, &input.text())?;
                info!(
                    family = family_tool(family),
                    chains = input.deletes.len(),
                    "kube-ferry's iptables chains removed"
                );
            }
        }
        self.families = Default::default();
        self.started = false;
        Ok(report)
    }
}

fn family_tool(family: IpFamily) -> &'static str {
    if family == IpFamily::V4 {
        "iptables"
    } else {
        "ip6tables"
    }
}

fn builtin_name(chain: &str) -> &'static str {
    ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"].into_iter().find(|b| *b == chain).unwrap_or("OUTPUT")
}
