//! The lab: nodes, pods and a client wired into one of two topologies.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::LabError;
use crate::hosts::{Client, Node, Pod, PodServer};
use crate::netns::{unique_prefix, unique_prefix_tagged, Netns};
use crate::topology::{self, PodAddresses, VxlanEnd, VXLAN_MTU};

/// How two nodes carry pod traffic between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// Flannel's VXLAN backend: `flannel.1` (VNI 1, UDP 8472) with static FDB and
    /// neighbour entries, and routes `10.244.Y.0/24 via 10.244.Y.0 dev flannel.1 onlink`.
    Vxlan,
    /// Flannel's host-gw backend: `10.244.Y.0/24 via <peer underlay address>`.
    HostGw,
}

/// A lab of namespaced hosts. Dropping it kills the servers in its pods and deletes every
/// namespace it made (also while a panic unwinds).
#[derive(Debug)]
pub struct Lab {
    // Fields drop in order: pods (and their servers) first, the nodes last.
    pods: Vec<Pod>,
    client: Client,
    nodes: Vec<Node>,
    prefix: String,
}

/// Panics, saying what the lab needs, unless this process is root and `ip` (iproute2)
/// runs. Tests call it instead of skipping: a lab test that cannot run fails.
pub(crate) fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // `Uid:` lists the real, effective, saved and filesystem IDs.
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        panic!(
            "ferry-netlab needs root and the `ip` tool of iproute2 (Debian package `iproute2`): it creates \
             network namespaces, and this process's effective uid is {}; run the tests as root \
             (e.g. `sudo -E cargo test -p ferry-netlab`)",
            euid.unwrap_or("unknown")
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("ferry-netlab needs the `ip` tool of iproute2; `ip -V` exited {}", out.status),
        Err(e) => panic!("ferry-netlab needs the `ip` tool of iproute2 (`apt-get install iproute2`): {e}"),
    }
}

impl Lab {
    /// Panics with a clear message unless the process is root and iproute2's `ip` is
    /// installed. Every constructor calls it first.
    pub fn require_root() {
        require_root();
    }

    /// One node (`node`, pods `10.244.1.0/24` on bridge `cni0` at `10.244.1.1`) with
    /// `pods` pods (`pod-i` at `10.244.1.(10+i)`), and the client (`192.0.2.2`) joined to
    /// the node (`192.0.2.1`).
    pub fn single_node(pods: usize) -> Result<Lab, LabError> {
        Lab::build(unique_prefix(), &["node"], None, pods)
    }

    /// [`Lab::single_node`], its namespaces named `kf-<tag>-<pid>-<random>-<role>`, so a
    /// user (such as `kube-ferry demo`, tag `demo`) can tell its own apart. `tag` is
    /// lower-case letters, digits and dashes.
    pub fn single_node_tagged(tag: &str, pods: usize) -> Result<Lab, LabError> {
        assert!(
            !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "a lab tag is lower-case letters, digits and dashes: {tag:?}"
        );
        Lab::build(unique_prefix_tagged(tag), &["node"], None, pods)
    }

    /// Two nodes `node-a` (pods `10.244.1.0/24`, underlay `172.18.0.1`) and `node-b` (pods
    /// `10.244.2.0/24`, underlay `172.18.0.2`) joined by a veth underlay and `overlay`, with
    /// `pods_per_node` pods on each (`pod-0`.. on node-a, then node-b's), and the client
    /// joined to node-a. Node-b routes the client's link via node-a.
    pub fn two_nodes(overlay: Overlay, pods_per_node: usize) -> Result<Lab, LabError> {
        Lab::build(unique_prefix(), &["node-a", "node-b"], Some(overlay), pods_per_node)
    }

