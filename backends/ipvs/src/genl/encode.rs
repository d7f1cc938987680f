//! Requests as generic netlink messages (`genlmsghdr` + attributes), built without a
//! socket so the exact bytes are unit tested (`encode/tests.rs`).
//!
//! Attribute encoding follows the kernel's policy in `net/netfilter/ipvs/ip_vs_ctl.c` and
//! what ipvsadm and kube-proxy send: AF and PROTOCOL are u16, addresses are always 16
//! bytes (IPv4 in the first 4), ports are big-endian, every other integer is host order;
//! `NEW_SERVICE`/`SET_SERVICE` carry all of SCHED_NAME, FLAGS, TIMEOUT and NETMASK (the
//! kernel refuses them with `EINVAL` otherwise); `NEW_DEST`/`SET_DEST` carry FWD_METHOD,
//! WEIGHT, U_THRESH and L_THRESH likewise. Nested attributes carry `NLA_F_NESTED`.

use std::net::IpAddr;

use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder};
use neli::types::{Buffer, GenlBuffer};

use super::uapi::*;
use super::{IpvsError, Protocol, RealServer, Timeouts, VirtualService};

/// A generic netlink message with raw command and attribute numbers.
pub(crate) type GenlMsg = Genlmsghdr<u8, u16>;
/// One attribute with its payload as bytes.
pub(crate) type Attr = Nlattr<u16, Buffer>;

/// `IPVS_CMD_NEW_SERVICE` with the full service.
pub(crate) fn new_service(svc: &VirtualService) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_NEW_SERVICE, vec![service_attr(svc, true)?])
}

/// `IPVS_CMD_SET_SERVICE`: replaces scheduler, flags and persistence of the service with
/// this identity.
pub(crate) fn set_service(svc: &VirtualService) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_SET_SERVICE, vec![service_attr(svc, true)?])
}

/// `IPVS_CMD_DEL_SERVICE` by identity (AF, protocol, address, port); its real servers go too.
pub(crate) fn del_service(svc: &VirtualService) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_DEL_SERVICE, vec![service_attr(svc, false)?])
}

/// `IPVS_CMD_GET_SERVICE`, sent as a dump: no attributes.
pub(crate) fn get_services() -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_GET_SERVICE, vec![])
}

/// `IPVS_CMD_NEW_DEST`: the service's identity and the full real server.
pub(crate) fn new_dest(svc: &VirtualService, rs: &RealServer) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_NEW_DEST, vec![service_attr(svc, false)?, dest_attr(rs, true)?])
}

/// `IPVS_CMD_SET_DEST`: replaces weight and forwarding method of the real server with
/// this address and port.
pub(crate) fn set_dest(svc: &VirtualService, rs: &RealServer) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_SET_DEST, vec![service_attr(svc, false)?, dest_attr(rs, true)?])
}

/// `IPVS_CMD_DEL_DEST` by identity (address, port, family).
pub(crate) fn del_dest(svc: &VirtualService, rs: &RealServer) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_DEL_DEST, vec![service_attr(svc, false)?, dest_attr(rs, false)?])
}

/// `IPVS_CMD_GET_DEST`, sent as a dump: the service's identity.
pub(crate) fn get_dests(svc: &VirtualService) -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_GET_DEST, vec![service_attr(svc, false)?])
}

/// `IPVS_CMD_SET_CONFIG` with all three timeouts (0 = unchanged, the kernel's rule).
pub(crate) fn set_config(t: &Timeouts) -> Result<GenlMsg, IpvsError> {
    message(
        IPVS_CMD_SET_CONFIG,
        vec![
            attr(IPVS_CMD_ATTR_TIMEOUT_TCP, &t.tcp.to_ne_bytes())?,
            attr(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, &t.tcp_fin.to_ne_bytes())?,
            attr(IPVS_CMD_ATTR_TIMEOUT_UDP, &t.udp.to_ne_bytes())?,
        ],
    )
}

/// `IPVS_CMD_GET_CONFIG`: no attributes; the reply carries the three timeouts.
pub(crate) fn get_config() -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_GET_CONFIG, vec![])
}

/// `IPVS_CMD_FLUSH`: no attributes; removes every virtual service of the namespace.
pub(crate) fn flush() -> Result<GenlMsg, IpvsError> {
    message(IPVS_CMD_FLUSH, vec![])
}

/// The controller's `CTRL_CMD_GETFAMILY` for `name` (sent to `GENL_ID_CTRL`).
pub(crate) fn get_family(name: &str) -> Result<GenlMsg, IpvsError> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    build(CTRL_CMD_GETFAMILY, CTRL_VERSION, vec![attr(CTRL_ATTR_FAMILY_NAME, &bytes)?])
}

fn message(cmd: u8, attrs: Vec<Attr>) -> Result<GenlMsg, IpvsError> {
    build(cmd, IPVS_GENL_VERSION, attrs)
}

