//! `kube-ferry status --mode nftables` (B32): every frontend read back from the kernel's
//! `ip` and `ip6` tables (never from the backend's committed copy), with the endpoints a
//! new connection to it can be DNATed to.
//!
//! Where a frontend is found (docs/nftables.md has the shape):
//! - `service-ips` (`addr . proto . port : goto CHAIN`): ClusterIPs, external IPs and
//!   load-balancer IPs of chain-routed ports; `service-nodeports` (`proto . port : goto
//!   CHAIN`): NodePorts, on every node address (`address: None`).
//! - `spread-PROTO-N` (`addr . port`): map-held ports with N endpoints, endpoint k being
//!   the `endpoints-PROTO` element `addr . port . k`.
//! - `no-endpoint-[nodeport-]reject` / `-drop`: frontends whose traffic is rejected or
//!   dropped after DNAT ([`ProgrammedFrontend::verdict`], when no endpoint was found).
//!
//! **Which path is followed.** A chain-routed frontend's chain is walked rule by rule:
//! every literal `dnat to ADDR:PORT` is an endpoint (the `numgen` choice rules, the
//! ClientIP-affinity rules), `goto`/`jump` targets and the verdicts of a `vmap` (an
//! anonymous `numgen ... vmap { }` or a named map) are walked too, and a rule without
//! matches that ends the chain (`goto`, `return`, a verdict, a DNAT) stops the walk. A
//! frontend can have several paths (the `ext-` chain of a Local external policy sends the
//! node's own traffic and the pod network's to the cluster-wide choice). The endpoints
//! listed are those of **a packet from outside the cluster**: not from the node itself
//! and not from the pod network. So rules matching `fib saddr type local` or `ip saddr ==
//! ADDRESSES` (a literal address, prefix or anonymous set, as opposed to an affinity
//! set `@aff...`) are skipped; for a Local external policy that leaves the local
//! endpoints, which is what a client outside sees. ClusterIP chains have one path.
//!
//! The parser ([`parse_listings`]) is a pure function of `nft -j` text; [`read_status`]
//! runs the tool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use ferry_model::{BackendError, ProgrammedFrontend, Protocol};
use serde_json::Value;

use crate::nft::NftRunner;
use crate::ruleset::TableFamily;

// The names `render/base.rs` gives these maps and sets (its constants are private to
// `render`; a test checks these against the rendered base table).
const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_REJECT: &str = "no-endpoint-reject";
const NO_ENDPOINT_DROP: &str = "no-endpoint-drop";
const NO_ENDPOINT_NODEPORT_REJECT: &str = "no-endpoint-nodeport-reject";
const NO_ENDPOINT_NODEPORT_DROP: &str = "no-endpoint-nodeport-drop";

