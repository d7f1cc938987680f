//! `kube-ferry status` for `--mode iptables` (B32): what the kernel's tables do with each
//! frontend, read from one family's `iptables-save` output (never from what kube-ferry
//! thinks it committed). Pure: save text in, frontends out.
//!
//! The reading follows the packet, not the comments (they are off above 1,000 service
//! ports) and not the per-port chain names:
//!
//! - **Frontends**: nat `KUBE-SERVICES` and the tree below it (`-d MASK -j KUBE-DST-...`):
//!   each `-d ADDR/32 -p P --dport N -j CHAIN` is one frontend; a rule with
//!   `--dst-type LOCAL` leads to the NodePorts (`KUBE-NODEPORTS` and its port-range
//!   chains): each `-p P --dport N -j CHAIN` is one, with no address. The first rule for a
//!   frontend wins, as in the kernel.
//! - **Endpoints**: the chain a frontend jumps to is walked as a packet from outside would
//!   walk it: a client that is not on the node and not in the cluster CIDR, inside the
//!   load-balancer source ranges. So `-s RANGE` is taken in a `KUBE-FW-` chain (an allowed
//!   client) and not elsewhere (there it names the pods of the cluster CIDR: the Local
//!   policy's way to all endpoints); `! -s ...` is taken; `--src-type LOCAL` is not (the
//!   node's own traffic). For `externalTrafficPolicy: Local` that is the node's local
//!   endpoints, for an internal-Local port's NodePort the cluster-wide `KUBE-CLU-` choice,
//!   for its ClusterIP the local ones. Every `DNAT --to-destination` a rule that may match
//!   (`statistic`, a `recent --update`) is collected; the walk of a chain ends at a DNAT
//!   that surely matches, and resumes in the calling chain when a chain runs out.
//! - **Verdicts**: filter `KUBE-SERVICES` (its tree) and `KUBE-EXTERNAL-SERVICES` read the
//!   same way: a frontend's `-j REJECT` / `-j DROP` is its verdict when nat sends it
//!   nowhere. A frontend only filter names (no nat rule) is listed with its verdict.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use ferry_model::{ProgrammedFrontend, Protocol};
use ipnet::IpNet;

use crate::render::SERVICES;
use crate::restore::{parse_save, SavedTable};

/// Chains deeper than this are not followed (kube-ferry's are at most a few levels; a loop
/// of jumps is refused by iptables itself, this only keeps a hand-made table finite).
const MAX_DEPTH: usize = 16;

/// Every frontend one family's `iptables-save` output programs, with the endpoints a new
/// connection from outside can be sent to, or the filter table's verdict.
pub(crate) fn frontends(save: &str) -> Vec<ProgrammedFrontend> {
    let tables = parse_save(save);
    let nat = Chains::of(tables.get("nat"));
    let filter = Chains::of(tables.get("filter"));
    let mut verdicts: BTreeMap<Key, &'static str> = BTreeMap::new();
    for entry in filter.dispatch() {
        let verdict = match entry.rule.target.as_deref() {
            Some("REJECT") => "reject",
            Some("DROP") => "drop",
            _ => continue,
        };
        verdicts.entry(entry.key()).or_insert(verdict);
    }
    let mut out: BTreeMap<Key, ProgrammedFrontend> = BTreeMap::new();
    for entry in nat.dispatch() {
        let key = entry.key();
        if out.contains_key(&key) {
            continue;
        }
        let mut endpoints = Vec::new();
        nat.follow(entry.rule, &entry, &mut endpoints, 0);
        let mut frontend = ProgrammedFrontend::new(entry.protocol, entry.address, entry.port, endpoints);
        if frontend.endpoints.is_empty() {
            frontend.verdict = verdicts.get(&key).map(|v| (*v).to_owned());
        }
        out.insert(key, frontend);
    }
    for (key @ (protocol, address, port), verdict) in verdicts {
        out.entry(key).or_insert_with(|| ProgrammedFrontend {
            verdict: Some(verdict.to_owned()),
            ..ProgrammedFrontend::new(protocol, address, port, Vec::new())
        });
    }
    out.into_values().collect()
}

/// A frontend's identity within one family.
type Key = (Protocol, Option<IpAddr>, u16);

/// One option of a rule as `iptables-save` prints it: `[!] --name [values...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    name: String,
    negated: bool,
    values: Vec<String>,
}

