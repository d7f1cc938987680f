//! The lab's hosts: nodes, pods (with their servers) and the outside client.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::bins::podserver_program;
use crate::error::LabError;
use crate::netns::Netns;
use crate::process::LabProcess;

/// What `ferry-podserver` prints once every listener is bound.
pub const PODSERVER_READY: &str = "ferry-podserver ready";
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A node: a namespace that routes (forwarding on) and holds the pod bridge `cni0`.
#[derive(Debug)]
pub struct Node {
    pub(crate) ns: Netns,
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) pod_cidr: Ipv4Net,
    pub(crate) bridge_ip: Ipv4Addr,
    pub(crate) pod_cidr6: Ipv6Net,
    pub(crate) bridge_ip6: Ipv6Addr,
    pub(crate) client_side_ip: Option<Ipv4Addr>,
}

impl Node {
    /// Its namespace (run the proxy here).
    pub fn ns(&self) -> &Netns {
        &self.ns
    }
    /// Its Kubernetes node name (`node` alone; `node-a`, `node-b` in two-node labs): the
    /// value for `--hostname-override` and for endpoints' `nodeName`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its InternalIP: the underlay address (`172.18.0.1`, `.2`) in two-node labs, the
    /// client-facing `192.0.2.1` alone.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// Its pod subnet (`10.244.1.0/24` for the first node, `10.244.2.0/24` for the second).
    pub fn pod_cidr(&self) -> Ipv4Net {
        self.pod_cidr
    }
    /// The address of `cni0`, the pods' gateway (`10.244.K.1`).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_ip
    }
    /// Its IPv6 pod subnet (`fd00:10:244:K::/64`).
    pub fn pod_cidr6(&self) -> Ipv6Net {
        self.pod_cidr6
    }
    /// The IPv6 address of `cni0` (`fd00:10:244:K::1`).
    pub fn bridge_ip6(&self) -> Ipv6Addr {
        self.bridge_ip6
    }
    /// Its address on the link to the outside client (`192.0.2.1`), if the client is attached here.
    pub fn client_side_ip(&self) -> Option<Ipv4Addr> {
        self.client_side_ip
    }
}

/// A pod: its own namespace with `eth0` on its node's bridge and a default route via the
/// bridge. Servers started in it are stopped before its namespace is deleted.
#[derive(Debug)]
pub struct Pod {
    // Declared before `ns`: fields drop in order, so servers die before the namespace goes.
    pub(crate) servers: Vec<LabProcess>,
    pub(crate) ns: Netns,
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) ip6: Ipv6Addr,
    pub(crate) node: usize,
    pub(crate) host_veth: String,
}

impl Pod {
    /// Its namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }
    /// Its name (`pod-<index>`), which its server answers with.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its address (`10.244.K.(10+j)` for the `j`th pod of node `K`).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// Its IPv6 address (`fd00:10:244:K::(10+j)`).
    pub fn ip6(&self) -> Ipv6Addr {
        self.ip6
    }
    /// `ip():port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }
    /// The index of its node in [`crate::Lab::node`].
    pub fn node(&self) -> usize {
        self.node
    }
    /// The name of its veth's bridge port in the node's namespace (`veth<j>`): capture here
    /// to see its packets untranslated.
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }
    /// Starts `ferry-podserver` in the pod, answering with the pod's name, and waits until
    /// it listens. Fails with its output if it cannot (for SCTP on a kernel without it, the
    /// output says `sctp unavailable`).
    pub fn start_server(&mut self, server: &PodServer) -> Result<(), LabError> {
        let mut process = self.spawn_server(server)?;
        process.wait_for_output(PODSERVER_READY, READY_TIMEOUT)?;
        self.servers.push(process);
        Ok(())
    }
    /// Starts a server without waiting for it (see [`Pod::start_server`]).
    pub(crate) fn spawn_server(&self, server: &PodServer) -> Result<LabProcess, LabError> {
        let mut args = vec!["--name".to_owned(), self.name.clone()];
        for (flag, ports) in [("--tcp", &server.tcp), ("--udp", &server.udp), ("--sctp", &server.sctp)] {
            for port in ports {
                args.extend([flag.to_owned(), port.to_string()]);
            }
        }
        let program = podserver_program()?;
        self.ns.spawn(&format!("ferry-podserver {}", self.name), &program.path, program.args_then(args))
    }
    pub(crate) fn wait_ready(&mut self, mut process: LabProcess) -> Result<(), LabError> {
        process.wait_for_output(PODSERVER_READY, READY_TIMEOUT)?;
        self.servers.push(process);
        Ok(())
    }
    /// Kills every server started in the pod (its endpoint stops answering: TCP is refused).
    pub fn stop_servers(&mut self) {
        self.servers.clear();
    }
    /// The servers running in the pod, in the order they were started.
    pub fn servers(&self) -> &[LabProcess] {
        &self.servers
    }
}

/// The ports a `ferry-podserver` listens on (on `0.0.0.0`, and `[::]` where IPv6 is on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodServer {
    tcp: Vec<u16>,
    udp: Vec<u16>,
    sctp: Vec<u16>,
}

impl PodServer {
    /// A server with no ports yet.
    pub fn new() -> PodServer {
        PodServer::default()
    }
    /// TCP and UDP on each of `ports`.
    pub fn tcp_udp(ports: &[u16]) -> PodServer {
        PodServer { tcp: ports.to_vec(), udp: ports.to_vec(), sctp: Vec::new() }
    }
    /// Adds a TCP port.
    pub fn tcp(mut self, port: u16) -> PodServer {
        self.tcp.push(port);
        self
    }
    /// Adds a UDP port.
    pub fn udp(mut self, port: u16) -> PodServer {
        self.udp.push(port);
        self
    }
    /// Adds an SCTP port (the server fails to start on kernels without SCTP).
    pub fn sctp(mut self, port: u16) -> PodServer {
        self.sctp.push(port);
        self
    }
}

/// The outside client: a namespace joined to a node by its own link, routing the Service,
/// pod, external and underlay ranges via that node, and nothing else.
#[derive(Debug)]
pub struct Client {
    pub(crate) ns: Netns,
    pub(crate) ip: Ipv4Addr,
    pub(crate) gateway: Ipv4Addr,
    pub(crate) ip6: Ipv6Addr,
    pub(crate) gateway6: Ipv6Addr,
}

impl Client {
    /// Its namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }
    /// Its address (`192.0.2.2`).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// Its node's address on their link (`192.0.2.1`), where its routes point.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }
    /// Its IPv6 address (`fd00:c0:2::2`).
    pub fn ip6(&self) -> Ipv6Addr {
        self.ip6
    }
    /// Its node's IPv6 address on their link (`fd00:c0:2::1`).
    pub fn gateway6(&self) -> Ipv6Addr {
        self.gateway6
    }
}
