//! # ferry-ipvs: kube-ferry's IPVS backend
//!
//! IPVS virtual services and real servers over the kernel's generic netlink family
//! `IPVS` ([`genl`]), service addresses on the `kube-ipvs0` dummy link, and the helper
//! rules IPVS cannot do alone in kube-ferry's own nftables table.
#![warn(missing_docs)]

pub use backend::IpvsBackend;
pub use config::IpvsConfig;
pub use real::ConnectError;

pub mod backend;
pub mod config;
pub mod desired;
pub mod genl;
pub mod link;
mod real;
pub mod helpers;
pub mod image;
pub mod kernel;
