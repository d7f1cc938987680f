//! B12: NodePorts on 127.0.0.1, from the node itself.

use ferry_netlab::Proto;

use super::super::*;
use super::*;

/// B12: `127.0.0.1:nodePort` from the node reaches an endpoint, masqueraded (the reply
/// must come back to the node); with localhost NodePorts turned off it does not answer.
/// `on` and `off` are the flags that turn them on and off in this mode.
pub fn localhost_node_ports(mode: &'static str, on: &[&str], off: &[&str]) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    let mut args = vec!["--cluster-cidr", CLUSTER_CIDR];
    args.extend(on);
    lab.start_proxy(&args);
    let local = sa("127.0.0.1:30080");
    let a = lab
        .until("127.0.0.1:30080 from the node", || lab.ask(lab.node_ns(), Proto::Tcp, local), Result::is_ok)
        .unwrap();
    assert_eq!(a.name, "pod-0");
    assert_eq!(a.peer.ip(), IpAddr::V4(lab.lab.node(0).bridge_ip()), "localhost NodePort traffic is masqueraded");
    lab.ask(lab.node_ns(), Proto::Udp, sa("127.0.0.1:53")).expect_err("port 53 is no NodePort: nothing answers");
    lab.stop_proxy();

    let mut args = vec!["--cluster-cidr", CLUSTER_CIDR];
    args.extend(off);
    lab.start_proxy(&args);
    let _ = lab.until("localhost NodePorts off", || lab.ask(lab.node_ns(), Proto::Tcp, local), Result::is_err);
    lab.ask(lab.node_ns(), Proto::Tcp, sa("10.96.0.10:80")).expect("the ClusterIP still answers");
}
