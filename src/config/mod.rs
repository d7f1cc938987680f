//! `--config FILE`: kube-proxy's own configuration file, `KubeProxyConfiguration`
//! (`kubeproxy.config.k8s.io/v1alpha1`), so that a cluster's existing `kube-proxy`
//! ConfigMap (its `config.conf` key, mounted as kube-proxy's DaemonSet mounts it) works
//! unchanged.
//!
//! # What it guarantees
//!
//! - **The schema is kube-proxy's**, camelCase field for field (see `raw.rs`), read from
//!   YAML or JSON. `apiVersion` and `kind` must be exactly [`API_VERSION`] and [`KIND`].
//!   A field kube-proxy does not know is an error naming its full path, its value and the
//!   fields known there, as kube-proxy's strict decoder refuses it too. So is a bad value
//!   (a CIDR, a Go duration such as `30s` or `1m0s`, a mode, an IPVS scheduler, a mark bit
//!   outside 0-31, ...): the error names the path and the value.
//! - **`null`, `""`, an absent field and, for plain durations, `0s` mean "the default"**,
//!   as in kube-proxy (kubeadm writes every field, mostly as such zeros). Where kube-proxy
//!   uses a pointer, an explicit zero is kept: `conntrack.maxPerCore: 0` and
//!   `conntrack.tcpEstablishedTimeout: 0s` leave the kernel's value, as the flags' `0` does.
//!   Two differences from the flags and kube-proxy: `mode: ""` keeps kube-ferry's default
//!   mode (nftables), where kube-proxy would pick iptables (write `mode: iptables` to keep
//!   iptables); and `healthzBindAddress: ""` is the default server, as in kube-proxy,
//!   where the flag's `""` turns the server off.
//! - **Precedence: command line, then the file, then kube-ferry's defaults** ([`apply`]).
//!   A flag given on the command line always wins; the file replaces only defaults.
//! - **Mode-specific sections follow the mode that runs** (the command line's `--mode`
//!   if given, else the file's `mode`), as kube-proxy's conversion does: the sync periods
//!   and `masqueradeAll` come from `nftables` in nftables mode, from `ipvs` in ipvs mode
//!   (`masqueradeAll` from `iptables` there, as kube-proxy's ipvs mode reads it) and from
//!   `iptables` otherwise (iptables and userspace). A top-level `syncPeriod` /
//!   `minSyncPeriod` (the shape of kube-proxy's internal configuration) wins over the
//!   section when set. Fields of a section the running mode does not read are reported as
//!   ignored when not at their default. Sections with flags of their own (`ipvs.scheduler`,
//!   `iptables.masqueradeBit`, `conntrack.*`, ...) set those flags whatever the mode, as the
//!   flags only matter in their mode.
//! - **Fields kube-ferry accepts but does not use** (client QPS, `oomScoreAdj`,
//!   `featureGates`, `winkernel`, ...) are listed in [`ApplyReport::ignored`] when set to a
//!   value other than kube-proxy's default, so `run` can say so in one line at start.
//!
//! # kube-ferry's own options
//!
//! They stay flags (`--iptables-variant`, `--nftables-full-sync-period`, `--userspace-*`,
//! `--localhost-nodeports`, `--ipvs-no-fallback`, ...), given in the DaemonSet's `args`
//! beside `--config`. The file holds nothing kube-proxy would not accept: an extra key
//! would make kube-proxy refuse the ConfigMap, and the point of `--config` is one
//! ConfigMap that either proxy reads, so a rollback to kube-proxy needs no edit. The one
//! kube-ferry setting the schema already has a place for is mapped: `logging.format`
//! (`text` or `json`) sets `--log-format`.

mod apply;
mod convert;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::cli::{BindAddress, DetectLocalMode, IpvsScheduler, LogFormat, Mode, NodePortAddress};

pub use apply::{apply, ApplyReport};

/// The `apiVersion` read.
pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";
/// The `kind` read.
pub const KIND: &str = "KubeProxyConfiguration";

