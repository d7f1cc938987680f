//! The wiring steps topologies are made of. Every step acts inside lab namespaces only
//! (`ip -n NS ...`): each veth is created inside one namespace with its peer placed
//! directly in the other, so nothing ever appears in the machine's own namespace.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::LabError;
use crate::netns::Netns;

/// The cluster's pod network; node `k` (0-based) holds `10.244.(k+1).0/24`.
pub const POD_CIDR: Ipv4Net = net(Ipv4Addr::new(10, 244, 0, 0), 16);
/// The Service (ClusterIP) range; the client routes it via its node.
pub const SERVICE_CIDR: Ipv4Net = net(Ipv4Addr::new(10, 96, 0, 0), 12);
/// The link between the outside client (`192.0.2.2`) and its node (`192.0.2.1`).
pub const CLIENT_CIDR: Ipv4Net = net(Ipv4Addr::new(192, 0, 2, 0), 24);
/// A range for external and load-balancer IPs; the client routes it via its node, which
/// does not own it (a proxy catches it, or it goes nowhere).
pub const EXTERNAL_CIDR: Ipv4Net = net(Ipv4Addr::new(198, 51, 100, 0), 24);
/// The underlay between nodes: node `k` is `172.18.0.(k+1)`.
pub const UNDERLAY_CIDR: Ipv4Net = net(Ipv4Addr::new(172, 18, 0, 0), 24);

/// The IPv6 pod network; node `k` holds `fd00:10:244:(k+1)::/64`. The lab is dual-stack:
/// every pod, bridge and the client link also have an IPv6 address.
pub const POD_CIDR6: Ipv6Net = net6(Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 0), 56);
/// The IPv6 Service range; the client routes it via its node.
pub const SERVICE_CIDR6: Ipv6Net = net6(Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0), 112);
/// The IPv6 link between the client (`::2`) and its node (`::1`).
pub const CLIENT_CIDR6: Ipv6Net = net6(Ipv6Addr::new(0xfd00, 0xc0, 0x2, 0, 0, 0, 0, 0), 64);
/// IPv6 external and load-balancer IPs; routed by the client via its node.
pub const EXTERNAL_CIDR6: Ipv6Net = net6(Ipv6Addr::new(0xfd00, 0x198, 0x51, 0x100, 0, 0, 0, 0), 64);

const fn net6(addr: Ipv6Addr, len: u8) -> Ipv6Net {
    match Ipv6Net::new(addr, len) {
        Ok(n) => n,
        Err(_) => panic!("prefix length over 128"),
    }
}

const fn net(addr: Ipv4Addr, len: u8) -> Ipv4Net {
    match Ipv4Net::new(addr, len) {
        Ok(n) => n,
        Err(_) => panic!("prefix length over 32"),
    }
}

/// The VXLAN device's name, VNI and UDP port: flannel's.
pub(crate) const VXLAN_DEV: &str = "flannel.1";
const VXLAN_VNI: &str = "1";
const VXLAN_PORT: &str = "8472";
/// The MTU of pod links and of the VXLAN device under a VXLAN overlay (1500 minus 50).
pub(crate) const VXLAN_MTU: u32 = 1450;

/// Makes `node` a router with a pod bridge: forwarding on (both families), reverse-path
/// filtering off (the lab's paths are asymmetric on purpose),
/// `net.bridge.bridge-nf-call-ip(6)tables=1` (without it bridged replies skip un-NAT), and
/// bridge `cni0` with `gateway/24` and `gateway6/64` on it. IPv6 addresses are added
/// `nodad`: usable at once, with no duplicate-address detection to wait for.
pub(crate) fn make_node(node: &Netns, gateway: Ipv4Addr, gateway6: Ipv6Addr) -> Result<(), LabError> {
    node.sysctl("net.ipv4.ip_forward", "1")?;
    node.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    node.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    node.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
    node.ip(["link", "add", "cni0", "type", "bridge"])?;
    // The bridge's sysctls exist once a bridge does.
    node.sysctl("net.bridge.bridge-nf-call-iptables", "1")?;
    node.sysctl("net.bridge.bridge-nf-call-ip6tables", "1")?;
    node.ip(["addr", "add", &format!("{gateway}/24"), "dev", "cni0"])?;
    node.ip(["addr", "add", &format!("{gateway6}/64"), "dev", "cni0", "nodad"])?;
    node.ip(["link", "set", "cni0", "up"]).map(drop)
}

/// Where a pod sits on its node's bridge: its addresses and the bridge's.
pub(crate) struct PodAddresses {
    pub(crate) ip: Ipv4Addr,
    pub(crate) ip6: Ipv6Addr,
    pub(crate) gateway: Ipv4Addr,
    pub(crate) gateway6: Ipv6Addr,
}

