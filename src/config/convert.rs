//! From the file as written to a checked [`KubeProxyConfig`]: every value parsed and
//! range-checked (errors name the path and the value), kube-proxy's zero-means-default
//! rules applied, and the fields kube-ferry does not use collected when not at their
//! default.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use ipnet::IpNet;
use serde_yaml_ng::Value;

use super::raw::{render, RawConfig};
use super::{ConfigError, IgnoredField, KubeProxyConfig, SyncPeriods};
use crate::cli::{parse_duration, DetectLocalMode, IpvsScheduler, LogFormat, Mode, NodePortAddress};

/// kube-proxy's health and metrics ports.
const HEALTHZ_PORT: u16 = 10256;
const METRICS_PORT: u16 = 10249;

fn field_error(path: &str, problem: impl std::fmt::Display, value: impl std::fmt::Display) -> ConfigError {
    ConfigError::Field { path: path.to_owned(), message: format!("{problem} (value {value})") }
}

/// As [`field_error`], with what would be accepted.
fn hinted(path: &str, problem: &str, value: impl std::fmt::Display, known: &str) -> ConfigError {
    ConfigError::Field { path: path.to_owned(), message: format!("{problem} (value {value}); known: {known}") }
}

/// A JSON-quoted string, for messages.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// A Go duration (`metav1.Duration`); `None` when empty.
fn duration(path: &str, text: &str) -> Result<Option<Duration>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_duration(text)
        .map(Some)
        .map_err(|_| field_error(path, "not a Go duration such as 30s, 1m0s, 500ms or 0s", quoted(text)))
}

/// A plain (non-pointer) duration, where kube-proxy reads zero as "the default".
fn period(path: &str, text: &str) -> Result<Option<Duration>, ConfigError> {
    Ok(duration(path, text)?.filter(|d| !d.is_zero()))
}

fn cidr(path: &str, text: &str) -> Result<IpNet, ConfigError> {
    ferry_model::addr::parse_cidr(text.trim()).map_err(|e| ConfigError::Field { path: path.to_owned(), message: e })
}

fn non_negative_u32(path: &str, value: Option<i64>) -> Result<Option<u32>, ConfigError> {
    value.map(|v| u32::try_from(v).map_err(|_| field_error(path, "must be 0 or more (an int32)", v))).transpose()
}

fn masquerade_bit(path: &str, value: Option<i64>) -> Result<Option<u8>, ConfigError> {
    match value {
        None => Ok(None),
        Some(bit @ 0..=31) => Ok(u8::try_from(bit).ok()),
        Some(bit) => Err(field_error(path, "must be 0-31, a bit of the packet mark", bit)),
    }
}

fn sync_periods(section: &str, sync: &str, min_sync: &str) -> Result<SyncPeriods, ConfigError> {
    let path = |field: &str| if section.is_empty() { field.to_owned() } else { format!("{section}.{field}") };
    Ok(SyncPeriods {
        sync_period: period(&path("syncPeriod"), sync)?,
        min_sync_period: period(&path("minSyncPeriod"), min_sync)?,
    })
}

fn mode(text: &str) -> Result<Option<Mode>, ConfigError> {
    match text {
        "" => Ok(None),
        "kernelspace" => {
            Err(field_error("mode", "kernelspace is kube-proxy's Windows mode; kube-ferry runs on Linux", quoted(text)))
        }
        _ => Mode::from_str(text, false).map(Some).map_err(|_| {
            let known = "iptables, ipvs, nftables, userspace, or \"\" for kube-ferry's default (nftables)";
            hinted("mode", "unknown proxy mode", quoted(text), known)
        }),
    }
}

fn scheduler(text: &str) -> Result<Option<IpvsScheduler>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    IpvsScheduler::from_str(text, false).map(Some).map_err(|_| {
        let known: Vec<&str> = IpvsScheduler::value_variants().iter().map(|s| s.name()).collect();
        let known = format!("{}, or \"\" for rr", known.join(", "));
        hinted("ipvs.scheduler", "unknown or unsupported IPVS scheduler", quoted(text), &known)
    })
}

