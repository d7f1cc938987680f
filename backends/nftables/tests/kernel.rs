//! The backend against the real kernel, in a network namespace of its own: the netlink
//! element writer, and adoption of a table an older kube-ferry left.
//!
//! `cargo test` runs `main` (no test harness): it creates a namespace and re-runs this
//! binary inside it with `--child`, which loads the fixed part of the table with `nft`,
//! changes elements over netlink only, and reads the result back with `nft list`, so the
//! bytes we send are checked against how nft itself reads them. It also checks that a
//! refused batch applies nothing and names the element, and that the backend routes an
//! endpoint change of a map-held service port to netlink (no `nft` run).
//!
//! Needs root and `nft`; without them it fails and says so. Nothing runs in the machine's
//! own namespace: the child refuses to go on if it finds itself there.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use ferry_fixtures::{service, slice};
use ferry_model::{
    Backend, BackendError, IpFamily, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest,
};
use ferry_netlab::Netns;
use ferry_nftables::netlink::{BatchError, ElementBatch};
use ferry_nftables::nft::{NftRunner, NftTool};
use ferry_nftables::render::base_ruleset;
use ferry_nftables::ruleset::{script, transaction, Op, TableFamily};
use ferry_nftables::{NftConfig, NftablesBackend};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        return child();
    }
    // `cargo test -- --list` and filters come here too: this binary has one test.
    if std::env::args().any(|a| a == "--list") {
        println!("backend_against_the_kernel: test");
        return ExitCode::SUCCESS;
    }
    parent()
}

