//! `--config FILE`: kube-proxy's KubeProxyConfiguration read and laid over the flags
//! (`kube_ferry::config`), with real files from `tests/data/config/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use kube_ferry::cli::{Cli, Command, DetectLocalMode, IpvsScheduler, LogFormat, Mode, NodePortAddress, RunArgs};
use kube_ferry::config::{apply, load, parse_str, ApplyReport, ConfigError, KubeProxyConfig};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config").join(name)
}

/// The flags of `run` as the CLI defaults them.
fn defaults() -> RunArgs {
    Cli::try_parse_from(["kube-ferry"]).unwrap().run
}

/// Parses `argv` as the binary does and applies `config` with `given` answered by clap's
/// value sources, as `run` is to do it (for `kube-ferry run ...` too).
fn run_with(argv: &[&str], config: &KubeProxyConfig) -> (RunArgs, ApplyReport) {
    let matches = Cli::command().try_get_matches_from(argv).unwrap();
    let cli = Cli::from_arg_matches(&matches).unwrap();
    let (mut args, run_matches) = match cli.command {
        None => (cli.run, &matches),
        Some(Command::Run(args)) => (*args, matches.subcommand_matches("run").unwrap()),
        Some(other) => panic!("not run: {other:?}"),
    };
    // In a debug build, clap panics on an id that is not an argument's: every id `apply`
    // asks about is checked against the real CLI here.
    let given = |id: &str| run_matches.value_source(id) == Some(ValueSource::CommandLine);
    let report = apply(config, &mut args, &given);
    (args, report)
}

