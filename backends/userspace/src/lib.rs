//! # ferry-userspace: a TCP/UDP proxy per service port (work in progress, issue: userspace)
//!
//! Built so far: [`balancer`], the endpoint choice (round-robin, ClientIP affinity with an
//! idle timeout, failed endpoints skipped), pure and clock-free so it is tested
//! deterministically; [`tcp`], connecting with escalating timeouts and retry on the next
//! endpoint, and the copy both ways with half-close and an idle timeout. [`listener`], a TCP frontend
//! with per-service and total connection limits. [`udp`], a UDP frontend with a bounded
//! flow table. [`UserspaceBackend`] runs them from the model. Binding service
//! addresses on a local link, `--mode userspace` and the behaviour suite are next.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use backend::{UserspaceBackend, UserspaceConfig};

pub mod addresses;
mod backend;
pub mod balancer;
pub mod listener;
pub mod pipe_copy;
pub mod sources;
pub mod tcp;
pub mod udp;
