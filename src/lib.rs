//! kube-ferry, the binary's library: sources, the change tracker, the sync loop, the
//! servers and the CLI. The model (`ferry-model`) holds the behaviour; this crate is
//! its I/O shell.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod companion;
pub mod config;
pub mod conntrack_sysctl;
pub mod controller;
pub mod examples;
pub mod health;
pub mod metrics;
pub mod node_cidr;
pub mod render;
pub mod server;
pub mod source;
pub mod switch;
pub mod sync;
pub mod tracker;
