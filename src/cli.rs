//! The command line (clap). Flags are spelled as kube-proxy spells them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// kube-ferry: a drop-in replacement for kube-proxy.
#[derive(Debug, Parser)]
#[command(name = "kube-ferry", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags of `run`, accepted without the word `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Proxy Services on this node (the default).
    Run(Box<RunArgs>),
    /// Print what a mode would program for a set of manifests, without root and
    /// without touching the kernel.
    Render(RenderArgs),
    /// Remove everything kube-ferry programmed into the kernel.
    Cleanup(CleanupArgs),
    /// Read the kernel and print every programmed frontend with its endpoints, in the
    /// same layout for every mode (B32).
    Status(StatusArgs),
    /// Run kube-ferry in a throwaway network-namespace lab and show real requests (root).
    ///
    /// Builds a lab of network namespaces (a node, two pods, an outside client), runs
    /// kube-ferry in the node on a few example services, sends requests to their
    /// ClusterIPs, NodePort and external IP, and prints who answered and which source
    /// address the pod saw. Everything is removed when it ends, also on Ctrl-C.
    Demo(DemoArgs),
    /// Print the version.
    Version,
    /// The demo lab's pod server (run inside a pod's namespace by `demo`).
    #[command(name = "lab-podserver", hide = true, disable_help_flag = true)]
    LabPodserver(LabHelperArgs),
    /// The demo lab's probe (run inside a namespace by `demo`).
    #[command(name = "lab-probe", hide = true, disable_help_flag = true)]
    LabProbe(LabHelperArgs),
}

/// The flags of `demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// The proxy mode to run the lab with.
    #[arg(long, alias = "proxy-mode", value_enum, default_value = "nftables")]
    pub mode: Mode,
}

/// The arguments of a lab helper, passed through unparsed.
#[derive(Clone, Debug, Args)]
pub struct LabHelperArgs {
    /// The helper's own command line.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// The flags of `cleanup`.
#[derive(Clone, Debug, Args)]
pub struct CleanupArgs {
    /// The mode whose rules to remove (default: every mode).
    #[arg(long, alias = "proxy-mode", value_enum)]
    pub mode: Option<Mode>,
    /// iptables mode: the variant to clean (default: both).
    #[arg(long, value_enum)]
    pub iptables_variant: Option<IptablesVariant>,
    /// Every mode (the default when no --mode is given).
    #[arg(long, conflicts_with = "mode")]
    pub all: bool,
    /// Also remove what upstream kube-proxy left: its iptables chains and jumps (not the
    /// kubelet's), its nftables tables `kube-proxy`, its IPVS services and `kube-ipvs0`,
    /// its `KUBE-` ipsets. Alone, it removes only those; with --mode or --all, kube-ferry's too.
    #[arg(long)]
    pub kube_proxy: bool,
    /// With --kube-proxy: keep IPVS virtual services and kube-ipvs0 (kube-ferry's ipvs
    /// mode takes them over from kube-proxy's; remove only its iptables and ipset leftovers).
    #[arg(long, requires = "kube_proxy")]
    pub keep_ipvs: bool,
}

/// The flags of `status`.
#[derive(Clone, Debug, Args)]
pub struct StatusArgs {
    /// The mode whose kernel objects to read.
    #[arg(long, alias = "proxy-mode", value_enum, default_value = "nftables")]
    pub mode: Mode,
    /// iptables mode: the variant to read (default: the one holding KUBE- rules).
    #[arg(long, value_enum, default_value = "auto")]
    pub iptables_variant: IptablesVariant,
    /// `text` (a table) or `json` (for scripts).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: StatusOutput,
}

/// `status --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    /// One line per frontend.
    Text,
    /// A JSON array of frontends.
    Json,
}

/// `--iptables-variant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IptablesVariant {
    /// The one already holding KUBE- rules, else the system's `iptables` (logged).
    Auto,
    /// iptables-nft (rules in nf_tables).
    Nft,
    /// iptables-legacy (x_tables).
    Legacy,
}

