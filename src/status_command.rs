//! `kube-ferry status`: what the mode programmed, read back from the kernel (B32).

use anyhow::{bail, Context};
use ferry_model::Backend;
use kube_ferry::cli::Mode;

use crate::backend_choice::ipt_variant;

/// `status`: the mode's kernel objects read back and printed (B32). Reads only.
pub(crate) fn status(args: &kube_ferry::cli::StatusArgs) -> anyhow::Result<()> {
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