/// A mode section's (or the top level's) sync periods; `None` is "not set" (kube-ferry's
/// default, which is kube-proxy's: 30s and 1s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPeriods {
    /// `syncPeriod`, never zero.
    pub sync_period: Option<Duration>,
    /// `minSyncPeriod`, never zero (zero is kube-proxy's "default").
    pub min_sync_period: Option<Duration>,
}

/// A checked `KubeProxyConfiguration`. Each field is `None` (or empty, or `false`) when the
/// file leaves it at its default, and is named after the `run` flag it sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubeProxyConfig {
    /// `mode`.
    pub mode: Option<Mode>,
    /// `hostnameOverride`, trimmed and lower-cased as kube-proxy does.
    pub hostname_override: Option<String>,
    /// `clusterCIDR`, split at commas; at most one per family.
    pub cluster_cidr: Vec<IpNet>,
    /// `nodePortAddresses`; `Some(empty)` is "all" (the `all` keyword).
    pub nodeport_addresses: Option<Vec<NodePortAddress>>,
    /// `healthzBindAddress` (port 10256 when only an IP), or the IPv6 default when
    /// `bindAddress` is IPv6.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `metricsBindAddress` (port 10249 when only an IP), or the IPv6 default when
    /// `bindAddress` is IPv6.
    pub metrics_bind_address: Option<SocketAddr>,
    /// `clientConnection.kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `logging.format`.
    pub log_format: Option<LogFormat>,
    /// `detectLocalMode`.
    pub detect_local_mode: Option<DetectLocalMode>,
    /// `detectLocal.bridgeInterface`.
    pub pod_bridge_interface: Option<String>,
    /// `detectLocal.interfaceNamePrefix`.
    pub pod_interface_name_prefix: Option<String>,
    /// Top-level `syncPeriod` / `minSyncPeriod` (they win over the mode's section).
    pub sync: SyncPeriods,
    /// `iptables.syncPeriod` / `iptables.minSyncPeriod`.
    pub iptables_sync: SyncPeriods,
    /// `ipvs.syncPeriod` / `ipvs.minSyncPeriod`.
    pub ipvs_sync: SyncPeriods,
    /// `nftables.syncPeriod` / `nftables.minSyncPeriod`.
    pub nftables_sync: SyncPeriods,
    /// `iptables.masqueradeAll` (read in every mode but nftables).
    pub iptables_masquerade_all: bool,
    /// `nftables.masqueradeAll` (read in nftables mode).
    pub nftables_masquerade_all: bool,
    /// `iptables.masqueradeBit`, 0-31.
    pub iptables_masquerade_bit: Option<u8>,
    /// `iptables.localhostNodePorts`.
    pub iptables_localhost_nodeports: Option<bool>,
    /// `ipvs.scheduler`.
    pub ipvs_scheduler: Option<IpvsScheduler>,
    /// `ipvs.tcpTimeout`, never zero.
    pub ipvs_tcp_timeout: Option<Duration>,
    /// `ipvs.tcpFinTimeout`, never zero.
    pub ipvs_tcpfin_timeout: Option<Duration>,
    /// `ipvs.udpTimeout`, never zero.
    pub ipvs_udp_timeout: Option<Duration>,
    /// `ipvs.strictARP`.
    pub ipvs_strict_arp: bool,
    /// `ipvs.excludeCIDRs`.
    pub ipvs_exclude_cidrs: Vec<IpNet>,
    /// `conntrack.maxPerCore` (0: leave the kernel's limit).
    pub conntrack_max_per_core: Option<u32>,
    /// `conntrack.min`.
    pub conntrack_min: Option<u32>,
    /// `conntrack.tcpEstablishedTimeout` (zero: leave the kernel's value).
    pub conntrack_tcp_timeout_established: Option<Duration>,
    /// `conntrack.tcpCloseWaitTimeout` (zero: leave the kernel's value).
    pub conntrack_tcp_timeout_close_wait: Option<Duration>,
    /// `conntrack.tcpBeLiberal`.
    pub conntrack_tcp_be_liberal: bool,
    /// `conntrack.udpTimeout`, never zero.
    pub conntrack_udp_timeout: Option<Duration>,
    /// `conntrack.udpStreamTimeout`, never zero.
    pub conntrack_udp_timeout_stream: Option<Duration>,
    /// The fields kube-ferry accepts but does not use, set to a value other than
    /// kube-proxy's default, in file order.
    pub ignored: Vec<IgnoredField>,
}