/// `--detect-local-mode`, as kube-proxy defines it: what marks a packet as coming from
/// this node's pods (so it is not masqueraded as off-cluster traffic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DetectLocalMode {
    /// The source is inside `--cluster-cidr` (kube-proxy's default).
    #[value(name = "cluster-cidr", alias = "ClusterCIDR")]
    ClusterCidr,
    /// The source is inside this Node's `spec.podCIDRs`.
    #[value(name = "node-cidr", alias = "NodeCIDR")]
    NodeCidr,
    /// The packet came in on `--pod-bridge-interface`.
    #[value(name = "bridge-interface", alias = "BridgeInterface")]
    BridgeInterface,
    /// The packet came in on a link named `--pod-interface-name-prefix`*.
    #[value(name = "interface-name-prefix", alias = "InterfaceNamePrefix")]
    InterfaceNamePrefix,
}

/// `--ipvs-scheduler`: IPVS's schedulers, as `ipvsadm -s` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IpvsScheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
}

impl IpvsScheduler {
    /// The kernel's name for it (`rr`, `wlc`, ...).
    pub fn name(self) -> &'static str {
        match self {
            IpvsScheduler::Rr => "rr",
            IpvsScheduler::Wrr => "wrr",
            IpvsScheduler::Lc => "lc",
            IpvsScheduler::Wlc => "wlc",
            IpvsScheduler::Sh => "sh",
            IpvsScheduler::Dh => "dh",
            IpvsScheduler::Sed => "sed",
            IpvsScheduler::Nq => "nq",
            IpvsScheduler::Mh => "mh",
        }
    }
}

/// The proxy modes (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One nftables table of kube-ferry's own.
    Nftables,
    /// KUBE-style iptables chains.
    Iptables,
    /// IPVS virtual servers.
    Ipvs,
    /// A TCP/UDP proxy in user space.
    Userspace,
}

