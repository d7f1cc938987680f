//! Building the state from many objects: B3, B4, B5, B13, B16-B18, B33, and the diff.

// Tests build object lists inline; the clones keep them readable.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use common::*;
use ferry_fixtures::{node, service, slice};
use ferry_model::diff::diff;

#[test]
fn b3_endpoints_of_every_slice_of_a_service_are_merged_and_deduplicated() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("http", 80, "TCP").build();
    let a = slice("default", "web-a", "web", "IPv4")
        .port("http", 8080, "TCP")
        .ready("10.244.1.5", NODE)
        .ready("10.244.2.5", "node-b")
        .build();
    let b = slice("default", "web-b", "web", "IPv4")
        .port("http", 8080, "TCP")
        .ready("10.244.3.5", "node-c")
        // The same endpoint in two slices (a migration): one endpoint, the ready copy wins.
        .endpoint("10.244.1.5", Some(NODE), Some(false), Some(false), Some(true))
        .build();
    let other = slice("default", "api-a", "api", "IPv4").port("http", 9090, "TCP").ready("10.244.9.9", NODE).build();
    let built = build(&[svc], &[a, b, other]);
    let p = port(built.state(), "default", "web", "http", "TCP", false);
    assert_eq!(addrs(p.endpoints.iter()), vec!["10.244.1.5:8080", "10.244.2.5:8080", "10.244.3.5:8080"]);
    assert!(p.endpoints[0].is_usable());
}

#[test]
fn b3_slices_of_another_family_do_not_feed_a_single_stack_service() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let v6 = slice("default", "web-v6", "web", "IPv6").port("", 8080, "TCP").ready("fd00::5", NODE).build();
    let built = build(&[svc], &[v6]);
    assert_eq!(built.state().len(), 1);
    assert!(port(built.state(), "default", "web", "", "TCP", false).endpoints.is_empty());
}

#[test]
fn b4_dual_stack_is_two_independent_ports_fed_by_their_own_slices() {
    let svc = service("default", "web")
        .cluster_ip("10.96.0.10")
        .cluster_ip("fd00::10")
        .port("", 80, "TCP")
        .external_ip("192.0.2.1")
        .external_ip("2001:db8::1")
        .build();
    let v4 = slice("default", "web-v4", "web", "IPv4").port("", 8080, "TCP").ready("10.244.1.5", NODE).build();
    let v6 = slice("default", "web-v6", "web", "IPv6")
        .port("", 8080, "TCP")
        .ready("fd00::5", NODE)
        .ready("fd00::6", NODE)
        .build();
    let built = build(&[svc], &[v4, v6]);
    let p4 = port(built.state(), "default", "web", "", "TCP", false);
    let p6 = port(built.state(), "default", "web", "", "TCP", true);
    assert_eq!(p4.cluster_ip.to_string(), "10.96.0.10");
    assert_eq!(p6.cluster_ip.to_string(), "fd00::10");
    assert_eq!(addrs(p4.endpoints.iter()), vec!["10.244.1.5:8080"]);
    assert_eq!(addrs(p6.endpoints.iter()), vec!["[fd00::5]:8080", "[fd00::6]:8080"]);
    assert_eq!(p4.external_ips.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["192.0.2.1"]);
    assert_eq!(p6.external_ips.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["2001:db8::1"]);
}

#[test]
fn b5_named_target_ports_resolve_through_slice_port_names_per_protocol() {
    let svc =
        service("default", "dns").cluster_ip("10.96.0.10").port("dns", 53, "UDP").port("dns-tcp", 53, "TCP").build();
    let s = slice("default", "dns-1", "dns", "IPv4")
        .port("dns", 5353, "UDP")
        .port("dns-tcp", 5354, "TCP")
        .ready("10.244.1.5", NODE)
        .build();
    let built = build(&[svc], &[s]);
    assert_eq!(
        addrs(port(built.state(), "default", "dns", "dns", "UDP", false).endpoints.iter()),
        vec!["10.244.1.5:5353"]
    );
    assert_eq!(
        addrs(port(built.state(), "default", "dns", "dns-tcp", "TCP", false).endpoints.iter()),
        vec!["10.244.1.5:5354"]
    );
}

#[test]
fn b5_a_slice_port_of_another_protocol_does_not_match() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("http", 80, "TCP").build();
    let s = slice("default", "web-1", "web", "IPv4").port("http", 8080, "UDP").ready("10.244.1.5", NODE).build();
    let built = build(&[svc], &[s]);
    assert!(port(built.state(), "default", "web", "http", "TCP", false).endpoints.is_empty());
}

