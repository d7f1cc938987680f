//! A typed client of the kernel's generic netlink family `IPVS` (`ip_vs.h`): virtual
//! services, their real servers and the global timeouts, as `ipvsadm` manages them.
//!
//! [`IpvsClient`] owns the socket; requests are encoded in `encode` and replies decoded
//! in `decode`, both pure and tested byte for byte. Every request is sent with `NLM_F_ACK`
//! (or as a dump) and waited for, so an `Ok` means the kernel applied it.
//!
//! ```no_run
//! use ferry_ipvs::genl::{IpvsClient, IpvsError, Protocol, RealServer, VirtualService};
//! # fn main() -> Result<(), IpvsError> {
//! let mut ipvs = match IpvsClient::connect() {
//!     Err(IpvsError::NotAvailable { .. }) => return Ok(()), // fall back to nftables
//!     other => other?,
//! };
//! let svc = VirtualService::new("198.51.100.10".parse().unwrap(), Protocol::Tcp, 80);
//! ipvs.add_service(&svc)?;
//! ipvs.add_real_server(&svc, &RealServer::new("198.51.100.20".parse().unwrap(), 8080, 1))?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod client;
mod decode;
mod encode;
mod error;
mod reply;
mod scheduler;
mod types;
mod uapi;

#[cfg(test)]
mod test_bytes;

pub use client::IpvsClient;
pub use error::IpvsError;
pub use scheduler::{Scheduler, UnknownScheduler};
pub use types::{ForwardMethod, Protocol, RealServer, ServiceFlags, Timeouts, VirtualService};