fn error_text(result: Result<KubeProxyConfig, ConfigError>) -> String {
    match result {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn with_header(body: &str) -> String {
    format!("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}")
}

fn assert_error(body: &str, expected: &[&str]) {
    let text = error_text(parse_str(&with_header(body)));
    for part in expected {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
}

fn addr(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn a_config_of_only_apiversion_and_kind_leaves_every_flag_at_its_default() {
    let config = load(&data("minimal.yaml")).unwrap();
    assert_eq!(config, KubeProxyConfig::default());
    let (args, report) = run_with(&["kube-ferry"], &config);
    assert_eq!(format!("{args:?}"), format!("{:?}", defaults()));
    assert_eq!(report, ApplyReport::default());
    assert_eq!(report.ignored_line(), None);
}

/// The ConfigMap kubeadm writes: config.conf loads unchanged, and gives the defaults but
/// for the pod network and the kubeconfig.
#[test]
fn the_kubeadm_configmap_config_conf_loads_and_applies_as_kube_proxy_reads_it() {
    let text = std::fs::read_to_string(data("kubeadm-configmap.yaml")).unwrap();
    let configmap: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let config_conf = configmap["data"]["config.conf"].as_str().expect("the ConfigMap has config.conf");
    let config = parse_str(config_conf).unwrap();
    assert!(config.ignored.is_empty(), "kubeadm's zeros are defaults: {:?}", config.ignored);

    let (args, report) = run_with(&["kube-ferry"], &config);
    let mut expected = defaults();
    expected.cluster_cidr = vec!["10.244.0.0/16".parse().unwrap()];
    expected.kubeconfig = Some("/var/lib/kube-proxy/kubeconfig.conf".into());
    assert_eq!(format!("{args:?}"), format!("{expected:?}"));
    assert_eq!(report.ignored_line(), None);
    assert!(report.overridden.is_empty());
    args.validate().unwrap();

    // Given to kube-ferry as a file is the same; the ConfigMap itself is refused with a hint.
    let text = error_text(parse_str(&text));
    assert!(text.contains(r#"apiVersion "v1", kind "ConfigMap""#), "{text}");
    assert!(text.contains("kubeproxy.config.k8s.io/v1alpha1, kind KubeProxyConfiguration"), "{text}");
    assert!(text.contains("config.conf"), "{text}");
}

#[test]
fn an_edited_kubeadm_config_for_ipvs_sets_the_ipvs_flags_and_its_sync_periods() {
    let config = load(&data("kubeadm-ipvs-dualstack.conf")).unwrap();
    let (args, report) = run_with(&["kube-ferry"], &config);
    assert_eq!(args.mode, Mode::Ipvs);
    assert_eq!(args.cluster_cidr, ["10.244.0.0/16".parse().unwrap(), "fd00:10:244::/56".parse().unwrap()]);
    assert_eq!(args.ipvs_scheduler, IpvsScheduler::Wlc);
    assert!(args.ipvs_strict_arp);
    assert_eq!(args.ipvs_exclude_cidrs, ["10.0.100.0/24".parse().unwrap()]);
    assert_eq!(args.ipvs_tcp_timeout, Duration::from_secs(900));
    assert_eq!(args.ipvs_tcpfin_timeout, Duration::from_secs(30));
    assert_eq!(args.ipvs_udp_timeout, Duration::from_secs(5));
    // ipvs mode reads ipvs.syncPeriod / ipvs.minSyncPeriod.
    assert_eq!(args.sync_period, Duration::from_secs(60));
    assert_eq!(args.min_sync_period, Duration::from_secs(2));
    assert_eq!(args.metrics_bind_address.0, addr("0.0.0.0:10249"));
    assert_eq!(args.healthz_bind_address, defaults().healthz_bind_address);
    assert_eq!(report, ApplyReport::default());
    args.validate().unwrap();

    // `--mode iptables` on the command line wins, and then the ipvs section's periods
    // are not read (reported), while the ipvs flags still are set.
    let (args, report) = run_with(&["kube-ferry", "run", "--mode", "iptables"], &config);
    assert_eq!(args.mode, Mode::Iptables);
    assert_eq!(args.sync_period, Duration::from_secs(30));
    assert_eq!(args.min_sync_period, Duration::from_secs(1));
    assert_eq!(args.ipvs_scheduler, IpvsScheduler::Wlc);
    assert_eq!(report.overridden, ["--mode (file: mode)"]);
    let line = report.ignored_line().unwrap();
    assert!(line.contains(r#"ipvs.syncPeriod="60s" (not read in iptables mode)"#), "{line}");
    assert!(line.contains(r#"ipvs.minSyncPeriod="2s" (not read in iptables mode)"#), "{line}");
}

#[test]
fn a_json_config_sets_every_flag_it_names() {
    let config = load(&data("tuned-iptables.json")).unwrap();
    let (args, report) = run_with(&["kube-ferry"], &config);
    assert_eq!(args.mode, Mode::Iptables);
    assert_eq!(args.hostname_override.as_deref(), Some("worker-07"), "trimmed and lower-cased, as kube-proxy does");
    assert_eq!(args.cluster_cidr, ["192.168.0.0/16".parse().unwrap()]);
    assert_eq!(args.healthz_bind_address.0, addr("127.0.0.1:10256"), "an IP alone takes port 10256");
    assert_eq!(args.metrics_bind_address.0, addr("[::1]:9249"));
    assert_eq!(
        args.nodeport_addresses,
        ["10.20.0.0/16", "127.0.0.0/8", "::1/128"].map(|c| NodePortAddress::Cidr(c.parse().unwrap()))
    );
    assert_eq!(args.kubeconfig.as_deref(), Some(Path::new("/etc/kubernetes/kube-proxy.kubeconfig")));
    assert_eq!(args.detect_local_mode, DetectLocalMode::InterfaceNamePrefix);
    assert_eq!(args.pod_interface_name_prefix.as_deref(), Some("cali"));
    assert!(args.masquerade_all);
    assert_eq!(args.iptables_masquerade_bit, 12);
    assert!(!args.iptables_localhost_nodeports);
    assert_eq!(args.sync_period, Duration::from_secs(60));
    assert_eq!(args.min_sync_period, Duration::from_millis(500));
    // Pointers keep an explicit zero ("leave the kernel's value"), as kube-proxy does.
    assert_eq!(args.conntrack_max_per_core, 0);
    assert_eq!(args.conntrack_min, 262_144);
    assert_eq!(args.conntrack_tcp_timeout_established, Duration::ZERO);
    assert_eq!(args.conntrack_tcp_timeout_close_wait, Duration::from_secs(1800));
    assert!(args.conntrack_tcp_be_liberal);
    assert_eq!(args.conntrack_udp_timeout, Duration::from_secs(30));
    assert_eq!(args.conntrack_udp_timeout_stream, Duration::from_secs(120));
    assert_eq!(args.log_format, LogFormat::Json);
    // qps 5 / burst 10 / oomScoreAdj -999 / configSyncPeriod 15m are kube-proxy's defaults.
    let line = report.ignored_line().unwrap();
    assert_eq!(
        line,
        r#"--config: kube-ferry accepts but does not use these fields: nftables.syncPeriod="45s" (not read in iptables mode)"#
    );
    args.validate().unwrap();
}

#[test]
fn flags_given_on_the_command_line_win_over_the_file() {
    let config = load(&data("tuned-iptables.json")).unwrap();
    let (args, report) = run_with(
        &[
            "kube-ferry",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--iptables-masquerade-bit=14",
            "--conntrack-min",
            "131072",
            "--log-format",
            "text",
            "--sync-period",
            "2m",
        ],
        &config,
    );
    assert_eq!(args.cluster_cidr, ["10.244.0.0/16".parse().unwrap()]);
    assert_eq!(args.iptables_masquerade_bit, 14, "given as the default value, still given");
    assert_eq!(args.conntrack_min, 131_072);
    assert_eq!(args.log_format, LogFormat::Text);
    assert_eq!(args.sync_period, Duration::from_secs(120));
    assert_eq!(args.min_sync_period, Duration::from_millis(500), "not given: from the file");
    assert_eq!(args.conntrack_min, 131_072);
    assert_eq!(
        report.overridden_line().unwrap(),
        "--config: flags given on the command line override the file: --sync-period (file: iptables.syncPeriod), \
         --cluster-cidr (file: clusterCIDR), --log-format (file: logging.format), \
         --iptables-masquerade-bit (file: iptables.masqueradeBit), --conntrack-min (file: conntrack.min)"
    );
}

#[test]
fn the_kubeconfig_of_the_file_is_not_taken_when_manifests_are_given() {
    let config = load(&data("tuned-iptables.json")).unwrap();
    let (args, report) = run_with(&["kube-ferry", "--manifests", "/tmp"], &config);
    assert_eq!(args.kubeconfig, None);
    let line = report.ignored_line().unwrap();
    assert!(
        line.contains(r#"clientConnection.kubeconfig="/etc/kubernetes/kube-proxy.kubeconfig" (--manifests given"#),
        "{line}"
    );
}

#[test]
fn nftables_mode_reads_the_nftables_section_and_a_top_level_sync_period_wins() {
    let text = with_header(
        "mode: nftables\nnftables: {masqueradeAll: true, syncPeriod: 20s, minSyncPeriod: 2s}\n\
         iptables: {masqueradeAll: false, minSyncPeriod: 3s}\n",
    );
    let (args, report) = run_with(&["kube-ferry"], &parse_str(&text).unwrap());
    assert_eq!(args.mode, Mode::Nftables);
    assert!(args.masquerade_all);
    assert_eq!((args.sync_period, args.min_sync_period), (Duration::from_secs(20), Duration::from_secs(2)));
    let line = report.ignored_line().unwrap();
    assert!(line.contains(r#"iptables.minSyncPeriod="3s" (not read in nftables mode)"#), "{line}");

    let text = format!("{text}syncPeriod: 40s\n");
    let (args, report) = run_with(&["kube-ferry"], &parse_str(&text).unwrap());
    assert_eq!((args.sync_period, args.min_sync_period), (Duration::from_secs(40), Duration::from_secs(2)));
    let line = report.ignored_line().unwrap();
    assert!(line.contains(r#"nftables.syncPeriod="20s" (the top-level syncPeriod wins)"#), "{line}");
}

#[test]
fn ipv6_bind_address_moves_the_default_servers_to_ipv6() {
    let config = parse_str(&with_header("bindAddress: '::'\n")).unwrap();
    let (args, report) = run_with(&["kube-ferry"], &config);
    assert_eq!(args.healthz_bind_address.0, addr("[::]:10256"));
    assert_eq!(args.metrics_bind_address.0, addr("[::1]:10249"));
    assert!(report.ignored.is_empty(), "an unspecified bindAddress overrides no node IP");
}

#[test]
fn node_port_address_keywords_all_and_primary() {
    let config = parse_str(&with_header("nodePortAddresses: [primary]\n")).unwrap();
    assert_eq!(config.nodeport_addresses, Some(vec![NodePortAddress::Primary]));
    let config = parse_str(&with_header("nodePortAddresses: [all, 10.0.0.0/8]\n")).unwrap();
    let (args, _) = run_with(&["kube-ferry"], &config);
    assert!(args.nodeport_addresses.is_empty(), "all: every address, as the flag's empty list");
    assert_error(
        "nodePortAddresses: [primary, 10.0.0.0/8]\n",
        &["nodePortAddresses: kube-ferry cannot combine `primary` with CIDRs", r#"["primary","10.0.0.0/8"]"#],
    );
}

#[test]
fn fields_kube_ferry_does_not_use_are_listed_in_one_line_when_not_default() {
    let config = load(&data("ignored-fields.yaml")).unwrap();
    let (args, report) = run_with(&["kube-ferry"], &config);
    assert_eq!(args.mode, Mode::Nftables);
    assert!(!args.masquerade_all, "iptables.masqueradeAll is not read in nftables mode");
    assert_eq!(args.log_format, LogFormat::Text);
    let paths: Vec<&str> = report.ignored.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "featureGates",
            "clientConnection.acceptContentTypes",
            "clientConnection.contentType",
            "clientConnection.qps",
            "clientConnection.burst",
            "logging.verbosity",
            "bindAddress",
            "bindAddressHardFail",
            "enableProfiling",
            "showHiddenMetricsForVersion",
            "portRange",
            "oomScoreAdj",
            "configSyncPeriod",
            "nftables.masqueradeBit",
            "winkernel.enableDSR",
            "iptables.syncPeriod",
            "iptables.masqueradeAll",
        ]
    );
    let line = report.ignored_line().unwrap();
    assert!(!line.contains('\n'));
    for part in [
        r#"featureGates={"KubeProxyDrainingTerminatingNodes":true}"#,
        "clientConnection.qps=50",
        "logging.verbosity=4",
        "oomScoreAdj=-500",
        r#"portRange="30000-32767""#,
        r#"configSyncPeriod="5m0s""#,
        "iptables.masqueradeAll=true (not read in nftables mode)",
    ] {
        assert!(line.contains(part), "{part:?} missing in: {line}");
    }
}

#[test]
fn load_names_the_file_it_cannot_read_or_use() {
    let missing = data("no-such-file.yaml");
    let text = error_text(load(&missing));
    assert!(text.starts_with(&format!("kube-proxy config file {}: cannot read it", missing.display())), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.conf");
    std::fs::write(&file, with_header("iptables:\n  masqueradeBit: 40\n")).unwrap();
    let text = error_text(load(&file));
    assert!(text.starts_with(&format!("kube-proxy config file {}: iptables.masqueradeBit:", file.display())), "{text}");

    std::fs::write(&file, "apiVersion: [unclosed\n").unwrap();
    let text = error_text(load(&file));
    assert!(text.contains(&file.display().to_string()) && text.contains("not a YAML or JSON"), "{text}");
}

#[test]
fn api_version_and_kind_are_checked() {
    let text = error_text(parse_str("apiVersion: kubeproxy.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n"));
    assert!(text.contains(r#"apiVersion "kubeproxy.config.k8s.io/v1beta1", kind "KubeProxyConfiguration""#), "{text}");
    assert!(text.contains("kube-ferry reads apiVersion kubeproxy.config.k8s.io/v1alpha1, kind KubeProxyConfiguration"));
    let text = error_text(parse_str("mode: ipvs\n"));
    assert!(text.contains("apiVersion missing, kind missing"), "{text}");
    let text = error_text(parse_str("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"));
    assert!(text.contains(r#"kind "KubeletConfiguration""#), "{text}");
    let text = error_text(parse_str(""));
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn an_unknown_field_is_named_with_its_path_its_value_and_the_known_fields() {
    assert_error(
        "iptables:\n  masqueradeBits: 14\n",
        &[
            "iptables.masqueradeBits: unknown field (value 14); known: localhostNodePorts, masqueradeAll, masqueradeBit, minSyncPeriod, snatNodeInternalIP, syncPeriod",
        ],
    );
    assert_error(
        "clusterCidr: 10.244.0.0/16\n",
        &[r#"clusterCidr: unknown field (value "10.244.0.0/16"); known: "#, "clusterCIDR"],
    );
    assert_error("conntrack: {maxPerCPU: null}\n", &["conntrack.maxPerCPU: unknown field (value null)", "maxPerCore"]);
    // featureGates and logging are opaque: any gate name is accepted.
    parse_str(&with_header("featureGates: {AnyGate: false}\nlogging: {vmodule: [{filePattern: x, verbosity: 2}]}\n"))
        .unwrap();
}

#[test]
fn a_wrong_type_is_named_with_its_path() {
    assert_error("iptables: {masqueradeBit: fourteen}\n", &["iptables.masqueradeBit: invalid type", "fourteen"]);
    assert_error("ipvs: {excludeCIDRs: 10.0.0.0/8}\n", &["ipvs.excludeCIDRs: invalid type", "10.0.0.0/8"]);
}

#[test]
fn a_masquerade_bit_out_of_range_is_refused() {
    assert_error("iptables: {masqueradeBit: 40}\n", &["iptables.masqueradeBit: must be 0-31", "(value 40)"]);
    assert_error("nftables: {masqueradeBit: -1}\n", &["nftables.masqueradeBit: must be 0-31", "(value -1)"]);
}

#[test]
fn a_bad_duration_is_refused() {
    assert_error("ipvs: {syncPeriod: 5x}\n", &["ipvs.syncPeriod: not a Go duration", r#"(value "5x")"#]);
    assert_error("conntrack: {tcpCloseWaitTimeout: 1 hour}\n", &["conntrack.tcpCloseWaitTimeout:", r#""1 hour""#]);
    assert_error("syncPeriod: '30'\n", &["syncPeriod: not a Go duration", r#"(value "30")"#]);
}

#[test]
fn a_bad_cidr_is_refused() {
    assert_error("clusterCIDR: 10.244.0.0/33,fd00::/48\n", &["clusterCIDR:", "10.244.0.0/33", "prefix length"]);
    assert_error(
        "clusterCIDR: 10.244.0.0/16,10.245.0.0/16\n",
        &["clusterCIDR: takes one CIDR per family", "10.245.0.0/16"],
    );
    assert_error("ipvs: {excludeCIDRs: [10.0.0.0/8, 10.1.0.0]}\n", &["ipvs.excludeCIDRs[1]:", "10.1.0.0"]);
    assert_error("nodePortAddresses: [10.0.0.0/8, nodes]\n", &["nodePortAddresses[1]:", "nodes"]);
}

#[test]
fn an_unknown_mode_is_refused() {
    assert_error(
        "mode: ipvsx\n",
        &["mode: unknown proxy mode", r#"(value "ipvsx")"#, "known: iptables, ipvs, nftables"],
    );
    assert_error("mode: kernelspace\n", &["mode: kernelspace is kube-proxy's Windows mode"]);
    assert_error("detectLocalMode: PodCIDR\n", &["detectLocalMode: unknown mode", r#""PodCIDR""#, "NodeCIDR"]);
    assert_error("logging: {format: xml}\n", &["logging.format: unknown log format", r#""xml""#]);
}

#[test]
fn an_unknown_scheduler_is_refused() {
    assert_error(
        "ipvs: {scheduler: lblcr}\n",
        &["ipvs.scheduler: unknown or unsupported IPVS scheduler", r#"(value "lblcr")"#, "known: rr, wrr"],
    );
}

#[test]
fn other_bad_values_name_their_path() {
    assert_error("conntrack: {maxPerCore: -5}\n", &["conntrack.maxPerCore: must be 0 or more", "(value -5)"]);
    assert_error(
        "healthzBindAddress: localhost:10256\n",
        &["healthzBindAddress: not IP:PORT or IP", "localhost:10256"],
    );
    assert_error("bindAddress: node-1\n", &["bindAddress: not an IP address", r#""node-1""#]);
    assert_error("oomScoreAdj: -1001\n", &["oomScoreAdj: must be -1000 to 1000", "(value -1001)"]);
}

#[test]
fn null_and_empty_mean_the_default() {
    let config = parse_str(&with_header(
        "mode: null\nclusterCIDR: ''\niptables: null\nipvs: {scheduler: '', excludeCIDRs: null}\n\
         conntrack: {maxPerCore: null, udpTimeout: 0s}\nhealthzBindAddress: ''\n",
    ))
    .unwrap();
    assert_eq!(config, KubeProxyConfig::default());
}
