//! The lab itself, with real packets. Needs root (as CI has); fails, never skips, without it.

use std::net::{IpAddr, SocketAddr};
use std::panic;
use std::path::Path;
use std::time::Duration;

use ferry_netlab::{
    list_namespaces, request, sctp_supported, set_binaries, tcp_request, udp_request, Answer, Binaries, Lab, LabError,
    Netns, Overlay, PodServer, ProbeError, Proto,
};

const T: Duration = Duration::from_secs(2);

fn lab_binaries() {
    set_binaries(Binaries {
        podserver: env!("CARGO_BIN_EXE_ferry-podserver").into(),
        probe: env!("CARGO_BIN_EXE_ferry-probe").into(),
    });
}

fn answer(result: Result<String, ProbeError>) -> Answer {
    let line = result.unwrap_or_else(|e| panic!("request failed: {e}"));
    Answer::parse(&line).unwrap_or_else(|| panic!("not an answer line: {line:?}"))
}

fn assert_answer(result: Result<String, ProbeError>, name: &str, from: impl Into<IpAddr>) {
    let got = answer(result);
    assert_eq!(got.name, name, "answered by the wrong server: {got:?}");
    assert_eq!(got.peer.ip(), from.into(), "the server saw another source address (NAT?): {got:?}");
}

fn ours(prefix: &str) -> Vec<String> {
    list_namespaces().unwrap().into_iter().filter(|n| n.starts_with(&format!("{prefix}-"))).collect()
}

#[test]
fn single_node_client_reaches_pods_by_pod_ip_without_nat() {
    lab_binaries();
    let mut lab = Lab::single_node(2).unwrap();
    lab.start_pod_servers(&[8080]).unwrap();
    let client = lab.client();
    for pod in lab.pods() {
        assert_answer(tcp_request(client.ns(), pod.addr(8080), T), pod.name(), client.ip());
        assert_answer(udp_request(client.ns(), pod.addr(8080), T), pod.name(), client.ip());
    }
}

#[test]
fn single_node_pod_reaches_pod_on_the_same_bridge() {
    lab_binaries();
    let mut lab = Lab::single_node(2).unwrap();
    lab.start_pod_servers(&[80]).unwrap();
    let (a, b) = (lab.pod(0), lab.pod(1));
    assert_answer(tcp_request(a.ns(), b.addr(80), T), b.name(), a.ip());
    assert_answer(udp_request(a.ns(), b.addr(80), T), b.name(), a.ip());
    // The node itself reaches its pods too (from the bridge address).
    assert_answer(tcp_request(lab.node(0).ns(), a.addr(80), T), a.name(), lab.node(0).bridge_ip());
    // The server listens on [::] too, where the namespace has IPv6 (loopback here).
    let ready = a.servers()[0].output();
    if ready.contains("ipv6=on") {
        let v6 = "[::1]:80".parse().unwrap();
        assert_answer(tcp_request(a.ns(), v6, T), a.name(), v6.ip());
        assert_answer(udp_request(a.ns(), v6, T), a.name(), v6.ip());
    }
    // The lab's sysctls are in force inside the node.
    assert_eq!(lab.node(0).ns().sysctl_get("net.bridge.bridge-nf-call-iptables").unwrap(), "1");
    assert_eq!(lab.node(0).ns().sysctl_get("net.ipv4.ip_forward").unwrap(), "1");
}

#[test]
fn probe_tells_refused_from_timed_out_from_unreachable() {
    lab_binaries();
    let mut lab = Lab::single_node(1).unwrap();
    lab.start_pod_servers(&[8080]).unwrap();
    let (client, node, pod) = (lab.client().ns(), lab.node(0).ns(), lab.pod(0));
    // Nothing listens on 9: RST for TCP, ICMP port unreachable for UDP.
    assert!(matches!(tcp_request(client, pod.addr(9), T), Err(ProbeError::Refused)));
    assert!(matches!(udp_request(client, pod.addr(9), T), Err(ProbeError::Refused)));
    // Lab-internal routes in the node: one drops silently, one answers ICMP unreachable.
    node.ip(["route", "add", "blackhole", "10.96.0.99/32"]).unwrap();
    node.ip(["route", "add", "unreachable", "10.96.0.98/32"]).unwrap();
    let short = Duration::from_millis(300);
    let dropped = SocketAddr::from(([10, 96, 0, 99], 80));
    assert!(matches!(tcp_request(client, dropped, short), Err(ProbeError::TimedOut)));
    assert!(matches!(udp_request(client, dropped, short), Err(ProbeError::TimedOut)));
    let unreachable = SocketAddr::from(([10, 96, 0, 98], 80));
    let got = tcp_request(client, unreachable, T);
    assert!(matches!(got, Err(ProbeError::Unreachable(_))), "{got:?}");
    // A fixed source port is used as given.
    let from = SocketAddr::from((lab.client().ip(), 40000));
    let got = answer(request(client, Proto::Udp, pod.addr(8080), Some(from), T));
    assert_eq!(got.peer, from);
}

