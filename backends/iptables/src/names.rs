//! Chain names: KUBE-style, deterministic, within iptables' 28-character limit.
//!
//! A service port's chains are `KUBE-SVC-`, `KUBE-EXT-`, `KUBE-CLU-` and `KUBE-FW-` followed
//! by 13 base-32 characters of an FNV-1a hash of the whole service port id (a fixed
//! algorithm: names survive upgrades). Rules carry a comment naming the port, so
//! `iptables-save` reads as kube-proxy's does.

use std::hash::Hasher;
use std::net::IpAddr;

use ferry_model::{IpFamily, ServicePortId};

/// The hash part of a service port's chain names (13 characters, 64 bits).
pub fn port_hash(id: &ServicePortId) -> String {
    let mut h = fnv::FnvHasher::default();
    for part in [&*id.service.namespace, &*id.service.name, &*id.port_name, id.protocol.as_str()] {
        h.write(part.as_bytes());
        h.write(b"/");
    }
    h.write(if id.family == IpFamily::V4 { b"4" } else { b"6" });
    base32(h.finish())
}

/// The hash of a service port and one of its endpoints: names its affinity list.
pub fn endpoint_hash(id: &ServicePortId, ip: IpAddr, port: u16) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(port_hash(id).as_bytes());
    h.write(ip.to_string().as_bytes());
    h.write(&port.to_be_bytes());
    base32(h.finish())
}

fn base32(mut v: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(char::from(ALPHABET[(v & 31) as usize]));
        v >>= 5;
    }
    out
}

/// `PREFIX-HASH` for a service port (`KUBE-SVC-...`).
pub fn port_chain(prefix: &str, id: &ServicePortId) -> String {
    format!("{prefix}-{}", port_hash(id))
}

/// The comment on a service port's rules: `namespace/name:port` (the port's name, or its
/// number when unnamed), and what the rule is for.
pub fn comment(id: &ServicePortId, port: u16, what: &str) -> String {
    let port_part = if id.port_name.is_empty() { port.to_string() } else { id.port_name.to_string() };
    format!("-m comment --comment \"{}/{}:{port_part} {what}\"", id.service.namespace, id.service.name)
}

/// Prefixes of per-port chains.
pub const PORT_CHAIN_PREFIXES: [&str; 4] = ["KUBE-SVC-", "KUBE-EXT-", "KUBE-CLU-", "KUBE-FW-"];
/// Prefixes of dispatch-tree chains.
pub const TREE_CHAIN_PREFIXES: [&str; 2] = ["KUBE-DST-", "KUBE-NP-"];

/// Whether a chain of that name is one kube-ferry makes (fixed, per port or tree).
pub fn is_ours(name: &str) -> bool {
    crate::render::FIXED_CHAINS.iter().any(|(_, c)| *c == name)
        || PORT_CHAIN_PREFIXES.iter().chain(&TREE_CHAIN_PREFIXES).any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::{Protocol, ServiceName};

    fn id(ns: &str, name: &str, proto: Protocol) -> ServicePortId {
        ServicePortId {
            service: ServiceName::new(ns, name),
            port_name: "http".into(),
            protocol: proto,
            family: IpFamily::V4,
        }
    }

    #[test]
    fn names_are_stable_unique_and_short_enough() {
        let a = port_chain("KUBE-SVC", &id("demo", "web", Protocol::Tcp));
        assert_eq!(a, port_chain("KUBE-SVC", &id("demo", "web", Protocol::Tcp)));
        assert_eq!(a.len(), 22);
        assert!(a.len() <= 28, "iptables chain names are at most 28 characters");
        assert_ne!(a, port_chain("KUBE-SVC", &id("demo", "web", Protocol::Udp)));
        assert_ne!(port_hash(&id("a-b", "c", Protocol::Tcp)), port_hash(&id("a", "b-c", Protocol::Tcp)));
        assert!(is_ours(&a) && is_ours("KUBE-SERVICES") && !is_ours("KUBE-KUBELET-CANARY") && !is_ours("FOREIGN"));
    }
}
