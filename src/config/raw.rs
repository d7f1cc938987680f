//! The file as written: kube-proxy's v1alpha1 schema field for field, untyped where
//! kube-proxy's own decoder is (durations and CIDRs are strings here and checked in
//! `convert`), plus the structural checks kube-proxy's strict decoder makes: no unknown
//! field, at any depth.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use super::ConfigError;

/// `KubeProxyConfiguration`. Every field defaults, as Go's decoder leaves a missing field
/// at its zero value; `null` is removed before decoding (see [`strip_nulls`]).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawConfig {
    pub api_version: String,
    pub kind: String,
    /// Opaque: a map of gate names to bools, none of which kube-ferry reads.
    pub feature_gates: Value,
    pub client_connection: RawClientConnection,
    /// Opaque but for `format` (component-base's LoggingConfiguration has many
    /// per-format options kube-ferry has no use for).
    pub logging: Value,
    pub hostname_override: String,
    pub bind_address: String,
    pub healthz_bind_address: String,
    pub metrics_bind_address: String,
    pub bind_address_hard_fail: bool,
    pub enable_profiling: bool,
    pub show_hidden_metrics_for_version: String,
    pub mode: String,
    pub iptables: RawIptables,
    pub ipvs: RawIpvs,
    pub nftables: RawNftables,
    pub winkernel: RawWinkernel,
    pub detect_local_mode: String,
    pub detect_local: RawDetectLocal,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: String,
    pub node_port_addresses: Vec<String>,
    pub oom_score_adj: Option<i64>,
    pub conntrack: RawConntrack,
    pub config_sync_period: String,
    pub port_range: String,
    pub windows_run_as_service: bool,
    /// Not in v1alpha1's Go type (there the periods live in the mode sections), but the
    /// internal configuration kube-proxy converts to has them at the top; accepted so a
    /// config written that way works, and preferred over the mode section when set.
    pub sync_period: String,
    /// As `sync_period`.
    pub min_sync_period: String,
}

/// `clientConnection` (component-base's ClientConnectionConfiguration).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawClientConnection {
    pub kubeconfig: String,
    pub accept_content_types: String,
    pub content_type: String,
    pub qps: f64,
    pub burst: i64,
}

/// `iptables`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawIptables {
    pub masquerade_bit: Option<i64>,
    pub masquerade_all: bool,
    pub localhost_node_ports: Option<bool>,
    #[serde(rename = "snatNodeInternalIP")]
    pub snat_node_internal_ip: Option<bool>,
    pub sync_period: String,
    pub min_sync_period: String,
}

/// `ipvs`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawIpvs {
    pub sync_period: String,
    pub min_sync_period: String,
    pub scheduler: String,
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Vec<String>,
    #[serde(rename = "strictARP")]
    pub strict_arp: bool,
    pub tcp_timeout: String,
    pub tcp_fin_timeout: String,
    pub udp_timeout: String,
}

/// `nftables`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawNftables {
    pub masquerade_bit: Option<i64>,
    pub masquerade_all: bool,
    pub sync_period: String,
    pub min_sync_period: String,
}

/// `conntrack`. The `Option`s are Go pointers: `null` means kube-proxy's default, `0`
/// means "leave the kernel's value".
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawConntrack {
    pub max_per_core: Option<i64>,
    pub min: Option<i64>,
    pub tcp_established_timeout: Option<String>,
    pub tcp_close_wait_timeout: Option<String>,
    pub tcp_be_liberal: bool,
    pub udp_timeout: String,
    pub udp_stream_timeout: String,
}

/// `winkernel` (Windows only; checked for unknown fields, otherwise ignored).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawWinkernel {
    pub network_name: String,
    pub source_vip: String,
    #[serde(rename = "enableDSR")]
    pub enable_dsr: bool,
    pub root_hns_endpoint_name: String,
    pub forward_health_check_vip: bool,
}

/// `detectLocal`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawDetectLocal {
    pub bridge_interface: String,
    pub interface_name_prefix: String,
}

