//! The behaviour lines, each a function taking the mode under test.

use std::collections::BTreeMap;

use ferry_netlab::{ProbeError, Proto};

use super::*;

fn web(lab: &ProxyLab, pods: &[usize]) -> String {
    let node = lab.node_name();
    let eps: Vec<_> = pods.iter().map(|i| (lab.pod_ip(*i), node.as_str(), true, true, false)).collect();
    service("web", "10.96.0.10", "NodePort", &[("http", 80, "TCP", Some(30080)), ("dns", 53, "UDP", None)], "  externalIPs: [198.51.100.10]\n")
        + &slice("web", &[("http", "TCP"), ("dns", "UDP")], &eps)
}

/// B7, B8, B9 (external IP), B20, B21, B22 and B14 on one node with two pods.
pub fn clusterip_nodeport_external_ip_and_source_addresses(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let vip = sa("10.96.0.10:80");

    // B7 + B22: from outside, masqueraded (the pod sees the node's bridge address).
    let a = lab.until("the ClusterIP from the client", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();
    assert!(a.name.starts_with("pod-"), "{a:?}");
    assert_eq!(a.peer.ip(), bridge, "off-cluster traffic is masqueraded (B22)");
    // UDP too.
    let a = lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.10:53")).expect("UDP through the ClusterIP");
    assert!(a.name.starts_with("pod-"));

    // B7 from the node itself.
    let a = lab.ask(lab.node_ns(), Proto::Tcp, vip).expect("the ClusterIP from the node");
    assert!(a.name.starts_with("pod-"));

    // B20 + B21 from a pod: its own address, unless it lands on itself (hairpin, masqueraded).
    let mut seen = BTreeMap::new();
    for _ in 0..40 {
        let a = lab.ask(lab.pod_ns(0), Proto::Tcp, vip).expect("the ClusterIP from a pod");
        if a.name == "pod-0" {
            assert_eq!(a.peer.ip(), bridge, "hairpin is masqueraded (B21)");
        } else {
            assert_eq!(a.peer.ip(), lab.pod_ip(0), "pod to ClusterIP keeps the pod's address (B20)");
        }
        *seen.entry(a.name).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both pods answered a pod: {seen:?}");

    // B8: the NodePort on the node's address; B9: the external IP.
    let node_ip = lab.lab.client().gateway();
    let a = lab.ask(lab.client_ns(), Proto::Tcp, SocketAddr::new(IpAddr::V4(node_ip), 30080)).expect("the NodePort");
    assert_eq!(a.peer.ip(), bridge, "NodePort traffic from outside is masqueraded under a Cluster policy");
    let a = lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.10:80")).expect("the external IP");
    assert!(a.name.starts_with("pod-"));

    // B14: 200 new connections over 2 endpoints: each between 30% and 70%.
    let mut counts = BTreeMap::new();
    for _ in 0..200 {
        let a = lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("spread");
        *counts.entry(a.name).or_insert(0u32) += 1;
    }
    for (pod, n) in &counts {
        assert!((60..=140).contains(n), "{pod} got {n} of 200: {counts:?}");
    }
}

/// B11 and B19: wrong port on a live ClusterIP, and a service with no endpoints, are
/// refused at once.
pub fn wrong_ports_and_services_without_endpoints_are_refused(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    lab.write(
        "empty.yaml",
        &(service("empty", "10.96.0.11", "NodePort", &[("http", 80, "TCP", Some(30081)), ("dns", 53, "UDP", None)], "")
            + &slice("empty", &[("http", "TCP"), ("dns", "UDP")], &[])),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    lab.until("the live service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")), Result::is_ok).unwrap();

    let refused = |r: &Result<Answer, ProbeError>| matches!(r, Err(ProbeError::Refused));
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:81"));
    assert!(refused(&r), "wrong port on a live ClusterIP (B11): {r:?}\n{}", lab.diagnose());
    let r = lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.10:80"));
    assert!(refused(&r), "wrong protocol on a live ClusterIP (B11): {r:?}");
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.11:80"));
    assert!(refused(&r), "no endpoints, TCP (B19): {r:?}");
    let r = lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.11:53"));
    assert!(refused(&r), "no endpoints, UDP (B19): {r:?}");
    let r = lab.ask(lab.node_ns(), Proto::Tcp, sa("10.96.0.11:80"));
    assert!(refused(&r), "no endpoints, from the node (B19): {r:?}");
    let node_ip = lab.lab.client().gateway();
    let r = lab.ask(lab.client_ns(), Proto::Tcp, SocketAddr::new(IpAddr::V4(node_ip), 30081));
    assert!(refused(&r), "no endpoints, NodePort (B19): {r:?}");
}
