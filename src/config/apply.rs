//! Laying a checked configuration over `run`'s flags: the command line wins, the file
//! replaces defaults, and the mode-specific sections follow the mode that runs.

use std::time::Duration;

use super::{bind, IgnoredField, KubeProxyConfig, SyncPeriods};
use crate::cli::{Mode, RunArgs};

/// What [`apply`] did not take from the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Fields set (to other than kube-proxy's default) that have no effect: those
    /// kube-ferry has no setting for, and those of a section the running mode does not
    /// read. In file order, then the mode-dependent ones.
    pub ignored: Vec<IgnoredField>,
    /// The flags given on the command line that overrode a field the file sets, as
    /// `--flag (file: path)`.
    pub overridden: Vec<String>,
}

impl ApplyReport {
    /// One line listing the ignored fields, for `run` to log at start; `None` when none.
    pub fn ignored_line(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let fields: Vec<String> = self.ignored.iter().map(ToString::to_string).collect();
        Some(format!("--config: kube-ferry accepts but does not use these fields: {}", fields.join(", ")))
    }

    /// One line listing the flags that overrode the file; `None` when none.
    pub fn overridden_line(&self) -> Option<String> {
        if self.overridden.is_empty() {
            return None;
        }
        Some(format!("--config: flags given on the command line override the file: {}", self.overridden.join(", ")))
    }
}

/// Sets a flag from the file unless it was given on the command line.
struct Setter<'a> {
    given: &'a dyn Fn(&str) -> bool,
    overridden: Vec<String>,
}

impl Setter<'_> {
    /// `id` is the flag's clap id (the `RunArgs` field), `path` the file's field.
    fn set<T>(&mut self, id: &str, path: &str, value: Option<T>, slot: &mut T) {
        let Some(value) = value else { return };
        if (self.given)(id) {
            self.overridden.push(format!("--{} (file: {path})", id.replace('_', "-")));
        } else {
            *slot = value;
        }
    }
}

fn go_duration(d: Duration) -> String {
    format!("\"{d:?}\"")
}