fn detect_local_mode(text: &str) -> Result<Option<DetectLocalMode>, ConfigError> {
    match text {
        "" => Ok(None),
        "ClusterCIDR" => Ok(Some(DetectLocalMode::ClusterCidr)),
        "NodeCIDR" => Ok(Some(DetectLocalMode::NodeCidr)),
        "BridgeInterface" => Ok(Some(DetectLocalMode::BridgeInterface)),
        "InterfaceNamePrefix" => Ok(Some(DetectLocalMode::InterfaceNamePrefix)),
        _ => Err(hinted(
            "detectLocalMode",
            "unknown mode",
            quoted(text),
            "ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix, or \"\" for ClusterCIDR",
        )),
    }
}

fn cluster_cidrs(text: &str) -> Result<Vec<IpNet>, ConfigError> {
    let cidrs: Vec<IpNet> = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| cidr("clusterCIDR", part))
        .collect::<Result<_, _>>()?;
    let v4 = cidrs.iter().filter(|c| c.addr().is_ipv4()).count();
    if v4 > 1 || cidrs.len() - v4 > 1 {
        return Err(field_error("clusterCIDR", "takes one CIDR per family (a dual-stack pair at most)", quoted(text)));
    }
    Ok(cidrs)
}

fn nodeport_addresses(items: &[String]) -> Result<Option<Vec<NodePortAddress>>, ConfigError> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut addresses = Vec::new();
    let mut all = false;
    for (i, item) in items.iter().enumerate() {
        let path = format!("nodePortAddresses[{i}]");
        match item.trim() {
            "all" => all = true,
            "primary" => addresses.push(NodePortAddress::Primary),
            "localhost" => {
                for net in ["127.0.0.0/8", "::1/128"] {
                    addresses.push(NodePortAddress::Cidr(cidr(&path, net)?));
                }
            }
            text => addresses.push(NodePortAddress::Cidr(cidr(&path, text)?)),
        }
    }
    if all {
        return Ok(Some(Vec::new()));
    }
    if addresses.contains(&NodePortAddress::Primary) && addresses.len() > 1 {
        let list = serde_json::to_string(items).unwrap_or_default();
        return Err(field_error("nodePortAddresses", "kube-ferry cannot combine `primary` with CIDRs yet", list));
    }
    Ok(Some(addresses))
}

/// `IP:port`, or an IP taking `port` (kube-proxy's AppendPortIfNeeded); `None` when empty.
fn bind_address(path: &str, text: &str, port: u16) -> Result<Option<SocketAddr>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    text.parse::<IpAddr>()
        .map(|ip| Some(SocketAddr::new(ip, port)))
        .map_err(|_| field_error(path, "not IP:PORT or IP", quoted(text)))
}

fn log_format(logging: &Value) -> Result<Option<LogFormat>, ConfigError> {
    match logging.get("format") {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if text == "text" => Ok(Some(LogFormat::Text)),
        Some(Value::String(text)) if text == "json" => Ok(Some(LogFormat::Json)),
        Some(other) => Err(hinted("logging.format", "unknown log format", render(other), "text, json")),
    }
}

/// Whether a value is a zero of its kind (kube-proxy's default for most fields).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0" || parse_duration(s).is_ok_and(|d| d.is_zero()),
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(map) => map.is_empty(),
        Value::Tagged(tagged) => is_zero(&tagged.value),
    }
}

/// The leaves of `value` under `prefix` that are not zero and not in `defaults`.
fn non_zero_leaves(prefix: &str, value: &Value, defaults: &[(&str, &str)], out: &mut Vec<IgnoredField>) {
    if let Value::Mapping(map) = value {
        if !map.is_empty() {
            for (key, child) in map {
                let name = key.as_str().map_or_else(|| render(key), str::to_owned);
                non_zero_leaves(&format!("{prefix}.{name}"), child, defaults, out);
            }
            return;
        }
    }
    let shown = render(value);
    let default =
        defaults.iter().any(|(path, v)| *path == prefix && (*v == shown || *v == value.as_str().unwrap_or("")));
    if !is_zero(value) && !default {
        out.push(IgnoredField { path: prefix.to_owned(), value: shown, note: None });
    }
}

