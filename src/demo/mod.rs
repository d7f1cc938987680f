//! `kube-ferry demo`: real packets through kube-ferry in a throwaway lab.
//!
//! It builds a network-namespace lab with `ferry-netlab` (one node, two pods on its
//! bridge, an outside client, and a "gateway" sink namespace the node routes the service
//! range to, as the behaviour suite does), starts a pod server in each pod, writes the
//! demo's services (`web.yaml`, `dns.yaml` here) into a temporary manifest directory, runs
//! this very binary as `kube-ferry run --manifests DIR` in the node, and sends requests
//! from the client, a pod and the node, printing who answered and which source address
//! the pod saw.
//!
//! Safety: every rule lives in namespaces the demo creates (`kf-demo-<pid>-...`); none
//! of them has a route out of the lab, and every request goes to an address inside it.
//! Guards remove every namespace (and so every link and rule), stop every process the
//! demo started (by PID) and delete the manifests: at the end, on error, on a panic,
//! and on Ctrl-C. The pod server and the probe are this binary too (the hidden
//! subcommands `lab-podserver` and `lab-probe`), so the demo runs from any directory.

mod preflight;
mod report;
mod requests;

use requests::Outcome;
mod signals;
mod table;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferry_model::StateBuilder;
use ferry_netlab::{
    list_namespaces, request, set_binaries, Answer, Binaries, Lab, LabProcess, Netns, PodServer, Program, Proto,
};
use kube_ferry::cli::Mode;
use kube_ferry::source::file::ManifestDir;
use kube_ferry::tracker::ChangeTracker;

use table::Table;

/// The demo's services, with `{{node}}`, `{{pod-0}}` and `{{pod-1}}` to fill in.
const MANIFESTS: &[(&str, &str)] = &[("web.yaml", include_str!("web.yaml")), ("dns.yaml", include_str!("dns.yaml"))];
/// The pod network, passed as `--cluster-cidr`.
const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The ports each pod server listens on, TCP and UDP (web's and dns's target ports).
const POD_PORTS: [u16; 2] = [8080, 5353];
const WEB: SocketAddr = v4(10, 96, 0, 10, 80);
const WEB_NODE_PORT: u16 = 30080;
const WEB_EXTERNAL: SocketAddr = v4(198, 51, 100, 10, 80);
const DNS: SocketAddr = v4(10, 96, 0, 53, 53);
/// How long one request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long kube-ferry gets to make the ClusterIP answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

const fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
}

/// The manifest directory; deleted when dropped.
struct ManifestFiles {
    path: PathBuf,
}

impl ManifestFiles {
    fn create(path: PathBuf) -> anyhow::Result<ManifestFiles> {
        // `create_dir`, not `create_dir_all`: the name is new to this run, and an
        // existing directory (or link) of that name is refused.
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ManifestFiles { path })
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let path = self.path.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for ManifestFiles {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("kube-ferry demo: could not delete {}: {e}", self.path.display());
        }
    }
}

/// The lab with kube-ferry in it. Fields drop in order: kube-ferry stops first, then the
/// gateway and the lab's namespaces go (the pod servers before their pods), then the
/// manifests.
struct DemoLab {
    proxy: Option<LabProcess>,
    _gateway: Netns,
    lab: Lab,
    manifests: ManifestFiles,
}

impl DemoLab {
    fn proxy_log(&self) -> String {
        self.proxy.as_ref().map(LabProcess::output).unwrap_or_default()
    }
}

