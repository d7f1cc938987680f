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
