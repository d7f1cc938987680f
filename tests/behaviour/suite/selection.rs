//! Which endpoint is chosen: B13, B15-B18.

use ferry_netlab::Proto;

use super::super::*;
use super::*;

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
    // A pod of this node, and the node itself, still reach every endpoint. Not in IPVS
    // mode: one virtual service has one set of real servers, the local ones (as in
    // upstream's IPVS mode; docs/ipvs.md).
    if mode == "ipvs" {
        return;
    }
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
