//! The behaviour lines, each a function taking the mode under test.

use std::collections::BTreeMap;

use ferry_netlab::{ProbeError, Proto};

use super::*;

fn web(lab: &ProxyLab, pods: &[usize]) -> String {
    let node = lab.node_name();
    let eps: Vec<_> = pods.iter().map(|i| (lab.pod_ip(*i), node.as_str(), true, true, false)).collect();
    service(
        "web",
        "10.96.0.10",
        "NodePort",
        &[("http", 80, "TCP", Some(30080)), ("dns", 53, "UDP", None)],
        "  externalIPs: [198.51.100.10]\n",
    ) + &slice("web", &[("http", "TCP"), ("dns", "UDP")], &eps)
}

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

fn refused(r: &Result<Answer, ProbeError>) -> bool {
    matches!(r, Err(ProbeError::Refused))
}

fn dropped(r: &Result<Answer, ProbeError>) -> bool {
    matches!(r, Err(ProbeError::TimedOut))
}

fn node_addr(lab: &ProxyLab, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(lab.lab.client().gateway()), port)
}

/// B16 and B17: Local policies, with pod-1 declared to run on another node.
pub fn local_traffic_policies(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let (p0, p1) = (lab.pod_ip(0), lab.pod_ip(1));
    let mixed = [(p0, node.as_str(), true, true, false), (p1, "elsewhere", true, true, false)];
    let remote = [(p1, "elsewhere", true, true, false)];
    lab.write(
        "int.yaml",
        &(service("int", "10.96.0.20", "ClusterIP", &[("", 80, "TCP", None)], "  internalTrafficPolicy: Local\n")
            + &slice("int", &[("", "TCP")], &mixed)),
    );
    lab.write(
        "int-remote.yaml",
        &(service(
            "int-remote",
            "10.96.0.21",
            "ClusterIP",
            &[("", 80, "TCP", None)],
            "  internalTrafficPolicy: Local\n",
        ) + &slice("int-remote", &[("", "TCP")], &remote)),
    );
    lab.write(
        "ext.yaml",
        &(service(
            "ext",
            "10.96.0.22",
            "NodePort",
            &[("", 80, "TCP", Some(30090))],
            "  externalTrafficPolicy: Local\n",
        ) + &slice("ext", &[("", "TCP")], &mixed)),
    );
    lab.write(
        "ext-remote.yaml",
        &(service(
            "ext-remote",
            "10.96.0.23",
            "NodePort",
            &[("", 80, "TCP", Some(30091))],
            "  externalTrafficPolicy: Local\n  externalIPs: [198.51.100.23]\n",
        ) + &slice("ext-remote", &[("", "TCP")], &remote)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the services", || lab.ask(lab.pod_ns(1), Proto::Tcp, sa("10.96.0.20:80")), Result::is_ok).unwrap();

    // B16: ClusterIP traffic only to local endpoints; none local means drop, not reject.
    let spread = lab.spread(lab.pod_ns(1), Proto::Tcp, sa("10.96.0.20:80"), 20);
    assert_eq!(spread.keys().collect::<Vec<_>>(), vec!["pod-0"], "internalTrafficPolicy Local: {spread:?}");
    let r = lab.ask(lab.pod_ns(0), Proto::Tcp, sa("10.96.0.21:80"));
    assert!(dropped(&r), "internal Local without a local endpoint is dropped (B16): {r:?}");

    // B17: outside traffic only to local endpoints, client address kept.
    for _ in 0..10 {
        let a = lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30090)).expect("the Local NodePort");
        assert_eq!(a.name, "pod-0");
        assert_eq!(a.peer.ip(), IpAddr::V4(lab.lab.client().ip()), "the client address is preserved (B17)");
    }
    let r = lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30091));
    assert!(dropped(&r), "external Local without a local endpoint is dropped (B17): {r:?}");
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.23:80"));
    assert!(dropped(&r), "external IP, Local policy, no local endpoint: dropped (B17): {r:?}");
    // A pod of this node, and the node itself, still reach every endpoint.
    let a = lab
        .ask(lab.pod_ns(0), Proto::Tcp, sa("198.51.100.23:80"))
        .expect("pod to external IP goes to all endpoints (B17)");
    assert_eq!(a.name, "pod-1");
    let a = lab
        .ask(lab.node_ns(), Proto::Tcp, sa("198.51.100.23:80"))
        .expect("node to external IP goes to all endpoints (B17)");
    assert_eq!(a.name, "pod-1");
}

