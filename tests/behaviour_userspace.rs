//! `--mode userspace` in the lab: the behaviour lines a proxy in user space can hold.
//!
//! The proxy makes the service addresses local (on `lo`) and accepts connections itself,
//! so the endpoint always sees the node's address: B20 (a pod's own address), B21 and B22
//! (masquerade as such) and B17's preserved client address cannot hold and are not run.
//! It programs no kernel rules, so B26-B28's rule checks do not apply either (docs:
//! issue userspace). Run here: B7, B8, B9, B12, B14, B19, B24.

mod behaviour;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use behaviour::suite::{node_addr, refused, web};
use behaviour::*;
use ferry_netlab::Proto;

#[test]
fn b7_b8_b9_b12_b14_b19_b24_through_the_userspace_proxy() {
    let mut lab = ProxyLab::single_node("userspace", 2);
    lab.write("web.yaml", &web(&lab, &[0, 1]));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let vip = sa("10.96.0.10:80");
    let a = lab
        .until("the ClusterIP from the client", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok)
        .unwrap();
    assert!(a.name.starts_with("pod-"), "{a:?}");
    lab.ask(lab.client_ns(), Proto::Udp, sa("10.96.0.10:53")).expect("UDP through the ClusterIP (B7)");
    lab.ask(lab.node_ns(), Proto::Tcp, vip).expect("the ClusterIP from the node (B7)");
    lab.ask(lab.pod_ns(0), Proto::Tcp, vip).expect("the ClusterIP from a pod (B7)");
    lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30080)).expect("the NodePort (B8)");
    lab.ask(lab.node_ns(), Proto::Tcp, sa("127.0.0.1:30080")).expect("the NodePort on 127.0.0.1 (B12)");
    lab.ask(lab.client_ns(), Proto::Tcp, sa("198.51.100.10:80")).expect("the external IP (B9)");

    let mut counts = BTreeMap::new();
    for _ in 0..200 {
        *counts.entry(lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("spread").name).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.values().all(|n| (60..=140).contains(n)), "B14: {counts:?}");

    // B24: an endpoint change reaches the proxy; B19: no endpoints, refused at once.
    lab.write("web.yaml", &web(&lab, &[1]));
    let _ = lab.until(
        "only pod-1",
        || lab.ask(lab.client_ns(), Proto::Tcp, vip),
        |r| r.as_ref().is_ok_and(|a| a.name == "pod-1"),
    );
    lab.write("web.yaml", &web(&lab, &[]));
    let _ = lab.until("no endpoints: refused (B19)", || lab.ask(lab.client_ns(), Proto::Tcp, vip), refused);
    let r = lab.ask(lab.client_ns(), Proto::Tcp, SocketAddr::new(IpAddr::V4(lab.lab.client().gateway()), 30080));
    assert!(refused(&r), "no endpoints, NodePort (B19): {r:?}");
}

#[test]
fn b11_b19_wrong_ports_and_services_without_endpoints_are_refused() {
    behaviour::suite::wrong_ports_and_services_without_endpoints_are_refused("userspace");
}

#[test]
fn b13_terminating_endpoints_are_a_fallback() {
    behaviour::suite::terminating_endpoints_are_a_fallback("userspace");
}

#[test]
fn b15_client_ip_affinity() {
    behaviour::suite::client_ip_affinity("userspace");
}

#[test]
fn b18_topology_hints() {
    behaviour::suite::topology_hints("userspace");
}

#[test]
fn b24_changes_reach_the_kernel() {
    behaviour::suite::changes_reach_the_kernel("userspace");
}


