//! `kube-ferry cleanup`: every mode's kernel objects removed, and with `--kube-proxy`
//! what upstream kube-proxy left.

use anyhow::Context;
use ferry_model::Backend;
use kube_ferry::cli::{CleanupArgs, Mode};

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

pub(crate) fn cleanup(args: &CleanupArgs) -> anyhow::Result<()> {
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
    let variants = match args.iptables_variant {
        Some(kube_ferry::cli::IptablesVariant::Nft) => vec![ferry_iptables::Variant::Nft],
        Some(kube_ferry::cli::IptablesVariant::Legacy) => vec![ferry_iptables::Variant::Legacy],
        _ => vec![ferry_iptables::Variant::Nft, ferry_iptables::Variant::Legacy],
    };
    for mode in modes {
        match clean_mode(mode, &variants)? {
            Some(removed) => removed.iter().for_each(|line| println!("removed {line}")),
            None if args.mode.is_some() => println!("this kernel has no IPVS: the ipvs mode left nothing to remove"),
            None => {}
        }
    }
    Ok(())
}

/// Removes what kube-ferry made in `mode` (iptables: in `variants`); the lines removed,
/// or `None` for ipvs on a kernel without IPVS.
pub(crate) fn clean_mode(mode: Mode, variants: &[ferry_iptables::Variant]) -> anyhow::Result<Option<Vec<String>>> {
    let removed = match mode {
        Mode::Nftables => ferry_nftables::NftablesBackend::new(ferry_nftables::NftConfig::default())
            .cleanup()
            .context("cleaning up the nftables mode")?
            .removed,
        Mode::Userspace => ferry_userspace::UserspaceBackend::new(ferry_userspace::UserspaceConfig::default())?
            .with_binder(Box::new(ferry_userspace::addresses::LoopbackAddresses))
            .cleanup()
            .context("cleaning up the userspace mode")?
            .removed,
        Mode::Iptables => {
            let mut removed = Vec::new();
            for variant in variants {
                let mut backend = ferry_iptables::IptablesBackend::new(ferry_iptables::IptConfig::default(), *variant);
                let report = backend
                    .cleanup()
                    .with_context(|| format!("cleaning up the iptables mode ({} variant)", variant.name()))?;
                removed.extend(report.removed);
            }
            removed
        }
        Mode::Ipvs => match ferry_ipvs::IpvsBackend::connect(ferry_ipvs::IpvsConfig::default()) {
            Ok(mut backend) => backend.cleanup().context("cleaning up the ipvs mode")?.removed,
            Err(e) if e.no_ipvs() => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context("cleaning up the ipvs mode")),
        },
    };
    Ok(Some(removed))
}

/// B28: after the first sync of the mode `current` (as the backend names it), removes
/// what the other modes of kube-ferry left in this namespace, logging each thing removed.
/// A failure is logged, never fatal: the running mode is programmed.
pub(crate) fn clean_other_modes(current: &str) {
    let all = [Mode::Nftables, Mode::Iptables, Mode::Ipvs, Mode::Userspace];
    let variants = [ferry_iptables::Variant::Nft, ferry_iptables::Variant::Legacy];
    for mode in all.into_iter().filter(|m| m.name() != current) {
        match clean_mode(mode, &variants) {
            Ok(Some(removed)) => {
                for line in removed {
                    tracing::info!(previous_mode = mode.name(), "switching mode: removed {line}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(previous_mode = mode.name(), error = format!("{e:#}"), "switching mode: could not remove what it left"),
        }
    }
}