/// Checks every value of `raw` and collects the ignored fields.
pub(super) fn convert(raw: RawConfig) -> Result<KubeProxyConfig, ConfigError> {
    let mut ignored = Vec::new();
    let mut ignore =
        |path: &str, value: String| ignored.push(IgnoredField { path: path.to_owned(), value, note: None });

    if !is_zero(&raw.feature_gates) {
        ignore("featureGates", render(&raw.feature_gates));
    }
    let client = &raw.client_connection;
    if !client.accept_content_types.is_empty() {
        ignore("clientConnection.acceptContentTypes", quoted(&client.accept_content_types));
    }
    if !client.content_type.is_empty() && client.content_type != "application/vnd.kubernetes.protobuf" {
        ignore("clientConnection.contentType", quoted(&client.content_type));
    }
    if client.qps != 0.0 && client.qps != 5.0 {
        ignore("clientConnection.qps", client.qps.to_string());
    }
    if client.burst != 0 && client.burst != 10 {
        ignore("clientConnection.burst", client.burst.to_string());
    }
    let log_format = log_format(&raw.logging)?;
    if let Value::Mapping(map) = &raw.logging {
        let mut rest = map.clone();
        rest.remove("format");
        let defaults = [("logging.flushFrequency", "5s"), ("logging.flushFrequency", "5000000000")];
        non_zero_leaves("logging", &Value::Mapping(rest), &defaults, &mut ignored);
    } else if !is_zero(&raw.logging) {
        return Err(field_error("logging", "must be a mapping", render(&raw.logging)));
    }

    let bind_ip = match raw.bind_address.as_str() {
        "" => None,
        text => {
            Some(text.parse::<IpAddr>().map_err(|_| field_error("bindAddress", "not an IP address", quoted(text)))?)
        }
    };
    if bind_ip.is_some_and(|ip| !ip.is_unspecified()) {
        let note = "kube-ferry takes the node's addresses from its Node object".to_owned();
        ignored.push(IgnoredField { path: "bindAddress".into(), value: quoted(&raw.bind_address), note: Some(note) });
    }
    let ipv6 = bind_ip.is_some_and(|ip| ip.is_ipv6());
    let healthz_bind_address = bind_address("healthzBindAddress", &raw.healthz_bind_address, HEALTHZ_PORT)?
        .or(ipv6.then(|| SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), HEALTHZ_PORT)));
    let metrics_bind_address = bind_address("metricsBindAddress", &raw.metrics_bind_address, METRICS_PORT)?
        .or(ipv6.then(|| SocketAddr::new(Ipv6Addr::LOCALHOST.into(), METRICS_PORT)));

    let mut ignore =
        |path: &str, value: String| ignored.push(IgnoredField { path: path.to_owned(), value, note: None });
    if raw.bind_address_hard_fail {
        ignore("bindAddressHardFail", "true".into());
    }
    if raw.enable_profiling {
        ignore("enableProfiling", "true".into());
    }
    if !raw.show_hidden_metrics_for_version.is_empty() {
        ignore("showHiddenMetricsForVersion", quoted(&raw.show_hidden_metrics_for_version));
    }
    if raw.windows_run_as_service {
        ignore("windowsRunAsService", "true".into());
    }
    if !raw.port_range.is_empty() {
        ignore("portRange", quoted(&raw.port_range));
    }
    if let Some(adj) = raw.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(field_error("oomScoreAdj", "must be -1000 to 1000", adj));
        }
        if adj != -999 {
            ignore("oomScoreAdj", adj.to_string());
        }
    }
    if let Some(d) = period("configSyncPeriod", &raw.config_sync_period)? {
        if d != Duration::from_secs(15 * 60) {
            ignore("configSyncPeriod", quoted(&raw.config_sync_period));
        }
    }
    if raw.iptables.snat_node_internal_ip == Some(true) {
        ignore("iptables.snatNodeInternalIP", "true".into());
    }
    let nft_bit = masquerade_bit("nftables.masqueradeBit", raw.nftables.masquerade_bit)?;
    if nft_bit.is_some_and(|bit| bit != 14) {
        let value = nft_bit.map(|b| b.to_string()).unwrap_or_default();
        let note = "kube-ferry's nftables mode uses no packet mark".to_owned();
        ignored.push(IgnoredField { path: "nftables.masqueradeBit".into(), value, note: Some(note) });
    }
    let winkernel = serde_yaml_ng::to_value(&raw.winkernel).unwrap_or(Value::Null);
    non_zero_leaves("winkernel", &winkernel, &[], &mut ignored);

    let ipvs = &raw.ipvs;
    let conntrack = &raw.conntrack;
    let pointer_duration = |path: &str, text: &Option<String>| duration(path, text.as_deref().unwrap_or(""));
    let hostname = raw.hostname_override.trim().to_lowercase();
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Ok(KubeProxyConfig {
        mode: mode(&raw.mode)?,
        hostname_override: non_empty(&hostname),
        cluster_cidr: cluster_cidrs(&raw.cluster_cidr)?,
        nodeport_addresses: nodeport_addresses(&raw.node_port_addresses)?,
        healthz_bind_address,
        metrics_bind_address,
        kubeconfig: non_empty(&raw.client_connection.kubeconfig).map(PathBuf::from),
        log_format,
        detect_local_mode: detect_local_mode(&raw.detect_local_mode)?,
        pod_bridge_interface: non_empty(&raw.detect_local.bridge_interface),
        pod_interface_name_prefix: non_empty(&raw.detect_local.interface_name_prefix),
        sync: sync_periods("", &raw.sync_period, &raw.min_sync_period)?,
        iptables_sync: sync_periods("iptables", &raw.iptables.sync_period, &raw.iptables.min_sync_period)?,
        ipvs_sync: sync_periods("ipvs", &ipvs.sync_period, &ipvs.min_sync_period)?,
        nftables_sync: sync_periods("nftables", &raw.nftables.sync_period, &raw.nftables.min_sync_period)?,
        iptables_masquerade_all: raw.iptables.masquerade_all,
        nftables_masquerade_all: raw.nftables.masquerade_all,
        iptables_masquerade_bit: masquerade_bit("iptables.masqueradeBit", raw.iptables.masquerade_bit)?,
        iptables_localhost_nodeports: raw.iptables.localhost_node_ports,
        ipvs_scheduler: scheduler(&ipvs.scheduler)?,
        ipvs_tcp_timeout: period("ipvs.tcpTimeout", &ipvs.tcp_timeout)?,
        ipvs_tcpfin_timeout: period("ipvs.tcpFinTimeout", &ipvs.tcp_fin_timeout)?,
        ipvs_udp_timeout: period("ipvs.udpTimeout", &ipvs.udp_timeout)?,
        ipvs_strict_arp: ipvs.strict_arp,
        ipvs_exclude_cidrs: (ipvs.exclude_cidrs.iter().enumerate())
            .map(|(i, text)| cidr(&format!("ipvs.excludeCIDRs[{i}]"), text))
            .collect::<Result<_, _>>()?,
        conntrack_max_per_core: non_negative_u32("conntrack.maxPerCore", conntrack.max_per_core)?,
        conntrack_min: non_negative_u32("conntrack.min", conntrack.min)?,
        conntrack_tcp_timeout_established: pointer_duration(
            "conntrack.tcpEstablishedTimeout",
            &conntrack.tcp_established_timeout,
        )?,
        conntrack_tcp_timeout_close_wait: pointer_duration(
            "conntrack.tcpCloseWaitTimeout",
            &conntrack.tcp_close_wait_timeout,
        )?,
        conntrack_tcp_be_liberal: conntrack.tcp_be_liberal,
        conntrack_udp_timeout: period("conntrack.udpTimeout", &conntrack.udp_timeout)?,
        conntrack_udp_timeout_stream: period("conntrack.udpStreamTimeout", &conntrack.udp_stream_timeout)?,
        ignored,
    })
}
