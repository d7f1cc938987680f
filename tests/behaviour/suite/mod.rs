//! The behaviour lines, each a function taking the mode under test, grouped as the
//! contract groups them.

mod dispatch;
mod dual_stack;
mod lifecycle;
mod localhost;
mod selection;
mod status;

// Each test crate (one per mode) uses some of these; the rest are unused there.
#[allow(unused_imports)]
pub use dispatch::*;
#[allow(unused_imports)]
pub use dual_stack::*;
#[allow(unused_imports)]
pub use lifecycle::*;
#[allow(unused_imports)]
pub use localhost::*;
#[allow(unused_imports)]
pub use selection::*;
#[allow(unused_imports)]
pub use status::*;

use std::net::{IpAddr, SocketAddr};

use ferry_netlab::{Answer, ProbeError};

use super::*;

pub(crate) fn web(lab: &ProxyLab, pods: &[usize]) -> String {
    let node = lab.node_name();
    let eps: Vec<_> = pods.iter().map(|i| (lab.pod_ip(*i), node.as_str(), true, true, false)).collect();
    service(
        "web",
        "10.96.0.10",
        "NodePort",
        &[("http", 80, "TCP", Some(30080)), ("dns", 53, "UDP", None)],
        "  externalIPs: [198.51.100.10]\n",
    ) + &slice("web", &[("http", "TCP"), ("dns", "UDP")], &eps)
}

pub(crate) fn refused(r: &Result<Answer, ProbeError>) -> bool {
    matches!(r, Err(ProbeError::Refused))
}

pub(crate) fn dropped(r: &Result<Answer, ProbeError>) -> bool {
    matches!(r, Err(ProbeError::TimedOut))
}

pub(crate) fn node_addr(lab: &ProxyLab, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(lab.lab.client().gateway()), port)
}
