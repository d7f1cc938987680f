//! EndpointSlice admission (B2, B3, B5, B6, B13, B18, B33).

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{port_number, Admission};
use crate::addr::parse_ip;
use crate::name::{ObjectKind, ObjectRef, ServiceName, SliceName};
use crate::protocol::{IpFamily, Protocol};
use crate::reject::Rejection;

/// The label that joins a slice to its Service (B3).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Slices carrying this label belong to headless services and are ignored (B2).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// What a proxy needs of one EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SliceSpec {
    /// The slice's namespace and name.
    pub name: SliceName,
    /// The service it belongs to, from the `kubernetes.io/service-name` label.
    pub service: ServiceName,
    /// The family of every address in the slice (`addressType`).
    pub family: IpFamily,
    /// The ports, joined to service ports by name and protocol (B5).
    pub ports: Vec<SlicePort>,
    /// The endpoints, each with its first address (as upstream kube-proxy uses).
    pub endpoints: Vec<SliceEndpoint>,
}

/// One port of a slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlicePort {
    /// The name, equal to the service port's name (`""` when unnamed).
    pub name: Arc<str>,
    /// The port the endpoints listen on (a named targetPort, already resolved).
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// One endpoint of a slice, with its conditions read as the API defines their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SliceEndpoint {
    /// The endpoint's address, canonical.
    pub address: IpAddr,
    /// `conditions.ready`; absent means true.
    pub ready: bool,
    /// `conditions.serving`; absent means the same as ready.
    pub serving: bool,
    /// `conditions.terminating`; absent means false.
    pub terminating: bool,
    /// `nodeName`, if set.
    pub node_name: Option<Arc<str>>,
    /// `zone`, if set.
    pub zone: Option<Arc<str>>,
    /// `hints.forZones[].name` (B18).
    pub zone_hints: Vec<Arc<str>>,
    /// `hints.forNodes[].name` (B18).
    pub node_hints: Vec<Arc<str>>,
}

impl SliceSpec {
    /// Admits an EndpointSlice: accepted (with any unusable endpoints or ports listed as
    /// skipped), ignored (headless label, FQDN) or rejected with a reason.
    pub fn admit(slice: &EndpointSlice) -> Admission<SliceSpec> {
        let meta = &slice.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let name = meta.name.as_deref().unwrap_or("");
        let object = ObjectRef::new(ObjectKind::EndpointSlice, namespace, name);
        let reject = |reason: String| Admission::Rejected(Rejection::new(object.clone(), reason));
        if name.is_empty() {
            return reject("metadata.name is empty".into());
        }
        let labels = meta.labels.as_ref();
        if labels.is_some_and(|l| l.contains_key(HEADLESS_LABEL)) {
            return Admission::Ignored("labelled service.kubernetes.io/headless");
        }
        let family = match slice.address_type.as_str() {
            "IPv4" => IpFamily::V4,
            "IPv6" => IpFamily::V6,
            "FQDN" => return Admission::Ignored("addressType FQDN"),
            other => return reject(format!("addressType {other:?} is not IPv4, IPv6 or FQDN")),
        };
        let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).filter(|s| !s.is_empty()) else {
            return reject(format!("label {SERVICE_NAME_LABEL} is missing: the slice belongs to no service"));
        };

        let mut skipped = Vec::new();
        let mut ports: Vec<SlicePort> = Vec::new();
        for (i, port) in slice.ports.iter().flatten().enumerate() {
            let Some(number) = port.port else {
                continue; // An unrestricted port list entry carries nothing to program.
            };
            let parsed = port_number(&format!("ports[{i}].port"), number).and_then(|number| {
                let protocol =
                    Protocol::from_k8s(port.protocol.as_deref()).map_err(|e| format!("ports[{i}].protocol: {e}"))?;
                Ok(SlicePort { name: port.name.as_deref().unwrap_or("").into(), port: number, protocol })
            });
            match parsed {
                Ok(p) if ports.iter().any(|q| q.name == p.name && q.protocol == p.protocol) => {
                    skipped.push(Rejection::new(
                        object.clone(),
                        format!("ports[{i}] repeats port name {:?}/{}; the first is used", p.name, p.protocol),
                    ));
                }
                Ok(p) => ports.push(p),
                Err(reason) => skipped.push(Rejection::new(object.clone(), reason)),
            }
        }

        let mut endpoints = Vec::with_capacity(slice.endpoints.len());
        for (i, ep) in slice.endpoints.iter().enumerate() {
            let Some(text) = ep.addresses.first() else {
                skipped.push(Rejection::new(object.clone(), format!("endpoints[{i}].addresses is empty")));
                continue;
            };
            let address = match parse_ip(text) {
                Ok(a) if IpFamily::of(&a) == family => a,
                Ok(_) => {
                    skipped.push(Rejection::new(
                        object.clone(),
                        format!("endpoints[{i}].addresses[0] {text:?} is not of addressType {family}"),
                    ));
                    continue;
                }
                Err(e) => {
                    skipped.push(Rejection::new(object.clone(), format!("endpoints[{i}].addresses[0]: {e}")));
                    continue;
                }
            };
            let conditions = ep.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let hints = ep.hints.as_ref();
            endpoints.push(SliceEndpoint {
                address,
                ready,
                serving,
                terminating,
                node_name: ep.node_name.as_deref().map(Arc::from),
                zone: ep.zone.as_deref().map(Arc::from),
                zone_hints: hints
                    .and_then(|h| h.for_zones.as_ref())
                    .map(|z| z.iter().map(|z| Arc::from(z.name.as_str())).collect())
                    .unwrap_or_default(),
                node_hints: hints
                    .and_then(|h| h.for_nodes.as_ref())
                    .map(|n| n.iter().map(|n| Arc::from(n.name.as_str())).collect())
                    .unwrap_or_default(),
            });
        }

        Admission::Accepted {
            spec: SliceSpec {
                name: SliceName::new(namespace, name),
                service: ServiceName::new(namespace, service),
                family,
                ports,
                endpoints,
            },
            skipped,
        }
    }
}
