//! `kube-ferry render`: what a mode would program for a set of manifests, printed.

use std::path::Path;

use anyhow::bail;
use ferry_model::StateBuilder;
use kube_ferry::cli::{Mode, RenderArgs};
use kube_ferry::examples::{EXAMPLES, EXAMPLE_NODE};
use kube_ferry::source::file::ManifestDir;
use kube_ferry::tracker::ChangeTracker;

use crate::host_name;

pub(crate) fn render(args: &RenderArgs) -> anyhow::Result<()> {
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
