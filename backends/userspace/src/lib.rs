//! # ferry-userspace: a TCP/UDP proxy per service port (work in progress, issue: userspace)
//!
//! Built so far: [`balancer`], the endpoint choice (round-robin, ClientIP affinity with an
//! idle timeout, failed endpoints skipped), pure and clock-free so it is tested
//! deterministically. The listeners and the copy loops are next.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod balancer;
