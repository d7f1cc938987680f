//! Where traffic is caught and what source the endpoint sees: B5, B7-B11, B14, B19-B23, two nodes.

use std::collections::BTreeMap;

use ferry_netlab::{ProbeError, Proto};

use super::super::*;
use super::*;

/// B7, B8, B9 (external IP), B20, B21, B22 and B14 on one node with two pods.
pub fn clusterip_nodeport_external_ip_and_source_addresses(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let vip = sa("10.96.0.10:80");

    // B7 + B22: from outside, masqueraded (the pod sees the node's bridge address).
    let a = lab
        .until("the ClusterIP from the client", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok)
        .unwrap();
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

/// B7, B14, B19-B22 for a ClusterIP-only service (nftables holds these ports' endpoints
/// in map elements rather than chains; the contract is the same): TCP and UDP, source
/// addresses, the spread, and losing and regaining every endpoint.
pub fn cluster_ip_only_service(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let svc = service("api", "10.96.0.20", "ClusterIP", &[("http", 80, "TCP", None), ("dns", 53, "UDP", None)], "");
    let ips = [lab.pod_ip(0), lab.pod_ip(1)];
    let with = |pods: &[usize]| {
        let eps: Vec<_> = pods.iter().map(|i| (ips[*i], node.as_str(), true, true, false)).collect();
        svc.clone() + &slice("api", &[("http", "TCP"), ("dns", "UDP")], &eps)
    };
    lab.write("api.yaml", &with(&[0, 1]));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let vip = sa("10.96.0.20:80");
    let a = lab.until("the ClusterIP", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();
    assert_eq!(a.peer.ip(), bridge, "off-cluster traffic is masqueraded (B22)");
    if mode == "nftables" {
        let held = lab.nft(&["list", "set", "ip", "kube-ferry", "spread-tcp-2"]);
        assert!(
            held.contains("10.96.0.20 . 80"),
            "the port is map-held, the path under test:
{held}"
        );
    }
    lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.20:53")).expect("UDP through the ClusterIP (B7)");
    lab.ask(lab.node_ns(), Proto::Tcp, vip).expect("the ClusterIP from the node (B7)");
    for _ in 0..20 {
        let a = lab.ask(lab.pod_ns(0), Proto::Tcp, vip).expect("the ClusterIP from a pod");
        let expected = if a.name == "pod-0" { bridge } else { lab.pod_ip(0) };
        assert_eq!(a.peer.ip(), expected, "{a:?}: a pod keeps its address (B20) unless it reaches itself (B21)");
    }
    let mut counts = BTreeMap::new();
    for _ in 0..200 {
        let a = lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("spread");
        *counts.entry(a.name).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    for (pod, n) in &counts {
        assert!((60..=140).contains(n), "{pod} got {n} of 200 (B14): {counts:?}");
    }

    lab.write("api.yaml", &with(&[]));
    let _ = lab.until("no endpoints: refused (B19)", || lab.ask(lab.client_ns(), Proto::Tcp, vip), refused);
    let r = lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.20:53"));
    assert!(refused(&r), "no endpoints, UDP (B19): {r:?}");
    lab.write("api.yaml", &with(&[1]));
    let a = lab.until("the endpoint back", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();
    assert_eq!(a.name, "pod-1");
}

/// B11 and B19: wrong port on a live ClusterIP, and a service with no endpoints, are
/// refused at once.
pub fn wrong_ports_and_services_without_endpoints_are_refused(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    lab.write(
        "empty.yaml",
        &(service(
            "empty",
            "10.96.0.11",
            "NodePort",
            &[("http", 80, "TCP", Some(30081)), ("dns", 53, "UDP", None)],
            "",
        ) + &slice("empty", &[("http", "TCP"), ("dns", "UDP")], &[])),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ = lab
        .until("the live service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")), Result::is_ok)
        .unwrap();

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

/// B9 and B10: load-balancer IPs (not `ipMode: Proxy` ones) and their source ranges.
pub fn load_balancer_ips_and_source_ranges(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    let node = lab.node_name();
    let eps = [(lab.pod_ip(0), node.as_str(), true, true, false)];
    let lb = |ranges: &str| {
        service("lb", "10.96.0.50", "LoadBalancer", &[("", 80, "TCP", Some(30050))], &format!("  loadBalancerSourceRanges: [{ranges}]\n"))
            + "status:\n  loadBalancer:\n    ingress:\n    - ip: 198.51.100.50\n    - {ip: 198.51.100.51, ipMode: Proxy}\n"
            + &slice("lb", &[("", "TCP")], &eps)
    };
    lab.write("lb.yaml", &lb("192.0.2.0/30"));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let a = lab
        .until("the load-balancer IP", || lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.50:80")), Result::is_ok)
        .unwrap();
    assert_eq!(a.name, "pod-0", "a client inside the source range reaches the LB IP (B10)");
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.51:80"));
    assert!(r.is_err(), "an ipMode: Proxy ingress gets no rule (B9): {r:?}");

    lab.write("lb.yaml", &lb("10.0.0.0/8"));
    let _ = lab.until(
        "the source range to apply",
        || lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.50:80")),
        dropped,
    );
    let a = lab
        .ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30050))
        .expect("source ranges do not filter the NodePort (B10)");
    assert_eq!(a.name, "pod-0");
}

/// B23 and --masquerade-all.
pub fn masquerade_without_cluster_cidr_and_masquerade_all(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    lab.start_proxy(&[]);
    let client = IpAddr::V4(lab.lab.client().ip());
    let a = lab
        .until("the ClusterIP", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")), Result::is_ok)
        .unwrap();
    assert_eq!(a.peer.ip(), client, "without --cluster-cidr ClusterIP traffic is not masqueraded (B23)");
    let a = lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30080)).expect("the NodePort");
    assert_eq!(a.peer.ip(), IpAddr::V4(lab.lab.node(0).bridge_ip()), "NodePort traffic is masqueraded all the same");
    lab.stop_proxy();

    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR, "--masquerade-all"]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let _ = lab.until(
        "pod traffic masqueraded",
        || lab.ask(lab.pod_ns(0), Proto::Tcp, sa("10.96.0.10:80")),
        |r| r.as_ref().is_ok_and(|a| a.peer.ip() == bridge),
    );
    for _ in 0..10 {
        let a = lab.ask(lab.pod_ns(0), Proto::Tcp, sa("10.96.0.10:80")).expect("the ClusterIP");
        assert_eq!(a.peer.ip(), bridge, "--masquerade-all masquerades pod traffic too");
    }
}

/// B8: with --nodeport-addresses, NodePorts answer only on matching node addresses;
/// B5: the same port over TCP and UDP is two service ports.
pub fn nodeport_addresses_and_protocols_on_one_port(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    let node = lab.node_name();
    let eps = [(lab.pod_ip(0), node.as_str(), true, true, false)];
    lab.write(
        "np.yaml",
        &(service(
            "np",
            "10.96.0.100",
            "NodePort",
            &[("t", 80, "TCP", Some(30100)), ("u", 80, "UDP", Some(30100))],
            "",
        ) + &slice("np", &[("t", "TCP"), ("u", "UDP")], &eps)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR, "--nodeport-addresses", "192.0.2.0/24"]);
    lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.100:80")).expect("TCP on port 80 (B5)");
    lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.100:80")).expect("UDP on port 80 (B5)");
    lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30100)).expect("the NodePort on a matching address (B8)");
    lab.ask(lab.client_ns(), Proto::Udp, node_addr(&lab, 30100)).expect("the UDP NodePort on a matching address (B8)");
    let bridge = SocketAddr::new(IpAddr::V4(lab.lab.node(0).bridge_ip()), 30100);
    let r = lab.ask(lab.pod_ns(0), Proto::Tcp, bridge);
    assert!(r.is_err(), "the node's other address does not answer on the NodePort (B8): {r:?}");
}

