//! # ferry-userspace: a TCP/UDP proxy per service port (work in progress, issue: userspace)
//!
//! Built so far: [`balancer`], the endpoint choice (round-robin, ClientIP affinity with an
//! idle timeout, failed endpoints skipped), pure and clock-free so it is tested
//! deterministically; [`tcp`], connecting with escalating timeouts and retry on the next
//! endpoint, and the copy both ways with half-close and an idle timeout. [`listener`], a TCP frontend
//! with per-service and total connection limits. [`udp`], a UDP frontend with a bounded
//! flow table. Binding service addresses and the backend are next.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod balancer;
pub mod listener;
pub mod tcp;
pub mod udp;