/// One rule: its matches, its target and the target's options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Rule {
    matches: Vec<Opt>,
    target: Option<String>,
    target_opts: Vec<Opt>,
}

impl Rule {
    fn parse(spec: &str) -> Rule {
        let mut rule = Rule::default();
        let mut negated = false;
        let mut in_target = false;
        let mut tokens = tokens(spec).into_iter().peekable();
        while let Some(token) = tokens.next() {
            if token == "!" {
                negated = true;
                continue;
            }
            if token == "-j" || token == "-g" {
                rule.target = tokens.next();
                in_target = true;
                continue;
            }
            let mut opt = Opt { name: token, negated: std::mem::take(&mut negated), values: Vec::new() };
            while let Some(value) = tokens.next_if(|t| t != "!" && !t.starts_with('-')) {
                opt.values.push(value);
            }
            if in_target {
                rule.target_opts.push(opt);
            } else {
                rule.matches.push(opt);
            }
        }
        rule
    }

    fn find(&self, names: &[&str]) -> Option<&Opt> {
        self.matches.iter().find(|o| names.contains(&o.name.as_str()))
    }

    fn value(&self, names: &[&str]) -> Option<&str> {
        self.find(names).filter(|o| !o.negated).and_then(|o| o.values.first()).map(String::as_str)
    }

    fn protocol(&self) -> Option<Protocol> {
        match self.value(&["-p", "--protocol"])? {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// `--dport N` as (N, N) or `--dport A:B` as (A, B).
    fn dport(&self) -> Option<(u16, u16)> {
        let text = self.value(&["--dport", "--destination-port"])?;
        match text.split_once(':') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => text.parse().ok().map(|p| (p, p)),
        }
    }

    /// `-d ADDR/32` (or `/128`): the one address it names.
    fn host(&self) -> Option<IpAddr> {
        let net: IpNet = self.value(&["-d", "--destination"])?.parse().ok()?;
        (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
    }

    fn selects_local_destinations(&self) -> bool {
        self.find(&["--dst-type"]).is_some_and(|o| !o.negated && o.values.iter().any(|v| v == "LOCAL"))
    }

    /// Whether a new connection of `protocol` from outside (see the module's doc) matches,
    /// in chain `chain`.
    fn fits(&self, protocol: Protocol, chain: &str) -> Fit {
        let mut fit = Fit::Yes;
        for opt in &self.matches {
            let this = match opt.name.as_str() {
                "-p" | "--protocol" => {
                    let same = opt.values.first().map(String::as_str) == Some(protocol.as_str());
                    if same != opt.negated {
                        Fit::Yes
                    } else {
                        Fit::No
                    }
                }
                "-s" | "--source" if opt.negated || chain.starts_with("KUBE-FW-") => Fit::Yes,
                "-s" | "--source" => Fit::No,
                "--src-type" if opt.values.iter().any(|v| v == "LOCAL") => {
                    if opt.negated {
                        Fit::Yes
                    } else {
                        Fit::No
                    }
                }
                // Module names, comments, and `recent --set` (it records, always matches).
                "-m" | "--match" | "--comment" | "--set" | "--name" | "--mask" | "--rsource" | "--rdest" => Fit::Yes,
                // `statistic`, `recent --update`, anything else: this packet may match.
                _ => Fit::Maybe,
            };
            fit = fit.and(this);
        }
        fit
    }
}

/// Whether a packet matches a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    Yes,
    No,
    Maybe,
}

impl Fit {
    fn and(self, other: Fit) -> Fit {
        match (self, other) {
            (Fit::No, _) | (_, Fit::No) => Fit::No,
            (Fit::Maybe, _) | (_, Fit::Maybe) => Fit::Maybe,
            _ => Fit::Yes,
        }
    }
}

/// Splits a rule spec into words as a shell would: `"..."` quoted (with `\"` and `\\`
/// escapes, as `iptables-save` writes comments).
fn tokens(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => word.extend(chars.next()),
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// A frontend rule found in a dispatch tree.
struct Entry<'a> {
    protocol: Protocol,
    address: Option<IpAddr>,
    port: u16,
    rule: &'a Rule,
}

impl Entry<'_> {
    fn key(&self) -> Key {
        (self.protocol, self.address, self.port)
    }
}

/// One table's chains, each with its rules in order.
struct Chains {
    chains: HashMap<String, Vec<Rule>>,
}

