//! # ferry-nftables: the model rendered into one nftables table of kube-ferry's own
//!
//! Work in progress (issue: nftables backend): the ruleset and transaction layer, the
//! names and the `nft` tool runner are here; the rendering of the model, adoption on
//! start and conntrack cleanup follow.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use backend::NftablesBackend;
pub use render::NftConfig;

mod adopt;
mod backend;
pub mod element;
pub mod fragment;
pub mod full;
pub mod incremental;
pub mod names;
pub mod netlink;
pub mod nft;
pub mod render;
pub mod ruleset;
