//! The objects IPVS holds: virtual services, their real servers, and the global
//! connection timeouts.

use std::fmt;
use std::net::IpAddr;

pub use ferry_model::Protocol;

use super::Scheduler;

/// An IPVS virtual service (`ipvsadm -A -t ADDR:PORT -s SCHED`), identified by
/// `(address, protocol, port)`: two values with the same identity are the same kernel
/// object, whatever their scheduler or persistence.
///
/// Firewall-mark services are not represented; a dump skips them (see
/// [`IpvsClient::services`](super::IpvsClient::services)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VirtualService {
    /// The virtual address (a ClusterIP, an external IP, a node address ...). Its family
    /// is the service's address family.
    pub address: IpAddr,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The virtual port, in host order (the encoder puts it in network order).
    pub port: u16,
    /// The scheduler; the kernel needs module `ip_vs_<name>` for it.
    pub scheduler: Scheduler,
    /// Session persistence (`sessionAffinity: ClientIP`): `Some(seconds)` sets
    /// `IP_VS_SVC_F_PERSISTENT` with that timeout and a full-address netmask (a /32 or
    /// /128 client is one session). `None` is no persistence.
    pub persistence: Option<u32>,
    /// Other service flags. Persistence is not in here (it is [`Self::persistence`]) and
    /// neither is the kernel's internal `HASHED` bit; a dump strips both.
    pub flags: ServiceFlags,
}

impl VirtualService {
    /// A service with the round-robin scheduler, no persistence and no flags.
    pub fn new(address: IpAddr, protocol: Protocol, port: u16) -> VirtualService {
        VirtualService {
            address,
            protocol,
            port,
            scheduler: Scheduler::RoundRobin,
            persistence: None,
            flags: ServiceFlags::NONE,
        }
    }

    /// True if `other` is the same kernel object (same address, protocol and port).
    pub fn same_identity(&self, other: &VirtualService) -> bool {
        self.address == other.address && self.protocol == other.protocol && self.port == other.port
    }
}

/// Formats as errors and logs name the service: `TCP 10.96.0.10:80`, `UDP [2001:db8::1]:53`.
impl fmt::Display for VirtualService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, SocketText(self.address, self.port))
    }
}

/// Service flags other than persistence (`struct ip_vs_flags`), as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// No flags.
    pub const NONE: ServiceFlags = ServiceFlags(0);
    /// `IP_VS_SVC_F_ONEPACKET`: schedule each UDP packet on its own (`ipvsadm -o`).
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(0x0004);
    /// `IP_VS_SVC_F_SCHED_SH_FALLBACK` (`sh-fallback`): the `sh` scheduler skips an
    /// unavailable real server instead of failing.
    pub const SH_FALLBACK: ServiceFlags = ServiceFlags(0x0008);
    /// `IP_VS_SVC_F_SCHED_SH_PORT` (`sh-port`): the `sh` scheduler hashes the source port too.
    pub const SH_PORT: ServiceFlags = ServiceFlags(0x0010);

    /// True if every bit of `other` is set here.
    pub fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

/// How IPVS forwards packets to a real server (`IPVS_DEST_ATTR_FWD_METHOD`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`-m`, `Masq`), what kube-proxy and kube-ferry use.
    #[default]
    Masquerade,
    /// Local node (`Local`), read from dumps only.
    Local,
    /// IP-in-IP tunnel (`-i`, `Tunnel`), read from dumps only.
    Tunnel,
    /// Direct routing (`-g`, `Route`), read from dumps only.
    DirectRoute,
    /// A value this client does not know (e.g. `IP_VS_CONN_F_BYPASS`), as the kernel sent it.
    Other(u32),
}

impl ForwardMethod {
    pub(crate) fn to_kernel(self) -> u32 {
        use super::uapi::*;
        match self {
            ForwardMethod::Masquerade => IP_VS_CONN_F_MASQ,
            ForwardMethod::Local => IP_VS_CONN_F_LOCALNODE,
            ForwardMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            ForwardMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            ForwardMethod::Other(v) => v,
        }
    }

    pub(crate) fn from_kernel(value: u32) -> ForwardMethod {
        use super::uapi::*;
        match value & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => ForwardMethod::Masquerade,
            IP_VS_CONN_F_LOCALNODE => ForwardMethod::Local,
            IP_VS_CONN_F_TUNNEL => ForwardMethod::Tunnel,
            IP_VS_CONN_F_DROUTE => ForwardMethod::DirectRoute,
            other => ForwardMethod::Other(other),
        }
    }
}

/// A real server (destination) of a virtual service (`ipvsadm -a ... -r ADDR:PORT -m -w W`),
/// identified within its service by `(address, port)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RealServer {
    /// The endpoint address. It normally has the service's family; the client sends its
    /// own family (`IPVS_DEST_ATTR_ADDR_FAMILY`) so the kernel can tell.
    pub address: IpAddr,
    /// The endpoint port, in host order.
    pub port: u16,
    /// The weight; 0 keeps the server but sends it no new connections (graceful removal).
    pub weight: u32,
    /// The forwarding method; kube-ferry uses [`ForwardMethod::Masquerade`].
    pub forward: ForwardMethod,
    /// Active connections, as the last dump reported them; ignored when sending.
    pub active_connections: u32,
    /// Inactive connections (e.g. TIME_WAIT), as the last dump reported them; ignored when
    /// sending. A server with weight 0 and no connections can be deleted without cutting anyone.
    pub inactive_connections: u32,
    /// Persistence templates pointing at this server, from the last dump; ignored when sending.
    pub persistent_connections: u32,
}

impl RealServer {
    /// A masquerading real server with this weight and zero connection counters.
    pub fn new(address: IpAddr, port: u16, weight: u32) -> RealServer {
        RealServer {
            address,
            port,
            weight,
            forward: ForwardMethod::Masquerade,
            active_connections: 0,
            inactive_connections: 0,
            persistent_connections: 0,
        }
    }

    /// True if `other` is the same kernel object within a service (same address and port).
    pub fn same_identity(&self, other: &RealServer) -> bool {
        self.address == other.address && self.port == other.port
    }
}

/// Formats as `198.51.100.20:8080` or `[2001:db8::20]:8080`.
impl fmt::Display for RealServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketText(self.address, self.port).fmt(f)
    }
}

/// IPVS's global connection timeouts in seconds (`ipvsadm --set TCP TCPFIN UDP`).
/// Sending 0 for a field leaves that timeout unchanged (the kernel's rule); the kernel
/// never reports 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Established TCP connections (kernel default 900).
    pub tcp: u32,
    /// TCP connections after a FIN (kernel default 120).
    pub tcp_fin: u32,
    /// UDP "connections" (kernel default 300).
    pub udp: u32,
}

/// `addr:port` with brackets around IPv6 addresses.
struct SocketText(IpAddr, u16);

impl fmt::Display for SocketText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}