/// Cross-node endpoints, reached over the overlay from the proxy's node.
pub fn cross_node_endpoints(mode: &'static str, overlay: ferry_netlab::Overlay) {
    let mut lab = ProxyLab::two_nodes(mode, overlay, 1);
    let a = lab.lab.node(0).name().to_owned();
    let b = lab.lab.node(1).name().to_owned();
    let eps = [(lab.pod_ip(0), a.as_str(), true, true, false), (lab.pod_ip(1), b.as_str(), true, true, false)];
    lab.write(
        "web.yaml",
        &(service("web", "10.96.0.90", "NodePort", &[("", 80, "TCP", Some(30099))], "")
            + &slice("web", &[("", "TCP")], &eps)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.90:80")), Result::is_ok).unwrap();
    let spread = lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.90:80"), 30);
    assert_eq!(spread.len(), 2, "both the local and the remote pod answer: {spread:?}");
    let spread = lab.spread(lab.pod_ns(0), Proto::Tcp, sa("10.96.0.90:80"), 30);
    assert_eq!(spread.len(), 2, "from a pod too: {spread:?}");
    let spread = lab.spread(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30099), 30);
    assert_eq!(spread.len(), 2, "through the NodePort: {spread:?}");
}

/// `--detect-local-mode bridge-interface` (no `--cluster-cidr`): a pod's traffic, which
/// comes in on the pods' bridge `cni0`, keeps its address (B20); a client's is
/// masqueraded (B22).
pub fn detect_local_by_bridge_interface(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    lab.start_proxy(&["--detect-local-mode", "bridge-interface", "--pod-bridge-interface", "cni0"]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let vip = sa("10.96.0.10:80");
    let a = lab.until("the ClusterIP from the client", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();
    assert_eq!(a.peer.ip(), bridge, "the client did not come in on cni0: masqueraded (B22)");
    pod_keeps_its_address(&lab, vip);
}

/// `--detect-local-mode node-cidr`: the Node's `spec.podCIDRs` tell pods from outside;
/// nothing is programmed until the Node has them.
pub fn detect_local_by_node_cidr(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    let node = lab.node_name();
    let o = lab.lab.pod(0).ip().octets();
    let pod_cidr = format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
    lab.write("node.yaml", &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\nspec:\n  podCIDR: {pod_cidr}\n  podCIDRs: [{pod_cidr}]\n"));
    lab.start_proxy(&["--detect-local-mode", "node-cidr"]);
    let bridge = IpAddr::V4(lab.lab.node(0).bridge_ip());
    let vip = sa("10.96.0.10:80");
    let a = lab.until("the ClusterIP from the client", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();
    assert_eq!(a.peer.ip(), bridge, "outside {pod_cidr}: masqueraded (B22)");
    pod_keeps_its_address(&lab, vip);
    assert!(lab.proxy_log().contains("the Node's podCIDRs"), "{}", lab.proxy_log());
}

/// pod-0 asks `vip` 30 times; whenever pod-1 answers, it saw pod-0's own address (B20).
fn pod_keeps_its_address(lab: &ProxyLab, vip: SocketAddr) {
    let mut from_pod_1 = 0;
    for _ in 0..30 {
        let a = lab.ask(lab.pod_ns(0), Proto::Tcp, vip).expect("the ClusterIP from a pod");
        if a.name == "pod-1" {
            assert_eq!(a.peer.ip(), lab.pod_ip(0), "the pod's own address (B20): not masqueraded");
            from_pod_1 += 1;
        }
    }
    assert!(from_pod_1 > 0, "pod-1 answered pod-0 at least once in 30");
}
