//! # ferry-conntrack: stale UDP flows, found and deleted (B25)
//!
//! UDP has no connection to end: once a flow is in conntrack, every datagram with the
//! same addresses follows the cached translation. So when a UDP endpoint goes away, the
//! entries that DNAT to it must be deleted, or its clients keep sending into the void;
//! and when a UDP service goes from no endpoints to some, the entries that cached the
//! reject must go too. TCP entries are never touched.
//!
//! [`UdpFlows`] is pure: it remembers every UDP service port's frontends and endpoints
//! and, given the new state, says which [`FlowFilter`]s to delete. [`ConntrackTool`]
//! deletes them with the `conntrack` tool.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use ferry_model::{Protocol, ProxyState, ServicePortId};
use tracing::{debug, warn};

/// One `conntrack -D` selection of UDP entries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowFilter {
    /// The original destination address, if the filter names one (a NodePort filter
    /// does not: it matches the port on every node address).
    pub orig_dst: Option<IpAddr>,
    /// The original destination port.
    pub orig_port: u16,
    /// The endpoint the entry was translated to; `None` selects every entry to the
    /// frontend (used when a service had no endpoints: its entries cache the reject).
    pub reply_src: Option<SocketAddr>,
}

impl FlowFilter {
    /// The `conntrack` arguments selecting these entries.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["-D".into(), "-p".into(), "udp".into()];
        if let Some(dst) = self.orig_dst {
            let flag = if dst.is_ipv6() { "-f" } else { "" };
            if !flag.is_empty() {
                args.extend([flag.into(), "ipv6".into()]);
            }
            args.extend(["--orig-dst".into(), dst.to_string()]);
        }
        args.extend(["--orig-port-dst".into(), self.orig_port.to_string()]);
        if let Some(ep) = self.reply_src {
            if self.orig_dst.is_none() && ep.is_ipv6() {
                args.extend(["-f".into(), "ipv6".into()]);
            }
            args.extend(["--reply-src".into(), ep.ip().to_string(), "--reply-port-src".into(), ep.port().to_string()]);
        }
        args
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct UdpPort {
    frontends: Vec<(Option<IpAddr>, u16)>,
    endpoints: BTreeSet<SocketAddr>,
}

/// What the kernel was last programmed with, for UDP service ports only.
#[derive(Clone, Debug, Default)]
pub struct UdpFlows {
    ports: BTreeMap<ServicePortId, UdpPort>,
}

impl UdpFlows {
    /// Nothing known yet: the first update deletes nothing.
    pub fn new() -> UdpFlows {
        UdpFlows::default()
    }

