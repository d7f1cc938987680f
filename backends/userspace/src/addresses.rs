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
