//! The behaviour suite (`shared/spec/behaviours.md`), written once and run per mode.
//!
//! Each test builds a namespace lab (`ferry-netlab`), writes Services and EndpointSlices
//! into a manifest directory, runs the real `kube-ferry` binary inside the node's
//! namespace with `--manifests`, and sends real packets from pods, the node and an
//! outside client. Needs root (CI has it); without it the tests fail, saying why.
//!
//! Modes are named `nftables`, `iptables` (iptables-nft) and `iptables-legacy`
//! ([`Mode`]). Suite functions read and change rules through [`ProxyLab`]'s per-mode
//! methods (`rules.rs`: [`ProxyLab::programmed`], [`ProxyLab::whole_ruleset`],
//! [`ProxyLab::add_foreign_rules`], [`ProxyLab::foreign_rules`],
//! [`ProxyLab::break_dispatch`], [`ProxyLab::cleanup`]), so one function serves every mode.
#![allow(dead_code)]

mod mode;
mod rules;
pub mod suite;

pub use mode::Mode;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_netlab::{request, Answer, Lab, LabProcess, Netns, Overlay, PodServer, ProbeError, Proto};

/// The port every pod server listens on (TCP and UDP).
pub const POD_PORT: u16 = 8080;
/// The pod CIDR, passed as `--cluster-cidr`.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Both pod CIDRs (the lab is dual-stack), for `--cluster-cidr`.
pub const CLUSTER_CIDRS: &str = "10.244.0.0/16,fd00:10:244::/56";

/// A lab with kube-ferry running in its node.
pub struct ProxyLab {
    // Fields drop in order: the proxy is stopped before its namespaces go.
    proxy: Option<LabProcess>,
    /// The node's "default gateway" for the service range (see `single_node`).
    _gateway: Netns,
    /// The namespaces.
    pub lab: Lab,
    /// The manifest directory kube-ferry reads.
    pub dir: tempfile::TempDir,
    /// The mode kube-ferry runs in (see [`Mode::parse`]).
    mode: Mode,
}

impl ProxyLab {
    /// One node with `pods` pods serving on [`POD_PORT`], and an outside client.
    /// `mode` is a name [`Mode::parse`] takes: `nftables`, `iptables`, `iptables-legacy`.
    pub fn single_node(mode: &'static str, pods: usize) -> ProxyLab {
        let mode = Mode::parse(mode);
        Lab::require_root();
        ProxyLab::around(mode, Lab::single_node(pods).expect("the lab builds"))
    }

    /// Two nodes joined by `overlay`, `pods` pods on each; kube-ferry runs on node-a.
    pub fn two_nodes(mode: &'static str, overlay: Overlay, pods: usize) -> ProxyLab {
        let mode = Mode::parse(mode);
        Lab::require_root();
        ProxyLab::around(mode, Lab::two_nodes(overlay, pods).expect("the lab builds"))
    }

