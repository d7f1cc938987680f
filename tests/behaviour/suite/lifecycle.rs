//! Over time: B24-B28 and drift.

use ferry_netlab::Proto;

use super::super::*;
use super::*;

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
    lab.add_foreign_rules();
    let foreign = lab.foreign_rules();
    assert!(!foreign.trim().is_empty(), "the foreign rules are in place");
    let before = lab.whole_ruleset();

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

    // B27: the foreign rules are exactly as they were.
    let with_proxy = lab.foreign_rules();
    assert_eq!(with_proxy, foreign, "foreign rules changed (B27)");

    // B28: cleanup removes everything kube-ferry made, and nothing else.
    lab.stop_proxy();
    let out = lab.cleanup();
    assert!(out.contains(lab.mode().cleanup_says()), "{out}");
    assert_eq!(lab.whole_ruleset(), before, "cleanup restores the ruleset from before kube-ferry (B28)");
    let r = lab.ask(lab.client_ns(), Proto::Tcp, vip);
    assert!(r.is_err(), "no service after cleanup: {r:?}");
}

/// B26: a restarted proxy adopts what it programmed before: services deleted while it
/// was down lose their rules, the others keep working throughout.
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
    // The rule modes name a service's rules by namespace/name ("lab/old...": nftables in
    // chain names, iptables in `-m comment` comments); IPVS shows addresses only.
    let programmed = lab.programmed();
    let old = if mode == "ipvs" { "10.96.0.99:80" } else { "lab/old" };
    assert!(programmed.contains(old), "{programmed}");
    lab.stop_proxy();
    lab.remove("old.yaml");
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    let programmed = lab.programmed();
    assert!(
        !programmed.contains(old),
        "the rules of a service deleted while kube-ferry was down are removed:\n{programmed}"
    );
    assert!(!programmed.contains("10.96.0.99"), "{programmed}");
    lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")).expect("the remaining service still works");
}

/// Drift: a periodic full resync puts back what someone removed by hand.
pub fn full_resync_repairs_drift(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    let mut args = vec!["--cluster-cidr", CLUSTER_CIDR, "--sync-period", "2s"];
    if mode == "nftables" {
        // nftables rewrites the whole table only this often; by default, hourly.
        // iptables restores everything at every full sync (--sync-period).
        args.extend(["--nftables-full-sync-period", "2s"]);
    }
    lab.start_proxy(&args);
    lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")).expect("the service");
    lab.break_dispatch();
    let r = lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80"));
    assert!(r.is_err(), "the hand-made drift breaks the service: {r:?}");
    let _ = lab.until(
        "the resync to repair it",
        || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")),
        Result::is_ok,
    );
}

/// kube-proxy's conntrack sysctls (`--conntrack-*`) are set in the node's namespace at
/// start; `nf_conntrack_max` is not writable outside the host's namespace and is skipped.
pub fn conntrack_sysctls_are_set(mode: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    let read = |lab: &ProxyLab, name: &str| {
        lab.node_ns()
            .exec("cat", [format!("/proc/sys/net/netfilter/{name}")])
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_owned()
    };
    lab.start_proxy(&[
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--conntrack-tcp-timeout-established",
        "12h",
        "--conntrack-tcp-be-liberal",
        "--conntrack-udp-timeout",
        "45s",
    ]);
    let _ = lab.until("the service", || lab.ask(lab.client_ns(), Proto::Tcp, sa("10.96.0.10:80")), Result::is_ok);
    assert_eq!(read(&lab, "nf_conntrack_tcp_timeout_established"), "43200");
    assert_eq!(read(&lab, "nf_conntrack_tcp_be_liberal"), "1");
    assert_eq!(read(&lab, "nf_conntrack_udp_timeout"), "45");
    assert_eq!(read(&lab, "nf_conntrack_tcp_timeout_close_wait"), "3600", "the default, 1h");
}

/// B28: switching from `from` to the lab's mode removes `from`'s rules, after the new mode
/// is programmed; the service works throughout.
pub fn switching_mode_removes_the_old_rules(mode: &'static str, from: &'static str) {
    let mut lab = ProxyLab::single_node(mode, 1);
    lab.write("web.yaml", &web(&lab, &[0]));
    let vip = sa("10.96.0.10:80");
    let old = Mode::parse(from);
    lab.start_proxy_as(old, &["--cluster-cidr", CLUSTER_CIDR]);
    lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("the service in the old mode");
    lab.stop_proxy();
    lab.start_proxy(&["--cluster-cidr", CLUSTER_CIDR]);
    lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("the service in the new mode");
    let _ = lab.until(
        "the old mode's rules to go",
        || lab.proxy_log(),
        |log| log.contains("switching mode: removed"),
    );
    let log = lab.proxy_log();
    let old_said = match old {
        Mode::Nftables => "table ip kube-ferry",
        Mode::Iptables(_) => "chain KUBE-SERVICES",
        Mode::Ipvs => "virtual service",
        Mode::Userspace => "address",
    };
    assert!(log.contains(&format!("switching mode: removed {old_said}")), "{log}");
    lab.ask(lab.client_ns(), Proto::Tcp, vip).expect("the service after the old rules went");
    lab.stop_proxy();
    lab.cleanup();
    // iptables-nft leaves its (empty) nat and filter tables behind: compare what matters.
    let after = lab.whole_ruleset();
    assert!(!after.contains("kube-ferry") && !after.contains("KUBE-"), "nothing of either mode is left:\n{after}");
}
