//! Service addresses made local, so the proxy can listen on them and the kernel delivers
//! traffic for them to it: each is added to the loopback link (`/32`, `/128`), the place
//! the issue names where no dummy link exists. IPv4 addresses carry the label `lo:kferry`,
//! so a restart and `cleanup` find exactly kube-ferry's; IPv6 addresses have no labels, so
//! kube-ferry removes only those it added or adopted as service addresses.
//!
//! Through the `ip` tool (argument vectors, one `ip -batch -` per sync), not rtnetlink: a
//! handful of address changes per sync, and `ip` is already required by every mode.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ferry_model::BackendError;

/// The IPv4 label marking kube-ferry's addresses (`ip addr` shows it).
pub const LABEL: &str = "lo:kferry";

/// Adds and removes service addresses on the loopback link.
pub trait AddressBinder: std::fmt::Debug + Send {
    /// The addresses of kube-ferry's found on the link (IPv4 by label; IPv6: every
    /// address but `::1`, from which the caller keeps only service addresses).
    fn list(&self) -> Result<BTreeSet<IpAddr>, BackendError>;
    /// Adds `add` and removes `remove`, in one go.
    fn change(&self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), BackendError>;
}

/// The real one: `ip` in the current network namespace.
#[derive(Debug, Default)]
pub struct LoopbackAddresses;

fn prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl AddressBinder for LoopbackAddresses {
    fn list(&self) -> Result<BTreeSet<IpAddr>, BackendError> {
        let out = Command::new("ip")
            .args(["-o", "addr", "show", "dev", "lo"])
            .output()
            .map_err(|e| BackendError::Other(format!("cannot run ip ({e}); install the Debian package iproute2")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let family = words.clone().nth(2)?;
                let addr: IpAddr = words.nth(3)?.split('/').next()?.parse().ok()?;
                let ours = match family {
                    "inet" => line.contains(LABEL),
                    _ => !addr.is_loopback(),
                };
                ours.then_some(addr)
            })
            .collect())
    }

    fn change(&self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), BackendError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let mut batch = String::new();
        for ip in remove {
            batch.push_str(&format!("addr del {ip}/{} dev lo\n", prefix(ip)));
        }
        for ip in add {
            let label = if ip.is_ipv4() { format!(" label {LABEL}") } else { " nodad".to_owned() };
            batch.push_str(&format!("addr replace {ip}/{} dev lo{label}\n", prefix(ip)));
        }
        let mut child =
            Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(
                |e| BackendError::Other(format!("cannot run ip ({e}); install the Debian package iproute2")),
            )?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(batch.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| BackendError::Other(format!("ip: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BackendError::Refused { detail: format!("ip -batch: {}", String::from_utf8_lossy(&out.stderr).trim()) })
        }
    }
}

/// This node's addresses (on any link, of both families) inside `cidrs`, for
/// `--nodeport-addresses`: the userspace mode listens for NodePorts on exactly these.
/// Read once, at start: an address added later is not listened on until a restart
/// (docs/userspace.md).
pub fn local_addresses_in(cidrs: &[ipnet::IpNet]) -> Result<Vec<IpAddr>, BackendError> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .map_err(|e| BackendError::Other(format!("cannot run ip ({e}); install the Debian package iproute2")))?;
    if !out.status.success() {
        return Err(BackendError::Other(format!(
            "ip -o addr show failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(addresses_in(&String::from_utf8_lossy(&out.stdout), cidrs))
}

/// The addresses of `ip -o addr show` output inside `cidrs`, sorted, without repeats.
fn addresses_in(ip_output: &str, cidrs: &[ipnet::IpNet]) -> Vec<IpAddr> {
    let found: BTreeSet<IpAddr> = ip_output
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3)?.split('/').next()?.parse::<IpAddr>().ok())
        .filter(|ip| cidrs.iter().any(|c| c.contains(ip)))
        .collect();
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_port_addresses_are_the_local_ones_inside_the_cidrs() {
        let output = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                      1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n\
                      2: eth0    inet 192.0.2.7/24 brd 192.0.2.255 scope global eth0\n\
                      2: eth0    inet6 2001:db8::7/64 scope global \\       valid_lft forever\n\
                      3: eth1    inet 10.1.2.3/16 scope global eth1\n";
        let cidrs: Vec<ipnet::IpNet> = vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        assert_eq!(addresses_in(output, &cidrs), ["192.0.2.7".parse::<IpAddr>().unwrap(), "2001:db8::7".parse().unwrap()]);
        assert_eq!(addresses_in(output, &["127.0.0.0/8".parse().unwrap()]), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(addresses_in(output, &["203.0.113.0/24".parse().unwrap()]).is_empty());
    }
}