/// B13: terminating endpoints are used only when none is ready; not-serving never.
pub fn terminating_endpoints_are_a_fallback(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 3);
    let node = lab.node_name();
    let (p0, p1, p2) = (lab.pod_ip(0), lab.pod_ip(1), lab.pod_ip(2));
    let svc = service("web", "10.96.0.30", "ClusterIP", &[("", 80, "TCP", None)], "");
    let draining = [(p0, node.as_str(), false, true, true), (p1, node.as_str(), false, false, true)];
    lab.write("web.yaml", &(svc.clone() + &slice("web", &[("", "TCP")], &draining)));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.30:80")), Result::is_ok).unwrap();
    let spread = lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.30:80"), 20);
    assert_eq!(spread.keys().collect::<Vec<_>>(), vec!["pod-0"], "only the serving terminating endpoint: {spread:?}");

    let mut with_ready = draining.to_vec();
    with_ready.push((p2, node.as_str(), true, true, false));
    lab.write("web.yaml", &(svc + &slice("web", &[("", "TCP")], &with_ready)));
    let _ = lab.until(
        "the ready endpoint alone",
        || lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.30:80"), 10),
        |s| s.keys().collect::<Vec<_>>() == vec!["pod-2"],
    );
}

/// B15: ClientIP affinity keeps a client on one endpoint; None spreads again.
pub fn client_ip_affinity(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let eps = [(lab.pod_ip(0), node.as_str(), true, true, false), (lab.pod_ip(1), node.as_str(), true, true, false)];
    let sticky = "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 300}}\n";
    lab.write(
        "web.yaml",
        &(service("web", "10.96.0.40", "ClusterIP", &[("", 80, "TCP", None)], sticky)
            + &slice("web", &[("", "TCP")], &eps)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.40:80")), Result::is_ok).unwrap();
    let spread = lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.40:80"), 30);
    assert_eq!(spread.len(), 1, "one client, one endpoint under affinity: {spread:?}");
    let spread = lab.spread(lab.node_ns(), Proto::Tcp, sa("10.96.0.40:80"), 30);
    assert_eq!(spread.len(), 1, "the node is one client too: {spread:?}");

    lab.write(
        "web.yaml",
        &(service("web", "10.96.0.40", "ClusterIP", &[("", 80, "TCP", None)], "")
            + &slice("web", &[("", "TCP")], &eps)),
    );
    let _ = lab.until(
        "spreading again",
        || lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.40:80"), 30),
        |s| s.len() == 2,
    );
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

/// B24: changes reach the kernel promptly.
pub fn changes_reach_the_kernel(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let (p0, p1) = (lab.pod_ip(0), lab.pod_ip(1));
    let svc = service("web", "10.96.0.60", "ClusterIP", &[("", 80, "TCP", None)], "");
    lab.write("web.yaml", &(svc.clone() + &slice("web", &[("", "TCP")], &[(p0, node.as_str(), true, true, false)])));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.60:80")), Result::is_ok).unwrap();

    let start = std::time::Instant::now();
    lab.write("web.yaml", &(svc.clone() + &slice("web", &[("", "TCP")], &[(p1, node.as_str(), true, true, false)])));
    let _ = lab.until(
        "the new endpoint",
        || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.60:80")),
        |r| r.as_ref().is_ok_and(|a| a.name == "pod-1"),
    );
    assert!(start.elapsed() < Duration::from_secs(5), "an endpoint change took {:?}", start.elapsed());

    lab.write(
        "other.yaml",
        &(service("other", "10.96.0.61", "ClusterIP", &[("", 81, "TCP", None)], "")
            + &slice("other", &[("", "TCP")], &[(p0, node.as_str(), true, true, false)])),
    );
    let _ = lab.until("a new service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.61:81")), Result::is_ok);
    lab.remove("web.yaml");
    let _ = lab.until(
        "the deleted service gone",
        || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.60:80")),
        Result::is_err,
    );
    assert!(lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.61:81")).is_ok(), "the other service is untouched");
}

/// B25: stale UDP flows are deleted when their endpoint goes, and cached rejects when a
/// service gets its first endpoint; the same client 5-tuple then reaches a live pod.
pub fn stale_udp_flows_are_cleared(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let (p0, p1) = (lab.pod_ip(0), lab.pod_ip(1));
    let svc = service("dns", "10.96.0.70", "ClusterIP", &[("", 53, "UDP", None)], "");
    lab.write("dns.yaml", &(svc.clone() + &slice("dns", &[("", "UDP")], &[(p0, node.as_str(), true, true, false)])));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let from = sa("192.0.2.2:40053");
    let vip = sa("10.96.0.70:53");
    let _ = lab.until(
        "the UDP service",
        || lab.ask_from(lab.client_ns(), Proto::Udp, vip, from),
        |r| r.as_ref().is_ok_and(|a| a.name == "pod-0"),
    );

    lab.write("dns.yaml", &(svc.clone() + &slice("dns", &[("", "UDP")], &[(p1, node.as_str(), true, true, false)])));
    let _ = lab.until(
        "the same 5-tuple on the new endpoint",
        || lab.ask_from(lab.client_ns(), Proto::Udp, vip, from),
        |r| r.as_ref().is_ok_and(|a| a.name == "pod-1"),
    );

    // No endpoints: rejected, and the reject is cached in conntrack for this 5-tuple.
    lab.write("dns.yaml", &(svc.clone() + &slice("dns", &[("", "UDP")], &[])));
    let _ = lab.until("the reject", || lab.ask_from(lab.client_ns(), Proto::Udp, vip, from), refused);
    lab.write("dns.yaml", &(svc + &slice("dns", &[("", "UDP")], &[(p0, node.as_str(), true, true, false)])));
    let _ = lab.until(
        "the same 5-tuple answered again",
        || lab.ask_from(lab.client_ns(), Proto::Udp, vip, from),
        |r| r.as_ref().is_ok_and(|a| a.name == "pod-0"),
    );
}

/// B26, B27, B28: a restart keeps rules working, foreign rules are never touched, and
/// cleanup leaves the namespace's ruleset exactly as before kube-ferry.
pub fn restart_foreign_rules_and_cleanup(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    let foreign = "table ip foreign {\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 9999 counter accept\n\t}\n}\n";
    let path = lab.dir.path().join("..").join(format!("foreign-{}.nft", std::process::id()));
    std::fs::write(&path, foreign).unwrap();
    lab.nft(&["-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    let before = lab.nft(&["list", "ruleset"]);

    lab.write("web.yaml", &web(&lab, &[0]));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let vip = sa("10.96.0.10:80");
    let _ = lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok).unwrap();

    // B26: the proxy stops; its rules keep serving; it starts again without a gap.
    lab.stop_proxy();
    for _ in 0..5 {
        lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("rules keep working while the proxy is down (B26)");
    }
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    for _ in 0..20 {
        lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("new connections keep succeeding across the restart (B26)");
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = lab.until("the restarted proxy's first sync", || lab.proxy_log(), |log| log.contains("synced"));
    lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("after the restart's sync");

    // B27: the foreign table is exactly as it was.
    let with_proxy = lab.nft(&["list", "table", "ip", "foreign"]);
    assert!(before.contains(with_proxy.trim()), "foreign rules changed:\n{with_proxy}\nwas:\n{before}");

    // B28: cleanup removes everything kube-ferry made, and nothing else.
    lab.stop_proxy();
    let out = lab.kube_ferry(&["cleanup", "--mode", mode]);
    assert!(out.contains("removed table ip kube-ferry"), "{out}");
    assert_eq!(lab.nft(&["list", "ruleset"]), before, "cleanup restores the ruleset from before kube-ferry");
    let r = lab.ask(lab.client_ns(), Proto::Tcp, vip);
    assert!(r.is_err(), "no service after cleanup: {r:?}");
}

/// B18: topology hints for this node's zone.
pub fn topology_hints(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let node_yaml = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels: {{topology.kubernetes.io/zone: zone-b}}\n"
    );
    lab.write("node.yaml", &node_yaml);
    let svc = service("web", "10.96.0.80", "ClusterIP", &[("", 80, "TCP", None)], "");
    let eps = slice(
        "web",
        &[("", "TCP")],
        &[(lab.pod_ip(0), node.as_str(), true, true, false), (lab.pod_ip(1), node.as_str(), true, true, false)],
    )
    .replacen("  conditions:", "  hints: {forZones: [{name: zone-a}]}\n  conditions:", 1);
    let eps = {
        // The second endpoint's hint: zone-b.
        let idx = eps.rfind("  conditions:").unwrap();
        format!("{}  hints: {{forZones: [{{name: zone-b}}]}}\n{}", &eps[..idx], &eps[idx..])
    };
    lab.write("web.yaml", &(svc + &eps));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let _ =
        lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.80:80")), Result::is_ok).unwrap();
    let spread = lab.spread(lab.client_ns(), Proto::Tcp, sa("10.96.0.80:80"), 20);
    assert_eq!(spread.keys().collect::<Vec<_>>(), vec!["pod-1"], "only the zone-b endpoint (B18): {spread:?}");
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

/// B26: a restarted proxy adopts its table: services deleted while it was down lose
/// their chains, the others keep working throughout.
pub fn restart_adopts_the_table(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    let node = lab.node_name();
    let eps = [(lab.pod_ip(0), node.as_str(), true, true, false)];
    lab.write("web.yaml", &web(&lab, &[0]));
    lab.write(
        "old.yaml",
        &(service("old", "10.96.0.99", "NodePort", &[("", 80, "TCP", Some(30098))], "")
            + &slice("old", &[("", "TCP")], &eps)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    assert!(lab.nft(&["list", "table", "ip", "kube-ferry"]).contains("lab/old/"));
    lab.stop_proxy();
    lab.remove("old.yaml");
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let table = lab.nft(&["list", "table", "ip", "kube-ferry"]);
    assert!(
        !table.contains("lab/old/"),
        "the chains of a service deleted while kube-ferry was down are removed:\n{table}"
    );
    assert!(!table.contains("10.96.0.99"), "{table}");
    lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")).expect("the remaining service still works");
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

/// Drift: a periodic full resync puts back what someone removed by hand.
pub fn full_resync_repairs_drift(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    let mut args = vec!["--cluster-cidr", CLUSTER_CIDR, "--sync-period", "2s"];
    if mode == "nftables" {
        // nftables rewrites the whole table only this often; by default, hourly.
        args.extend(["--nftables-full-sync-period", "2s"]);
    }
    lab.start_proxy(&args);
    lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")).expect("the service");
    lab.nft(&["flush", "map", "ip", "kube-ferry", "service-ips"]);
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80"));
    assert!(r.is_err(), "the hand-made drift breaks the service: {r:?}");
    let _ = lab.until(
        "the resync to repair it",
        || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")),
        Result::is_ok,
    );
}
