//! Admission of Services and EndpointSlices: B1, B2, B5, B6, B9, B33.

mod common;

use common::*;
use ferry_fixtures::{service, slice};
use ferry_model::{Admission, IpFamily, Protocol, ServiceSpec, SliceSpec};

fn accepted(a: Admission<ServiceSpec>) -> ServiceSpec {
    match a {
        Admission::Accepted { spec, skipped } => {
            assert!(skipped.is_empty(), "{skipped:?}");
            spec
        }
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn b1_clusterip_nodeport_and_loadbalancer_are_proxied() {
    for t in ["ClusterIP", "NodePort", "LoadBalancer"] {
        let svc = service("default", "web").type_(t).cluster_ip("10.96.0.10").node_port("", 80, "TCP", 30080).build();
        let spec = accepted(ServiceSpec::admit(&svc));
        assert_eq!(spec.ports.len(), 1);
        assert_eq!(spec.ports[0].node_port, if t == "ClusterIP" { None } else { Some(30080) }, "{t}");
    }
}

#[test]
fn b1_headless_and_externalname_produce_nothing() {
    let headless = service("default", "db")
        .with(|s| s.spec.as_mut().unwrap().cluster_ip = Some("None".into()))
        .port("", 5432, "TCP")
        .build();
    assert!(matches!(ServiceSpec::admit(&headless), Admission::Ignored(r) if r.contains("headless")));
    let external = service("default", "ext").type_("ExternalName").port("", 80, "TCP").build();
    assert!(matches!(ServiceSpec::admit(&external), Admission::Ignored(r) if r.contains("ExternalName")));
    // Neither is programmed, and neither is an error.
    let b = build(&[headless, external], &[]);
    assert!(b.state().is_empty());
    assert_eq!(b.rejections().count(), 0);
}

#[test]
fn b2_service_proxy_name_label_is_ignored_until_removed() {
    let labelled = service("default", "web")
        .cluster_ip("10.96.0.10")
        .port("", 80, "TCP")
        .label("service.kubernetes.io/service-proxy-name", "other")
        .build();
    let mut b = build(&[labelled], &[]);
    assert!(b.state().is_empty());
    let unlabelled = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    apply_service(&mut b, &unlabelled);
    let diff = b.rebuild();
    assert_eq!(ids(&diff).0, vec!["default/web/TCP (IPv4)"]);
}

#[test]
fn b2_headless_labelled_slices_are_ignored() {
    let s = slice("default", "web-1", "web", "IPv4")
        .label("service.kubernetes.io/headless", "")
        .ready("10.244.1.5", NODE)
        .build();
    assert!(matches!(SliceSpec::admit(&s), Admission::Ignored(_)));
}

#[test]
fn b3_fqdn_slices_are_ignored() {
    let s = slice("default", "web-1", "web", "FQDN").build();
    assert!(matches!(SliceSpec::admit(&s), Admission::Ignored(r) if r.contains("FQDN")));
}

#[test]
fn b5_same_port_on_three_protocols_is_three_ports() {
    let svc = service("default", "dns")
        .cluster_ip("10.96.0.10")
        .port("tcp", 53, "TCP")
        .port("udp", 53, "UDP")
        .port("sctp", 53, "SCTP")
        .build();
    let spec = accepted(ServiceSpec::admit(&svc));
    let protos: Vec<Protocol> = spec.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protos, vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
}

#[test]
fn b5_a_repeated_port_and_protocol_is_rejected() {
    let svc = service("default", "dup").cluster_ip("10.96.0.10").port("a", 80, "TCP").port("b", 80, "TCP").build();
    let reason = rejected(ServiceSpec::admit(&svc));
    assert!(reason.contains("spec.ports[1]") && reason.contains("repeats"), "{reason}");
}

#[test]
fn b6_leading_zero_addresses_are_normalised() {
    let svc = service("default", "web")
        .cluster_ip("10.096.000.010")
        .port("", 80, "TCP")
        .external_ip("192.168.001.010")
        .build();
    let spec = accepted(ServiceSpec::admit(&svc));
    assert_eq!(spec.cluster_ips[0].to_string(), "10.96.0.10");
    assert_eq!(spec.external_ips[0].to_string(), "192.168.1.10");
    let s = slice("default", "web-1", "web", "IPv4").port("", 8080, "TCP").ready("10.244.001.005", NODE).build();
    let spec = SliceSpec::admit(&s);
    assert_eq!(spec.spec().unwrap().endpoints[0].address.to_string(), "10.244.1.5");
}

#[test]
fn b4_cluster_ips_give_one_address_per_family() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").cluster_ip("fd00::10").port("", 80, "TCP").build();
    let spec = accepted(ServiceSpec::admit(&svc));
    assert_eq!(spec.cluster_ips.len(), 2);
    let two_v4 =
        service("default", "web").cluster_ip("10.96.0.10").cluster_ip("10.96.0.11").port("", 80, "TCP").build();
    assert!(rejected(ServiceSpec::admit(&two_v4)).contains("same family"));
}

#[test]
fn b9_ip_mode_proxy_gets_no_address_and_lb_without_ingress_is_a_nodeport() {
    let svc = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .node_port("", 80, "TCP", 30080)
        .ingress("203.0.113.10", Some("VIP"))
        .ingress("203.0.113.11", Some("Proxy"))
        .ingress("203.0.113.12", None)
        .build();
    let spec = accepted(ServiceSpec::admit(&svc));
    let lb: Vec<String> = spec.load_balancer_ips.iter().map(ToString::to_string).collect();
    assert_eq!(lb, vec!["203.0.113.10", "203.0.113.12"]);

    let pending =
        service("default", "lb").type_("LoadBalancer").cluster_ip("10.96.0.10").node_port("", 80, "TCP", 30080).build();
    let spec = accepted(ServiceSpec::admit(&pending));
    assert!(spec.load_balancer_ips.is_empty());
    assert_eq!(spec.ports[0].node_port, Some(30080));
}

#[test]
fn b9_allocate_load_balancer_node_ports_false_means_no_node_port() {
    let svc = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .port("", 80, "TCP")
        .ingress("203.0.113.10", None)
        .with(|s| s.spec.as_mut().unwrap().allocate_load_balancer_node_ports = Some(false))
        .build();
    let spec = accepted(ServiceSpec::admit(&svc));
    assert_eq!(spec.ports[0].node_port, None);
    assert_eq!(spec.load_balancer_ips.len(), 1);
}

#[test]
fn b10_source_ranges_only_for_load_balancers_with_host_bits_cleared() {
    let svc = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .port("", 80, "TCP")
        .source_range("192.168.1.7/24")
        .source_range(" 10.0.0.0/8 ")
        .build();
    let spec = accepted(ServiceSpec::admit(&svc));
    let ranges: Vec<String> = spec.load_balancer_source_ranges.iter().map(ToString::to_string).collect();
    assert_eq!(ranges, vec!["192.168.1.0/24", "10.0.0.0/8"]);
    let bad = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .port("", 80, "TCP")
        .source_range("10.0.0.0/40")
        .build();
    assert!(rejected(ServiceSpec::admit(&bad)).contains("spec.loadBalancerSourceRanges[0]"));
}

#[test]
fn b15_affinity_defaults_to_three_hours() {
    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").client_ip_affinity(None).build();
    assert_eq!(accepted(ServiceSpec::admit(&svc)).affinity_timeout_seconds, Some(10_800));
    let svc =
        service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").client_ip_affinity(Some(60)).build();
    assert_eq!(accepted(ServiceSpec::admit(&svc)).affinity_timeout_seconds, Some(60));
}

#[test]
fn b17_external_policy_needs_an_external_address_and_health_check_needs_a_load_balancer() {
    let cluster_ip_only =
        service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").external_policy("Local").build();
    assert!(!accepted(ServiceSpec::admit(&cluster_ip_only)).external_policy_local);
    let lb = service("default", "lb")
        .type_("LoadBalancer")
        .cluster_ip("10.96.0.10")
        .node_port("", 80, "TCP", 30080)
        .external_policy("Local")
        .health_check_node_port(32000)
        .build();
    let spec = accepted(ServiceSpec::admit(&lb));
    assert!(spec.external_policy_local);
    assert_eq!(spec.health_check_node_port, Some(32000));
    let np = service("default", "np")
        .type_("NodePort")
        .cluster_ip("10.96.0.10")
        .node_port("", 80, "TCP", 30080)
        .external_policy("Local")
        .health_check_node_port(32000)
        .build();
    assert_eq!(accepted(ServiceSpec::admit(&np)).health_check_node_port, None);
}

#[test]
fn b33_each_kind_of_invalid_service_is_rejected_naming_the_field() {
    let base = || service("ns1", "bad").cluster_ip("10.96.0.10");
    let cases = [
        (service("ns1", "bad").cluster_ip("10.96.0.300").port("", 80, "TCP").build(), "spec.clusterIPs[0]"),
        (base().port("", 0, "TCP").build(), "spec.ports[0].port 0"),
        (base().port("", 70000, "TCP").build(), "spec.ports[0].port 70000"),
        (base().port("", 80, "ICMP").build(), "spec.ports[0].protocol"),
        (base().port("", 80, "TCP").client_ip_affinity(Some(-1)).build(), "timeoutSeconds -1"),
        (base().port("", 80, "TCP").external_ip("not-an-ip").build(), "spec.externalIPs[0]"),
        (base().type_("NodePort").node_port("", 80, "TCP", 99999).build(), "spec.ports[0].nodePort 99999"),
        (base().type_("Weird").port("", 80, "TCP").build(), "spec.type \"Weird\""),
        (service("ns1", "bad").port("", 80, "TCP").build(), "no cluster IP"),
    ];
    for (svc, needle) in cases {
        let reason = rejected(ServiceSpec::admit(&svc));
        assert!(reason.starts_with("Service ns1/bad skipped: "), "{reason}");
        assert!(reason.contains(needle), "expected {needle:?} in {reason:?}");
    }
}

#[test]
fn b33_slices_skip_broken_endpoints_and_reject_unowned_slices() {
    let s = slice("ns1", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .ready("10.244.1.5", NODE)
        .ready("10.244.1.999", NODE)
        .ready("fd00::1", NODE)
        .build();
    match SliceSpec::admit(&s) {
        Admission::Accepted { spec, skipped } => {
            assert_eq!(spec.endpoints.len(), 1);
            assert_eq!(spec.family, IpFamily::V4);
            let reasons: Vec<String> = skipped.iter().map(ToString::to_string).collect();
            assert!(reasons[0].contains("endpoints[1].addresses[0]"), "{reasons:?}");
            assert!(reasons[1].contains("not of addressType IPv4"), "{reasons:?}");
        }
        other => panic!("{other:?}"),
    }
    let unowned = slice("ns1", "stray", "web", "IPv4").with(|s| s.metadata.labels = None).build();
    assert!(rejected(SliceSpec::admit(&unowned)).contains("kubernetes.io/service-name"));
    let bad_port = slice("ns1", "web-2", "web", "IPv4").port("", 0, "TCP").build();
    match SliceSpec::admit(&bad_port) {
        Admission::Accepted { spec, skipped } => {
            assert!(spec.ports.is_empty());
            assert!(skipped[0].reason.contains("ports[0].port 0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn b13_absent_conditions_take_the_api_defaults() {
    let s = slice("ns1", "web-1", "web", "IPv4")
        .port("", 8080, "TCP")
        .endpoint("10.244.1.1", None, None, None, None)
        .endpoint("10.244.1.2", None, Some(false), None, None)
        .endpoint("10.244.1.3", None, Some(false), Some(true), Some(true))
        .build();
    let spec = SliceSpec::admit(&s);
    let eps = &spec.spec().unwrap().endpoints;
    assert!(eps[0].ready && eps[0].serving && !eps[0].terminating);
    assert!(!eps[1].ready && !eps[1].serving);
    assert!(!eps[2].ready && eps[2].serving && eps[2].terminating);
}