/// What a proxy holds of B4, B10 and B16, asserted in the proxy's terms: IPv6 service
/// addresses are served (the source the endpoint sees is the node's, so B22's check is
/// not made); a client outside `loadBalancerSourceRanges` is reset, not silently dropped
/// (the kernel has completed the handshake before the proxy sees the client), and the
/// NodePort is not filtered; `internalTrafficPolicy: Local` reaches only local endpoints,
/// and with none is refused (no listener) rather than dropped.
#[test]
fn b4_b10_b16_in_a_proxys_terms() {
    let mut lab = ProxyLab::single_node("userspace", 2);
    let node = lab.node_name();
    let (p0, p1) = (lab.pod_ip(0), lab.pod_ip(1));
    let eps = [(p0, node.as_str(), true, true, false)];
    let lb = |ranges: &str| {
        service("lb", "10.96.0.50", "LoadBalancer", &[("", 80, "TCP", Some(30050))], &format!("  loadBalancerSourceRanges: [{ranges}]\n"))
            + "status:\n  loadBalancer:\n    ingress:\n    - ip: 198.51.100.50\n"
            + &slice("lb", &[("", "TCP")], &eps)
    };
    lab.write("lb.yaml", &lb("192.0.2.0/30"));
    let mixed = [(p0, node.as_str(), true, true, false), (p1, "elsewhere", true, true, false)];
    let local = "  internalTrafficPolicy: Local\n";
    lab.write(
        "int.yaml",
        &(service("int", "10.96.0.20", "ClusterIP", &[("", 80, "TCP", None)], local) + &slice("int", &[("", "TCP")], &mixed)),
    );
    lab.write(
        "int-remote.yaml",
        &(service("int-remote", "10.96.0.21", "ClusterIP", &[("", 80, "TCP", None)], local)
            + &slice("int-remote", &[("", "TCP")], &mixed[1..])),
    );
    let v6: Vec<IpAddr> = (0..2).map(|i| IpAddr::V6(lab.lab.pod(i).ip6())).collect();
    lab.write(
        "six.yaml",
        &("apiVersion: v1\nkind: Service\nmetadata: {name: six, namespace: lab}\nspec:\n  \
           clusterIP: \"fd00:10:96::41\"\n  clusterIPs: [\"fd00:10:96::41\"]\n  ipFamilies: [IPv6]\n  \
           ports:\n  - {name: http, port: 80, protocol: TCP}\n"
            .to_owned()
            + &behaviour::suite::slice6("six", &[("http", "TCP")], &v6, &node)),
    );
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDRS]);

    let lb_ip = sa("198.51.100.50:80");
    let a = lab.until("the LB IP", || lab.ask(lab.client_ns(), Proto::Tcp, lb_ip), Result::is_ok).unwrap();
    assert_eq!(a.name, "pod-0", "a client inside the source range reaches the LB IP (B10)");
    lab.write("lb.yaml", &lb("10.0.0.0/8"));
    let _ = lab.until(
        "the source range to apply",
        || lab.ask(lab.client_ns(), Proto::Tcp, lb_ip),
        |r| matches!(r, Err(ferry_netlab::ProbeError::Reset)),
    );
    lab.ask(lab.client_ns(), Proto::Tcp, node_addr(&lab, 30050)).expect("source ranges do not filter the NodePort (B10)");

    let spread = lab.spread(lab.pod_ns(1), Proto::Tcp, sa("10.96.0.20:80"), 20);
    assert_eq!(spread.keys().collect::<Vec<_>>(), vec!["pod-0"], "internalTrafficPolicy Local (B16): {spread:?}");
    let r = lab.ask(lab.pod_ns(0), Proto::Tcp, sa("10.96.0.21:80"));
    assert!(refused(&r), "internal Local without a local endpoint: refused by the proxy: {r:?}");

    let vip6 = sa("[fd00:10:96::41]:80");
    let seen: std::collections::BTreeSet<String> = (0..20)
        .map(|_| lab.until("the IPv6 ClusterIP (B4)", || lab.ask(lab.client_ns(), Proto::Tcp, vip6), Result::is_ok).unwrap().name)
        .collect();
    assert_eq!(seen.len(), 2, "both IPv6 endpoints answer (B4, B14): {seen:?}");
}