/// Lists `ip TABLE` and `ip6 TABLE` through `tool` and parses them. A table that does not
/// exist holds no frontends: `nft -j list tables` is asked first, so a missing table is
/// told apart from a failing `nft` without reading its error text.
pub(crate) fn read_status(tool: &dyn NftRunner, table: &str) -> Result<Vec<ProgrammedFrontend>, BackendError> {
    let tables = tool.output(&["-j", "list", "tables"])?;
    let present = table_names(&tables)?;
    let mut listings = Vec::new();
    for family in [TableFamily::Ip, TableFamily::Ip6] {
        if present.contains(&(family.keyword().to_owned(), table.to_owned())) {
            listings.push(tool.output(&["-j", "list", "table", family.keyword(), table])?);
        }
    }
    parse_listings(&listings.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The `(family, name)` of every table in `nft -j list tables` output.
fn table_names(json: &str) -> Result<HashSet<(String, String)>, BackendError> {
    Ok(objects(json)?
        .iter()
        .filter_map(|o| o.get("table"))
        .filter_map(|t| Some((t.get("family")?.as_str()?.to_owned(), t.get("name")?.as_str()?.to_owned())))
        .collect())
}

/// The frontends of the tables listed in `listings` (each the output of `nft -j list
/// table FAMILY kube-ferry`), sorted. Each family's frontends are read on their own (a
/// dual-stack NodePort is one row per family, with that family's endpoints); rows that
/// say exactly the same thing are shown once.
pub(crate) fn parse_listings(listings: &[&str]) -> Result<Vec<ProgrammedFrontend>, BackendError> {
    let mut all = Vec::new();
    for json in listings {
        all.extend(Table::parse(json)?.frontends()?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// The objects of an `nft -j` listing (`{"nftables": [...]}`); empty text is none.
fn objects(json: &str) -> Result<Vec<Value>, BackendError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut value: Value =
        serde_json::from_str(json).map_err(|e| BackendError::Other(format!("nft -j printed what is not JSON: {e}")))?;
    match value.get_mut("nftables").map(Value::take) {
        Some(Value::Array(objects)) => Ok(objects),
        _ => Err(BackendError::Other("nft -j printed JSON without an \"nftables\" array".into())),
    }
}

/// One family's table as listed: its chains' rules (in order) and its sets' and maps'
/// elements.
#[derive(Default)]
struct Table {
    chains: HashMap<String, Vec<Vec<Value>>>,
    elements: HashMap<String, Vec<Value>>,
}

/// What a frontend collects while the table is read.
#[derive(Default)]
struct Found {
    endpoints: Vec<SocketAddr>,
    reject: bool,
    drop: bool,
}

type Key = (Protocol, Option<IpAddr>, u16);

impl Table {
    fn parse(json: &str) -> Result<Table, BackendError> {
        let mut table = Table::default();
        for object in objects(json)? {
            if let Some(rule) = object.get("rule") {
                let (Some(chain), Some(Value::Array(expr))) =
                    (rule.get("chain").and_then(Value::as_str), rule.get("expr"))
                else {
                    continue;
                };
                table.chains.entry(chain.to_owned()).or_default().push(expr.clone());
            }
            for kind in ["set", "map"] {
                let Some(set) = object.get(kind) else { continue };
                let Some(name) = set.get("name").and_then(Value::as_str) else { continue };
                let elements = match set.get("elem") {
                    Some(Value::Array(elements)) => elements.clone(),
                    _ => Vec::new(),
                };
                table.elements.insert(name.to_owned(), elements);
            }
        }
        Ok(table)
    }

    fn elements(&self, name: &str) -> &[Value] {
        self.elements.get(name).map_or(&[], Vec::as_slice)
    }

    fn frontends(&self) -> Result<Vec<ProgrammedFrontend>, BackendError> {
        let mut found: BTreeMap<Key, Found> = BTreeMap::new();
        // Chain-routed frontends: the dispatch maps' elements, each a goto to a chain.
        for (map, with_address) in [(SERVICE_IPS, true), (SERVICE_NODEPORTS, false)] {
            for element in self.elements(map) {
                let (key, verdict) = match element.as_array().map(Vec::as_slice) {
                    Some([key, verdict]) => (key, verdict),
                    _ => return Err(unreadable(map, element)),
                };
                let key = frontend_key(key, with_address).ok_or_else(|| unreadable(map, element))?;
                let entry = found.entry(key).or_default();
                if let Some(chain) = verdict_target(verdict) {
                    self.walk(chain, key.2, &mut HashSet::new(), &mut entry.endpoints);
                }
            }
        }
        // Map-held frontends: `spread-PROTO-N` says how many `endpoints-PROTO` slots.
        for (name, elements) in &self.elements {
            let Some((protocol, count)) = spread_set(name) else { continue };
            let slots = self.held_slots(protocol)?;
            for element in elements {
                let parts = concat(element);
                let (Some(address), Some(port)) =
                    (parts.first().and_then(|a| address(a)), parts.get(1).and_then(|p| port(p)))
                else {
                    return Err(unreadable(name, element));
                };
                let entry = found.entry((protocol, Some(address), port)).or_default();
                entry.endpoints.extend((0..count).filter_map(|slot| slots.get(&(address, port, slot)).copied()));
            }
        }
        // Frontends the filter hooks reject or drop after DNAT.
        for (set, with_address, reject) in [
            (NO_ENDPOINT_REJECT, true, true),
            (NO_ENDPOINT_DROP, true, false),
            (NO_ENDPOINT_NODEPORT_REJECT, false, true),
            (NO_ENDPOINT_NODEPORT_DROP, false, false),
        ] {
            for element in self.elements(set) {
                let key = frontend_key(element, with_address).ok_or_else(|| unreadable(set, element))?;
                let entry = found.entry(key).or_default();
                if reject {
                    entry.reject = true;
                } else {
                    entry.drop = true;
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|((protocol, address, port), f)| {
                let mut frontend = ProgrammedFrontend::new(protocol, address, port, f.endpoints);
                if frontend.endpoints.is_empty() {
                    // The reject rule comes first in every filter chain.
                    frontend.verdict = match (f.reject, f.drop) {
                        (true, _) => Some("reject".into()),
                        (false, true) => Some("drop".into()),
                        (false, false) => None,
                    };
                }
                frontend
            })
            .collect())
    }

    /// `endpoints-PROTO` as `(ClusterIP, port, slot) -> endpoint`.
    fn held_slots(&self, protocol: Protocol) -> Result<HashMap<(IpAddr, u16, u64), SocketAddr>, BackendError> {
        let map = format!("endpoints-{}", protocol.as_str());
        let mut slots = HashMap::new();
        for element in self.elements(&map) {
            let read = || {
                let [key, value] = element.as_array()?.as_slice() else { return None };
                let (key, value) = (concat(key), concat(value));
                let slot = (address(key.first()?)?, port(key.get(1)?)?, unwrap_element(key.get(2)?).as_u64()?);
                Some((slot, SocketAddr::new(address(value.first()?)?, port(value.get(1)?)?)))
            };
            let (slot, endpoint) = read().ok_or_else(|| unreadable(&map, element))?;
            slots.insert(slot, endpoint);
        }
        Ok(slots)
    }

    /// Collects into `out` the DNAT targets a packet from outside reaching `chain` can
    /// get (see the module doc). `port` is the frontend's, for a DNAT without a port.
    fn walk(&self, chain: &str, port: u16, seen: &mut HashSet<String>, out: &mut Vec<SocketAddr>) {
        if !seen.insert(chain.to_owned()) {
            return;
        }
        for rule in self.chains.get(chain).map_or(&[][..], Vec::as_slice) {
            if rule.iter().any(inside_only) {
                continue;
            }
            let mut ends_chain = false;
            for statement in rule {
                if let Some(dnat) = statement.get("dnat") {
                    ends_chain = true;
                    if let Some(ip) = dnat.get("addr").and_then(address) {
                        out.push(SocketAddr::new(ip, dnat.get("port").and_then(port_of).unwrap_or(port)));
                    }
                }
                if let Some(target) = verdict_target(statement) {
                    self.walk(target, port, seen, out);
                }
                if let Some(vmap) = statement.get("vmap") {
                    let verdicts: Vec<&Value> = match vmap.get("data") {
                        Some(Value::String(name)) => self
                            .elements(name.trim_start_matches('@'))
                            .iter()
                            .filter_map(|e| e.as_array().and_then(|kv| kv.get(1)))
                            .collect(),
                        Some(data) => data
                            .get("set")
                            .and_then(Value::as_array)
                            .map(|s| s.iter().filter_map(|e| e.as_array().and_then(|kv| kv.get(1))).collect())
                            .unwrap_or_default(),
                        None => Vec::new(),
                    };
                    for target in verdicts.into_iter().filter_map(verdict_target) {
                        self.walk(target, port, seen, out);
                    }
                }
                if ["goto", "return", "accept", "drop", "reject"].iter().any(|v| statement.get(v).is_some()) {
                    ends_chain = true;
                }
            }
            let unconditional = !rule.iter().any(|s| s.get("match").is_some());
            if unconditional && ends_chain {
                break;
            }
        }
        // `seen` guards against a loop on the current path only: a chain reached again by
        // another path is walked again (its endpoints are deduplicated).
        seen.remove(chain);
    }
}

/// Whether a statement restricts its rule to traffic from the node itself (`fib saddr
/// type local`) or from given sources (`ip saddr == ADDRESSES`), which a packet from
/// outside the cluster is not. Affinity lookups (`ip saddr @set`) are choices, not paths.
fn inside_only(statement: &Value) -> bool {
    let Some(m) = statement.get("match") else { return false };
    if m.get("op").and_then(Value::as_str).is_some_and(|op| op != "==" && op != "in") {
        return false;
    }
    let Some(left) = m.get("left") else { return false };
    if let Some(fib) = left.get("fib") {
        let saddr = fib.get("flags").and_then(Value::as_array).is_some_and(|f| f.iter().any(|f| f == "saddr"));
        return saddr
            && fib.get("result").and_then(Value::as_str) == Some("type")
            && m.get("right") == Some(&"local".into());
    }
    let saddr = left.get("payload").and_then(|p| p.get("field")).and_then(Value::as_str) == Some("saddr");
    let named_set = m.get("right").and_then(Value::as_str).is_some_and(|r| r.starts_with('@'));
    saddr && !named_set
}

/// The chain a `goto`/`jump` verdict names.
fn verdict_target(verdict: &Value) -> Option<&str> {
    ["goto", "jump"].iter().find_map(|v| verdict.get(v)?.get("target")?.as_str())
}

/// `spread-PROTO-N` as (protocol, N).
fn spread_set(name: &str) -> Option<(Protocol, u64)> {
    let (protocol, count) = name.strip_prefix("spread-")?.split_once('-')?;
    Some((protocol_named(protocol)?, count.parse().ok()?))
}

/// `addr . proto . port` (or `proto . port` for NodePorts) as a frontend.
fn frontend_key(key: &Value, with_address: bool) -> Option<Key> {
    let parts = concat(key);
    match (with_address, parts.as_slice()) {
        (true, [a, proto, p]) => Some((protocol(proto)?, Some(address(a)?), port(p)?)),
        (false, [proto, p]) => Some((protocol(proto)?, None, port(p)?)),
        _ => None,
    }
}

/// An element without its wrapper (`{"elem": {"val": ..., "timeout": ...}}` when it
/// carries a timeout, comment or counter).
fn unwrap_element(value: &Value) -> &Value {
    value.get("elem").and_then(|e| e.get("val")).unwrap_or(value)
}

/// The parts of a concatenation (`{"concat": [...]}`), or the value alone.
fn concat(value: &Value) -> Vec<&Value> {
    let value = unwrap_element(value);
    match value.get("concat").and_then(Value::as_array) {
        Some(parts) => parts.iter().collect(),
        None => vec![value],
    }
}

fn address(value: &Value) -> Option<IpAddr> {
    unwrap_element(value).as_str()?.parse().ok()
}

fn port(value: &Value) -> Option<u16> {
    port_of(unwrap_element(value))
}

/// A port as nft prints it: a number (or, from some versions, its digits as a string).
fn port_of(value: &Value) -> Option<u16> {
    match value {
        Value::Number(n) => n.as_u64()?.try_into().ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn protocol(value: &Value) -> Option<Protocol> {
    match unwrap_element(value) {
        Value::String(s) => protocol_named(s),
        Value::Number(n) => match n.as_u64()? {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        },
        _ => None,
    }
}

fn protocol_named(name: &str) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].into_iter().find(|p| p.as_str() == name)
}

fn unreadable(set: &str, element: &Value) -> BackendError {
    BackendError::Other(format!(
        "reading the kube-ferry table: an element of `{set}` is not in the shape this kube-ferry writes: {element} \
         (was the table written by another version? `kube-ferry cleanup` and a restart rewrite it)"
    ))
}

#[cfg(test)]
mod tests;