impl RawConfig {
    /// Decodes a parsed document: unknown fields first (with their path and value), then
    /// the types (a wrong type names its path too).
    pub(super) fn decode(mut doc: Value) -> Result<RawConfig, ConfigError> {
        let known = serde_yaml_ng::to_value(RawConfig::default())
            .map_err(|e| ConfigError::Syntax(format!("internal: the schema does not serialize: {e}")))?;
        check_known("", &doc, &known)?;
        strip_nulls(&mut doc);
        serde_path_to_error::deserialize(doc)
            .map_err(|e| ConfigError::Field { path: e.path().to_string(), message: e.inner().to_string() })
    }
}

/// The field names a section of the schema knows, sorted.
pub(super) fn known_fields(section: &Value) -> Vec<String> {
    let mut names: Vec<String> = section
        .as_mapping()
        .into_iter()
        .flat_map(Mapping::keys)
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    names.sort_unstable();
    names
}

/// Fails on the first field of `doc` that `schema` (the serialized default) lacks.
/// Recurses only where the schema has a section (a mapping); opaque fields (`null` in the
/// schema, such as `featureGates`) take anything.
fn check_known(prefix: &str, doc: &Value, schema: &Value) -> Result<(), ConfigError> {
    let (Some(doc), Some(schema_map)) = (doc.as_mapping(), schema.as_mapping()) else {
        return Ok(());
    };
    for (key, value) in doc {
        let name = match key.as_str() {
            Some(name) => name.to_owned(),
            None => render(key),
        };
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match schema_map.get(name.as_str()) {
            Some(section) => check_known(&path, value, section)?,
            None => {
                return Err(ConfigError::Field {
                    path,
                    message: format!(
                        "unknown field (value {}); known: {}",
                        render(value),
                        known_fields(schema).join(", ")
                    ),
                })
            }
        }
    }
    Ok(())
}

/// Removes every `null` map entry, at any depth: Go's decoder treats `null` as absent
/// (a pointer stays nil, a struct or string keeps its zero value), and so do we.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Sequence(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A value as one line of JSON (`14`, `"5x"`, `{"a":true}`), for messages.
pub(super) fn render(value: &Value) -> String {
    match serde_json::to_string(value) {
        Ok(text) => text,
        Err(_) => serde_yaml_ng::to_string(value).unwrap_or_default().trim().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's names are kube-proxy's, spelled as its Go json tags spell them.
    #[test]
    fn field_names_are_upstreams() {
        let schema = serde_yaml_ng::to_value(RawConfig::default()).unwrap();
        let top = known_fields(&schema);
        let expected = [
            "apiVersion",
            "bindAddress",
            "bindAddressHardFail",
            "clientConnection",
            "clusterCIDR",
            "configSyncPeriod",
            "conntrack",
            "detectLocal",
            "detectLocalMode",
            "enableProfiling",
            "featureGates",
            "healthzBindAddress",
            "hostnameOverride",
            "iptables",
            "ipvs",
            "kind",
            "logging",
            "metricsBindAddress",
            "minSyncPeriod",
            "mode",
            "nftables",
            "nodePortAddresses",
            "oomScoreAdj",
            "portRange",
            "showHiddenMetricsForVersion",
            "syncPeriod",
            "windowsRunAsService",
            "winkernel",
        ];
        assert_eq!(top, expected);
        assert_eq!(
            known_fields(&schema["ipvs"]),
            [
                "excludeCIDRs",
                "minSyncPeriod",
                "scheduler",
                "strictARP",
                "syncPeriod",
                "tcpFinTimeout",
                "tcpTimeout",
                "udpTimeout"
            ]
        );
        assert_eq!(
            known_fields(&schema["iptables"]),
            [
                "localhostNodePorts",
                "masqueradeAll",
                "masqueradeBit",
                "minSyncPeriod",
                "snatNodeInternalIP",
                "syncPeriod"
            ]
        );
        assert_eq!(
            known_fields(&schema["winkernel"]),
            ["enableDSR", "forwardHealthCheckVip", "networkName", "rootHnsEndpointName", "sourceVip"]
        );
    }
}