    /// Records `state` as programmed and returns the entries that became stale.
    pub fn update(&mut self, state: &ProxyState) -> BTreeSet<FlowFilter> {
        let mut stale = BTreeSet::new();
        let mut next = BTreeMap::new();
        for (id, port) in state.ports().filter(|(id, _)| id.protocol == Protocol::Udp) {
            let mut frontends = vec![(Some(port.cluster_ip), port.port)];
            frontends.extend(port.external_ips.iter().chain(&port.load_balancer_ips).map(|ip| (Some(*ip), port.port)));
            if let Some(np) = port.node_port {
                frontends.push((None, np));
            }
            // Endpoints that can receive traffic (any selected set).
            let endpoints: BTreeSet<SocketAddr> =
                port.endpoints.iter().filter(|e| e.in_cluster_set || e.in_local_set).map(|e| e.addr()).collect();
            let now = UdpPort { frontends, endpoints };
            if let Some(before) = self.ports.get(id) {
                stale.extend(stale_between(before, &now));
            }
            next.insert(id.clone(), now);
        }
        // Ports that disappeared: their endpoints' entries go too.
        for (id, before) in &self.ports {
            if !next.contains_key(id) {
                let gone = UdpPort { frontends: before.frontends.clone(), endpoints: BTreeSet::new() };
                stale.extend(stale_between(before, &gone));
            }
        }
        self.ports = next;
        stale
    }
}

fn stale_between(before: &UdpPort, now: &UdpPort) -> Vec<FlowFilter> {
    let mut out = Vec::new();
    for ep in before.endpoints.difference(&now.endpoints) {
        for (dst, port) in &before.frontends {
            out.push(FlowFilter { orig_dst: *dst, orig_port: *port, reply_src: Some(*ep) });
        }
    }
    if before.endpoints.is_empty() && !now.endpoints.is_empty() {
        for (dst, port) in &now.frontends {
            if dst.is_some() {
                out.push(FlowFilter { orig_dst: *dst, orig_port: *port, reply_src: None });
            }
        }
    }
    out
}

/// The `conntrack` tool (Debian package conntrack).
#[derive(Clone, Debug)]
pub struct ConntrackTool {
    path: PathBuf,
}

impl Default for ConntrackTool {
    fn default() -> Self {
        let path = ["/usr/sbin/conntrack", "/sbin/conntrack"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("conntrack"));
        ConntrackTool { path }
    }
}

impl ConntrackTool {
    /// Deletes the entries each filter selects. Failures are logged, not returned: a
    /// stale entry costs a client a retry, never the sync.
    pub fn delete(&self, filters: &BTreeSet<FlowFilter>) -> usize {
        let mut deleted = 0;
        for filter in filters {
            let args = filter.args();
            match Command::new(&self.path).args(&args).output() {
                // conntrack exits 1 when nothing matched: not an error here.
                Ok(out) if out.status.success() || out.status.code() == Some(1) => {
                    let text = String::from_utf8_lossy(&out.stderr);
                    let n = text.split_whitespace().next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
                    deleted += n;
                    debug!(?args, n, "conntrack entries deleted");
                }
                Ok(out) => warn!(?args, stderr = %String::from_utf8_lossy(&out.stderr), "conntrack -D failed"),
                Err(e) => {
                    warn!(error = %e, "cannot run conntrack (install the Debian package conntrack); stale UDP flows stay")
                }
            }
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_fixtures::{service, slice};
    use ferry_model::{ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};

    fn state(b: &mut StateBuilder, eps: &[&str]) {
        let svc = service("d", "dns")
            .type_("NodePort")
            .cluster_ip("10.96.0.53")
            .node_port("dns", 53, "UDP", 30053)
            .port("tcp", 53, "TCP")
            .build();
        let mut s = slice("d", "dns-1", "dns", "IPv4").port("dns", 5353, "UDP").port("tcp", 5353, "TCP");
        for e in eps {
            s = s.ready(e, "n");
        }
        b.set_service(ServiceName::new("d", "dns"), Some(ServiceSpec::admit(&svc)));
        b.set_slice(SliceName::new("d", "dns-1"), Some(SliceSpec::admit(&s.build())));
        b.rebuild();
    }

    #[test]
    fn removed_udp_endpoints_and_first_endpoints_make_entries_stale_never_tcp() {
        let mut b = StateBuilder::new("n");
        let mut flows = UdpFlows::new();
        state(&mut b, &[]);
        assert!(flows.update(b.state()).is_empty(), "nothing known before: nothing stale");
        state(&mut b, &["10.244.1.5"]);
        let stale: Vec<Vec<String>> = flows.update(b.state()).iter().map(FlowFilter::args).collect();
        assert_eq!(
            stale,
            vec![vec!["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53"]],
            "0 -> 1: the cached rejects go"
        );
        state(&mut b, &["10.244.1.6"]);
        let stale: Vec<Vec<String>> = flows.update(b.state()).iter().map(FlowFilter::args).collect();
        assert_eq!(
            stale,
            vec![
                vec![
                    "-D",
                    "-p",
                    "udp",
                    "--orig-port-dst",
                    "30053",
                    "--reply-src",
                    "10.244.1.5",
                    "--reply-port-src",
                    "5353"
                ],
                vec![
                    "-D",
                    "-p",
                    "udp",
                    "--orig-dst",
                    "10.96.0.53",
                    "--orig-port-dst",
                    "53",
                    "--reply-src",
                    "10.244.1.5",
                    "--reply-port-src",
                    "5353"
                ],
            ]
        );
        assert!(flows.update(b.state()).is_empty(), "no change, nothing stale");
    }
}

/// What a kernel backend runs after each successful sync: [`UdpFlows`] finds the stale
/// entries, [`ConntrackTool`] deletes them. After the rules changed, not before: an entry
/// deleted earlier could be re-created through the old rules (B25).
#[derive(Debug, Default)]
pub struct StaleUdpCleaner {
    flows: UdpFlows,
    tool: ConntrackTool,
}

impl StaleUdpCleaner {
    /// Deletes the entries `state` made stale; returns how many filters were applied.
    pub fn after_sync(&mut self, state: &ProxyState) -> usize {
        let stale = self.flows.update(state);
        if !stale.is_empty() {
            let deleted = self.tool.delete(&stale);
            debug!(filters = stale.len(), deleted, "stale UDP conntrack entries deleted");
        }
        stale.len()
    }
}
