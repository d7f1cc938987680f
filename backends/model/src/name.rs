//! Names of the things the model tracks.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::protocol::{IpFamily, Protocol};

/// Compares two shared strings, by pointer first: names built from the same admitted
/// object share their allocation, and the diff compares many of them.
fn cmp_shared(a: &Arc<str>, b: &Arc<str>) -> Ordering {
    if Arc::ptr_eq(a, b) {
        Ordering::Equal
    } else {
        a.cmp(b)
    }
}

/// The namespace and name of a Service. Equality and order are by value (with a
/// pointer shortcut).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServiceName {
    /// The namespace.
    pub namespace: Arc<str>,
    /// The name within the namespace.
    pub name: Arc<str>,
}

impl PartialEq for ServiceName {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ServiceName {}

impl PartialOrd for ServiceName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServiceName {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_shared(&self.namespace, &other.namespace).then_with(|| cmp_shared(&self.name, &other.name))
    }
}

impl Hash for ServiceName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl ServiceName {
    /// A service name from its parts.
    pub fn new(namespace: &str, name: &str) -> ServiceName {
        ServiceName { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The namespace and name of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SliceName {
    /// The namespace.
    pub namespace: Arc<str>,
    /// The name within the namespace.
    pub name: Arc<str>,
}

impl SliceName {
    /// A slice name from its parts.
    pub fn new(namespace: &str, name: &str) -> SliceName {
        SliceName { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for SliceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One service port in one IP family: the unit every backend programs.
///
/// Ordered by service, then port name, protocol and family, so all ports of one service
/// are adjacent in a [`crate::ProxyState`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServicePortId {
    /// The service.
    pub service: ServiceName,
    /// The port's name (`""` for a service's single unnamed port).
    pub port_name: Arc<str>,
    /// The protocol.
    pub protocol: Protocol,
    /// The IP family.
    pub family: IpFamily,
}

impl PartialEq for ServicePortId {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ServicePortId {}

impl PartialOrd for ServicePortId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServicePortId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.service
            .cmp(&other.service)
            .then_with(|| cmp_shared(&self.port_name, &other.port_name))
            .then_with(|| self.protocol.cmp(&other.protocol))
            .then_with(|| self.family.cmp(&other.family))
    }
}

impl Hash for ServicePortId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.service.hash(state);
        self.port_name.hash(state);
        self.protocol.hash(state);
        self.family.hash(state);
    }
}

impl ServicePortId {
    /// The smallest id of `service`: every port of the service sorts at or after it.
    pub fn first_of(service: &ServiceName) -> ServicePortId {
        ServicePortId { service: service.clone(), port_name: "".into(), protocol: Protocol::Tcp, family: IpFamily::V4 }
    }
}

impl fmt::Display for ServicePortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.service)?;
        if !self.port_name.is_empty() {
            write!(f, ":{}", self.port_name)?;
        }
        write!(f, "/{} ({})", self.protocol, self.family)
    }
}

/// The kinds of object the model admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ObjectKind {
    /// A core/v1 Service.
    Service,
    /// A discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// A core/v1 Node.
    Node,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Service => "Service",
            ObjectKind::EndpointSlice => "EndpointSlice",
            ObjectKind::Node => "Node",
        })
    }
}

/// A reference to one object: its kind, namespace (empty for a Node) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: ObjectKind,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: Arc<str>,
    /// The name.
    pub name: Arc<str>,
}

impl ObjectRef {
    /// A reference from its parts.
    pub fn new(kind: ObjectKind, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef { kind, namespace: namespace.into(), name: name.into() }
    }
}

impl From<&ServiceName> for ObjectRef {
    fn from(n: &ServiceName) -> ObjectRef {
        ObjectRef { kind: ObjectKind::Service, namespace: n.namespace.clone(), name: n.name.clone() }
    }
}

impl From<&SliceName> for ObjectRef {
    fn from(n: &SliceName) -> ObjectRef {
        ObjectRef { kind: ObjectKind::EndpointSlice, namespace: n.namespace.clone(), name: n.name.clone() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
