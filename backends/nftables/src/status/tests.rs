//! The status parser on real `nft -j list table` output (tests/data: rendered by
//! `kube-ferry render --mode nftables`, loaded with `nft -f` into a network namespace of
//! its own and listed there; `capture.sh` in that directory redoes it), and on
//! hand-written listings for the shapes the renderer no longer writes.

use std::sync::Mutex;

use ferry_model::{status_table, BackendError, IpFamily, ProgrammedFrontend, Protocol};

use super::{
    parse_listings, read_status, NO_ENDPOINT_DROP, NO_ENDPOINT_NODEPORT_DROP, NO_ENDPOINT_NODEPORT_REJECT,
    NO_ENDPOINT_REJECT, SERVICE_IPS, SERVICE_NODEPORTS,
};
use crate::nft::NftRunner;
use crate::render::{base_ruleset, NftConfig};

const EXAMPLES_IP: &str = include_str!("../../tests/data/examples-ip.json");
const EXAMPLES_IP6: &str = include_str!("../../tests/data/examples-ip6.json");
const MIXED_IP: &str = include_str!("../../tests/data/mixed-ip.json");
const MIXED_IP6: &str = include_str!("../../tests/data/mixed-ip6.json");

/// The status table's rows after its two header lines, spaces squeezed.
fn rows(frontends: &[ProgrammedFrontend]) -> Vec<String> {
    status_table("nftables", frontends)
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn b32_the_examples_read_back_with_affinity_local_policy_and_map_held_ports() {
    let frontends = parse_listings(&[EXAMPLES_IP, EXAMPLES_IP6]).unwrap();
    let web = "10.244.1.11:8080, 10.244.1.12:8080, 10.244.2.21:8080";
    assert_eq!(
        rows(&frontends),
        vec![
            // NodePorts (no address) sort first.
            format!("TCP *:30080 {web}"),
            "TCP *:30443 10.244.1.14:8443".into(),
            // svc- chain: three numgen rules.
            format!("TCP 10.96.0.10:80 {web}"),
            // Map-held (spread-tcp-1 + endpoints-tcp).
            "TCP 10.96.0.53:53 10.244.1.13:5353".into(),
            // svc- chain with ClientIP affinity: the affinity rules and the choice.
            "TCP 10.96.0.80:443 10.244.1.14:8443, 10.244.2.24:8443".into(),
            // ext- chain, Cluster policy: `goto svc-...`.
            format!("TCP 192.0.2.10:80 {web}"),
            // ext- chain, Local policy: from outside, the local endpoint only (the
            // terminating 10.244.1.15 is not used while a ready one is).
            "TCP 203.0.113.80:443 10.244.1.14:8443".into(),
            "UDP 10.96.0.53:53 10.244.1.13:5353".into(),
        ]
    );
}

#[test]
fn b32_rejects_drops_internal_local_and_ipv6_read_back() {
    let frontends = parse_listings(&[MIXED_IP, MIXED_IP6]).unwrap();
    assert_eq!(
        rows(&frontends),
        vec![
            // No endpoint anywhere: the ClusterIP and the NodePort are rejected.
            "TCP *:30200 (none: reject)",
            // Local policies (internal and external), a local and a remote endpoint: from
            // outside, the ext- chain's local endpoint, not the clu- chain's 10.244.2.42
            // that the node's own traffic and the pods' are sent to.
            "TCP *:30400 10.244.1.41:8080",
            // externalTrafficPolicy Local, all endpoints remote: the NodePort is dropped...
            "TCP *:30500 (none: drop)",
            "TCP *:30600 [fd00:10:244:1::61]:8080, [fd00:10:244:2::62]:8080",
            // Map-held with two endpoints (spread-tcp-2: slots 0 and 1).
            "TCP 10.96.1.1:80 10.244.1.21:8080, 10.244.2.22:8080",
            "TCP 10.96.1.2:80 (none: reject)",
            // internalTrafficPolicy Local: the svc- chain holds the local endpoint only.
            "TCP 10.96.1.4:80 10.244.1.41:8080",
            // ...while its ClusterIP serves the remote one.
            "TCP 10.96.1.5:80 10.244.2.51:8080",
            "TCP 192.0.2.44:80 10.244.1.41:8080",
            "TCP [fd00:96::1:1]:80 [fd00:10:244:1::21]:8080",
            "TCP [fd00:96::1:6]:80 [fd00:10:244:1::61]:8080, [fd00:10:244:2::62]:8080",
            "UDP 10.96.1.1:5000 10.244.1.21:5000, 10.244.2.22:5000",
            "UDP 10.96.1.3:53 (none: reject)",
            "UDP [fd00:96::1:1]:5000 [fd00:10:244:1::21]:5000",
        ]
    );
}

#[test]
fn b32_the_names_read_are_the_names_rendered() {
    for family in [IpFamily::V4, IpFamily::V6] {
        let base = base_ruleset(family, &NftConfig::default());
        for name in [
            SERVICE_IPS,
            SERVICE_NODEPORTS,
            NO_ENDPOINT_REJECT,
            NO_ENDPOINT_DROP,
            NO_ENDPOINT_NODEPORT_REJECT,
            NO_ENDPOINT_NODEPORT_DROP,
            "endpoints-tcp",
            "endpoints-sctp",
            "spread-udp-1",
            "spread-tcp-16",
        ] {
            assert!(base.maps.contains_key(name), "{name} is not in the rendered {family:?} table");
        }
    }
}

/// A listing of one table holding `objects` (JSON object texts).
fn listing(objects: &[&str]) -> String {
    format!(r#"{{"nftables": [{{"metainfo": {{"json_schema_version": 1}}}}, {}]}}"#, objects.join(", "))
}

fn rule(chain: &str, expr: &str) -> String {
    format!(r#"{{"rule": {{"family": "ip", "table": "kube-ferry", "chain": "{chain}", "handle": 1, "expr": {expr}}}}}"#)
}

#[test]
fn b32_endpoint_chains_numgen_vmaps_and_wrapped_elements_are_followed() {
    // Upstream's shape: an anonymous `numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto
    // ep-b }`, elements with a timeout wrapper, numeric protocols, a DNAT without port.
    let map = r#"{"map": {"family": "ip", "name": "service-ips", "table": "kube-ferry", "map": "verdict",
        "elem": [[{"elem": {"val": {"concat": ["10.96.9.9", 6, 80]}, "timeout": 60}}, {"goto": {"target": "svc-x"}}]]}}"#;
    let vmap = r#"[{"vmap": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
        "data": {"set": [[0, {"goto": {"target": "ep-a"}}], [1, {"goto": {"target": "ep-b"}}]]}}}]"#;
    let json = listing(&[
        map,
        &rule("svc-x", vmap),
        &rule(
            "ep-a",
            r#"[{"jump": {"target": "mark-for-masquerade"}}, {"dnat": {"addr": "10.244.3.1", "port": 8080}}]"#,
        ),
        &rule("ep-b", r#"[{"dnat": {"addr": "10.244.3.2"}}]"#),
        // Unreachable after ep-b's unconditional DNAT.
        &rule("ep-b", r#"[{"dnat": {"addr": "10.244.3.3", "port": 1}}]"#),
    ]);
    let frontends = parse_listings(&[&json]).unwrap();
    assert_eq!(rows(&frontends), vec!["TCP 10.96.9.9:80 10.244.3.1:8080, 10.244.3.2:80"]);
}

#[test]
fn b32_a_frontend_in_a_dispatch_map_whose_chain_has_no_endpoint_says_no_endpoints() {
    let map = r#"{"map": {"family": "ip", "name": "service-nodeports", "table": "kube-ferry", "map": "verdict",
        "elem": [[{"concat": ["udp", 31000]}, {"goto": {"target": "ext-y"}}]]}}"#;
    let json = listing(&[map, &rule("ext-y", r#"[{"goto": {"target": "ext-y"}}]"#)]);
    let frontends = parse_listings(&[&json]).unwrap();
    assert_eq!(frontends, vec![ProgrammedFrontend::new(Protocol::Udp, None, 31000, vec![])]);
    assert_eq!(rows(&frontends), vec!["UDP *:31000 (none: no endpoints)"]);
}

#[test]
fn b32_what_is_not_an_nft_listing_is_an_error_naming_it() {
    assert!(parse_listings(&[]).unwrap().is_empty());
    assert!(parse_listings(&[""]).unwrap().is_empty());
    let e = parse_listings(&["not json"]).unwrap_err().to_string();
    assert!(e.contains("not JSON"), "{e}");
    let odd = listing(&[
        r#"{"map": {"name": "service-ips", "elem": [[{"concat": ["10.96.0.1", "tcp"]}, {"accept": null}]]}}"#,
    ]);
    let e = parse_listings(&[&odd]).unwrap_err().to_string();
    assert!(e.contains("`service-ips`") && e.contains("10.96.0.1"), "{e}");
}

/// Answers `nft -j list tables` with `tables` and each table listing with the fixture.
#[derive(Debug)]
struct Listed {
    tables: &'static str,
    calls: Mutex<Vec<String>>,
}

impl NftRunner for Listed {
    fn apply(&self, _script: &str) -> Result<(), BackendError> {
        Err(BackendError::Other("status must not change the kernel".into()))
    }
    fn check(&self, _script: &str) -> Result<(), BackendError> {
        Err(BackendError::Other("status must not change the kernel".into()))
    }
    fn output(&self, args: &[&str]) -> Result<String, BackendError> {
        self.calls.lock().unwrap().push(args.join(" "));
        match args {
            ["-j", "list", "tables"] => Ok(self.tables.to_owned()),
            ["-j", "list", "table", "ip", "kube-ferry"] => Ok(MIXED_IP.to_owned()),
            ["-j", "list", "table", "ip6", "kube-ferry"] => Ok(MIXED_IP6.to_owned()),
            _ => Err(BackendError::Other(format!("nft {}: No such file or directory", args.join(" ")))),
        }
    }
}

#[test]
fn b32_status_lists_the_tables_that_exist_and_a_missing_one_is_no_frontends() {
    let only_ip = Listed {
        tables: r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "kube-ferry", "handle": 1}},
            {"table": {"family": "ip6", "name": "other", "handle": 2}}]}"#,
        calls: Mutex::new(Vec::new()),
    };
    let frontends = read_status(&only_ip, "kube-ferry").unwrap();
    assert_eq!(frontends.len(), 10, "{}", status_table("nftables", &frontends));
    assert!(frontends.iter().all(|f| f.address.is_none_or(|a| a.is_ipv4())));
    assert_eq!(*only_ip.calls.lock().unwrap(), vec!["-j list tables", "-j list table ip kube-ferry"]);

    let none = Listed { tables: r#"{"nftables": [{"metainfo": {}}]}"#, calls: Mutex::new(Vec::new()) };
    assert!(read_status(&none, "kube-ferry").unwrap().is_empty());
    assert_eq!(*none.calls.lock().unwrap(), vec!["-j list tables"]);
}
