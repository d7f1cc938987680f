//! Which backend `run` makes for the flags, and each backend's configuration from them.

use anyhow::Context;
use ferry_model::Backend;
use kube_ferry::cli::{Mode, RunArgs};

/// The `--nodeport-addresses` CIDRs (`primary` is warned about where the backend is made).
pub(crate) fn nodeport_cidrs(args: &RunArgs) -> Vec<ipnet::IpNet> {
    use kube_ferry::cli::NodePortAddress;
    args.nodeport_addresses
        .iter()
        .filter_map(|a| match a {
            NodePortAddress::Cidr(c) => Some(*c),
            NodePortAddress::Primary => None,
        })
        .collect()
}

/// The nftables backend's configuration from the flags.
fn nft_config(args: &RunArgs) -> ferry_nftables::NftConfig {
    ferry_nftables::NftConfig {
        cluster_cidrs: args.cluster_cidr.clone(),
        pod_interfaces: args.pod_interfaces().ok().flatten(),
        masquerade_all: args.masquerade_all,
        nodeport_cidrs: nodeport_cidrs(args),
        full_sync_period: args.nftables_full_sync_period,
        ..ferry_nftables::NftConfig::default()
    }
}

/// The iptables backend's configuration from the flags.
fn ipt_config(args: &RunArgs) -> ferry_iptables::IptConfig {
    ferry_iptables::IptConfig {
        cluster_cidrs: args.cluster_cidr.clone(),
        pod_interfaces: args.pod_interfaces().ok().flatten(),
        masquerade_all: args.masquerade_all,
        masquerade_bit: args.iptables_masquerade_bit,
        nodeport_cidrs: nodeport_cidrs(args),
        localhost_nodeports: args.iptables_localhost_nodeports,
        ..ferry_iptables::IptConfig::default()
    }
}