impl Chains {
    fn of(saved: Option<&SavedTable>) -> Chains {
        let mut chains: HashMap<String, Vec<Rule>> = HashMap::new();
        if let Some(saved) = saved {
            for name in &saved.chains {
                chains.entry(name.clone()).or_default();
            }
            for (chain, spec) in &saved.rules {
                chains.entry(chain.clone()).or_default().push(Rule::parse(spec));
            }
        }
        Chains { chains }
    }

    /// The chain a rule jumps to, if it is a chain of this table (not a built-in target).
    fn chain_target<'a>(&self, rule: &'a Rule) -> Option<&'a str> {
        rule.target.as_deref().filter(|t| self.chains.contains_key(*t))
    }

    /// Every frontend rule of `KUBE-SERVICES`, its address tree and the NodePorts it
    /// leads to, in the kernel's order.
    fn dispatch(&self) -> Vec<Entry<'_>> {
        let mut out = Vec::new();
        self.address_tree(SERVICES, &mut out, 0);
        out
    }

    fn address_tree<'a>(&'a self, chain: &str, out: &mut Vec<Entry<'a>>, depth: usize) {
        let Some(rules) = self.chains.get(chain).filter(|_| depth < MAX_DEPTH) else { return };
        for rule in rules {
            let target = self.chain_target(rule);
            if rule.selects_local_destinations() {
                // NodePorts (nat) or their rejects (filter KUBE-EXTERNAL-SERVICES).
                if let Some(target) = target {
                    self.port_tree(target, out, depth + 1);
                }
            } else if let (Some(address), Some(protocol), Some((port, last))) =
                (rule.host(), rule.protocol(), rule.dport())
            {
                if port == last {
                    out.push(Entry { protocol, address: Some(address), port, rule });
                }
            } else if let (Some(target), None) = (target, rule.dport()) {
                // A tree node: `-d 0.0.0.5/0.0.0.15 -j KUBE-DST-5`.
                self.address_tree(target, out, depth + 1);
            }
        }
    }

    fn port_tree<'a>(&'a self, chain: &str, out: &mut Vec<Entry<'a>>, depth: usize) {
        let Some(rules) = self.chains.get(chain).filter(|_| depth < MAX_DEPTH) else { return };
        for rule in rules {
            let (Some(protocol), Some((port, last))) = (rule.protocol(), rule.dport()) else { continue };
            if port == last {
                out.push(Entry { protocol, address: None, port, rule });
            } else if let Some(target) = self.chain_target(rule) {
                // A port range: `--dport 30720:30975 -j KUBE-NP-TCP-78`.
                self.port_tree(target, out, depth + 1);
            }
        }
    }

    /// What `rule`'s target does with the entry's packet (it matched): DNAT targets are
    /// added to `endpoints`; a chain is walked. True when the packet surely ends there.
    fn follow(&self, rule: &Rule, entry: &Entry<'_>, endpoints: &mut Vec<SocketAddr>, depth: usize) -> bool {
        match rule.target.as_deref() {
            Some("DNAT") => {
                endpoints.extend(dnat_destination(rule, entry.port));
                true
            }
            Some("DROP" | "REJECT" | "ACCEPT") => true,
            _ => match self.chain_target(rule) {
                Some(chain) if depth < MAX_DEPTH => self.walk(chain, entry, endpoints, depth + 1),
                _ => false,
            },
        }
    }

    /// Walks `chain` for the entry's packet; true when it surely ends in it (not back in
    /// the caller).
    fn walk(&self, chain: &str, entry: &Entry<'_>, endpoints: &mut Vec<SocketAddr>, depth: usize) -> bool {
        for rule in self.chains.get(chain).into_iter().flatten() {
            let fit = rule.fits(entry.protocol, chain);
            if fit == Fit::No {
                continue;
            }
            if rule.target.as_deref() == Some("RETURN") {
                if fit == Fit::Yes {
                    return false;
                }
                continue;
            }
            if self.follow(rule, entry, endpoints, depth) && fit == Fit::Yes {
                return true;
            }
        }
        false
    }
}

/// `--to-destination ADDR:PORT` (`[v6]:PORT`); a bare address keeps the frontend's port.
fn dnat_destination(rule: &Rule, port: u16) -> Option<SocketAddr> {
    let to = rule.target_opts.iter().find(|o| o.name == "--to-destination")?.values.first()?;
    to.parse::<SocketAddr>().ok().or_else(|| {
        let bare = to.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
    })
}

#[cfg(test)]
mod tests;
