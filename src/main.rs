//! The `kube-ferry` command.
#![forbid(unsafe_code)]

mod backend_choice;
mod cleanup_command;
mod demo;
mod render_command;
mod status_command;

use backend_choice::{backend_for, set_conntrack_sysctls};
use cleanup_command::cleanup;
use render_command::render;
use status_command::status;

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use kube_ferry::cli::{Cli, Command, DemoArgs, LogFormat, Mode, RunArgs};
use kube_ferry::controller::{Controller, ControllerConfig, Source};
use kube_ferry::source::api::{make_client, ApiTarget};
use kube_ferry::sync::SyncTiming;

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
pub(crate) fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").context("cannot read the host name")?;
    Ok(name.trim().to_lowercase())
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
    set_conntrack_sysctls(&args);
    let backend = backend_for(&args)?;
    // B28: what another mode of kube-ferry left goes once this one is programmed.
    let backend: Box<dyn ferry_model::Backend> = Box::new(kube_ferry::switch::ThenCleanOtherModes::new(
        backend,
        Box::new(cleanup_command::clean_other_modes),
    ));
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