fn two_nodes(overlay: Overlay) -> Lab {
    lab_binaries();
    let mut lab = Lab::two_nodes(overlay, 1).unwrap();
    lab.start_pod_servers(&[8080]).unwrap();
    assert_eq!(lab.pods_on(0).count(), 1);
    let (a, b) = (lab.pod(0), lab.pod(1));
    assert_eq!((a.node(), b.node()), (0, 1));
    assert_eq!(b.ip().to_string(), "10.244.2.10");
    // Pod to pod across nodes, both ways, by pod IP and without NAT.
    assert_answer(tcp_request(a.ns(), b.addr(8080), T), b.name(), a.ip());
    assert_answer(udp_request(a.ns(), b.addr(8080), T), b.name(), a.ip());
    assert_answer(tcp_request(b.ns(), a.addr(8080), T), a.name(), b.ip());
    // The client, attached to node-a, reaches node-b's pod and node-b itself.
    let client = lab.client();
    assert_answer(tcp_request(client.ns(), b.addr(8080), T), b.name(), client.ip());
    lab
}

fn tx_packets(ns: &Netns, dev: &str) -> Result<u64, LabError> {
    let text = ns.exec("cat", [format!("/sys/class/net/{dev}/statistics/tx_packets")])?;
    Ok(text.trim().parse().expect("a counter"))
}

#[test]
fn two_nodes_vxlan_pod_reaches_pod_on_the_other_node() {
    let lab = two_nodes(Overlay::Vxlan);
    // The traffic went through the overlay, encapsulated, on both sides.
    for node in lab.nodes() {
        assert!(tx_packets(node.ns(), "flannel.1").unwrap() > 0, "nothing sent over flannel.1 on {}", node.name());
    }
    let routes = lab.node(0).ns().ip(["route", "show", "10.244.2.0/24"]).unwrap();
    assert!(routes.contains("via 10.244.2.0 dev flannel.1 onlink"), "{routes}");
}

#[test]
fn two_nodes_host_gw_pod_reaches_pod_on_the_other_node() {
    let lab = two_nodes(Overlay::HostGw);
    let routes = lab.node(0).ns().ip(["route", "show", "10.244.2.0/24"]).unwrap();
    assert!(routes.contains("via 172.18.0.2 dev eth0"), "{routes}");
    assert!(tx_packets(lab.node(0).ns(), "flannel.1").is_err(), "host-gw has no VXLAN device");
}

#[test]
fn dropping_the_lab_deletes_its_namespaces_and_kills_its_servers() {
    lab_binaries();
    let mut lab = Lab::single_node(2).unwrap();
    lab.start_pod_servers(&[8080]).unwrap();
    let prefix = lab.prefix().to_owned();
    let mut names: Vec<String> = lab.namespaces().into_iter().map(str::to_owned).collect();
    let mut listed = ours(&prefix);
    names.sort();
    listed.sort();
    assert_eq!(listed, names, "ip netns list shows exactly the lab's namespaces");
    let pids: Vec<u32> = lab.pods().iter().flat_map(|p| p.servers()).map(|s| s.pid()).collect();
    assert_eq!(pids.len(), 2);
    drop(lab);
    assert_eq!(ours(&prefix), Vec::<String>::new(), "namespaces left behind");
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pod server {pid} still runs");
    }
}

#[test]
fn a_panicking_test_body_still_deletes_the_lab() {
    lab_binaries();
    let prefixes = std::sync::Mutex::new(Vec::new());
    let outcome = panic::catch_unwind(|| {
        let mut lab = Lab::two_nodes(Overlay::Vxlan, 1).unwrap();
        lab.start_pod_servers(&[8080]).unwrap();
        prefixes.lock().unwrap().push(lab.prefix().to_owned());
        assert!(!ours(lab.prefix()).is_empty());
        panic!("the test body fails with the lab up");
    });
    assert!(outcome.is_err(), "the body panicked");
    let prefixes = prefixes.into_inner().unwrap();
    assert_eq!(prefixes.len(), 1);
    assert_eq!(ours(&prefixes[0]), Vec::<String>::new(), "namespaces left behind after a panic");
}

#[test]
fn a_process_started_in_a_namespace_is_killed_when_its_guard_drops() {
    let ns = Netns::create_unique("proc").unwrap();
    let mut sleeper = ns.spawn("sleep", "sleep", ["60"]).unwrap();
    assert!(sleeper.try_wait().is_none());
    let pid = sleeper.pid();
    drop(sleeper);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "sleep {pid} still runs");
    let mut echo = ns.spawn("echo", "echo", ["hello from the namespace"]).unwrap();
    echo.wait_for_output("hello from the namespace", T).unwrap();
}

#[test]
fn sctp_is_reported_as_it_is() {
    lab_binaries();
    let mut lab = Lab::single_node(1).unwrap();
    let started = lab.pod_mut(0).start_server(&PodServer::new().sctp(7777));
    let probed = request(lab.client().ns(), Proto::Sctp, lab.pod(0).addr(7777), None, T);
    if sctp_supported() {
        started.unwrap();
        assert_answer(probed, "pod-0", lab.client().ip());
    } else {
        let err = started.expect_err("no SCTP in this kernel, so the server cannot start").to_string();
        assert!(err.contains("sctp unavailable"), "{err}");
        assert!(matches!(probed, Err(ProbeError::Unsupported(_))), "{probed:?}");
    }
}
