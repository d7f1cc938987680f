//! Chain and set names: deterministic, unique, and readable by an operator.
//!
//! A name is `PREFIX-HASH-namespace/name/protocol/port`: the hash (FNV-1a over the whole
//! service port id, a fixed algorithm so names survive upgrades) makes it unique, the
//! rest says what it is in `nft list table`.

use std::hash::Hasher;
use std::net::SocketAddr;

use ferry_model::ServicePortId;

/// The hash part of a service port's names: eight base-32 characters.
pub fn port_hash(id: &ServicePortId) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(id.service.namespace.as_bytes());
    h.write(b"/");
    h.write(id.service.name.as_bytes());
    h.write(b"/");
    h.write(id.port_name.as_bytes());
    h.write(b"/");
    h.write(id.protocol.as_str().as_bytes());
    h.write(match id.family {
        ferry_model::IpFamily::V4 => b"/4",
        ferry_model::IpFamily::V6 => b"/6",
    });
    base32(h.finish())
}

fn base32(mut v: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(8);
    for _ in 0..8 {
        out.push(char::from(ALPHABET[(v & 31) as usize]));
        v >>= 5;
    }
    out
}

/// `PREFIX-HASH-ns/name/proto/port` for a service port.
pub fn port_chain(prefix: &str, id: &ServicePortId, port: u16) -> String {
    let port_part = if id.port_name.is_empty() { port.to_string() } else { id.port_name.to_string() };
    format!(
        "{prefix}-{}-{}/{}/{}/{port_part}",
        port_hash(id),
        id.service.namespace,
        id.service.name,
        id.protocol.as_str()
    )
}

/// A per-endpoint chain or set: `PREFIX-HASH-ADDRESS-PORT` (address with `.`/`:` kept
/// out, as nft identifiers cannot hold `:`).
pub fn endpoint_object(prefix: &str, id: &ServicePortId, ep: SocketAddr) -> String {
    let ip = ep.ip().to_string().replace(':', "x");
    format!("{prefix}-{}-{ip}-{}", port_hash(id), ep.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::{IpFamily, Protocol, ServiceName};

    fn id(ns: &str, name: &str, proto: Protocol) -> ServicePortId {
        ServicePortId {
            service: ServiceName::new(ns, name),
            port_name: "http".into(),
            protocol: proto,
            family: IpFamily::V4,
        }
    }

    #[test]
    fn names_are_stable_unique_and_readable() {
        let a = port_chain("svc", &id("demo", "web", Protocol::Tcp), 80);
        assert_eq!(a, port_chain("svc", &id("demo", "web", Protocol::Tcp), 80), "deterministic");
        assert!(a.starts_with("svc-") && a.ends_with("-demo/web/tcp/http"), "{a}");
        assert_ne!(a, port_chain("svc", &id("demo", "web", Protocol::Udp), 80));
        // A namespace/name split that reads the same still hashes differently.
        assert_ne!(port_hash(&id("a-b", "c", Protocol::Tcp)), port_hash(&id("a", "b-c", Protocol::Tcp)));
        let ep = endpoint_object("ep", &id("demo", "web", Protocol::Tcp), "[fd00::5]:8080".parse().unwrap());
        assert!(ep.ends_with("-fd00xx5-8080"), "{ep}");
    }
}
