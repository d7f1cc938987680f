//! IPVS mode at scale, on a kernel with IPVS (run it in the VM:
//! `bash tests/vm/run-tests.sh --bench ferry-ipvs:sync`, or `cargo bench -p ferry-ipvs`
//! on a machine whose kernel has IPVS; root). Everything happens in namespaces of a lab
//! this bench makes.
//!
//! 1. 10,000 ClusterIP services x 2 endpoints programmed from empty: time and netlink
//!    messages to IPVS (and the helper table's element count).
//! 2. One endpoint change: messages and time; a sync with no change: messages.
//! 3. TCP connect() latency from the lab's client to one ClusterIP with 1 and with 10,000
//!    services programmed (medians over rounds).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ferry_fixtures::measure::{median, thousands};
use ferry_fixtures::{service, slice};
use ferry_ipvs::{IpvsBackend, IpvsConfig};
use ferry_model::{Backend, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest};
use ferry_netlab::guard::refuse_host_namespace;
use ferry_netlab::{Binaries, Lab, Netns, Program};

const SERVICES: usize = 10_000;
const ENDPOINTS: usize = 2;
const RESULT: &str = "FERRY_BENCH_RESULT";
const LATENCY: &str = "FERRY_BENCH_LATENCY";
const CONNECTS: usize = 200;
const ROUNDS: usize = 2;
const MEASURED_IP: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 1);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-sync") => child_sync(&args[1..]),
        Some("--child-install") => child_install(args[1].parse().expect("N"), &args[2..]),
        Some("--latency") => latency(&args[1]),
        Some("--podserver") => ferry_netlab::podserver_main(args.into_iter().skip(1)),
        Some("--probe") => ferry_netlab::probe_main(args.into_iter().skip(1)),
        _ => parent(),
    }
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    let n = 0x0a60_0010u32 + i as u32; // 10.96.0.16 + i
    Ipv4Addr::from(n)
}

/// `n` services (the last one on [`MEASURED_IP`]), each with the `pods` as endpoints.
fn state_of(n: usize, pods: &[Ipv4Addr]) -> StateBuilder {
    let mut b = StateBuilder::new("node-a");
    for i in 0..n {
        set(&mut b, i, n, pods);
    }
    b.rebuild();
    b
}

fn set(b: &mut StateBuilder, i: usize, n: usize, pods: &[Ipv4Addr]) {
    let name = format!("svc-{i}");
    let ip = if i + 1 == n { MEASURED_IP } else { cluster_ip(i) };
    let svc = service("bench", &name).cluster_ip(&ip.to_string()).port("http", 80, "TCP").build();
    let mut s = slice("bench", &format!("{name}-1"), &name, "IPv4").port("http", 8080, "TCP");
    for p in pods {
        s = s.ready(&p.to_string(), "node-a");
    }
    b.set_service(ServiceName::new("bench", &name), Some(ServiceSpec::admit(&svc)));
    b.set_slice(SliceName::new("bench", &format!("{name}-1")), Some(SliceSpec::admit(&s.build())));
}

fn child_sync(pods: &[String]) -> ExitCode {
    refuse_host_namespace("--child-sync");
    let pods: Vec<Ipv4Addr> = pods.iter().map(|p| p.parse().expect("pod address")).collect();
    let mut b = state_of(SERVICES, &pods);
    let mut backend = IpvsBackend::connect(IpvsConfig::default()).expect("IPVS in this kernel");
    let m0 = backend.messages_sent();
    let t = Instant::now();
    let report = backend.sync(b.state(), SyncRequest::Full).expect("full sync");
    let full = t.elapsed();
    let full_msgs = backend.messages_sent() - m0;
    assert!(report.refused.is_empty(), "{:?}", report.refused);

    let mut change = Vec::new();
    let mut change_msgs = Vec::new();
    for k in 0..5u8 {
        let moved = [pods[0], Ipv4Addr::new(10, 244, 200, 10 + k)];
        let name = format!("svc-{}", 100 + usize::from(k));
        let mut s = slice("bench", &format!("{name}-1"), &name, "IPv4").port("http", 8080, "TCP");
        for p in moved {
            s = s.ready(&p.to_string(), "node-b");
        }
        b.set_slice(SliceName::new("bench", &format!("{name}-1")), Some(SliceSpec::admit(&s.build())));
        let diff = b.rebuild();
        let m = backend.messages_sent();
        let t = Instant::now();
        backend.sync(b.state(), SyncRequest::Changes(&diff)).expect("endpoint change");
        change.push(t.elapsed());
        change_msgs.push(backend.messages_sent() - m);
    }
    let diff = b.rebuild();
    let m = backend.messages_sent();
    let t = Instant::now();
    backend.sync(b.state(), SyncRequest::Changes(&diff)).expect("no change");
    let none = t.elapsed();
    let none_msgs = backend.messages_sent() - m;
    let _ = backend.cleanup();
    println!(
        "{RESULT} full_ms={:.1} full_msgs={full_msgs} change_ms={:.2} change_msgs_max={} change_msgs_min={} none_ms={:.2} none_msgs={none_msgs} objects={}",
        full.as_secs_f64() * 1e3,
        median(change).as_secs_f64() * 1e3,
        change_msgs.iter().max().unwrap_or(&0),
        change_msgs.iter().min().unwrap_or(&0),
        none.as_secs_f64() * 1e3,
        report.kernel_objects,
    );
    ExitCode::SUCCESS
}