fn build(cmd: u8, version: u8, attrs: Vec<Attr>) -> Result<GenlMsg, IpvsError> {
    GenlmsghdrBuilder::default()
        .cmd(cmd)
        .version(version)
        .attrs(attrs.into_iter().collect::<GenlBuffer<u16, Buffer>>())
        .build()
        .map_err(|e| encode_error("generic netlink header", e))
}

/// `IPVS_CMD_ATTR_SERVICE`: the identity, plus the settings if `full`.
fn service_attr(svc: &VirtualService, full: bool) -> Result<Attr, IpvsError> {
    let mut children = vec![
        attr(IPVS_SVC_ATTR_AF, &family(svc.address).to_ne_bytes())?,
        attr(IPVS_SVC_ATTR_PROTOCOL, &protocol_number(svc.protocol).to_ne_bytes())?,
        attr(IPVS_SVC_ATTR_ADDR, &address_bytes(svc.address))?,
        attr(IPVS_SVC_ATTR_PORT, &svc.port.to_be_bytes())?,
    ];
    if full {
        let mut sched = svc.scheduler.name().as_bytes().to_vec();
        sched.push(0);
        let mut flags = svc.flags.0 & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED);
        if svc.persistence.is_some() {
            flags |= IP_VS_SVC_F_PERSISTENT;
        }
        let mut ip_vs_flags = flags.to_ne_bytes().to_vec();
        ip_vs_flags.extend_from_slice(&u32::MAX.to_ne_bytes()); // mask: set every flag as given
        children.push(attr(IPVS_SVC_ATTR_SCHED_NAME, &sched)?);
        children.push(attr(IPVS_SVC_ATTR_FLAGS, &ip_vs_flags)?);
        children.push(attr(IPVS_SVC_ATTR_TIMEOUT, &svc.persistence.unwrap_or(0).to_ne_bytes())?);
        children.push(attr(IPVS_SVC_ATTR_NETMASK, &full_netmask(svc.address))?);
    }
    nested(IPVS_CMD_ATTR_SERVICE, children)
}

/// `IPVS_CMD_ATTR_DEST`: the identity (with the address family), plus settings if `full`.
fn dest_attr(rs: &RealServer, full: bool) -> Result<Attr, IpvsError> {
    let mut children = vec![
        attr(IPVS_DEST_ATTR_ADDR, &address_bytes(rs.address))?,
        attr(IPVS_DEST_ATTR_PORT, &rs.port.to_be_bytes())?,
        attr(IPVS_DEST_ATTR_ADDR_FAMILY, &family(rs.address).to_ne_bytes())?,
    ];
    if full {
        children.push(attr(IPVS_DEST_ATTR_FWD_METHOD, &rs.forward.to_kernel().to_ne_bytes())?);
        children.push(attr(IPVS_DEST_ATTR_WEIGHT, &rs.weight.to_ne_bytes())?);
        children.push(attr(IPVS_DEST_ATTR_U_THRESH, &0u32.to_ne_bytes())?); // no connection limit
        children.push(attr(IPVS_DEST_ATTR_L_THRESH, &0u32.to_ne_bytes())?);
    }
    nested(IPVS_CMD_ATTR_DEST, children)
}

/// The persistence netmask kube-proxy sends for every service: all of the client address
/// is the session key. IPv4 takes a `__be32` mask, IPv6 a prefix length (a host-order u32:
/// the kernel checks `1..=128` on the raw value).
fn full_netmask(address: IpAddr) -> [u8; 4] {
    match address {
        IpAddr::V4(_) => u32::MAX.to_be_bytes(),
        IpAddr::V6(_) => 128u32.to_ne_bytes(),
    }
}

pub(crate) fn family(address: IpAddr) -> u16 {
    match address {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn protocol_number(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Sctp => IPPROTO_SCTP,
    }
}

/// `union nf_inet_addr`: 16 bytes, an IPv4 address in the first 4, the rest zero.
fn address_bytes(address: IpAddr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match address {
        IpAddr::V4(a) => bytes[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes = a.octets(),
    }
    bytes
}

fn attr(ty: u16, payload: &[u8]) -> Result<Attr, IpvsError> {
    let nla_type = AttrTypeBuilder::default().nla_type(ty).build().map_err(|e| encode_error("attribute type", e))?;
    NlattrBuilder::default()
        .nla_type(nla_type)
        .nla_payload(Buffer::from(payload))
        .build()
        .map_err(|e| encode_error("attribute", e))
}

fn nested(ty: u16, children: Vec<Attr>) -> Result<Attr, IpvsError> {
    let mut parent = attr(ty, &[])?;
    for child in &children {
        parent = parent.nest(child).map_err(|e| encode_error("nested attribute", e))?;
    }
    Ok(parent)
}

fn encode_error(what: &str, e: impl std::fmt::Display) -> IpvsError {
    IpvsError::Encode { context: what.to_string(), detail: e.to_string() }
}

#[cfg(test)]
mod tests;
