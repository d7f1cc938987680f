//! The `kube-ferry` command.
#![forbid(unsafe_code)]

mod demo;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use ferry_model::{Backend, StateBuilder};
use kube_ferry::cli::{CleanupArgs, Cli, Command, DemoArgs, LogFormat, Mode, RenderArgs, RunArgs};
use kube_ferry::controller::{Controller, ControllerConfig, Source};
use kube_ferry::examples::{EXAMPLES, EXAMPLE_NODE};
use kube_ferry::source::api::{make_client, ApiTarget};
use kube_ferry::source::file::ManifestDir;
use kube_ferry::sync::SyncTiming;
use kube_ferry::tracker::ChangeTracker;

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The matches `run`'s flags are in: the top level's, or the `run` subcommand's.
    let run_matches = matches.subcommand_matches("run").unwrap_or(&matches);
    let result = match cli.command {
        None => run(cli.run, run_matches),
        Some(Command::Run(args)) => run(*args, run_matches),
        Some(Command::Render(args)) => render(&args),
        Some(Command::Cleanup(args)) => cleanup(&args),
        Some(Command::Status(args)) => status(&args),
        Some(Command::Demo(args)) => demo(&args),
        Some(Command::Version) => {
            println!("kube-ferry {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(Command::LabPodserver(helper)) => return ferry_netlab::podserver_main(helper.args),
        Some(Command::LabProbe(helper)) => return ferry_netlab::probe_main(helper.args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// This machine's host name, lower-cased as the kubelet registers it.
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").context("cannot read the host name")?;
    Ok(name.trim().to_lowercase())
}

/// The `--nodeport-addresses` CIDRs (`primary` is warned about where the backend is made).
fn nodeport_cidrs(args: &RunArgs) -> Vec<ipnet::IpNet> {
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
        masquerade_all: args.masquerade_all,
        masquerade_bit: args.iptables_masquerade_bit,
        nodeport_cidrs: nodeport_cidrs(args),
        localhost_nodeports: args.iptables_localhost_nodeports,
        ..ferry_iptables::IptConfig::default()
    }
}

/// The conntrack sysctls of `--conntrack-*`, in this network namespace, as kube-proxy
/// sets them at start (skipped, with a log line, where the namespace does not allow one).
fn set_conntrack_sysctls(args: &RunArgs) {
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

fn ipt_variant(variant: kube_ferry::cli::IptablesVariant) -> ferry_iptables::Variant {
    use kube_ferry::cli::IptablesVariant;
    match variant {
        IptablesVariant::Nft => ferry_iptables::Variant::Nft,
        IptablesVariant::Legacy => ferry_iptables::Variant::Legacy,
        IptablesVariant::Auto => ferry_iptables::Variant::detect(),
    }
}

/// The backend for the mode, or an error saying it is not there.
fn backend_for(args: &RunArgs) -> anyhow::Result<Box<dyn Backend>> {
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

fn run(mut args: RunArgs, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let report = match args.config.clone() {
        Some(path) => {
            let config = kube_ferry::config::load(&path)?;
            let given = |id: &str| {
                matches!(
                    matches.value_source(id),
                    Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
                )
            };
            Some(kube_ferry::config::apply(&config, &mut args, &given))
        }
        None => None,
    };
    args.validate().map_err(anyhow::Error::msg)?;
    init_logging(args.log_format);
    if let Some(report) = report {
        if let Some(line) = report.ignored_line() {
            tracing::info!("{line}");
        }
        if let Some(line) = report.overridden_line() {
            tracing::info!("{line}");
        }
    }
    let timing = SyncTiming::new(args.min_sync_period, args.sync_period).map_err(anyhow::Error::msg)?;
    let node_name = match &args.hostname_override {
        Some(name) => name.clone(),
        None => host_name()?,
    };
    if args.detect_local_mode != kube_ferry::cli::DetectLocalMode::ClusterCidr {
        tracing::warn!(
            mode = ?args.detect_local_mode,
            "--detect-local-mode: only ClusterCIDR is implemented yet; traffic from outside --cluster-cidr is masqueraded"
        );
    }
    set_conntrack_sysctls(&args);
    let backend = backend_for(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let source = match &args.manifests {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!("--manifests {}: not a directory", dir.display());
                }
                Source::Dir(dir.clone())
            }
            None => {
                let target = ApiTarget { kubeconfig: args.kubeconfig.clone(), master: args.master.clone() };
                Source::Api(make_client(&target).await?)
            }
        };
        let config = ControllerConfig {
            node_name,
            timing,
            healthz_addr: args.healthz_bind_address.0,
            metrics_addr: args.metrics_bind_address.0,
            health_check_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
        };
        let mut controller = Controller::start(config, source, backend).await?;
        // The kubelet stops a pod with SIGTERM; a terminal with SIGINT. Either way the
        // sync in progress finishes and the rules stay in place (B26).
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            _ = controller.wait() => {}
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping (rules stay in place)"),
            _ = term.recv() => tracing::info!("terminated; stopping (rules stay in place)"),
        }
        controller.stop().await;
        Ok(())
    })
}

