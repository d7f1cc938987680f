//! What a backend reads back from the kernel for `kube-ferry status` (B32): every
//! frontend it finds programmed, with the endpoints the kernel would send traffic to.
//! Each backend fills these from its own kernel objects; one printer shows them in the
//! same layout for every mode.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::protocol::Protocol;

/// One frontend as the kernel holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ProgrammedFrontend {
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The address traffic is caught on; `None` for a NodePort on every node address.
    pub address: Option<IpAddr>,
    /// The port traffic is caught on.
    pub port: u16,
    /// Where new connections go, sorted, without repeats; empty when the kernel rejects
    /// or drops them ([`ProgrammedFrontend::verdict`]).
    pub endpoints: Vec<SocketAddr>,
    /// Without endpoints: what the kernel does instead (`reject`, `drop`), if it says.
    pub verdict: Option<String>,
}

impl ProgrammedFrontend {
    /// A frontend with `endpoints` (sorted and deduplicated here).
    pub fn new(protocol: Protocol, address: Option<IpAddr>, port: u16, mut endpoints: Vec<SocketAddr>) -> Self {
        endpoints.sort();
        endpoints.dedup();
        ProgrammedFrontend { protocol, address, port, endpoints, verdict: None }
    }

    /// The frontend as `ADDR:PORT` (`[v6]:PORT`; `*:PORT` for every node address).
    pub fn frontend_text(&self) -> String {
        match self.address {
            Some(IpAddr::V4(a)) => format!("{a}:{}", self.port),
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
            None => format!("*:{}", self.port),
        }
    }
}

/// The table `kube-ferry status` prints: one line per frontend, sorted by protocol,
/// address and port, the same for every mode.
pub fn status_table(mode: &str, frontends: &[ProgrammedFrontend]) -> String {
    let mut rows: Vec<&ProgrammedFrontend> = frontends.iter().collect();
    rows.sort();
    let mut out = format!("# kube-ferry status --mode {mode}: {} frontends, read from the kernel\n", rows.len());
    let _ = writeln!(out, "{:<5} {:<40} ENDPOINTS", "PROTO", "FRONTEND");
    for f in rows {
        let endpoints = if f.endpoints.is_empty() {
            format!("(none: {})", f.verdict.as_deref().unwrap_or("no endpoints"))
        } else {
            f.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "{:<5} {:<40} {endpoints}", f.protocol.to_string(), f.frontend_text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_layout_sorted_with_node_ports_and_rejects() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mut none = ProgrammedFrontend::new(Protocol::Udp, Some("10.96.0.11".parse().unwrap()), 53, vec![]);
        none.verdict = Some("reject".into());
        let rows = [
            ProgrammedFrontend::new(Protocol::Tcp, None, 30080, vec![sa("10.244.1.5:8080")]),
            none,
            ProgrammedFrontend::new(
                Protocol::Tcp,
                Some("10.96.0.10".parse().unwrap()),
                80,
                vec![sa("10.244.2.5:8080"), sa("10.244.1.5:8080"), sa("10.244.1.5:8080")],
            ),
        ];
        let text = status_table("nftables", &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# kube-ferry status --mode nftables: 3 frontends, read from the kernel");
        assert!(lines[2].starts_with("TCP   *:30080") || lines[2].starts_with("TCP   10.96.0.10:80"), "{text}");
        assert!(text.contains("10.96.0.10:80                            10.244.1.5:8080, 10.244.2.5:8080"), "{text}");
        assert!(text.contains("UDP   10.96.0.11:53                            (none: reject)"), "{text}");
    }
}
