//! A network-namespace lab for kube-ferry's datapath tests.
//!
//! Everything the lab builds lives in network namespaces it creates itself (named
//! `kf-<pid>-<random>-<role>`); nothing is ever added to the machine's own namespace, and
//! no namespace gets a route out of the lab. Every namespace is deleted, and every process
//! the lab started is killed by its PID, when its guard is dropped: on success, on failure
//! and while a panicking test unwinds.
//!
//! ```no_run
//! use std::time::Duration;
//! use ferry_netlab::{tcp_request, Lab};
//!
//! let mut lab = Lab::single_node(2).unwrap();
//! lab.start_pod_servers(&[8080]).unwrap();
//! let answer = tcp_request(lab.client().ns(), lab.pod(0).addr(8080), Duration::from_secs(2)).unwrap();
//! assert!(answer.starts_with("pod-0 "));
//! ```
//!
//! The lab needs root and the `ip` and `bridge` tools of iproute2 (Debian package
//! `iproute2`). Its two helper programs, `ferry-podserver` and `ferry-probe`, are binaries
//! of this crate: a user of the crate builds them with `cargo build -p ferry-netlab --bins`
//! (see [`podserver_program`]). Their logic is also a library function each
//! ([`podserver_main`], [`probe_main`]), so another binary can carry them as subcommands
//! and point the lab at itself with [`set_binaries`] and [`Program`]'s leading arguments.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bins;
mod error;
pub mod features;
pub mod guard;
mod hosts;
mod lab;
mod netns;
mod podserver;
mod probe;
mod probe_cli;
mod process;
mod topology;

pub use bins::{podserver_path, podserver_program, probe_path, probe_program, set_binaries, Binaries, Program};
pub use error::LabError;
pub use hosts::{Client, Node, Pod, PodServer, PODSERVER_READY};
pub use lab::{Lab, Overlay};
pub use netns::{list_namespaces, Netns};
pub use podserver::podserver_main;
pub use probe::{
    request, sctp_supported, tcp_request, udp_request, Answer, ProbeError, Proto, EXIT_OK, EXIT_OTHER, EXIT_REFUSED,
    EXIT_RESET, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_UNSUPPORTED, EXIT_USAGE, IPPROTO_SCTP,
};
pub use probe_cli::probe_main;
pub use process::LabProcess;
pub use topology::{
    CLIENT_CIDR, CLIENT_CIDR6, EXTERNAL_CIDR, EXTERNAL_CIDR6, POD_CIDR, POD_CIDR6, SERVICE_CIDR, SERVICE_CIDR6,
    UNDERLAY_CIDR,
};