fn parent() -> ExitCode {
    if !nix_is_root() {
        eprintln!("kernel test: FAILED: needs root (network namespaces, nf_tables); run `sudo cargo test`");
        return ExitCode::FAILURE;
    }
    let ns = match Netns::create_unique("kernel") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("kernel test: FAILED: cannot create a network namespace: {e}");
            return ExitCode::FAILURE;
        }
    };
    let me = std::env::current_exe().expect("own path");
    ferry_netlab::guard::mark_parent();
    let status = ns.command(&me).arg("--child").status();
    drop(ns);
    match status {
        Ok(s) if s.success() => {
            println!("test backend_against_the_kernel ... ok");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("kernel test: FAILED: the child in the namespace ended with {other:?}");
            ExitCode::FAILURE
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// What `nft list` shows of one set or map.
fn listing(family: &str, set: &str) -> String {
    let keyword = if set.starts_with("service-") || set.starts_with("endpoints-") { "map" } else { "set" };
    NftTool::find().output(&["list", keyword, family, "kube-ferry", set]).unwrap_or_else(|e| format!("<{e}>"))
}

fn child() -> ExitCode {
    ferry_netlab::guard::refuse_host_namespace("the kernel test's child");
    let tool = NftTool::find();
    let config = NftConfig::default();
    let bases = [base_ruleset(IpFamily::V4, &config), base_ruleset(IpFamily::V6, &config)];
    let mut text = script(TableFamily::Ip, "kube-ferry", &transaction(None, &bases[0]));
    text.push_str(&script(TableFamily::Ip6, "kube-ferry", &transaction(None, &bases[1])));
    tool.apply(&text).expect("the fixed part of the table loads");

    let add = |map: &str, key: &str, value: &str| Op::AddElement(map.into(), key.into(), value.into());
    let v4 = vec![
        add("service-ips", "10.96.0.1 . tcp . 80", "goto reject-chain"),
        add("service-nodeports", "sctp . 30080", "drop"),
        add("endpoints-tcp", "10.96.0.2 . 80 . 0", "10.128.0.1 . 8080"),
        add("endpoints-tcp", "10.96.0.2 . 80 . 1", "10.128.0.2 . 8080"),
        add("spread-tcp-2", "10.96.0.2 . 80", ""),
        add("cluster-ips", "10.96.0.2", ""),
        add("hairpin", "10.128.0.1 . 10.128.0.1", ""),
        add("no-endpoint-nodeport-reject", "udp . 31000", ""),
    ];
    let v6 = vec![
        add("endpoints-udp", "fd00::2 . 53 . 3", "fd01::5 . 5353"),
        add("no-endpoint-drop", "fd00::9 . sctp . 9", ""),
    ];
    let batch = ElementBatch::from_ops(
        "kube-ferry",
        &[(TableFamily::Ip, &v4, &bases[0].maps), (TableFamily::Ip6, &v6, &bases[1].maps)],
    )
    .expect("element-only operations make a batch");
    batch.send().expect("the kernel takes the batch");
    let expect = [
        ("ip", "service-ips", "10.96.0.1 . tcp . 80 : goto reject-chain"),
        ("ip", "service-nodeports", "sctp . 30080 : drop"),
        ("ip", "endpoints-tcp", "10.96.0.2 . 80 . 0 : 10.128.0.1 . 8080"),
        ("ip", "endpoints-tcp", "10.96.0.2 . 80 . 1 : 10.128.0.2 . 8080"),
        ("ip", "spread-tcp-2", "10.96.0.2 . 80"),
        ("ip", "cluster-ips", "10.96.0.2"),
        ("ip", "hairpin", "10.128.0.1 . 10.128.0.1"),
        ("ip", "no-endpoint-nodeport-reject", "udp . 31000"),
        ("ip6", "endpoints-udp", "fd00::2 . 53 . 3 : fd01::5 . 5353"),
        ("ip6", "no-endpoint-drop", "fd00::9 . sctp . 9"),
    ];
    for (family, set, element) in expect {
        let listed = listing(family, set);
        assert!(listed.contains(element), "{family} {set} should hold `{element}`:\n{listed}");
    }

    // A batch the kernel refuses applies nothing, and the error names the element.
    let bad =
        vec![add("cluster-ips", "10.96.0.3", ""), add("service-ips", "10.96.0.9 . tcp . 80", "goto no-such-chain")];
    let batch = ElementBatch::from_ops("kube-ferry", &[(TableFamily::Ip, &bad, &bases[0].maps)]).expect("a batch");
    match batch.send() {
        Err(e @ BatchError::Refused { .. }) => {
            let text = e.to_string();
            assert!(text.contains("service-ips") && text.contains("10.96.0.9"), "{text}");
        }
        other => panic!("a goto to a missing chain must be refused, got {other:?}"),
    }
    assert!(!listing("ip", "cluster-ips").contains("10.96.0.3"), "nothing of a refused batch applies");

    // Deleting works the same way.
    let delete = vec![Op::DeleteElement("endpoints-tcp".into(), "10.96.0.2 . 80 . 1".into())];
    ElementBatch::from_ops("kube-ferry", &[(TableFamily::Ip, &delete, &bases[0].maps)])
        .expect("a batch")
        .send()
        .expect("deleted");
    let listed = listing("ip", "endpoints-tcp");
    assert!(listed.contains("10.96.0.2 . 80 . 0") && !listed.contains("10.96.0.2 . 80 . 1"), "{listed}");

    // Operations that are not element changes, or maps without a layout, are not batched.
    let chain = vec![Op::DeleteChain("services".into())];
    assert!(ElementBatch::from_ops("kube-ferry", &[(TableFamily::Ip, &chain, &bases[0].maps)]).is_none());
    let unknown = vec![add("affsvc-X", "10.0.0.1", "")];
    assert!(ElementBatch::from_ops("kube-ferry", &[(TableFamily::Ip, &unknown, &bases[0].maps)]).is_none());

    backend_routes_endpoint_changes_to_netlink();
    an_older_tables_maps_are_removed_on_adoption();
    println!("kernel test child: all checks passed");
    ExitCode::SUCCESS
}

/// Counts what the backend asks of the kernel, doing it for real.
#[derive(Debug, Clone, Default)]
struct Counting {
    tool_runs: Arc<Mutex<usize>>,
    batches: Arc<Mutex<usize>>,
}

impl NftRunner for Counting {
    fn apply(&self, script: &str) -> Result<(), BackendError> {
        *self.tool_runs.lock().unwrap() += 1;
        NftTool::find().apply(script)
    }
    fn apply_elements(&self, script: &str, batch: &ElementBatch) -> Result<(), BackendError> {
        *self.batches.lock().unwrap() += 1;
        NftRunner::apply_elements(&NftTool::find(), script, batch)
    }
    fn check(&self, script: &str) -> Result<(), BackendError> {
        NftTool::find().check(script)
    }
    fn output(&self, args: &[&str]) -> Result<String, BackendError> {
        NftTool::find().output(args)
    }
}

fn backend_routes_endpoint_changes_to_netlink() {
    let set_endpoints = |b: &mut StateBuilder, eps: &[&str]| {
        let mut s = slice("demo", "web-1", "web", "IPv4").port("", 8080, "TCP");
        for ep in eps {
            s = s.ready(ep, "node-a");
        }
        b.set_slice(SliceName::new("demo", "web-1"), Some(SliceSpec::admit(&s.build())));
        b.rebuild()
    };
    let mut b = StateBuilder::new("node-a");
    let svc = service("demo", "web").cluster_ip("10.96.5.5").port("", 80, "TCP").build();
    b.set_service(ServiceName::new("demo", "web"), Some(ServiceSpec::admit(&svc)));
    set_endpoints(&mut b, &["10.128.0.1", "10.128.0.2"]);
    let counting = Counting::default();
    // The table is already there from the checks above: this is also an adoption.
    let mut backend = NftablesBackend::with_runner(NftConfig::default(), Box::new(counting.clone()));
    backend.sync(b.state(), SyncRequest::Full).expect("full sync");
    let runs_after_full = *counting.tool_runs.lock().unwrap();

    let diff = set_endpoints(&mut b, &["10.128.0.1", "10.128.0.3", "10.128.0.4"]);
    let report = backend.sync(b.state(), SyncRequest::Changes(&diff)).expect("endpoint change");
    assert!(report.operations > 0);
    assert_eq!(*counting.tool_runs.lock().unwrap(), runs_after_full, "no nft run for an endpoint change");
    assert_eq!(*counting.batches.lock().unwrap(), 1, "one netlink batch");
    let listed = listing("ip", "endpoints-tcp");
    for element in ["10.96.5.5 . 80 . 0 : 10.128.0.1 . 8080", "10.96.5.5 . 80 . 2 : 10.128.0.4 . 8080"] {
        assert!(listed.contains(element), "{element} in\n{listed}");
    }
    assert!(listing("ip", "spread-tcp-3").contains("10.96.5.5 . 80"));
    assert!(!listing("ip", "spread-tcp-2").contains("10.96.5.5 . 80"));
}

/// A table from before the reject sets (a `no-endpoint-services` verdict map, referenced
/// from a base chain) is adopted: the map goes, in the same transaction that rewrites the
/// chain referencing it.
fn an_older_tables_maps_are_removed_on_adoption() {
    let tool = NftTool::find();
    tool.apply("delete table ip kube-ferry\ndelete table ip6 kube-ferry\n").expect("start afresh");
    tool.apply(
        "table ip kube-ferry {\n map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }\n \
         chain filter-input { type filter hook input priority 0; ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services; }\n}\n",
    )
    .expect("an older table");
    let mut b = StateBuilder::new("node-a");
    let svc = service("demo", "old").cluster_ip("10.96.6.6").port("", 80, "TCP").build();
    b.set_service(ServiceName::new("demo", "old"), Some(ServiceSpec::admit(&svc)));
    b.rebuild();
    let mut backend = NftablesBackend::new(NftConfig::default());
    backend.sync(b.state(), SyncRequest::Full).expect("adopting an older table");
    let table = tool.output(&["list", "table", "ip", "kube-ferry"]).expect("listed");
    assert!(!table.contains("no-endpoint-services"), "the old map is gone:\n{table}");
    assert!(table.contains("no-endpoint-reject") && table.contains("10.96.6.6 . tcp . 80"), "{table}");
}