/// Wires `pod` into `node`'s bridge: `eth0` in the pod with `ip/24` and `ip6/64` and
/// default routes via the bridge (inside the lab), its peer `host_veth` on `cni0` in
/// hairpin mode.
pub(crate) fn attach_pod(
    node: &Netns,
    pod: &Netns,
    host_veth: &str,
    at: &PodAddresses,
    mtu: u32,
) -> Result<(), LabError> {
    let PodAddresses { ip, ip6, gateway, gateway6 } = at;
    let mtu = mtu.to_string();
    node.ip([
        "link",
        "add",
        host_veth,
        "mtu",
        &mtu,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "mtu",
        &mtu,
        "netns",
        pod.name(),
    ])?;
    node.ip(["link", "set", host_veth, "master", "cni0"])?;
    node.ip(["link", "set", host_veth, "type", "bridge_slave", "hairpin", "on"])?;
    node.ip(["link", "set", host_veth, "up"])?;
    pod.ip(["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
    pod.ip(["addr", "add", &format!("{ip6}/64"), "dev", "eth0", "nodad"])?;
    pod.ip(["link", "set", "eth0", "up"])?;
    pod.ip(["route", "add", "default", "via", &gateway.to_string(), "dev", "eth0"])?;
    pod.ip(["-6", "route", "add", "default", "via", &gateway6.to_string(), "dev", "eth0"])?;
    Ok(())
}

/// The client link's IPv6 ends: the node's (`::1`) and the client's (`::2`).
pub(crate) fn client_link6() -> (Ipv6Addr, Ipv6Addr) {
    let base = u128::from(CLIENT_CIDR6.network());
    (Ipv6Addr::from(base + 1), Ipv6Addr::from(base + 2))
}

/// Joins the outside `client` to `node`: `eth-client` in the node with `.1` (and `::1`),
/// `eth0` in the client with `.2` of [`CLIENT_CIDR`] (and `::2` of [`CLIENT_CIDR6`]). The
/// client routes the Service, pod, external and underlay ranges of both families via the
/// node, and nothing else (it has no default route).
pub(crate) fn attach_client(node: &Netns, client: &Netns) -> Result<(Ipv4Addr, Ipv4Addr), LabError> {
    let (node_ip, client_ip) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    node.ip(["link", "add", "eth-client", "type", "veth", "peer", "name", "eth0", "netns", client.name()])?;
    node.ip(["addr", "add", &format!("{node_ip}/24"), "dev", "eth-client"])?;
    node.ip(["link", "set", "eth-client", "up"])?;
    client.ip(["addr", "add", &format!("{client_ip}/24"), "dev", "eth0"])?;
    client.ip(["link", "set", "eth0", "up"])?;
    for cidr in [SERVICE_CIDR, POD_CIDR, EXTERNAL_CIDR, UNDERLAY_CIDR] {
        client.ip(["route", "add", &cidr.to_string(), "via", &node_ip.to_string(), "dev", "eth0"])?;
    }
    let (node6, client6) = client_link6();
    node.ip(["addr", "add", &format!("{node6}/64"), "dev", "eth-client", "nodad"])?;
    client.ip(["addr", "add", &format!("{client6}/64"), "dev", "eth0", "nodad"])?;
    for cidr in [SERVICE_CIDR6, POD_CIDR6, EXTERNAL_CIDR6] {
        client.ip(["-6", "route", "add", &cidr.to_string(), "via", &node6.to_string(), "dev", "eth0"])?;
    }
    Ok((node_ip, client_ip))
}

/// Joins two nodes by a veth `eth0` <-> `eth0` with `ip_a/24` and `ip_b/24`.
pub(crate) fn link_underlay(a: &Netns, ip_a: Ipv4Addr, b: &Netns, ip_b: Ipv4Addr) -> Result<(), LabError> {
    a.ip(["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.name()])?;
    for (ns, ip) in [(a, ip_a), (b, ip_b)] {
        ns.ip(["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.ip(["link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// One end of a VXLAN overlay, as flannel sets it up.
pub(crate) struct VxlanEnd<'a> {
    pub(crate) ns: &'a Netns,
    /// The node's underlay address.
    pub(crate) underlay: Ipv4Addr,
    /// The node's pod subnet; its `.0` address goes on `flannel.1`.
    pub(crate) pods: Ipv4Net,
    /// The MAC given to its `flannel.1` (fixed, so the peer's entries need no lookup).
    pub(crate) mac: &'a str,
}

/// Creates `flannel.1` (VNI 1, port 8472, no learning) on `local` and points it at
/// `peer`: an FDB entry peer MAC -> peer underlay IP, a permanent neighbour entry for the
/// peer's `flannel.1` address, and a route to the peer's pods via it, `onlink`.
pub(crate) fn vxlan(local: &VxlanEnd<'_>, peer: &VxlanEnd<'_>) -> Result<(), LabError> {
    let ns = local.ns;
    let (mtu, local_ip) = (VXLAN_MTU.to_string(), local.underlay.to_string());
    ns.ip([
        "link",
        "add",
        VXLAN_DEV,
        "address",
        local.mac,
        "mtu",
        &mtu,
        "type",
        "vxlan",
        "id",
        VXLAN_VNI,
        "local",
        &local_ip,
        "dev",
        "eth0",
        "dstport",
        VXLAN_PORT,
        "nolearning",
    ])?;
    ns.ip(["addr", "add", &format!("{}/32", local.pods.network()), "dev", VXLAN_DEV])?;
    ns.ip(["link", "set", VXLAN_DEV, "up"])?;
    let peer_gw = peer.pods.network().to_string();
    ns.exec("bridge", ["fdb", "append", peer.mac, "dev", VXLAN_DEV, "dst", &peer.underlay.to_string()])?;
    ns.ip(["neigh", "replace", &peer_gw, "lladdr", peer.mac, "dev", VXLAN_DEV, "nud", "permanent"])?;
    ns.ip(["route", "add", &peer.pods.to_string(), "via", &peer_gw, "dev", VXLAN_DEV, "onlink"])?;
    Ok(())
}

/// Routes `peer_pods` via the peer node's underlay address (flannel's host-gw backend).
pub(crate) fn host_gw(ns: &Netns, peer_pods: Ipv4Net, peer_underlay: Ipv4Addr) -> Result<(), LabError> {
    ns.ip(["route", "add", &peer_pods.to_string(), "via", &peer_underlay.to_string(), "dev", "eth0"]).map(drop)
}
