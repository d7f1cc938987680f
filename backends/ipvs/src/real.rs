//! The real kernel parts of the IPVS backend: [`IpvsClient`] for the table,
//! [`DummyLink`] for `kube-ipvs0`, the `nft` tool for the helper table, `/proc/sys` for
//! the sysctls; and [`ConnectError`] for a kernel without IPVS.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use crate::backend::{proc_sysctl, IpvsBackend};
use crate::config::IpvsConfig;
use crate::genl::{IpvsClient, IpvsError};
use crate::kernel::AddressLink;
use crate::link::{DummyLink, LinkError, LINK_NAME};

/// Why the IPVS backend could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The IPVS generic netlink family could not be reached.
    #[error("{0}")]
    Ipvs(#[from] IpvsError),
    /// The rtnetlink socket for `kube-ipvs0` could not be opened.
    #[error("{0}")]
    Link(#[from] LinkError),
}

impl ConnectError {
    /// Whether this kernel simply has no IPVS (the case kube-proxy falls back on).
    pub fn no_ipvs(&self) -> bool {
        matches!(self, ConnectError::Ipvs(IpvsError::NotAvailable { .. }))
    }
}

impl IpvsBackend {
    /// The backend on this network namespace's kernel. Opens the sockets and resolves
    /// the `IPVS` family; changes nothing (the first sync creates `kube-ipvs0`). A kernel
    /// without IPVS gives an error whose [`ConnectError::no_ipvs`] is true.
    pub fn connect(config: IpvsConfig) -> Result<IpvsBackend, ConnectError> {
        let table = IpvsClient::connect()?;
        let link = DummyLink::open(LINK_NAME)?;
        Ok(IpvsBackend::with_parts(
            config,
            Box::new(table),
            Box::new(link),
            Box::new(ferry_nftables::nft::NftTool::find()),
            Box::new(proc_sysctl),
        ))
    }
}

impl AddressLink for DummyLink {
    fn ensure(&mut self) -> Result<bool, String> {
        DummyLink::ensure(self).map_err(|e| e.to_string())
    }
    fn addresses(&mut self) -> Result<BTreeSet<IpAddr>, String> {
        DummyLink::addresses(self).map_err(|e| e.to_string())
    }
    fn change(&mut self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), String> {
        DummyLink::change(self, add, remove).map_err(|e| e.to_string())
    }
    fn delete(&mut self) -> Result<bool, String> {
        DummyLink::delete(self).map_err(|e| e.to_string())
    }
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, String> {
        let out = Command::new("ip")
            .args(["-o", "addr", "show"])
            .output()
            .map_err(|e| format!("cannot run ip ({e}); install the Debian package iproute2"))?;
        if !out.status.success() {
            return Err(format!("ip -o addr show failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(node_addresses(&String::from_utf8_lossy(&out.stdout), self.name()))
    }
}

/// The addresses of `ip -o addr show` output that NodePorts answer on: every link's but
/// `service_link`'s, without loopback and IPv6 link-local addresses.
fn node_addresses(ip_output: &str, service_link: &str) -> Vec<IpAddr> {
    let mut found: BTreeSet<IpAddr> = BTreeSet::new();
    for line in ip_output.lines() {
        let mut words = line.split_whitespace();
        let link = words.nth(1).unwrap_or_default().split('@').next().unwrap_or_default();
        let Some(addr) = words.nth(1).and_then(|a| a.split('/').next()).and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        let link_local = matches!(addr, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        if link != service_link && !addr.is_loopback() && !link_local {
            found.insert(addr);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_skip_the_service_link_loopback_and_link_local() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                   2: eth0    inet 192.0.2.7/24 brd 192.0.2.255 scope global eth0\n\
                   2: eth0    inet6 2001:db8::7/64 scope global\n\
                   2: eth0    inet6 fe80::1/64 scope link\n\
                   3: kube-ipvs0    inet 10.96.0.10/32 scope global kube-ipvs0\n\
                   4: veth1@if5    inet 10.1.0.1/24 scope global veth1\n";
        let got: Vec<String> = node_addresses(out, LINK_NAME).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.1.0.1", "192.0.2.7", "2001:db8::7"]);
    }
}