/// Runs the demo: checks, builds, shows, removes. Every namespace is gone when it returns.
pub fn run(mode: Mode) -> anyhow::Result<()> {
    preflight::check()?;
    signals::install()?;
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    set_binaries(Binaries {
        podserver: Program::new(&exe).arg("lab-podserver"),
        probe: Program::new(&exe).arg("lab-probe"),
    });
    let mut slot: Option<DemoLab> = None;
    let result = demo(mode, &exe, &mut slot);
    let interrupted = signals::interrupted();
    if result.is_err() && !interrupted {
        if let Some(lab) = &slot {
            let log = lab.proxy_log();
            if !log.trim().is_empty() {
                eprintln!("kube-ferry demo: kube-ferry's log in the lab:");
                for line in log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev() {
                    eprintln!("  | {line}");
                }
            }
        }
    }
    let removed = remove(slot.take());
    match (result, removed) {
        _ if interrupted => bail!("demo: interrupted; the lab is removed"),
        (Err(e), _) => Err(e.context("demo failed (the lab is removed)")),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Drops the lab, then checks that none of this process's demo namespaces is left.
fn remove(lab: Option<DemoLab>) -> anyhow::Result<()> {
    let start = Instant::now();
    let described = lab.as_ref().map(|l| {
        let namespaces = l.lab.namespaces().len() + 1;
        let servers: usize = l.lab.pods().iter().map(|p| p.servers().len()).sum();
        let mut stopped = Vec::new();
        if l.proxy.is_some() {
            stopped.push("kube-ferry".to_owned());
        }
        if servers > 0 {
            stopped.push(format!("{servers} pod servers"));
        }
        (
            format!("{namespaces} namespaces ({}-*) with their links and rules", l.lab.prefix()),
            if stopped.is_empty() { String::new() } else { format!("stopped {}, ", stopped.join(" and ")) },
            l.manifests.path.display().to_string(),
        )
    });
    drop(lab);
    let ours = format!("kf-demo-{}-", std::process::id());
    let left: Vec<String> = list_namespaces()
        .context("cannot list the namespaces after removing the lab")?
        .into_iter()
        .filter(|n| n.starts_with(&ours))
        .collect();
    if !left.is_empty() {
        bail!("demo: these namespaces are still there; remove them with `ip netns del NAME`: {}", left.join(", "));
    }
    if let Some((namespaces, processes, dir)) = described {
        println!();
        println!("cleaned up in {}: removed {namespaces}, {processes}deleted {dir}", secs(start.elapsed()));
    }
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The manifests with the lab's node name and pod addresses filled in.
fn fill(text: &str, node: &str, pods: &[Ipv4Addr]) -> String {
    let mut out = text.replace("{{node}}", node);
    for (i, ip) in pods.iter().enumerate() {
        out = out.replace(&format!("{{{{pod-{i}}}}}"), &ip.to_string());
    }
    out
}

/// One line per service port of the filled manifests, from the model kube-ferry builds
/// from them (so it shows what kube-ferry will program, not what the demo hopes).
fn describe_services(
    files: &[(String, String)],
    node: &str,
    pod_names: &BTreeMap<IpAddr, String>,
) -> anyhow::Result<Table> {
    let tracker = ChangeTracker::new();
    let texts: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let errors = ManifestDir::new(Path::new("demo"), node).load_texts(&texts, &tracker);
    if !errors.is_empty() {
        bail!("the demo's manifests do not load: {}", errors.join("; "));
    }
    let mut builder = StateBuilder::new(node);
    tracker.take().apply_to(&mut builder);
    builder.rebuild();
    if let Some(r) = builder.rejections().next() {
        bail!("the demo's manifests are rejected: {r}");
    }
    let mut table = Table::new(&["service port", "catches", "endpoints"]);
    for (id, port) in builder.state().ports() {
        let mut catches = vec![format!("ClusterIP {}:{}", port.cluster_ip, port.port)];
        if let Some(np) = port.node_port {
            catches.push(format!("NodePort {np}"));
        }
        for ip in &port.external_ips {
            catches.push(format!("external IP {ip}"));
        }
        let endpoints: Vec<String> = port
            .endpoints
            .iter()
            .map(|e| {
                let addr = e.addr();
                let name = pod_names.get(&addr.ip()).map_or("?", String::as_str);
                format!("{name} {addr}")
            })
            .collect();
        table.row(vec![id.to_string(), catches.join(", "), endpoints.join(", ")]);
    }
    Ok(table)
}

fn demo(mode: Mode, exe: &Path, slot: &mut Option<DemoLab>) -> anyhow::Result<()> {
    let total = Instant::now();
    println!(
        "kube-ferry demo --mode {}: real packets through kube-ferry in a throwaway network-namespace lab",
        mode.name()
    );
    println!();

    // The lab.
    let start = Instant::now();
    let lab = Lab::single_node_tagged("demo", 2).context("cannot build the lab")?;
    // Like a node's default gateway: a sink namespace the service range is routed to, so
    // what the proxy does not catch is forwarded (and seen by the filter hooks) instead of
    // failing its route lookup. It routes nothing anywhere.
    let gateway = Netns::create(format!("{}-gw", lab.prefix())).context("cannot create the gateway namespace")?;
    {
        let node = lab.node(0).ns();
        node.ip(["link", "add", "eth-gw", "type", "veth", "peer", "name", "eth0", "netns", gateway.name()])?;
        node.ip(["addr", "add", "203.0.113.1/24", "dev", "eth-gw"])?;
        node.ip(["link", "set", "eth-gw", "up"])?;
        gateway.ip(["addr", "add", "203.0.113.2/24", "dev", "eth0"])?;
        gateway.ip(["link", "set", "eth0", "up"])?;
        node.ip(["route", "add", "10.96.0.0/12", "via", "203.0.113.2"])?;
    }
    let manifests = ManifestFiles::create(std::env::temp_dir().join(format!("{}-manifests", lab.prefix())))?;
    let lab = slot.insert(DemoLab { proxy: None, _gateway: gateway, lab, manifests });
    signals::check()?;
    lab.lab.start_pod_servers_with(&PodServer::tcp_udp(&POD_PORTS)).context("cannot start the pod servers")?;
    signals::check()?;

    let node = lab.lab.node(0);
    let node_name = node.name().to_owned();
    let node_ip = lab.lab.client().gateway();
    let bridge = IpAddr::V4(node.bridge_ip());
    let client_ip = lab.lab.client().ip();
    let pod_ips: Vec<Ipv4Addr> = lab.lab.pods().iter().map(|p| p.ip()).collect();
    let pod_names: BTreeMap<IpAddr, String> =
        lab.lab.pods().iter().map(|p| (IpAddr::V4(p.ip()), p.name().to_owned())).collect();
    let ports = POD_PORTS.map(|p| p.to_string()).join(", ");
    let mut namespaces: Vec<String> = lab
        .lab
        .namespaces()
        .iter()
        .map(|n| n.trim_start_matches(lab.lab.prefix()).trim_start_matches('-').to_owned())
        .collect();
    namespaces.push("gw".into());
    println!("lab: namespaces {}-{{{}}}, built in {}", lab.lab.prefix(), namespaces.join(","), secs(start.elapsed()));
    let mut hosts = Table::new(&["host", "addresses", "role"]);
    hosts.row(vec![
        format!("node \"{node_name}\""),
        format!("{node_ip} (client side), {bridge} (cni0, the pod bridge)"),
        "runs kube-ferry; routes 10.96.0.0/12 to a sink (namespace gw)".into(),
    ]);
    for pod in lab.lab.pods() {
        hosts.row(vec![
            pod.name().to_owned(),
            pod.ip().to_string(),
            format!("TCP+UDP {ports}: answers \"<its name> <source seen>\""),
        ]);
    }
    hosts.row(vec![
        "client".into(),
        client_ip.to_string(),
        "outside the cluster; routes 10.96.0.0/12, 10.244.0.0/16, 198.51.100.0/24 via the node".into(),
    ]);
    print!("{}", hosts.render("  "));
    println!();

    // The services.
    let files: Vec<(String, String)> =
        MANIFESTS.iter().map(|(name, text)| ((*name).to_owned(), fill(text, &node_name, &pod_ips))).collect();
    let services = describe_services(&files, &node_name, &pod_names)?;
    for (name, text) in &files {
        lab.manifests.write(name, text)?;
    }
    println!("services: written to {}", lab.manifests.path.display());
    print!("{}", services.render("  "));
    println!();

    // kube-ferry.
    let dir = lab.manifests.path.to_str().context("the manifest directory's path is not UTF-8")?.to_owned();
    let args: Vec<String> = [
        "run",
        "--mode",
        mode.name(),
        "--manifests",
        &dir,
        "--hostname-override",
        &node_name,
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--min-sync-period",
        "0",
        "--healthz-bind-address",
        "",
        "--metrics-bind-address",
        "",
    ]
    .map(str::to_owned)
    .to_vec();
    let start = Instant::now();
    let proxy = lab.lab.node(0).ns().spawn("kube-ferry", exe, &args).context("cannot start kube-ferry in the node")?;
    let pid = proxy.pid();
    lab.proxy = Some(proxy);
    let quoted: Vec<String> = args.iter().map(|a| if a.is_empty() { "\"\"".to_owned() } else { a.clone() }).collect();
    println!("kube-ferry: started in the node (pid {pid}):");
    println!("  kube-ferry {}", quoted.join(" "));
    loop {
        signals::check()?;
        if let Some(status) = lab.proxy.as_mut().and_then(LabProcess::try_wait) {
            bail!("kube-ferry exited ({status}) before the ClusterIP answered");
        }
        if let Outcome::Answered { .. } =
            match request(lab.lab.client().ns(), Proto::Tcp, WEB, None, Duration::from_millis(300)) {
                Ok(line) => Answer::parse(&line)
                    .map_or(Outcome::Failed(line), |a| Outcome::Answered { pod: a.name, saw: a.peer.ip() }),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        {
            break;
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!("the ClusterIP {WEB} did not answer within {} of starting kube-ferry", secs(READY_TIMEOUT));
        }
        signals::pause(Duration::from_millis(50))?;
    }
    println!("  the ClusterIP {WEB} answered {} after it started", secs(start.elapsed()));
    println!();

    let (asks, rows, took) = requests::send(lab, node_ip, pod_ips.len())?;
    report::print(mode, lab, &asks, &rows, took, bridge, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> Vec<(String, String)> {
        let pods = [Ipv4Addr::new(10, 244, 1, 10), Ipv4Addr::new(10, 244, 1, 11)];
        MANIFESTS.iter().map(|(n, t)| ((*n).to_owned(), fill(t, "node", &pods))).collect()
    }

    #[test]
    fn the_manifests_fill_in_and_make_three_service_ports_of_two_pods_each() {
        let files = filled();
        for (name, text) in &files {
            assert!(!text.contains("{{"), "{name} has a placeholder left:\n{text}");
        }
        let names: BTreeMap<IpAddr, String> = [("10.244.1.10", "pod-0"), ("10.244.1.11", "pod-1")]
            .map(|(ip, n)| (ip.parse().unwrap(), n.to_owned()))
            .into();
        let table = describe_services(&files, "node", &names).unwrap().render("");
        assert_eq!(table.lines().count(), 2 + 3, "{table}");
        assert!(table.contains("ClusterIP 10.96.0.10:80, NodePort 30080, external IP 198.51.100.10"), "{table}");
        assert!(table.contains("pod-0 10.244.1.10:8080, pod-1 10.244.1.11:8080"), "{table}");
        assert!(table.contains("pod-0 10.244.1.10:5353, pod-1 10.244.1.11:5353"), "{table}");
        assert!(table.contains("ClusterIP 10.96.0.53:53"), "{table}");
    }

    #[test]
    fn the_addresses_the_demo_asks_are_the_manifests() {
        let all: String = MANIFESTS.iter().map(|(_, t)| *t).collect();
        for needle in [
            "clusterIP: 10.96.0.10",
            "port: 80",
            "nodePort: 30080",
            "externalIPs: [198.51.100.10]",
            "clusterIP: 10.96.0.53",
            "port: 53",
        ] {
            assert!(all.contains(needle), "{needle}");
        }
        assert_eq!((WEB.port(), WEB_NODE_PORT, DNS.port()), (80, 30080, 53));
        assert!(POD_PORTS.contains(&8080) && POD_PORTS.contains(&5353));
    }
}