/// Lays `config` over `args`. `given(id)` says whether the flag with clap id `id` (the
/// `RunArgs` field's name, e.g. `cluster_cidr`) was given on the command line; such flags
/// keep their value. Every other flag the file sets takes the file's value; flags the
/// file leaves at its default keep kube-ferry's default. The mode is settled first, and
/// the sync periods and `masqueradeAll` are then read from that mode's section (see the
/// module doc). `clientConnection.kubeconfig` is not taken when `args.manifests` is set
/// (the two cannot be combined; the command line chose files).
pub fn apply(config: &KubeProxyConfig, args: &mut RunArgs, given: &dyn Fn(&str) -> bool) -> ApplyReport {
    let mut ignored = config.ignored.clone();
    let mut s = Setter { given, overridden: Vec::new() };
    s.set("mode", "mode", config.mode, &mut args.mode);
    let mode = args.mode;

    let (section, section_sync) = match mode {
        Mode::Nftables => ("nftables", &config.nftables_sync),
        Mode::Ipvs => ("ipvs", &config.ipvs_sync),
        Mode::Iptables | Mode::Userspace => ("iptables", &config.iptables_sync),
    };
    let pick = |top: Option<Duration>, own: Option<Duration>, field: &str| match top {
        Some(d) => (Some(d), field.to_owned()),
        None => (own, format!("{section}.{field}")),
    };
    let (sync_period, path) = pick(config.sync.sync_period, section_sync.sync_period, "syncPeriod");
    s.set("sync_period", &path, sync_period, &mut args.sync_period);
    let (min_sync_period, path) = pick(config.sync.min_sync_period, section_sync.min_sync_period, "minSyncPeriod");
    s.set("min_sync_period", &path, min_sync_period, &mut args.min_sync_period);
    for (name, periods) in
        [("iptables", &config.iptables_sync), ("ipvs", &config.ipvs_sync), ("nftables", &config.nftables_sync)]
    {
        let SyncPeriods { sync_period, min_sync_period } = periods;
        for (field, value, top) in [
            ("syncPeriod", sync_period, config.sync.sync_period),
            ("minSyncPeriod", min_sync_period, config.sync.min_sync_period),
        ] {
            let Some(value) = value else { continue };
            let note = if name != section {
                format!("not read in {} mode", mode.name())
            } else if top.is_some() {
                format!("the top-level {field} wins")
            } else {
                continue;
            };
            ignored.push(IgnoredField {
                path: format!("{name}.{field}"),
                value: go_duration(*value),
                note: Some(note),
            });
        }
    }

    let (masquerade_all, path, other) = match mode {
        Mode::Nftables => {
            (config.nftables_masquerade_all, "nftables.masqueradeAll", ("iptables", config.iptables_masquerade_all))
        }
        _ => (config.iptables_masquerade_all, "iptables.masqueradeAll", ("nftables", config.nftables_masquerade_all)),
    };
    s.set("masquerade_all", path, masquerade_all.then_some(true), &mut args.masquerade_all);
    if other.1 {
        let note = Some(format!("not read in {} mode", mode.name()));
        ignored.push(IgnoredField { path: format!("{}.masqueradeAll", other.0), value: "true".into(), note });
    }

    s.set(
        "hostname_override",
        "hostnameOverride",
        config.hostname_override.clone().map(Some),
        &mut args.hostname_override,
    );
    let cidrs = (!config.cluster_cidr.is_empty()).then(|| config.cluster_cidr.clone());
    s.set("cluster_cidr", "clusterCIDR", cidrs, &mut args.cluster_cidr);
    s.set("nodeport_addresses", "nodePortAddresses", config.nodeport_addresses.clone(), &mut args.nodeport_addresses);
    s.set(
        "healthz_bind_address",
        "healthzBindAddress",
        config.healthz_bind_address.map(bind),
        &mut args.healthz_bind_address,
    );
    s.set(
        "metrics_bind_address",
        "metricsBindAddress",
        config.metrics_bind_address.map(bind),
        &mut args.metrics_bind_address,
    );
    if args.manifests.is_some() {
        if let Some(path) = &config.kubeconfig {
            let note = Some("--manifests given: Services come from files".to_owned());
            let value = serde_json::to_string(&path.display().to_string()).unwrap_or_default();
            ignored.push(IgnoredField { path: "clientConnection.kubeconfig".into(), value, note });
        }
    } else {
        s.set("kubeconfig", "clientConnection.kubeconfig", config.kubeconfig.clone().map(Some), &mut args.kubeconfig);
    }
    s.set("log_format", "logging.format", config.log_format, &mut args.log_format);

    s.set("detect_local_mode", "detectLocalMode", config.detect_local_mode, &mut args.detect_local_mode);
    let bridge = config.pod_bridge_interface.clone().map(Some);
    s.set("pod_bridge_interface", "detectLocal.bridgeInterface", bridge, &mut args.pod_bridge_interface);
    let prefix = config.pod_interface_name_prefix.clone().map(Some);
    s.set("pod_interface_name_prefix", "detectLocal.interfaceNamePrefix", prefix, &mut args.pod_interface_name_prefix);

    s.set(
        "iptables_masquerade_bit",
        "iptables.masqueradeBit",
        config.iptables_masquerade_bit,
        &mut args.iptables_masquerade_bit,
    );
    let localhost = config.iptables_localhost_nodeports;
    s.set(
        "iptables_localhost_nodeports",
        "iptables.localhostNodePorts",
        localhost,
        &mut args.iptables_localhost_nodeports,
    );

    s.set("ipvs_scheduler", "ipvs.scheduler", config.ipvs_scheduler, &mut args.ipvs_scheduler);
    s.set("ipvs_tcp_timeout", "ipvs.tcpTimeout", config.ipvs_tcp_timeout, &mut args.ipvs_tcp_timeout);
    s.set("ipvs_tcpfin_timeout", "ipvs.tcpFinTimeout", config.ipvs_tcpfin_timeout, &mut args.ipvs_tcpfin_timeout);
    s.set("ipvs_udp_timeout", "ipvs.udpTimeout", config.ipvs_udp_timeout, &mut args.ipvs_udp_timeout);
    s.set("ipvs_strict_arp", "ipvs.strictARP", config.ipvs_strict_arp.then_some(true), &mut args.ipvs_strict_arp);
    let exclude = (!config.ipvs_exclude_cidrs.is_empty()).then(|| config.ipvs_exclude_cidrs.clone());
    s.set("ipvs_exclude_cidrs", "ipvs.excludeCIDRs", exclude, &mut args.ipvs_exclude_cidrs);

    let c = config;
    s.set("conntrack_max_per_core", "conntrack.maxPerCore", c.conntrack_max_per_core, &mut args.conntrack_max_per_core);
    s.set("conntrack_min", "conntrack.min", c.conntrack_min, &mut args.conntrack_min);
    s.set(
        "conntrack_tcp_timeout_established",
        "conntrack.tcpEstablishedTimeout",
        c.conntrack_tcp_timeout_established,
        &mut args.conntrack_tcp_timeout_established,
    );
    s.set(
        "conntrack_tcp_timeout_close_wait",
        "conntrack.tcpCloseWaitTimeout",
        c.conntrack_tcp_timeout_close_wait,
        &mut args.conntrack_tcp_timeout_close_wait,
    );
    let liberal = c.conntrack_tcp_be_liberal.then_some(true);
    s.set("conntrack_tcp_be_liberal", "conntrack.tcpBeLiberal", liberal, &mut args.conntrack_tcp_be_liberal);
    s.set("conntrack_udp_timeout", "conntrack.udpTimeout", c.conntrack_udp_timeout, &mut args.conntrack_udp_timeout);
    let stream = c.conntrack_udp_timeout_stream;
    s.set("conntrack_udp_timeout_stream", "conntrack.udpStreamTimeout", stream, &mut args.conntrack_udp_timeout_stream);

    ApplyReport { ignored, overridden: s.overridden }
}