/// The conntrack sysctls of `--conntrack-*`, in this network namespace, as kube-proxy
/// sets them at start (skipped, with a log line, where the namespace does not allow one).
pub(crate) fn set_conntrack_sysctls(args: &RunArgs) {
    use kube_ferry::conntrack_sysctl::{apply, plan, ConntrackSettings};
    let settings = ConntrackSettings {
        max_per_core: args.conntrack_max_per_core,
        min: args.conntrack_min,
        tcp_established: args.conntrack_tcp_timeout_established,
        tcp_close_wait: args.conntrack_tcp_timeout_close_wait,
        tcp_be_liberal: args.conntrack_tcp_be_liberal,
        udp: args.conntrack_udp_timeout,
        udp_stream: args.conntrack_udp_timeout_stream,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    apply(&plan(&settings, cpus), std::path::Path::new("/proc/sys"));
}

/// The userspace backend's configuration from the flags.
fn userspace_config(args: &RunArgs) -> anyhow::Result<ferry_userspace::UserspaceConfig> {
    let mut config = ferry_userspace::UserspaceConfig {
        tcp_idle: args.userspace_tcp_idle_timeout,
        udp_idle: args.userspace_udp_idle_timeout,
        max_connections: args.userspace_max_connections,
        max_connections_per_service: args.userspace_max_connections_per_service,
        ..ferry_userspace::UserspaceConfig::default()
    };
    let cidrs = nodeport_cidrs(args);
    if !cidrs.is_empty() {
        config.node_port_addresses = ferry_userspace::addresses::local_addresses_in(&cidrs)
            .context("--nodeport-addresses: cannot list this node's addresses")?;
        tracing::info!(addresses = ?config.node_port_addresses, "userspace NodePorts listen on the node addresses inside --nodeport-addresses");
    }
    Ok(config)
}

pub(crate) fn ipt_variant(variant: kube_ferry::cli::IptablesVariant) -> ferry_iptables::Variant {
    use kube_ferry::cli::IptablesVariant;
    match variant {
        IptablesVariant::Nft => ferry_iptables::Variant::Nft,
        IptablesVariant::Legacy => ferry_iptables::Variant::Legacy,
        IptablesVariant::Auto => ferry_iptables::Variant::detect(),
    }
}

/// The backend for the mode, or an error saying it is not there.
pub(crate) fn backend_for(args: &RunArgs) -> anyhow::Result<Box<dyn Backend>> {
    if args.detect_local_mode == kube_ferry::cli::DetectLocalMode::NodeCidr && args.mode != Mode::Userspace {
        let base = args.clone();
        let make = move |cidrs: Vec<ipnet::IpNet>| {
            let mut with = base.clone();
            with.detect_local_mode = kube_ferry::cli::DetectLocalMode::ClusterCidr;
            with.cluster_cidr = cidrs;
            backend_for(&with).map_err(|e| ferry_model::BackendError::Other(format!("{e:#}")))
        };
        return Ok(Box::new(kube_ferry::node_cidr::NodeCidrBackend::new(args.mode.name(), Box::new(make))));
    }
    let mode = args.mode;
    if mode == Mode::Nftables {
        if args.nodeport_addresses.contains(&kube_ferry::cli::NodePortAddress::Primary) {
            tracing::warn!(
                "--nodeport-addresses primary is not supported by the nftables mode yet: NodePorts answer on every local address; give CIDRs to restrict them"
            );
        }
        let nft = ferry_nftables::NftablesBackend::new(nft_config(args));
        if args.localhost_nodeports {
            return Ok(Box::new(kube_ferry::companion::WithCompanion::localhost_node_ports(nft)?));
        }
        return Ok(Box::new(nft));
    }
    if mode == Mode::Iptables {
        if args.nodeport_addresses.contains(&kube_ferry::cli::NodePortAddress::Primary) {
            tracing::warn!(
                "--nodeport-addresses primary is not supported by the iptables mode yet: NodePorts answer on every local address; give CIDRs to restrict them"
            );
        }
        let variant = ipt_variant(args.iptables_variant);
        tracing::info!(variant = variant.name(), "iptables mode");
        return Ok(Box::new(ferry_iptables::IptablesBackend::new(ipt_config(args), variant)));
    }
    if mode == Mode::Userspace {
        let backend = ferry_userspace::UserspaceBackend::new(userspace_config(args)?)?
            .with_binder(Box::new(ferry_userspace::addresses::LoopbackAddresses));
        return Ok(Box::new(backend));
    }
    match ferry_ipvs::IpvsBackend::connect(ipvs_config(args)) {
        Ok(backend) => Ok(Box::new(backend.with_udp_cleanup())),
        Err(e) if e.no_ipvs() && !args.ipvs_no_fallback => {
            // kube-proxy's documented fallback: the mode the kernel can do.
            tracing::warn!(error = %e, "--mode ipvs: this kernel has no IPVS; falling back to nftables (--ipvs-no-fallback to fail instead)");
            let mut fallback = args.clone();
            fallback.mode = Mode::Nftables;
            backend_for(&fallback)
        }
        Err(e) => Err(anyhow::Error::new(e).context("--mode ipvs")),
    }
}

/// The IPVS backend's configuration from the flags.
fn ipvs_config(args: &RunArgs) -> ferry_ipvs::IpvsConfig {
    let seconds = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    ferry_ipvs::IpvsConfig {
        scheduler: args.ipvs_scheduler.name().parse().unwrap_or_default(),
        cluster_cidrs: args.cluster_cidr.clone(),
        pod_interfaces: args.pod_interfaces().ok().flatten(),
        masquerade_all: args.masquerade_all,
        nodeport_cidrs: nodeport_cidrs(args),
        exclude_cidrs: args.ipvs_exclude_cidrs.clone(),
        timeouts: ferry_ipvs::genl::Timeouts {
            tcp: seconds(args.ipvs_tcp_timeout),
            tcp_fin: seconds(args.ipvs_tcpfin_timeout),
            udp: seconds(args.ipvs_udp_timeout),
        },
        strict_arp: args.ipvs_strict_arp,
        masquerade_bit: args.iptables_masquerade_bit,
        ..ferry_ipvs::IpvsConfig::default()
    }
}
