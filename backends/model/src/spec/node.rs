//! Node admission: what the proxy needs of its own Node (B18, B29).

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use crate::addr::{parse_cidr, parse_ip};

/// The label holding a node's zone (B18).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The taint cluster-autoscaler puts on a node it is about to delete (B29).
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// What the proxy needs of its own Node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct NodeSpec {
    /// The node's name.
    pub name: Arc<str>,
    /// The `topology.kubernetes.io/zone` label, if set.
    pub zone: Option<Arc<str>>,
    /// `spec.podCIDRs` (or `spec.podCIDR`), for the NodeCIDR local-traffic detector.
    pub pod_cidrs: Vec<IpNet>,
    /// `status.addresses` of type InternalIP and ExternalIP.
    pub addresses: Vec<IpAddr>,
    /// The node has a deletion timestamp or the autoscaler's deletion taint: `/healthz`
    /// answers 503 so load balancers drain it (B29).
    pub being_deleted: bool,
}

impl NodeSpec {
    /// Summarises a Node. Unreadable pod CIDRs and addresses are left out (the Node is
    /// written by the kubelet and the node controller; one odd field must not stop
    /// the proxy).
    pub fn admit(node: &Node) -> NodeSpec {
        let meta = &node.metadata;
        let spec = node.spec.as_ref();
        let cidr_texts: Vec<&str> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
            Some(list) if !list.is_empty() => list.iter().map(String::as_str).collect(),
            _ => spec.and_then(|s| s.pod_cidr.as_deref()).into_iter().collect(),
        };
        let tainted =
            spec.and_then(|s| s.taints.as_ref()).is_some_and(|t| t.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
        NodeSpec {
            name: meta.name.as_deref().unwrap_or("").into(),
            zone: meta.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)).map(|z| Arc::from(z.as_str())),
            pod_cidrs: cidr_texts.into_iter().filter_map(|c| parse_cidr(c).ok()).collect(),
            addresses: node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                .filter_map(|a| parse_ip(&a.address).ok())
                .collect(),
            being_deleted: meta.deletion_timestamp.is_some() || tainted,
        }
    }
}
