//! Replies (dump entries, `GET_CONFIG`, the controller's family) decoded from generic
//! netlink messages, without a socket so they are unit tested from bytes (`decode/tests.rs`).
//!
//! Unknown attributes (stats, stats64, thresholds, tunnel settings, PE name, ...) are
//! skipped, so newer kernels that add attributes still decode.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use neli::FromBytesWithInput;

use super::encode::{Attr, GenlMsg};
use super::uapi::*;
use super::{ForwardMethod, Protocol, RealServer, Scheduler, ServiceFlags, Timeouts, VirtualService};

/// Parses a generic netlink message (genlmsghdr and attributes, no nlmsghdr).
pub(crate) fn genl_message(bytes: &[u8]) -> Result<GenlMsg, String> {
    GenlMsg::from_bytes_with_input(&mut Cursor::new(bytes), bytes.len()).map_err(|e| e.to_string())
}

/// One entry of a `GET_SERVICE` dump. `Ok(None)` is a service this client cannot
/// represent (firewall mark, another protocol or family), to be skipped.
pub(crate) fn service(msg: &GenlMsg) -> Result<Option<VirtualService>, String> {
    let attrs = nested(msg, IPVS_CMD_ATTR_SERVICE)?;
    let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut sched, mut flags, mut timeout) = (None, None, None);
    for a in &attrs {
        let p = payload(a);
        match kind(a) {
            IPVS_SVC_ATTR_AF => af = Some(u16_ne(p, "service AF")?),
            IPVS_SVC_ATTR_PROTOCOL => proto = Some(u16_ne(p, "service PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => addr = Some(p),
            IPVS_SVC_ATTR_PORT => port = Some(u16::from_be_bytes(fixed(p, "service PORT")?)),
            IPVS_SVC_ATTR_FWMARK => fwmark = Some(u32_ne(p, "service FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => sched = Some(c_string(p, "service SCHED_NAME")?),
            IPVS_SVC_ATTR_FLAGS => flags = Some(u32::from_ne_bytes(fixed(p.get(..4).unwrap_or(p), "service FLAGS")?)),
            IPVS_SVC_ATTR_TIMEOUT => timeout = Some(u32_ne(p, "service TIMEOUT")?),
            _ => {}
        }
    }
    let af = af.ok_or("service without AF")?;
    if fwmark.is_some_and(|m| m != 0) {
        return Ok(None);
    }
    let protocol = match proto.ok_or("service without PROTOCOL")? {
        IPPROTO_TCP => Protocol::Tcp,
        IPPROTO_UDP => Protocol::Udp,
        IPPROTO_SCTP => Protocol::Sctp,
        _ => return Ok(None),
    };
    let Some(address) = address(af, addr.ok_or("service without ADDR")?)? else { return Ok(None) };
    let flags = flags.unwrap_or(0);
    let persistence = (flags & IP_VS_SVC_F_PERSISTENT != 0).then(|| timeout.unwrap_or(0));
    Ok(Some(VirtualService {
        address,
        protocol,
        port: port.ok_or("service without PORT")?,
        scheduler: Scheduler::from_kernel_name(&sched.ok_or("service without SCHED_NAME")?),
        persistence,
        flags: ServiceFlags(flags & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED)),
    }))
}

/// One entry of a `GET_DEST` dump. `service_family` (AF_INET/AF_INET6) applies when the
/// kernel does not send `IPVS_DEST_ATTR_ADDR_FAMILY` (before Linux 4.3).
pub(crate) fn real_server(msg: &GenlMsg, service_family: u16) -> Result<RealServer, String> {
    let attrs = nested(msg, IPVS_CMD_ATTR_DEST)?;
    let (mut addr, mut port, mut af, mut fwd, mut weight) = (None, None, None, None, None);
    let (mut active, mut inactive, mut persist) = (0, 0, 0);
    for a in &attrs {
        let p = payload(a);
        match kind(a) {
            IPVS_DEST_ATTR_ADDR => addr = Some(p),
            IPVS_DEST_ATTR_PORT => port = Some(u16::from_be_bytes(fixed(p, "real server PORT")?)),
            IPVS_DEST_ATTR_ADDR_FAMILY => af = Some(u16_ne(p, "real server ADDR_FAMILY")?),
            IPVS_DEST_ATTR_FWD_METHOD => fwd = Some(u32_ne(p, "real server FWD_METHOD")?),
            IPVS_DEST_ATTR_WEIGHT => weight = Some(u32_ne(p, "real server WEIGHT")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => active = u32_ne(p, "real server ACTIVE_CONNS")?,
            IPVS_DEST_ATTR_INACT_CONNS => inactive = u32_ne(p, "real server INACT_CONNS")?,
            IPVS_DEST_ATTR_PERSIST_CONNS => persist = u32_ne(p, "real server PERSIST_CONNS")?,
            _ => {}
        }
    }
    let af = af.unwrap_or(service_family);
    let address = address(af, addr.ok_or("real server without ADDR")?)?
        .ok_or_else(|| format!("real server with unknown address family {af}"))?;
    Ok(RealServer {
        address,
        port: port.ok_or("real server without PORT")?,
        weight: weight.ok_or("real server without WEIGHT")?,
        forward: ForwardMethod::from_kernel(fwd.unwrap_or(IP_VS_CONN_F_MASQ)),
        active_connections: active,
        inactive_connections: inactive,
        persistent_connections: persist,
    })
}

/// The reply to `GET_CONFIG`. A timeout the kernel leaves out (no TCP or UDP support
/// compiled in) reads as 0.
pub(crate) fn timeouts(msg: &GenlMsg) -> Result<Timeouts, String> {
    let mut t = Timeouts::default();
    for a in msg.attrs().iter() {
        let p = payload(a);
        match kind(a) {
            IPVS_CMD_ATTR_TIMEOUT_TCP => t.tcp = u32_ne(p, "TIMEOUT_TCP")?,
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => t.tcp_fin = u32_ne(p, "TIMEOUT_TCP_FIN")?,
            IPVS_CMD_ATTR_TIMEOUT_UDP => t.udp = u32_ne(p, "TIMEOUT_UDP")?,
            _ => {}
        }
    }
    Ok(t)
}

/// The controller's reply to `GETFAMILY`: the family id and its version.
pub(crate) fn family(msg: &GenlMsg) -> Result<(u16, u32), String> {
    let (mut id, mut version) = (None, 0);
    for a in msg.attrs().iter() {
        match kind(a) {
            CTRL_ATTR_FAMILY_ID => id = Some(u16_ne(payload(a), "FAMILY_ID")?),
            CTRL_ATTR_VERSION => version = u32_ne(payload(a), "VERSION")?,
            _ => {}
        }
    }
    Ok((id.ok_or("family reply without FAMILY_ID")?, version))
}

fn nested(msg: &GenlMsg, ty: u16) -> Result<Vec<Attr>, String> {
    let outer = msg.attrs().iter().find(|a| kind(a) == ty).ok_or_else(|| format!("no attribute {ty} in the reply"))?;
    let handle = outer.get_attr_handle::<u16>().map_err(|e| format!("nested attribute {ty}: {e}"))?;
    Ok(handle.get_attrs().to_vec())
}

/// The attribute type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits.
fn kind(a: &Attr) -> u16 {
    *a.nla_type().nla_type()
}

fn payload(a: &Attr) -> &[u8] {
    a.nla_payload().as_ref()
}

fn fixed<const N: usize>(p: &[u8], what: &str) -> Result<[u8; N], String> {
    p.try_into().map_err(|_| format!("{what}: {} bytes, expected {N}", p.len()))
}

fn u16_ne(p: &[u8], what: &str) -> Result<u16, String> {
    Ok(u16::from_ne_bytes(fixed(p, what)?))
}

fn u32_ne(p: &[u8], what: &str) -> Result<u32, String> {
    Ok(u32::from_ne_bytes(fixed(p, what)?))
}

fn c_string(p: &[u8], what: &str) -> Result<String, String> {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8(p[..end].to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// An address from `union nf_inet_addr` (16 bytes; IPv4 in the first 4). `Ok(None)` for
/// a family other than IPv4/IPv6.
fn address(af: u16, p: &[u8]) -> Result<Option<IpAddr>, String> {
    match af {
        AF_INET => {
            let octets: [u8; 4] = p.get(..4).ok_or("IPv4 ADDR shorter than 4 bytes")?.try_into().map_err(|_| "ADDR")?;
            Ok(Some(IpAddr::V4(Ipv4Addr::from(octets))))
        }
        AF_INET6 => Ok(Some(IpAddr::V6(Ipv6Addr::from(fixed::<16>(p, "IPv6 ADDR")?)))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests;