/// A field of the file that has no effect in kube-ferry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredField {
    /// Its path, such as `clientConnection.qps`.
    pub path: String,
    /// Its value, as one line of JSON.
    pub value: String,
    /// Why, when it is not simply "kube-ferry has no such setting" (e.g. `not read in
    /// iptables mode`).
    pub note: Option<String>,
}

impl std::fmt::Display for IgnoredField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path, self.value)?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// Why a configuration file cannot be used. Each message names the file (from [`load`]),
/// the field path and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("kube-proxy config file {}: cannot read it: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another error, in this file.
    #[error("kube-proxy config file {}: {error}", file.display())]
    InFile {
        /// The file.
        file: PathBuf,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },
    /// Not YAML or JSON, or not one mapping.
    #[error("not a YAML or JSON KubeProxyConfiguration: {0}")]
    Syntax(String),
    /// Another apiVersion or kind.
    #[error("{0}")]
    Kind(String),
    /// A field that is unknown or holds a bad value.
    #[error("{path}: {message}")]
    Field {
        /// The field's path (`iptables.masqueradeBit`, `ipvs.excludeCIDRs[1]`).
        path: String,
        /// What is wrong, with the value.
        message: String,
    },
}

/// Reads and checks the file `path` (YAML or JSON); errors name the file.
pub fn load(path: &Path) -> Result<KubeProxyConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
    parse_str(&text).map_err(|error| ConfigError::InFile { file: path.to_path_buf(), error: Box::new(error) })
}

/// Parses and checks a configuration held in `text` (YAML or JSON).
pub fn parse_str(text: &str) -> Result<KubeProxyConfig, ConfigError> {
    let doc = parse_document(text)?;
    check_type(&doc)?;
    let raw = raw::RawConfig::decode(doc)?;
    convert::convert(raw)
}

fn parse_document(text: &str) -> Result<serde_yaml_ng::Value, ConfigError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ConfigError::Syntax(format!(
            "the file is empty; it needs at least apiVersion: {API_VERSION} and kind: {KIND}"
        )));
    }
    let doc = if trimmed.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Syntax(format!("not JSON: {e}")))?;
        serde_yaml_ng::to_value(json).map_err(|e| ConfigError::Syntax(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?
    };
    if !doc.is_mapping() {
        return Err(ConfigError::Syntax(format!("the document is not a mapping (value {})", raw::render(&doc))));
    }
    Ok(doc)
}

fn check_type(doc: &serde_yaml_ng::Value) -> Result<(), ConfigError> {
    let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
    let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    if api_version == API_VERSION && kind == KIND {
        return Ok(());
    }
    let found = |field: &str| doc.get(field).map_or_else(|| "missing".to_owned(), raw::render);
    let mut message = format!(
        "apiVersion {}, kind {}: kube-ferry reads apiVersion {API_VERSION}, kind {KIND}",
        found("apiVersion"),
        found("kind")
    );
    if kind == "ConfigMap" {
        message.push_str(
            " (this is the ConfigMap itself: mount it and give --config the file of its config.conf key, as kube-proxy's DaemonSet does)",
        );
    } else if kind == KIND {
        message.push_str(" (only v1alpha1 exists upstream for kube-proxy's config)");
    }
    Err(ConfigError::Kind(message))
}

/// `--healthz-bind-address`/`--metrics-bind-address` as the flags hold them.
fn bind(addr: SocketAddr) -> BindAddress {
    BindAddress(Some(addr))
}