fn child_install(n: usize, pods: &[String]) -> ExitCode {
    refuse_host_namespace("--child-install");
    let pods: Vec<Ipv4Addr> = pods.iter().map(|p| p.parse().expect("pod address")).collect();
    let b = state_of(n, &pods);
    let mut backend = IpvsBackend::connect(IpvsConfig::default()).expect("IPVS in this kernel");
    backend.cleanup().expect("remove the previous run's services");
    let mut backend = IpvsBackend::connect(IpvsConfig::default()).expect("IPVS in this kernel");
    backend.sync(b.state(), SyncRequest::Full).expect("full sync in the lab");
    ExitCode::SUCCESS
}

fn latency(addr: &str) -> ExitCode {
    refuse_host_namespace("--latency");
    let addr: SocketAddr = addr.parse().expect("ADDR");
    let connect = || {
        let t = Instant::now();
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let took = t.elapsed();
        drop(s);
        took
    };
    for _ in 0..20 {
        connect();
    }
    let samples: Vec<String> = (0..CONNECTS).map(|_| format!("{:.1}", connect().as_nanos() as f64 / 1e3)).collect();
    println!("{LATENCY} {}", samples.join(","));
    ExitCode::SUCCESS
}

fn run_in(ns: &Netns, exe: &Path, args: &[String]) -> Result<String, String> {
    let out = ns.command(exe).args(args).stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parent() -> ExitCode {
    if !ferry_netlab::features::ipvs_or_say_why("ipvs sync bench") {
        return ExitCode::SUCCESS;
    }
    Lab::require_root();
    ferry_netlab::guard::mark_parent();
    let exe = std::env::current_exe().expect("own path");
    ferry_netlab::set_binaries(Binaries {
        podserver: Program::new(&exe).arg("--podserver"),
        probe: Program::new(&exe).arg("--probe"),
    });
    let mut lab = Lab::single_node_tagged("ipvsbench", ENDPOINTS).expect("the lab builds");
    lab.start_pod_servers_with(&ferry_netlab::PodServer::new().tcp(8080)).expect("pod servers");
    let pods: Vec<String> = lab.pods().iter().map(|p| p.ip().to_string()).collect();
    let node = lab.node(0).ns();
    let _ = node.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);

    eprintln!("ipvs bench: {SERVICES} services x {ENDPOINTS} endpoints ...");
    let mut args = vec!["--child-sync".to_owned()];
    args.extend(pods.iter().cloned());
    let fields: BTreeMap<String, f64> = match run_in(node, &exe, &args) {
        Ok(out) => out
            .lines()
            .find_map(|l| l.strip_prefix(RESULT))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.parse().expect("number")))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            eprintln!("ipvs bench: {e}");
            BTreeMap::new()
        }
    };

    eprintln!("ipvs bench: connect latency with 1 and {SERVICES} services ...");
    let target = SocketAddr::from((MEASURED_IP, 80)).to_string();
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for n in [1, SERVICES] {
            let mut install = vec!["--child-install".to_owned(), n.to_string()];
            install.extend(pods.iter().cloned());
            if let Err(e) = run_in(node, &exe, &install) {
                eprintln!("ipvs bench: {e}");
                continue;
            }
            match run_in(lab.client().ns(), &exe, &["--latency".to_owned(), target.clone()]) {
                Ok(out) => {
                    let samples: Vec<Duration> = out
                        .lines()
                        .find_map(|l| l.strip_prefix(LATENCY))
                        .map(|l| l.trim().split(',').map(|x| Duration::from_nanos((x.parse::<f64>().expect("µs") * 1e3) as u64)).collect())
                        .unwrap_or_default();
                    if n == 1 { &mut one } else { &mut many }.extend(samples);
                }
                Err(e) => eprintln!("ipvs bench: {e}"),
            }
        }
    }
    let _ = run_in(node, &exe, &["--child-install".to_owned(), "0".to_owned()]);
    drop(lab);

    let f = |k: &str| fields.get(k).copied().unwrap_or(f64::NAN);
    println!();
    println!("| IPVS mode, {} services x {ENDPOINTS} endpoints | figure |", thousands(SERVICES));
    println!("|---|---:|");
    println!("| full sync from empty | {:.0} ms, {} netlink messages |", f("full_ms"), f("full_msgs"));
    println!("| one endpoint change (median of 5) | {:.2} ms, {}-{} messages |", f("change_ms"), f("change_msgs_min"), f("change_msgs_max"));
    println!("| sync with no change | {:.2} ms, {} messages |", f("none_ms"), f("none_msgs"));
    println!("| kernel objects (services + real servers + addresses + helper rules) | {} |", f("objects"));
    if !one.is_empty() && !many.is_empty() {
        let (a, b) = (median(one), median(many));
        let ratio = b.as_secs_f64() / a.as_secs_f64();
        println!("| connect() latency, 1 service / {} services (medians) | {:.0} µs / {:.0} µs ({ratio:.2}x) |", thousands(SERVICES), a.as_secs_f64() * 1e6, b.as_secs_f64() * 1e6);
        println!();
        println!("{}: first-packet latency at {} within 10% of 1 service ({ratio:.2}x)", if ratio <= 1.10 { "PASS" } else { "FAIL" }, thousands(SERVICES));
    }
    let constant = f("change_msgs_max") == f("change_msgs_min") && f("change_msgs_max") <= 4.0;
    println!("{}: one endpoint change is a constant, small number of messages ({}-{})", if constant { "PASS" } else { "FAIL" }, f("change_msgs_min"), f("change_msgs_max"));
    ExitCode::SUCCESS
}
