//! B32: `kube-ferry status` says what traffic confirms.

use std::collections::BTreeSet;

use ferry_netlab::Proto;

use super::super::*;
use super::*;

/// B32: `kube-ferry status`, run beside the proxy, lists for a ClusterIP exactly the pods
/// that answer it (not one more: a pod outside the service is not listed), and a service
/// without endpoints as `(none: reject)`, which a request confirms.
pub fn status_shows_what_traffic_confirms(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 3);
    let node = lab.node_name();
    let eps: Vec<_> = [0, 1].iter().map(|i| (lab.pod_ip(*i), node.as_str(), true, true, false)).collect();
    let web = service("web", "10.96.0.10", "ClusterIP", &[("http", 80, "TCP", None)], "")
        + &slice("web", &[("http", "TCP")], &eps);
    let empty = service("empty", "10.96.0.11", "ClusterIP", &[("http", 80, "TCP", None)], "")
        + &slice("empty", &[("http", "TCP")], &[]);
    lab.write("web.yaml", &web);
    lab.write("empty.yaml", &empty);
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let vip = sa("10.96.0.10:80");
    let _ = lab.until("the ClusterIP", || lab.ask(lab.client_ns(), Proto::Tcp, vip), Result::is_ok);

    // Each of 40 requests picks one of two endpoints: both answer (missing one: 2^-39).
    let answered: BTreeSet<String> = lab
        .spread(lab.client_ns(), Proto::Tcp, vip, 40)
        .into_keys()
        .map(|name| {
            let i: usize = name.strip_prefix("pod-").and_then(|i| i.parse().ok()).expect("pod-N answers");
            SocketAddr::new(lab.pod_ip(i), POD_PORT).to_string()
        })
        .collect();
    assert_eq!(answered.len(), 2, "both endpoints answer: {answered:?}");
    assert!(refused(&lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.11:80"))), "the empty service is rejected");

    let mut args = vec!["status"];
    args.extend(lab.mode.flags());
    let table = lab.kube_ferry(&args);
    let row = |frontend: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["TCP", frontend]))
            .unwrap_or_else(|| panic!("no TCP {frontend} row in `kube-ferry status`:\n{table}\n{}", lab.diagnose()))
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let listed: BTreeSet<String> = row("10.96.0.10:80").split(", ").map(str::to_owned).collect();
    assert_eq!(listed, answered, "status lists exactly the pods that answered:\n{table}");
    assert_eq!(row("10.96.0.11:80"), "(none: reject)", "{table}");
}