    fn around(mode: Mode, mut lab: Lab) -> ProxyLab {
        lab.start_pod_servers_with(&PodServer::tcp_udp(&[POD_PORT])).expect("pod servers start");
        // Like a node's default gateway: a sink namespace the service range is routed
        // to, so what the proxy does not catch is forwarded (and seen by the filter
        // hooks) instead of failing its route lookup. It must not be the link the
        // packet came in on: the kernel sends no ICMP error back out of it.
        let gateway = Netns::create_unique("gw").expect("gateway namespace");
        let node = lab.node(0).ns();
        node.ip(["link", "add", "eth-gw", "type", "veth", "peer", "name", "eth0", "netns", gateway.name()])
            .expect("gateway veth");
        node.ip(["addr", "add", "203.0.113.1/24", "dev", "eth-gw"]).expect("gateway address");
        node.ip(["link", "set", "eth-gw", "up"]).expect("gateway link up");
        gateway.ip(["addr", "add", "203.0.113.2/24", "dev", "eth0"]).expect("gateway address");
        gateway.ip(["link", "set", "eth0", "up"]).expect("gateway link up");
        node.ip(["route", "add", "10.96.0.0/12", "via", "203.0.113.2"]).expect("service route");
        node.ip(["route", "add", "198.51.100.0/24", "via", "203.0.113.2"]).expect("external route");
        node.ip(["addr", "add", "fd00:203:0:113::1/64", "dev", "eth-gw", "nodad"]).expect("gateway address");
        gateway.ip(["addr", "add", "fd00:203:0:113::2/64", "dev", "eth0", "nodad"]).expect("gateway address");
        for range in [ferry_netlab::SERVICE_CIDR6.to_string(), ferry_netlab::EXTERNAL_CIDR6.to_string()] {
            node.ip(["-6", "route", "add", &range, "via", "fd00:203:0:113::2"]).expect("IPv6 service route");
        }
        ProxyLab { lab, dir: tempfile::tempdir().expect("temp dir"), mode, proxy: None, _gateway: gateway }
    }

    /// The node's name (endpoints with this `nodeName` are local).
    pub fn node_name(&self) -> String {
        self.lab.node(0).name().to_owned()
    }

