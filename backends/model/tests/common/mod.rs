//! Helpers shared by the model's contract tests.
#![allow(dead_code)]

use ferry_model::{
    Admission, NodeSpec, ProxyState, ServiceName, ServicePort, ServiceSpec, SliceName, SliceSpec, StateBuilder,
    StateDiff,
};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub const NODE: &str = "node-a";

/// A builder for `NODE` fed with the given objects, rebuilt once.
pub fn build(services: &[Service], slices: &[EndpointSlice]) -> StateBuilder {
    let mut b = StateBuilder::new(NODE);
    for s in services {
        apply_service(&mut b, s);
    }
    for s in slices {
        apply_slice(&mut b, s);
    }
    b.rebuild();
    b
}

pub fn apply_service(b: &mut StateBuilder, s: &Service) {
    let meta = &s.metadata;
    let name = ServiceName::new(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or(""));
    b.set_service(name, Some(ServiceSpec::admit(s)));
}

pub fn delete_service(b: &mut StateBuilder, namespace: &str, name: &str) {
    b.set_service(ServiceName::new(namespace, name), None);
}

pub fn apply_slice(b: &mut StateBuilder, s: &EndpointSlice) {
    let meta = &s.metadata;
    let name = SliceName::new(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or(""));
    b.set_slice(name, Some(SliceSpec::admit(s)));
}

pub fn apply_node(b: &mut StateBuilder, n: &Node) {
    b.set_node(Some(NodeSpec::admit(n)));
}

/// The single port of `ns/name` with this protocol and family.
pub fn port<'a>(
    state: &'a ProxyState,
    ns: &str,
    name: &str,
    port_name: &str,
    proto: &str,
    v6: bool,
) -> &'a ServicePort {
    state
        .ports()
        .find(|(id, _)| {
            &*id.service.namespace == ns
                && &*id.service.name == name
                && &*id.port_name == port_name
                && id.protocol.k8s_name() == proto
                && (id.family == ferry_model::IpFamily::V6) == v6
        })
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "no port {ns}/{name}:{port_name}/{proto} v6={v6} in {:#?}",
                state.ports().map(|(i, _)| i.to_string()).collect::<Vec<_>>()
            )
        })
}

/// Addresses ("ip:port") of a set of endpoints.
pub fn addrs<'a>(eps: impl Iterator<Item = &'a ferry_model::Endpoint>) -> Vec<String> {
    eps.map(|e| e.addr().to_string()).collect()
}

/// The reason of a rejected admission, panicking otherwise.
pub fn rejected<T: std::fmt::Debug>(a: Admission<T>) -> String {
    match a {
        Admission::Rejected(r) => r.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn ids(diff: &StateDiff) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        diff.added.iter().map(ToString::to_string).collect(),
        diff.removed.iter().map(ToString::to_string).collect(),
        diff.changed.iter().map(|c| c.id.to_string()).collect(),
    )
}
