//! # ferry-iptables: the model rendered into KUBE-style iptables chains
//!
//! [`render`] turns each service port into its own chains and its entries in the shared
//! ones; the shared dispatch chains are trees ([`render::tree`]); [`IptablesBackend`]
//! sends only the chains that changed with `iptables-restore --noflush` ([`restore`],
//! [`tool`]). docs/iptables.md has the shape and the measurements behind it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use backend::IptablesBackend;
pub use render::IptConfig;
pub use tool::Variant;

mod aggregate;
mod backend;
mod desired;
pub mod kube_proxy;
pub mod names;
pub mod render;
pub mod restore;
mod status;
pub mod tool;