#[test]
fn b13_terminating_fallback_for_cluster_and_local_sets_separately() {
    let svc = service("default", "web")
        .type_("NodePort")
        .cluster_ip("10.96.0.10")
        .node_port("", 80, "TCP", 30080)
        .external_policy("Local")
        .build();
    let s = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.2.5", "node-b")
        .endpoint("10.244.1.5", Some(NODE), Some(false), Some(true), Some(true))
        .endpoint("10.244.1.6", Some(NODE), Some(false), Some(false), Some(true))
        .build();
    let built = build(&[svc], &[s]);
    let p = port(built.state(), "default", "web", "", "TCP", false);
    assert_eq!(addrs(p.cluster_endpoints()), vec!["10.244.2.5:8080"]);
    assert_eq!(addrs(p.local_endpoints()), vec!["10.244.1.5:8080"]);
    assert_eq!(addrs(p.external_endpoints()), vec!["10.244.1.5:8080"]);
    assert_eq!(addrs(p.internal_endpoints()), vec!["10.244.2.5:8080"]);
}

#[test]
fn b16_internal_policy_local_uses_only_local_endpoints_and_drops_without_them() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").internal_policy("Local").build();
    let remote_only =
        slice("default", "web-1", "web", "IPv4").port("", 8080, "TCP").ready("10.244.2.5", "node-b").build();
    let built = build(&[svc.clone()], &[remote_only]);
    let p = port(built.state(), "default", "web", "", "TCP", false);
    assert_eq!(p.internal_endpoints().count(), 0);
    assert!(p.has_serving_endpoints(), "endpoints exist elsewhere: drop, not reject");

    let mixed = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.2.5", "node-b")
        .ready("10.244.1.5", NODE)
        .build();
    let built = build(&[svc], &[mixed]);
    let p = port(built.state(), "default", "web", "", "TCP", false);
    assert_eq!(addrs(p.internal_endpoints()), vec!["10.244.1.5:8080"]);
}

#[test]
fn b17_external_policy_local_keeps_the_cluster_set_for_in_cluster_traffic() {
    let svc = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .node_port("", 80, "TCP", 30080)
        .ingress("203.0.113.10", None)
        .external_policy("Local")
        .build();
    let s = slice("default", "lb-1", "lb", "IPv4").port("", 8080, "TCP").ready("10.244.2.5", "node-b").build();
    let built = build(&[svc], &[s]);
    let p = port(built.state(), "default", "lb", "", "TCP", false);
    assert_eq!(p.external_endpoints().count(), 0, "no local endpoint: outside traffic dropped");
    assert_eq!(addrs(p.cluster_endpoints()), vec!["10.244.2.5:8080"], "pods and the node still reach all endpoints");
}

#[test]
fn b19_no_endpoints_at_all_means_reject() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let not_serving = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .endpoint("10.244.1.5", Some(NODE), Some(false), Some(false), Some(true))
        .build();
    let built = build(&[svc], &[not_serving]);
    let p = port(built.state(), "default", "web", "", "TCP", false);
    assert!(!p.has_serving_endpoints());
    assert_eq!(p.cluster_endpoints().count(), 0);
}

#[test]
fn b18_zone_hints_follow_the_nodes_zone_label() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let s = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.5", NODE)
        .hints(&["zone-a"], &[])
        .ready("10.244.2.5", "node-b")
        .hints(&["zone-b"], &[])
        .build();
    let mut b = build(&[svc], &[s]);
    // No Node yet: no zone known, every endpoint is used.
    assert_eq!(port(b.state(), "default", "web", "", "TCP", false).cluster_endpoints().count(), 2);
    apply_node(&mut b, &node(NODE).zone("zone-b").build());
    let diff = b.rebuild();
    assert!(diff.node_changed);
    assert_eq!(ids(&diff).2, vec!["default/web/TCP (IPv4)"]);
    assert_eq!(addrs(port(b.state(), "default", "web", "", "TCP", false).cluster_endpoints()), vec!["10.244.2.5:8080"]);
}

#[test]
fn b18_node_hints_win_over_zone_hints() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let s = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.5", "node-c")
        .hints(&["zone-a"], &[NODE])
        .ready("10.244.2.5", "node-b")
        .hints(&["zone-a"], &["node-b"])
        .build();
    let mut b = StateBuilder::new(NODE);
    apply_node(&mut b, &node(NODE).zone("zone-a").build());
    apply_service(&mut b, &svc);
    apply_slice(&mut b, &s);
    b.rebuild();
    assert_eq!(addrs(port(b.state(), "default", "web", "", "TCP", false).cluster_endpoints()), vec!["10.244.1.5:8080"]);
}

use ferry_model::StateBuilder;