impl Mode {
    /// The mode's name as `--mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nftables => "nftables",
            Mode::Iptables => "iptables",
            Mode::Ipvs => "ipvs",
            Mode::Userspace => "userspace",
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of `run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The proxy mode.
    #[arg(long, alias = "proxy-mode", value_enum, default_value = "nftables")]
    pub mode: Mode,
    /// This node's name, if not the host name.
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The pod network's CIDRs, one per family, comma-separated: traffic from outside
    /// them is masqueraded.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr_flag)]
    pub cluster_cidr: Vec<IpNet>,
    /// Node addresses NodePorts answer on: CIDRs, or `primary`; all when empty.
    #[arg(long, value_delimiter = ',', value_parser = parse_nodeport_address)]
    pub nodeport_addresses: Vec<NodePortAddress>,
    /// Masquerade all traffic to services.
    #[arg(long)]
    pub masquerade_all: bool,
    /// The least time between two syncs (Go duration: 1s, 500ms, 0 = every change).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_sync_period: Duration,
    /// The time between full resyncs (Go duration; at least --min-sync-period).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// Where /healthz and /livez listen (IP:port, or IP for port 10256; "" for none).
    #[arg(long, default_value = "0.0.0.0:10256", value_parser = |s: &str| parse_bind(s, 10256))]
    pub healthz_bind_address: BindAddress,
    /// Where /metrics listens (IP:port, or IP for port 10249; "" for none).
    #[arg(long, default_value = "127.0.0.1:10249", value_parser = |s: &str| parse_bind(s, 10249))]
    pub metrics_bind_address: BindAddress,
    /// iptables mode: which iptables to drive.
    #[arg(long, value_enum, default_value = "auto")]
    pub iptables_variant: IptablesVariant,
    /// iptables mode: the bit of the packet mark meaning "masquerade" (0-31).
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u8).range(0..=31))]
    pub iptables_masquerade_bit: u8,
    /// iptables mode: serve NodePorts on 127.0.0.1 too (sets route_localnet, with a guard
    /// against martian sources).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub iptables_localhost_nodeports: bool,
    /// nftables mode: serve NodePorts on 127.0.0.1 (TCP) with a userspace proxy beside the
    /// rules, as nftables cannot DNAT traffic to loopback (KEP-6032).
    #[arg(long)]
    pub localhost_nodeports: bool,
    /// nftables mode: how often a full sync rewrites the whole table to repair drift
    /// (between them, full syncs are answered from the committed state).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub nftables_full_sync_period: Duration,
    /// userspace mode: a TCP connection idle this long is closed (Go duration).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub userspace_tcp_idle_timeout: Duration,
    /// userspace mode: a UDP flow idle this long ends (Go duration).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub userspace_udp_idle_timeout: Duration,
    /// userspace mode: connections proxied at once, in all.
    #[arg(long, default_value_t = 100_000)]
    pub userspace_max_connections: usize,
    /// userspace mode: connections proxied at once, per service port.
    #[arg(long, default_value_t = 10_000)]
    pub userspace_max_connections_per_service: usize,
    /// ipvs mode: the scheduler of every virtual service (rr, wrr, lc, wlc, sh, dh, sed, nq, mh).
    #[arg(long, value_enum, default_value = "rr")]
    pub ipvs_scheduler: IpvsScheduler,
    /// ipvs mode: the kernel's idle timeout of TCP sessions (Go duration; 0 leaves it as it is).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub ipvs_tcp_timeout: Duration,
    /// ipvs mode: the kernel's timeout of TCP sessions after FIN (Go duration; 0 leaves it).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub ipvs_tcpfin_timeout: Duration,
    /// ipvs mode: the kernel's timeout of UDP sessions (Go duration; 0 leaves it).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub ipvs_udp_timeout: Duration,
    /// ipvs mode: set arp_ignore=1 and arp_announce=2, so the node does not answer ARP
    /// for the service addresses on kube-ipvs0.
    #[arg(long)]
    pub ipvs_strict_arp: bool,
    /// ipvs mode: CIDRs whose virtual services kube-ferry never touches (and never deletes).
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr_flag)]
    pub ipvs_exclude_cidrs: Vec<IpNet>,
    /// ipvs mode: fail when the kernel has no IPVS, instead of falling back to nftables
    /// (then iptables).
    #[arg(long)]
    pub ipvs_no_fallback: bool,
    /// kube-proxy's own configuration file (`KubeProxyConfiguration`,
    /// kubeproxy.config.k8s.io/v1alpha1); flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How traffic from this node's pods is told from outside traffic (masquerade, B21).
    #[arg(long, value_enum, default_value = "cluster-cidr")]
    pub detect_local_mode: DetectLocalMode,
    /// `--detect-local-mode bridge-interface`: the pods' bridge.
    #[arg(long)]
    pub pod_bridge_interface: Option<String>,
    /// `--detect-local-mode interface-name-prefix`: the prefix of the pods' host-side links.
    #[arg(long)]
    pub pod_interface_name_prefix: Option<String>,
    /// nf_conntrack_max = this many per CPU (0 leaves the limit as it is).
    #[arg(long, default_value_t = 32_768)]
    pub conntrack_max_per_core: u32,
    /// nf_conntrack_max is at least this.
    #[arg(long, default_value_t = 131_072)]
    pub conntrack_min: u32,
    /// nf_conntrack_tcp_timeout_established (Go duration; 0 leaves it).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub conntrack_tcp_timeout_established: Duration,
    /// nf_conntrack_tcp_timeout_close_wait (Go duration; 0 leaves it).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub conntrack_tcp_timeout_close_wait: Duration,
    /// Set nf_conntrack_tcp_be_liberal=1 (out-of-window packets are not marked invalid).
    #[arg(long)]
    pub conntrack_tcp_be_liberal: bool,
    /// nf_conntrack_udp_timeout (Go duration; 0 leaves it).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub conntrack_udp_timeout: Duration,
    /// nf_conntrack_udp_timeout_stream (Go duration; 0 leaves it).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub conntrack_udp_timeout_stream: Duration,
    /// Read Services, EndpointSlices and Nodes from the YAML/JSON files in DIR instead
    /// of an API server (changes are picked up while running).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "master"])]
    pub manifests: Option<PathBuf>,
    /// A kubeconfig file (default: in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The API server's URL (overrides the kubeconfig's).
    #[arg(long)]
    pub master: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The flags of `render`.
#[derive(Clone, Debug, Args)]
pub struct RenderArgs {
    /// The mode whose output to print.
    #[arg(long, alias = "proxy-mode", value_enum, default_value = "nftables")]
    pub mode: Mode,
    /// The manifests to render (default: the built-in examples).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// The node to render for (default: node-a for the examples, else the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// As for `run`: the pod network's CIDRs (they change the masquerade rules).
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr_flag)]
    pub cluster_cidr: Vec<IpNet>,
    /// As for `run`: masquerade all service traffic.
    #[arg(long)]
    pub masquerade_all: bool,
}

/// One `--nodeport-addresses` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodePortAddress {
    /// Node addresses inside this CIDR.
    Cidr(IpNet),
    /// The node's primary address of each family (from its Node object).
    Primary,
}

fn parse_nodeport_address(text: &str) -> Result<NodePortAddress, String> {
    match text.trim() {
        "primary" => Ok(NodePortAddress::Primary),
        cidr => ferry_model::addr::parse_cidr(cidr)
            .map(NodePortAddress::Cidr)
            .map_err(|e| format!("{e}; --nodeport-addresses takes CIDRs or `primary`")),
    }
}

impl RunArgs {
    /// Checks what clap cannot check flag by flag.
    pub fn validate(&self) -> Result<(), String> {
        for family in [ferry_model::IpFamily::V4, ferry_model::IpFamily::V6] {
            let of_family: Vec<String> = self
                .cluster_cidr
                .iter()
                .filter(|c| ferry_model::IpFamily::of(&c.addr()) == family)
                .map(ToString::to_string)
                .collect();
            if of_family.len() > 1 {
                return Err(format!("--cluster-cidr takes one CIDR per family; {family} has {}", of_family.join(", ")));
            }
        }
        self.pod_interfaces()?;
        let primary = self.nodeport_addresses.contains(&NodePortAddress::Primary);
        if primary && self.nodeport_addresses.len() > 1 {
            return Err("--nodeport-addresses: `primary` cannot be combined with CIDRs".into());
        }
        Ok(())
    }
}

impl RunArgs {
    /// The pods' links under `--detect-local-mode bridge-interface|interface-name-prefix`
    /// (`None` for the CIDR modes), checked.
    pub fn pod_interfaces(&self) -> Result<Option<ferry_model::PodInterfaces>, String> {
        use ferry_model::PodInterfaces;
        let need = |value: &Option<String>, flag: &str, mode: &str| {
            value.clone().ok_or_else(|| format!("--detect-local-mode {mode} needs {flag}"))
        };
        match self.detect_local_mode {
            DetectLocalMode::ClusterCidr | DetectLocalMode::NodeCidr => Ok(None),
            DetectLocalMode::BridgeInterface => {
                let name = need(&self.pod_bridge_interface, "--pod-bridge-interface", "bridge-interface")?;
                PodInterfaces::Bridge(name).new_checked().map(Some)
            }
            DetectLocalMode::InterfaceNamePrefix => {
                let prefix = need(&self.pod_interface_name_prefix, "--pod-interface-name-prefix", "interface-name-prefix")?;
                PodInterfaces::Prefix(prefix).new_checked().map(Some)
            }
        }
    }
}

/// An optional listen address (`""` disables the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

fn parse_bind(text: &str, default_port: u16) -> Result<BindAddress, String> {
    if text.is_empty() {
        return Ok(BindAddress(None));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(BindAddress(Some(addr)));
    }
    text.parse::<IpAddr>()
        .map(|ip| BindAddress(Some(SocketAddr::new(ip, default_port))))
        .map_err(|_| format!("{text:?} is not IP:PORT or IP"))
}

fn parse_cidr_flag(text: &str) -> Result<IpNet, String> {
    ferry_model::addr::parse_cidr(text.trim())
}

/// Parses a Go duration (`1s`, `500ms`, `1m30s`, `1.5s`, `0`), as kube-proxy's flags take.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (like 1s, 500ms, 1m30s or 0)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn run_is_the_default_and_proxy_mode_is_an_alias() {
        let cli = Cli::try_parse_from(["kube-ferry", "--proxy-mode", "ipvs", "--manifests", "/tmp"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.mode, Mode::Ipvs);
        let cli = Cli::try_parse_from(["kube-ferry", "run", "--mode", "iptables"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(ref r)) if r.mode == Mode::Iptables));
    }

    #[test]
    fn defaults_match_kube_proxy() {
        let cli = Cli::try_parse_from(["kube-ferry"]).unwrap();
        assert_eq!(cli.run.healthz_bind_address.0, Some("0.0.0.0:10256".parse().unwrap()));
        assert_eq!(cli.run.metrics_bind_address.0, Some("127.0.0.1:10249".parse().unwrap()));
        assert_eq!(cli.run.min_sync_period, Duration::from_secs(1));
        assert_eq!(cli.run.sync_period, Duration::from_secs(30));
        let cli = Cli::try_parse_from([
            "kube-ferry",
            "--healthz-bind-address",
            "127.0.0.1",
            "--cluster-cidr",
            "10.244.0.0/16,fd00::/48",
        ])
        .unwrap();
        assert_eq!(cli.run.healthz_bind_address.0, Some("127.0.0.1:10256".parse().unwrap()));
        assert_eq!(cli.run.cluster_cidr.len(), 2);
    }

    #[test]
    fn cluster_cidrs_one_per_family_and_nodeport_addresses_checked() {
        let cli = Cli::try_parse_from(["kube-ferry", "--cluster-cidr", "10.244.0.0/16,10.245.0.0/16"]).unwrap();
        assert!(cli.run.validate().unwrap_err().contains("one CIDR per family"));
        let cli = Cli::try_parse_from(["kube-ferry", "--nodeport-addresses", "primary"]).unwrap();
        assert_eq!(cli.run.nodeport_addresses, vec![NodePortAddress::Primary]);
        assert!(cli.run.validate().is_ok());
        let cli = Cli::try_parse_from(["kube-ferry", "--nodeport-addresses", "primary,10.0.0.0/8"]).unwrap();
        assert!(cli.run.validate().is_err());
        let err = Cli::try_parse_from(["kube-ferry", "--nodeport-addresses", "nonsense"]).unwrap_err().to_string();
        assert!(err.contains("CIDRs or `primary`"), "{err}");
    }

    #[test]
    fn demo_and_its_hidden_lab_helpers() {
        let cli = Cli::try_parse_from(["kube-ferry", "demo"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Demo(ref d)) if d.mode == Mode::Nftables));
        let cli = Cli::try_parse_from([
            "kube-ferry",
            "lab-probe",
            "tcp",
            "10.96.0.10:80",
            "1500",
            "--bind",
            "10.244.1.10:4000",
        ])
        .unwrap();
        let Some(Command::LabProbe(helper)) = cli.command else { panic!("not lab-probe") };
        assert_eq!(helper.args, ["tcp", "10.96.0.10:80", "1500", "--bind", "10.244.1.10:4000"]);
        let cli = Cli::try_parse_from(["kube-ferry", "lab-podserver", "--name", "pod-0", "--tcp", "8080"]).unwrap();
        assert!(matches!(cli.command, Some(Command::LabPodserver(ref h)) if h.args.len() == 4));
    }

    #[test]
    fn interface_detect_local_modes_need_their_link() {
        let cli = Cli::try_parse_from(["kube-ferry", "--detect-local-mode", "bridge-interface"]).unwrap();
        assert_eq!(cli.run.validate().unwrap_err(), "--detect-local-mode bridge-interface needs --pod-bridge-interface");
        let cli = Cli::try_parse_from(["kube-ferry", "--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth"]).unwrap();
        assert_eq!(cli.run.pod_interfaces().unwrap(), Some(ferry_model::PodInterfaces::Prefix("veth".into())));
        let cli = Cli::try_parse_from(["kube-ferry", "--detect-local-mode", "bridge-interface", "--pod-bridge-interface", "a b"]).unwrap();
        assert!(cli.run.validate().unwrap_err().contains("\"a b\" is not a link name"));
    }

    #[test]
    fn manifests_conflict_with_a_cluster() {
        assert!(Cli::try_parse_from(["kube-ferry", "--manifests", "/tmp", "--master", "http://x"]).is_err());
    }
}
