//! Golden tests: the restore input a first sync sends for a few representative services,
//! kept as readable files in `tests/golden/`. A change to the rendering shows up as a diff
//! of these files, to be read and reviewed; `FERRY_BLESS=1 cargo test -p ferry-iptables
//! --test golden` rewrites them.

use ferry_fixtures::{service, slice};
use ferry_iptables::{IptConfig, IptablesBackend};
use ferry_model::{ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

fn state(objects: Vec<(Service, EndpointSlice)>) -> StateBuilder {
    let mut b = StateBuilder::new("node-a");
    for (svc, sl) in objects {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slice_name = sl.metadata.name.clone().unwrap_or_default();
        b.set_service(ServiceName::new(&ns, &name), Some(ServiceSpec::admit(&svc)));
        b.set_slice(SliceName::new(&ns, &slice_name), Some(SliceSpec::admit(&sl)));
    }
    b.rebuild();
    b
}

fn check(name: &str, objects: Vec<(Service, EndpointSlice)>, config: &IptConfig) {
    check_state(name, &state(objects), config);
}

fn check_state(name: &str, b: &StateBuilder, config: &IptConfig) {
    let text = IptablesBackend::render_inputs(b.state(), config);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"));
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with FERRY_BLESS=1 to write it", path.display()));
    assert!(text == expected, "{name}: the rendering changed; review and bless it. Got:\n{text}");
}

fn cidr() -> IptConfig {
    IptConfig { cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()], ..IptConfig::default() }
}

#[test]
fn cluster_ip_with_two_endpoints() {
    let svc = service("demo", "web").cluster_ip("10.96.0.10").port("http", 80, "TCP").build();
    let sl = slice("demo", "web-1", "web", "IPv4")
        .port("http", 8080, "TCP")
        .ready("10.244.1.5", "node-a")
        .ready("10.244.2.6", "node-b")
        .build();
    check("cluster_ip", vec![(svc, sl)], &cidr());
}

#[test]
fn node_port_with_local_external_policy() {
    let svc = service("demo", "edge")
        .cluster_ip("10.96.0.20")
        .type_("NodePort")
        .node_port("https", 443, "TCP", 30443)
        .external_policy("Local")
        .external_ip("192.0.2.20")
        .build();
    let sl = slice("demo", "edge-1", "edge", "IPv4")
        .port("https", 8443, "TCP")
        .ready("10.244.1.7", "node-a")
        .ready("10.244.2.8", "node-b")
        .build();
    check("node_port_local", vec![(svc, sl)], &cidr());
}

#[test]
fn client_ip_affinity_udp() {
    let svc =
        service("demo", "dns").cluster_ip("10.96.0.53").port("dns", 53, "UDP").client_ip_affinity(Some(600)).build();
    let sl = slice("demo", "dns-1", "dns", "IPv4")
        .port("dns", 5353, "UDP")
        .ready("10.244.1.9", "node-b")
        .ready("10.244.2.9", "node-b")
        .build();
    check("affinity", vec![(svc, sl)], &cidr());
}

#[test]
fn load_balancer_with_source_ranges_and_a_service_without_endpoints() {
    let lb = service("demo", "shop")
        .cluster_ip("10.96.0.80")
        .type_("LoadBalancer")
        .node_port("http", 80, "TCP", 30080)
        .ingress("203.0.113.80", None)
        .source_range("198.51.100.0/24")
        .build();
    let lb_slice =
        slice("demo", "shop-1", "shop", "IPv4").port("http", 8080, "TCP").ready("10.244.2.3", "node-b").build();
    let empty =
        service("demo", "empty").cluster_ip("10.96.0.99").type_("NodePort").node_port("", 81, "TCP", 30081).build();
    let empty_slice = slice("demo", "empty-1", "empty", "IPv4").port("", 8081, "TCP").build();
    check(
        "load_balancer_and_empty",
        vec![(lb, lb_slice), (empty, empty_slice)],
        &IptConfig { masquerade_all: true, ..cidr() },
    );
}

#[test]
fn dual_stack() {
    let svc = service("demo", "both")
        .cluster_ip("10.96.0.30")
        .port("http", 80, "TCP")
        .with(|s| {
            let spec = s.spec.get_or_insert_with(Default::default);
            spec.cluster_ips = Some(vec!["10.96.0.30".into(), "fd00:10:96::30".into()]);
            spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
        })
        .build();
    let v4 = slice("demo", "both-4", "both", "IPv4").port("http", 8080, "TCP").ready("10.244.1.4", "node-a").build();
    let v6 =
        slice("demo", "both-6", "both", "IPv6").port("http", 8080, "TCP").ready("fd00:10:244:1::4", "node-a").build();
    let mut b = state(vec![(svc.clone(), v4)]);
    b.set_slice(SliceName::new("demo", "both-6"), Some(SliceSpec::admit(&v6)));
    b.rebuild();
    let config = IptConfig {
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap(), "fd00:10:244::/56".parse().unwrap()],
        ..IptConfig::default()
    };
    check_state("dual_stack", &b, &config);
}