    fn build(prefix: String, names: &[&str], overlay: Option<Overlay>, pods_per_node: usize) -> Result<Lab, LabError> {
        require_root();
        let mtu = if overlay == Some(Overlay::Vxlan) { VXLAN_MTU } else { 1500 };
        let mut nodes = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let third = u8::try_from(k + 1).unwrap_or(u8::MAX);
            let ns = Netns::create(format!("{prefix}-{name}"))?;
            let bridge_ip = Ipv4Addr::new(10, 244, third, 1);
            let pod_cidr6 = pod_subnet6(k);
            let bridge_ip6 = Ipv6Addr::from(u128::from(pod_cidr6.network()) + 1);
            topology::make_node(&ns, bridge_ip, bridge_ip6)?;
            let underlay = Ipv4Addr::new(172, 18, 0, third);
            let pod_cidr = Ipv4Net::new(Ipv4Addr::new(10, 244, third, 0), 24).unwrap_or(topology::POD_CIDR);
            let ip = if overlay.is_some() { underlay } else { Ipv4Addr::new(192, 0, 2, 1) };
            nodes.push(Node {
                ns,
                name: (*name).to_owned(),
                ip,
                pod_cidr,
                bridge_ip,
                pod_cidr6,
                bridge_ip6,
                client_side_ip: None,
            });
        }
        if let [a, b] = nodes.as_slice() {
            topology::link_underlay(&a.ns, a.ip, &b.ns, b.ip)?;
            match overlay {
                Some(Overlay::Vxlan) => {
                    let ea = VxlanEnd { ns: &a.ns, underlay: a.ip, pods: a.pod_cidr, mac: "0e:6b:66:00:00:01" };
                    let eb = VxlanEnd { ns: &b.ns, underlay: b.ip, pods: b.pod_cidr, mac: "0e:6b:66:00:00:02" };
                    topology::vxlan(&ea, &eb)?;
                    topology::vxlan(&eb, &ea)?;
                }
                _ => {
                    topology::host_gw(&a.ns, b.pod_cidr, b.ip)?;
                    topology::host_gw(&b.ns, a.pod_cidr, a.ip)?;
                }
            }
            // Replies to the client leave node-b over the underlay.
            b.ns.ip(["route", "add", &topology::CLIENT_CIDR.to_string(), "via", &a.ip.to_string(), "dev", "eth0"])?;
        }
        let client_ns = Netns::create(format!("{prefix}-client"))?;
        let (gateway, client_ip) = topology::attach_client(&nodes[0].ns, &client_ns)?;
        nodes[0].client_side_ip = Some(gateway);
        let (gateway6, ip6) = topology::client_link6();
        let client = Client { ns: client_ns, ip: client_ip, gateway, ip6, gateway6 };
        let mut pods = Vec::new();
        for (k, node) in nodes.iter().enumerate() {
            for j in 0..pods_per_node {
                let index = pods.len();
                let ns = Netns::create(format!("{prefix}-pod{index}"))?;
                let host_octet = u8::try_from(10 + j).unwrap_or(u8::MAX);
                let ip = Ipv4Addr::from(u32::from(node.pod_cidr.network()) + u32::from(host_octet));
                let ip6 = Ipv6Addr::from(u128::from(node.pod_cidr6.network()) + u128::from(host_octet));
                let host_veth = format!("veth{j}");
                let at = PodAddresses { ip, ip6, gateway: node.bridge_ip, gateway6: node.bridge_ip6 };
                topology::attach_pod(&node.ns, &ns, &host_veth, &at, mtu)?;
                pods.push(Pod { servers: Vec::new(), ns, name: format!("pod-{index}"), ip, ip6, node: k, host_veth });
            }
        }
        Ok(Lab { pods, client, nodes, prefix })
    }

    /// The prefix shared by every namespace of this lab (`kf-<pid>-<random>`, or
    /// `kf-<tag>-<pid>-<random>` for [`Lab::single_node_tagged`]).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every namespace of this lab, as `ip netns list` names them.
    pub fn namespaces(&self) -> Vec<&str> {
        let nodes = self.nodes.iter().map(|n| n.ns.name());
        nodes.chain([self.client.ns.name()]).chain(self.pods.iter().map(|p| p.ns.name())).collect()
    }

    /// Node `k` (0 is the client's node). Panics if there is none (like slice indexing).
    pub fn node(&self, k: usize) -> &Node {
        &self.nodes[k]
    }

    /// Every node, in order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Pod `i` (`pod-i`). Panics if there is none (like slice indexing).
    pub fn pod(&self, i: usize) -> &Pod {
        &self.pods[i]
    }

    /// Pod `i`, to start or stop its servers. Panics if there is none.
    pub fn pod_mut(&mut self, i: usize) -> &mut Pod {
        &mut self.pods[i]
    }

    /// Every pod, in order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pods on node `k`.
    pub fn pods_on(&self, k: usize) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(move |p| p.node == k)
    }

    /// The outside client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts, in every pod, a server answering TCP and UDP on each of `ports`, and waits
    /// until all listen (they start in parallel).
    pub fn start_pod_servers(&mut self, ports: &[u16]) -> Result<(), LabError> {
        self.start_pod_servers_with(&PodServer::tcp_udp(ports))
    }

    /// Starts `server` in every pod and waits until all listen.
    pub fn start_pod_servers_with(&mut self, server: &PodServer) -> Result<(), LabError> {
        let started = self.pods.iter().map(|p| p.spawn_server(server)).collect::<Result<Vec<_>, _>>()?;
        for (pod, process) in self.pods.iter_mut().zip(started) {
            pod.wait_ready(process)?;
        }
        Ok(())
    }
}

/// Node `k`'s IPv6 pod subnet: `fd00:10:244:(k+1)::/64`.
fn pod_subnet6(k: usize) -> Ipv6Net {
    let base = u128::from(topology::POD_CIDR6.network());
    let subnet = u128::try_from(k + 1).unwrap_or(u128::from(u16::MAX)) << 64;
    Ipv6Net::new(Ipv6Addr::from(base + subnet), 64).unwrap_or(topology::POD_CIDR6)
}