    /// Writes (or replaces) one manifest file, atomically.
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename manifest");
    }

    /// Removes one manifest file.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove manifest");
    }

    /// Starts kube-ferry in the node with the mode's flags ([`Mode::flags`]: for
    /// `iptables`, `--mode iptables --iptables-variant nft`) and `extra`.
    pub fn start_proxy(&mut self, extra: &[&str]) {
        self.start_proxy_as(self.mode, extra);
    }

    /// Starts kube-ferry in the node in `mode` instead of the lab's own (for switching
    /// modes, B28), with `extra`.
    pub fn start_proxy_as(&mut self, mode: Mode, extra: &[&str]) {
        self.start_proxy_with_flags(&mode.run_flags(), extra);
    }

    /// Starts kube-ferry in the node with `mode_flags` (instead of a [`Mode`]'s) and `extra`.
    pub fn start_proxy_with_flags(&mut self, mode_flags: &[&str], extra: &[&str]) {
        let node = self.node_name();
        let dir = self.dir.path().to_str().expect("utf-8 path").to_owned();
        let mut args: Vec<String> = mode_flags.iter().map(|s| (*s).to_owned()).collect();
        args.extend([
            "--manifests".into(),
            dir,
            "--hostname-override".into(),
            node,
            "--min-sync-period".into(),
            "0".into(),
            "--healthz-bind-address".into(),
            "".into(),
            "--metrics-bind-address".into(),
            "".into(),
        ]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let proxy = self
            .lab
            .node(0)
            .ns()
            .spawn("kube-ferry", env!("CARGO_BIN_EXE_kube-ferry"), &args)
            .expect("kube-ferry starts");
        self.proxy = Some(proxy);
        // Its first sync is logged as "synced"; only then are its rules in place.
        let _ = self.until("kube-ferry's first sync", || self.proxy_log(), |log| log.contains(" synced"));
    }

    /// Stops kube-ferry (SIGTERM); its rules stay in the kernel.
    pub fn stop_proxy(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            let _ = p.terminate(Duration::from_secs(5));
        }
    }

    /// Runs `kube-ferry ARGS` in the node and returns its stdout.
    pub fn kube_ferry(&self, args: &[&str]) -> String {
        self.node_ns()
            .exec(env!("CARGO_BIN_EXE_kube-ferry"), args)
            .unwrap_or_else(|e| panic!("kube-ferry {args:?}: {e}"))
    }

    /// One request from a fixed source address and port.
    pub fn ask_from(&self, from: &Netns, proto: Proto, to: SocketAddr, bind: SocketAddr) -> Result<Answer, ProbeError> {
        let line = request(from, proto, to, Some(bind), Duration::from_millis(1500))?;
        Answer::parse(&line).ok_or_else(|| ProbeError::Other(format!("not an answer: {line:?}")))
    }

    /// Which pods answer `n` requests from `from` to `to`, with how many answers each.
    pub fn spread(
        &self,
        from: &Netns,
        proto: Proto,
        to: SocketAddr,
        n: usize,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..n {
            let a = self.ask(from, proto, to).unwrap_or_else(|e| panic!("request to {to}: {e}\n{}", self.diagnose()));
            *counts.entry(a.name).or_insert(0) += 1;
        }
        counts
    }

    /// What kube-ferry has logged so far.
    pub fn proxy_log(&self) -> String {
        self.proxy.as_ref().map(LabProcess::output).unwrap_or_default()
    }

    /// The node's namespace.
    pub fn node_ns(&self) -> &Netns {
        self.lab.node(0).ns()
    }

    /// The client's namespace.
    pub fn client_ns(&self) -> &Netns {
        self.lab.client().ns()
    }

    /// Pod `i`'s namespace.
    pub fn pod_ns(&self, i: usize) -> &Netns {
        self.lab.pod(i).ns()
    }

    /// Pod `i`'s address.
    pub fn pod_ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.lab.pod(i).ip())
    }

    /// One request; the answer parsed.
    pub fn ask(&self, from: &Netns, proto: Proto, to: SocketAddr) -> Result<Answer, ProbeError> {
        let line = request(from, proto, to, None, Duration::from_millis(1500))?;
        Answer::parse(&line).ok_or_else(|| ProbeError::Other(format!("not an answer: {line:?}")))
    }

    /// Retries `probe` until `ok` holds for its result, failing after 15 s with the
    /// proxy's log.
    pub fn until<T: std::fmt::Debug>(&self, what: &str, mut probe: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
        let start = Instant::now();
        loop {
            let result = probe();
            if ok(&result) {
                return result;
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!("timed out waiting for {what}; last result {result:?}\nkube-ferry log:\n{}", self.proxy_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A Service manifest. `ports` are `(name, port, protocol, node_port)`; `extra` is more
/// YAML for `spec` (indented by 2).
pub fn service(
    name: &str,
    cluster_ip: &str,
    svc_type: &str,
    ports: &[(&str, u16, &str, Option<u16>)],
    extra: &str,
) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: lab}}\nspec:\n  type: {svc_type}\n  clusterIP: {cluster_ip}\n  clusterIPs: [{cluster_ip}]\n  ports:\n"
    );
    for (pname, port, proto, node_port) in ports {
        out.push_str(&format!("  - {{name: \"{pname}\", port: {port}, protocol: {proto}"));
        if let Some(np) = node_port {
            out.push_str(&format!(", nodePort: {np}"));
        }
        out.push_str("}\n");
    }
    out.push_str(extra);
    out
}

/// An EndpointSlice manifest for `service` with endpoints `(ip, node, ready, serving,
/// terminating)` on ports `(name, protocol)` -> [`POD_PORT`].
pub fn slice(service: &str, ports: &[(&str, &str)], endpoints: &[(IpAddr, &str, bool, bool, bool)]) -> String {
    let mut out = format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-1\n  namespace: lab\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports:\n"
    );
    for (pname, proto) in ports {
        out.push_str(&format!("- {{name: \"{pname}\", port: {POD_PORT}, protocol: {proto}}}\n"));
    }
    out.push_str("endpoints:\n");
    for (ip, node, ready, serving, terminating) in endpoints {
        out.push_str(&format!(
            "- addresses: [{ip}]\n  nodeName: {node}\n  conditions: {{ready: {ready}, serving: {serving}, terminating: {terminating}}}\n"
        ));
    }
    out
}

/// `ip:port` parsed.
pub fn sa(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// Whether `path` exists (for diagnostics).
pub fn exists(path: &Path) -> bool {
    path.exists()
}