/// `cleanup --kube-proxy`: what upstream kube-proxy left, in this network namespace.
fn cleanup_kube_proxy(keep_ipvs: bool) -> anyhow::Result<()> {
    let nft = ferry_nftables::nft::NftTool::find();
    let tables = nft.output(&["list", "tables"]).unwrap_or_default();
    for family in ["ip", "ip6"] {
        let name = format!("table {family} kube-proxy");
        if tables.lines().any(|l| l.trim() == name) {
            nft.apply(&format!("delete table {family} kube-proxy\n")).with_context(|| format!("removing {name}"))?;
            println!("removed {name}");
        }
    }
    for variant in [ferry_iptables::Variant::Nft, ferry_iptables::Variant::Legacy] {
        for line in ferry_iptables::kube_proxy::cleanup_kube_proxy(variant)
            .with_context(|| format!("removing kube-proxy's iptables chains ({} variant)", variant.name()))?
        {
            println!("removed {line}");
        }
    }
    match ferry_ipvs::IpvsBackend::connect(ferry_ipvs::IpvsConfig::default()) {
        Ok(_) if keep_ipvs => {}
        // kube-proxy's virtual services are on kube-ipvs0's addresses, as kube-ferry's are.
        Ok(mut backend) => {
            for line in backend.cleanup().context("removing kube-proxy's IPVS services")?.removed {
                println!("removed {line}");
            }
        }
        Err(e) if e.no_ipvs() => {}
        Err(e) => return Err(anyhow::Error::new(e).context("removing kube-proxy's IPVS services")),
    }
    // ipsets last: the iptables rules that used them are gone.
    if let Ok(out) = std::process::Command::new("ipset").args(["list", "-n"]).output() {
        for set in String::from_utf8_lossy(&out.stdout).lines().filter(|s| s.starts_with("KUBE-")) {
            let done = std::process::Command::new("ipset").args(["destroy", set]).status();
            if done.is_ok_and(|s| s.success()) {
                println!("removed ipset {set}");
            } else {
                eprintln!("kube-ferry: could not destroy ipset {set} (in use?)");
            }
        }
    }
    Ok(())
}

fn cleanup(args: &CleanupArgs) -> anyhow::Result<()> {
    if args.kube_proxy {
        cleanup_kube_proxy(args.keep_ipvs)?;
        if args.mode.is_none() && !args.all {
            return Ok(());
        }
    }
    let modes = match args.mode {
        Some(m) => vec![m],
        None => vec![Mode::Nftables, Mode::Iptables, Mode::Ipvs, Mode::Userspace],
    };
    for mode in modes {
        match mode {
            Mode::Nftables => {
                let mut backend = ferry_nftables::NftablesBackend::new(ferry_nftables::NftConfig::default());
                let report = backend.cleanup().context("cleaning up the nftables mode")?;
                for line in report.removed {
                    println!("removed {line}");
                }
            }
            Mode::Userspace => {
                let mut backend = ferry_userspace::UserspaceBackend::new(ferry_userspace::UserspaceConfig::default())?
                    .with_binder(Box::new(ferry_userspace::addresses::LoopbackAddresses));
                let report = backend.cleanup().context("cleaning up the userspace mode")?;
                for line in report.removed {
                    println!("removed {line}");
                }
            }
            Mode::Iptables => {
                let variants = match args.iptables_variant {
                    Some(kube_ferry::cli::IptablesVariant::Nft) => vec![ferry_iptables::Variant::Nft],
                    Some(kube_ferry::cli::IptablesVariant::Legacy) => vec![ferry_iptables::Variant::Legacy],
                    _ => vec![ferry_iptables::Variant::Nft, ferry_iptables::Variant::Legacy],
                };
                for variant in variants {
                    let config = ferry_iptables::IptConfig::default();
                    let mut backend = ferry_iptables::IptablesBackend::new(config, variant);
                    let report = backend
                        .cleanup()
                        .with_context(|| format!("cleaning up the iptables mode ({} variant)", variant.name()))?;
                    for line in report.removed {
                        println!("removed {line}");
                    }
                }
            }
            Mode::Ipvs => match ferry_ipvs::IpvsBackend::connect(ferry_ipvs::IpvsConfig::default()) {
                Ok(mut backend) => {
                    let report = backend.cleanup().context("cleaning up the ipvs mode")?;
                    for line in report.removed {
                        println!("removed {line}");
                    }
                }
                Err(e) if e.no_ipvs() => {
                    if args.mode.is_some() {
                        println!("this kernel has no IPVS: the ipvs mode left nothing to remove");
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context("cleaning up the ipvs mode")),
            },
        }
    }
    Ok(())
}

/// `status`: the mode's kernel objects read back and printed (B32). Reads only.
fn status(args: &kube_ferry::cli::StatusArgs) -> anyhow::Result<()> {
    let mut backend: Box<dyn Backend> = match args.mode {
        Mode::Nftables => Box::new(ferry_nftables::NftablesBackend::new(ferry_nftables::NftConfig::default())),
        Mode::Iptables => Box::new(ferry_iptables::IptablesBackend::new(
            ferry_iptables::IptConfig::default(),
            ipt_variant(args.iptables_variant),
        )),
        Mode::Ipvs => Box::new(ferry_ipvs::IpvsBackend::connect(ferry_ipvs::IpvsConfig::default()).context("--mode ipvs")?),
        Mode::Userspace => bail!(
            "--mode userspace keeps its endpoints in the proxy process, not in the kernel: the kernel holds only its listeners (`ss -ltnp`) and the service addresses on lo (`ip addr show dev lo`)"
        ),
    };
    let frontends = backend.status().with_context(|| format!("reading what --mode {} programmed", args.mode.name()))?;
    match args.output {
        kube_ferry::cli::StatusOutput::Text => print!("{}", ferry_model::status_table(args.mode.name(), &frontends)),
        kube_ferry::cli::StatusOutput::Json => {
            let mut sorted = frontends;
            sorted.sort();
            println!("{}", serde_json::to_string_pretty(&sorted)?);
        }
    }
    Ok(())
}

/// `demo`: refused, as `run` refuses it, for a mode with no backend; else the lab. No
/// backend is made here: making one reads the machine's own tables (iptables' variant
/// detection), and the demo touches only its own namespaces.
fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    if !matches!(args.mode, Mode::Nftables | Mode::Iptables | Mode::Userspace) {
        let mut run_args = Cli::parse_from(["kube-ferry"]).run;
        run_args.mode = args.mode;
        backend_for(&run_args)?;
    }
    demo::run(args.mode)
}

fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let tracker = ChangeTracker::new();
    let (node, errors) = match &args.manifests {
        Some(dir) => {
            let node = match &args.node {
                Some(n) => n.clone(),
                None => host_name()?,
            };
            if !Path::new(dir).is_dir() {
                bail!("--manifests {}: not a directory", dir.display());
            }
            let errors = ManifestDir::new(dir, &node).scan(&tracker);
            (node, errors)
        }
        None => {
            let node = args.node.clone().unwrap_or_else(|| EXAMPLE_NODE.to_owned());
            let errors = ManifestDir::new(Path::new("examples"), &node).load_texts(EXAMPLES, &tracker);
            (node, errors)
        }
    };
    for e in &errors {
        eprintln!("kube-ferry: {e}");
    }
    let mut builder = StateBuilder::new(&node);
    tracker.take().apply_to(&mut builder);
    builder.rebuild();
    let rejections: Vec<_> = builder.rejections().cloned().collect();
    println!("# kube-ferry render --mode {} (node {node})", args.mode.name());
    if args.mode == Mode::Nftables {
        println!("# The nft transaction a first sync sends (nft -f -), then the model it comes from.");
        print!(
            "{}",
            ferry_nftables::NftablesBackend::render_scripts(
                builder.state(),
                &ferry_nftables::NftConfig {
                    cluster_cidrs: args.cluster_cidr.clone(),
                    masquerade_all: args.masquerade_all,
                    ..ferry_nftables::NftConfig::default()
                }
            )
        );
        println!();
    } else if args.mode == Mode::Iptables {
        println!(
            "# The iptables-restore --noflush input a first sync sends, per family, then the model it comes from."
        );
        print!(
            "{}",
            ferry_iptables::IptablesBackend::render_inputs(
                builder.state(),
                &ferry_iptables::IptConfig {
                    cluster_cidrs: args.cluster_cidr.clone(),
                    masquerade_all: args.masquerade_all,
                    ..ferry_iptables::IptConfig::default()
                }
            )
        );
        println!();
    } else if args.mode == Mode::Ipvs {
        let config = ferry_ipvs::IpvsConfig {
            cluster_cidrs: args.cluster_cidr.clone(),
            masquerade_all: args.masquerade_all,
            ..ferry_ipvs::IpvsConfig::default()
        };
        // NodePorts are virtual services on the node's addresses: its Node object's here.
        let node_addresses: Vec<std::net::IpAddr> =
            builder.state().node().map(|n| n.addresses.clone()).unwrap_or_default();
        print!("{}", ferry_ipvs::render(builder.state(), &config, &node_addresses));
        println!();
    } else {
        println!("# The {} backend programs no rules: this is the model it serves.", args.mode.name());
    }
    print!("{}", kube_ferry::render::model_table(builder.state(), &rejections));
    Ok(())
}
