//! # ferry-nftables: the model rendered into one nftables table of kube-ferry's own
//!
//! `render` turns the model into per-service-port [`fragment::Fragment`]s and a fixed
//! base ([`ruleset::Ruleset`]); `incremental` diffs fragments into [`ruleset::Op`]s; the
//! backend sends them as one transaction, over netlink ([`netlink`]) when they only change
//! elements, else through the `nft` tool ([`nft`]). docs/nftables.md has the shape and why.
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
mod status;
