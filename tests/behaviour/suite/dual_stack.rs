//! B4 with real IPv6 packets: a dual-stack service answers on both ClusterIPs, each family
//! from its own slices; IPv6 NodePorts, external IPs, masquerade, hairpin and the spread
//! hold as they do for IPv4.

use std::collections::BTreeSet;

use ferry_netlab::Proto;

use super::super::*;
use super::*;

/// An EndpointSlice of `addressType: IPv6` named `NAME-v6` for `service`.
pub fn slice6(service: &str, ports: &[(&str, &str)], endpoints: &[IpAddr], node: &str) -> String {
    let mut out = format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-v6\n  namespace: lab\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv6\nports:\n"
    );
    for (name, proto) in ports {
        out.push_str(&format!("- {{name: \"{name}\", port: {POD_PORT}, protocol: {proto}}}\n"));
    }
    out.push_str("endpoints:\n");
    for ip in endpoints {
        out.push_str(&format!("- addresses: [\"{ip}\"]\n  nodeName: {node}\n  conditions: {{ready: true}}\n"));
    }
    out
}

/// B4: one service, two families; B7-B9, B14, B20-B22 over IPv6.
pub fn dual_stack(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 2);
    let node = lab.node_name();
    let v4: Vec<_> = (0..2).map(|i| (lab.pod_ip(i), node.as_str(), true, true, false)).collect();
    let v6: Vec<IpAddr> = (0..2).map(|i| IpAddr::V6(lab.lab.pod(i).ip6())).collect();
    let dual = "apiVersion: v1\nkind: Service\nmetadata: {name: dual, namespace: lab}\nspec:\n  type: NodePort\n  \
        clusterIP: 10.96.0.40\n  clusterIPs: [10.96.0.40, \"fd00:10:96::40\"]\n  ipFamilies: [IPv4, IPv6]\n  \
        ipFamilyPolicy: RequireDualStack\n  externalIPs: [\"fd00:198:51:100::40\"]\n  \
        ports:\n  - {name: http, port: 80, protocol: TCP, nodePort: 30040}\n"
        .to_owned()
        + &slice("dual", &[("http", "TCP")], &v4)
        + &slice6("dual", &[("http", "TCP")], &v6, &node);
    lab.write("dual.yaml", &dual);
    let held = |eps: &[IpAddr]| {
        "apiVersion: v1\nkind: Service\nmetadata: {name: six, namespace: lab}\nspec:\n  \
         clusterIP: \"fd00:10:96::41\"\n  clusterIPs: [\"fd00:10:96::41\"]\n  ipFamilies: [IPv6]\n  \
         ports:\n  - {name: http, port: 80, protocol: TCP}\n  - {name: dns, port: 53, protocol: UDP}\n"
            .to_owned()
            + &slice6("six", &[("http", "TCP"), ("dns", "UDP")], eps, &node)
    };
    lab.write("six.yaml", &held(&v6));
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDRS]);
    let bridge6 = IpAddr::V6(lab.lab.node(0).bridge_ip6());
    let vip6 = sa("[fd00:10:96::40]:80");

    let a = lab.until("the IPv6 ClusterIP", || lab.ask(lab.client_ns(), Proto::Tcp, vip6), Result::is_ok).unwrap();
    assert!(a.name.starts_with("pod-"), "{a:?}");
    assert_eq!(a.peer.ip(), bridge6, "off-cluster IPv6 traffic is masqueraded (B22)");
    let a = lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.40:80")).expect("the IPv4 ClusterIP of the same service");
    assert!(a.name.starts_with("pod-"));
    assert!(a.peer.is_ipv4(), "IPv4 traffic goes to IPv4 endpoints (B4): {a:?}");
    for _ in 0..20 {
        let a = lab.ask(lab.pod_ns(0), Proto::Tcp, vip6).expect("the IPv6 ClusterIP from a pod");
        let expected = if a.name == "pod-0" { bridge6 } else { IpAddr::V6(lab.lab.pod(0).ip6()) };
        assert_eq!(a.peer.ip(), expected, "{a:?}: B20, or hairpin masqueraded (B21)");
    }
    let node_port = SocketAddr::new(IpAddr::V6(lab.lab.client().gateway6()), 30040);
    let a = lab.ask(lab.client_ns(), Proto::Tcp, node_port).expect("the NodePort on the node's IPv6 address (B8)");
    assert_eq!(a.peer.ip(), bridge6, "NodePort traffic is masqueraded under a Cluster policy");
    lab.ask(lab.client_ns(), Proto::Tcp, sa("[fd00:198:51:100::40]:80")).expect("an IPv6 external IP (B9)");

    // A single-stack IPv6 ClusterIP-only service (nftables: map-held).
    let vip = sa("[fd00:10:96::41]:80");
    let _ = lab.until("the IPv6-only service", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok);
    if mode == "nftables" {
        let set = lab.nft(&["list", "set", "ip6", "kube-ferry", "spread-tcp-2"]);
        assert!(set.contains("fd00:10:96::41 . 80"), "the port is map-held, the path under test:\n{set}");
    }
    let seen: BTreeSet<String> =
        (0..40).map(|_| lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("spread").name).collect();
    assert_eq!(seen.len(), 2, "both IPv6 endpoints answer (B14): {seen:?}");
    lab.ask(lab.client_ns(), Proto::Udp, sa("[fd00:10:96::41]:53")).expect("UDP over IPv6");
    lab.write("six.yaml", &held(&[]));
    let _ = lab.until("no IPv6 endpoints: refused (B19)", || lab.ask(lab.node_ns(), Proto::Tcp, vip), refused);
}