#[test]
fn b33_an_invalid_service_or_slice_never_affects_another() {
    let good = service("ns1", "good").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let bad = service("ns1", "bad").cluster_ip("10.96.0.11").port("", 0, "TCP").build();
    let good_slice = slice("ns1", "good-1", "good", "IPv4").port("", 8080, "TCP").ready("10.244.1.5", NODE).build();
    let orphan = slice("ns1", "ghost-1", "ghost", "IPv4").port("", 8080, "TCP").ready("10.244.1.6", NODE).build();
    let bad_slice = slice("ns1", "bad-1", "bad", "IPv4").port("", 8080, "TCP").ready("10.244.1.7", NODE).build();
    let built = build(&[good, bad], &[good_slice, orphan, bad_slice]);
    assert_eq!(built.state().len(), 1);
    assert_eq!(port(built.state(), "ns1", "good", "", "TCP", false).endpoints.len(), 1);
    let reasons: Vec<String> = built.rejections().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("Service ns1/bad skipped: spec.ports[0].port 0")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("EndpointSlice ns1/ghost-1 skipped: its service ns1/ghost does not exist")),
        "{reasons:?}"
    );
}

#[test]
fn b33_a_service_that_turns_invalid_is_removed_and_its_rejection_clears_when_fixed() {
    let good = service("ns1", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let mut b = build(&[good.clone()], &[]);
    apply_service(&mut b, &service("ns1", "web").cluster_ip("10.96.0.10").port("", 80, "ICMP").build());
    let diff = b.rebuild();
    assert_eq!(ids(&diff).1, vec!["ns1/web/TCP (IPv4)"]);
    assert_eq!(b.rejections().count(), 1);
    apply_service(&mut b, &good);
    let diff = b.rebuild();
    assert_eq!(ids(&diff).0, vec!["ns1/web/TCP (IPv4)"]);
    assert_eq!(b.rejections().count(), 0);
}

#[test]
fn setting_the_same_objects_again_changes_nothing() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let s = slice("default", "web-1", "web", "IPv4").port("", 8080, "TCP").ready("10.244.1.5", NODE).build();
    let mut b = build(&[svc.clone()], &[s.clone()]);
    apply_service(&mut b, &svc);
    apply_slice(&mut b, &s);
    assert!(!b.has_pending_changes());
    assert!(b.rebuild().is_empty());
}

#[test]
fn the_incremental_diff_names_exactly_the_changed_endpoints_and_matches_the_full_diff() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    let other = service("default", "api").cluster_ip("10.96.0.11").port("", 80, "TCP").build();
    let s1 = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.5", NODE)
        .ready("10.244.1.6", NODE)
        .build();
    let mut b = build(&[svc, other], &[s1]);
    let before = b.state().clone();

    let s2 = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.6", NODE)
        .ready("10.244.1.7", NODE)
        .build();
    apply_slice(&mut b, &s2);
    let incremental = b.rebuild();
    assert_eq!(incremental, diff(&before, b.state()));
    assert_eq!(incremental.changed.len(), 1);
    let change = &incremental.changed[0];
    assert!(!change.frontend_changed);
    assert_eq!(change.endpoints.added.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["10.244.1.7:8080"]);
    assert_eq!(change.endpoints.removed.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["10.244.1.5:8080"]);
    assert!(change.endpoints.updated.is_empty());

    // Turning terminating is an update, not a removal.
    let s3 = slice("default", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.6", NODE)
        .endpoint("10.244.1.7", Some(NODE), Some(false), Some(true), Some(true))
        .build();
    apply_slice(&mut b, &s3);
    let d = b.rebuild();
    assert_eq!(
        d.changed[0].endpoints.updated.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["10.244.1.7:8080"]
    );

    // Deleting a service removes all its ports, and the full diff agrees.
    let before = b.state().clone();
    delete_service(&mut b, "default", "web");
    let d = b.rebuild();
    assert_eq!(ids(&d).1, vec!["default/web/TCP (IPv4)"]);
    assert_eq!(d, diff(&before, b.state()));
}

#[test]
fn health_checks_count_distinct_usable_local_endpoints() {
    let svc = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .cluster_ip("fd00::10")
        .node_port("http", 80, "TCP", 30080)
        .node_port("https", 443, "TCP", 30443)
        .external_policy("Local")
        .health_check_node_port(32000)
        .build();
    let s = slice("default", "lb-1", "lb", "IPv4")
        .port("http", 8080, "TCP")
        .port("https", 8443, "TCP")
        .ready("10.244.1.5", NODE)
        .ready("10.244.2.5", "node-b")
        .endpoint("10.244.1.6", Some(NODE), Some(false), Some(true), Some(true))
        .build();
    let built = build(&[svc], &[s]);
    let checks = built.state().health_checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].node_port, 32000);
    assert_eq!(checks[0].local_endpoints, 1);
}
