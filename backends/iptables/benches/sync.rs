//! Benchmark of the iptables backend (`ferry-iptables`) against a real kernel, for both
//! variants (`iptables-nft` and `iptables-legacy`).
//!
//! Run with `cargo bench -p ferry-iptables --bench sync` as root. Plain `std::time::Instant`,
//! no harness. It is not run in CI: it prints a markdown table and PASS/FAIL against the
//! targets, and exits 0 whatever they say.
//!
//! Network safety: nothing here touches the machine's own network namespace. The parent
//! never runs an iptables tool nor syncs a backend: it creates namespaces of its own
//! (`kf-bench-<pid>-...`, deleted by `ferry_netlab::Netns` / `Lab` guards on return and
//! while a panic unwinds) and re-executes itself inside them with `ip netns exec NS <this
//! binary> --child-... ARGS` (argument vectors, never a shell). Every child first checks
//! that its network namespace is neither the parent's nor PID 1's and refuses to go on if it
//! is ([`refuse_host_namespace`]). Traffic (part 5) only flows between the lab's namespaces.
//!
//! What is measured, per variant and size N, N ClusterIP services x 3 TCP endpoints each (one
//! port, endpoints on another node), in a child inside a fresh namespace of its own:
//! 1. `sync(Full)` into empty tables: wall time, operations (chains + rules written),
//!    `SyncReport::kernel_objects`, and the size of the restore input
//!    (`IptablesBackend::render_inputs`) with the time to render it in-process;
//! 2. one service added when N exist (`StateBuilder` diff -> `sync(Changes(&diff))`), median
//!    of 10, and the delete that follows each add (median of 10);
//! 3. one endpoint changed (one slice swapped between two versions one address apart),
//!    median of 10, with the operations per sync (a handful, whatever N);
//! 4. `sync(Changes(&empty diff))`: must send nothing (0 operations);
//! 5. first-packet TCP connect() latency from the lab's client to a ClusterIP with 1 and with
//!    10,000 services installed (`ferry_netlab::Lab`, 3 pods serving on 8080; the backend is
//!    driven directly, by this bench re-executed in the node's namespace; the measured
//!    service is the last by namespace, name and address, so a linear `KUBE-SERVICES` would
//!    walk all of the others first). One lab per variant; min and median over
//!    [`LATENCY_ROUNDS`] alternating rounds of [`LATENCY_CONNECTS`] connects. Each connect to
//!    the service is paired with one straight to a pod (no DNAT, but through the same
//!    tables), so that the machine's own noise, which moves both, can be told from the
//!    dispatch's cost.
//!
//! Where the time goes: the sync children's backend drives the real `IptablesTool` through a
//! thin wrapper ([`TimedTool`]) that times each `iptables-restore` / `iptables-save` run and
//! counts the bytes fed to restore, so each sync splits into restore, save (first sync only)
//! and in-process (render, plan, diff against the committed chains). The CPU the tools burn
//! (user / sys) is the change of `cutime` / `cstime` of /proc/self/stat around the sync. Also
//! per size: the floor of one `iptables-restore --noflush` run that creates and deletes a
//! chain of the bench's own in `nat`, and in `filter` (legacy reads and rewrites the whole
//! table it touches, so the floor grows with the table), a periodic resync (Full on tables
//! the backend filled itself), and `iptables-save` of what the kernel holds (our chains and
//! rules, and how long the save takes).
//!
//! The sync children build the backend with `IptablesBackend::with_runner(config,
//! Box::new(TimedTool { inner: IptablesTool { variant }, .. }))`, which is what `IptablesBackend::new(config,
//! variant)` does without the wrapper; the lab child of part 5 uses `new` itself.
//!
//! Environment:
//! - `FERRY_BENCH_SIZES=1000,10000`: the sizes of 1-4 (default 1000,10000; 30000 works too).
//! - `FERRY_BENCH_VARIANTS=nft,legacy`: the variants (default both).
//! - `FERRY_BENCH_SKIP=sync,latency`: skip parts 1-4 and/or 5.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_fixtures::measure::{median, proc_status_mib, thousands};
use ferry_fixtures::{service, slice};
use ferry_iptables::tool::{IptablesRunner, IptablesTool};
use ferry_iptables::{IptConfig, IptablesBackend, Variant};
use ferry_model::{
    Admission, Backend, BackendError, IpFamily, ProxyState, ServiceName, ServiceSpec, SliceName, SliceSpec,
    StateBuilder, StateDiff, SyncReport, SyncRequest,
};
use ferry_netlab::{Binaries, Lab, Netns, PodServer, Program};

const DEFAULT_SIZES: [usize; 2] = [1_000, 10_000];
const DEFAULT_VARIANTS: [Variant; 2] = [Variant::Nft, Variant::Legacy];
const ENDPOINTS: usize = 3;
const REPETITIONS: usize = 10;
const NO_CHANGE_REPETITIONS: usize = 5;
const RENDER_REPETITIONS: usize = 3;
const FLOOR_REPETITIONS: usize = 5;
const RESULT_PREFIX: &str = "FERRY_BENCH_RESULT";
const LATENCY_PREFIX: &str = "FERRY_BENCH_LATENCY";
const THIS_NODE: &str = "node-a";
const OTHER_NODE: &str = "node-b";
const POD_PORT: u16 = 8080;
const SERVICE_PORT: u16 = 80;

// Targets.
const TARGET_FULL_10K_LEGACY: Duration = Duration::from_secs(1);
const TARGET_FULL_10K_NFT: Duration = Duration::from_secs(15);
const TARGET_ENDPOINT_10K: Duration = Duration::from_millis(350);
const TARGET_LATENCY_RATIO: f64 = 1.5;
/// "A handful": the most operations (chains + rules written) one endpoint change may take.
const TARGET_ENDPOINT_OPERATIONS: f64 = 16.0;

const LATENCY_SERVICES: usize = 10_000;
const LATENCY_CONNECTS: usize = 300;
const LATENCY_WARMUP: usize = 20;
const LATENCY_ROUNDS: usize = 2;
/// The measured service of part 5: last by namespace, name and address.
const MEASURED_NAMESPACE: &str = "zz-measured";
const MEASURED_IP: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 1);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, what: &str| args.get(i).unwrap_or_else(|| panic!("missing argument: {what}")).as_str();
    match args.first().map(String::as_str) {
        Some("--child-sync") => child_sync(parse_variant(arg(1, "VARIANT")), arg(2, "N").parse().expect("N")),
        Some("--child-install") => {
            child_install(parse_variant(arg(1, "VARIANT")), arg(2, "N").parse().expect("N"), &args[3..])
        }
        Some("--latency") => latency(arg(1, "ADDR"), arg(2, "COUNT").parse().expect("COUNT")),
        Some("--podserver") => ferry_netlab::podserver_main(args.into_iter().skip(1)),
        Some("--probe") => ferry_netlab::probe_main(args.into_iter().skip(1)),
        // `cargo bench` passes `--bench`; anything else is the parent.
        _ => parent(),
    }
}

fn parse_variant(s: &str) -> Variant {
    match s.trim() {
        "nft" => Variant::Nft,
        "legacy" => Variant::Legacy,
        other => panic!("unknown iptables variant {other:?} (nft or legacy)"),
    }
}

// ---------------------------------------------------------------------------------------
// Objects: deterministic, generated, admitted and dropped one at a time.

/// `10.96.0.16 + i` (inside 10.96.0.0/12, below [`MEASURED_IP`]).
fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 16)) + u32::try_from(i).expect("fits"))
}

/// Endpoint `j` of service `i`: `10.128.0.1 + 3i + j`, unique across services (the sync
/// children never send traffic: these addresses only have to be distinct and valid).
/// `version` 1 moves endpoint 1 to an address no other endpoint uses.
fn endpoint_ip(i: usize, j: usize, version: u8) -> Ipv4Addr {
    let k = i * ENDPOINTS + j + if version == 1 && j == 1 { 4_000_000 } else { 0 };
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 1)) + u32::try_from(k).expect("fits"))
}

fn namespace_of(i: usize) -> String {
    format!("ns-{:02}", i % 50)
}

fn admit_service(namespace: &str, name: &str, ip: Ipv4Addr) -> (ServiceName, Admission<ServiceSpec>) {
    let object =
        service(namespace, name).cluster_ip(&ip.to_string()).port("http", i32::from(SERVICE_PORT), "TCP").build();
    let admission = ServiceSpec::admit(&object);
    assert!(matches!(&admission, Admission::Accepted { skipped, .. } if skipped.is_empty()), "{name}: {admission:?}");
    (ServiceName::new(namespace, name), admission)
}

fn admit_slice(namespace: &str, service_name: &str, endpoints: &[Ipv4Addr]) -> (SliceName, Admission<SliceSpec>) {
    let name = format!("{service_name}-1");
    let mut b = slice(namespace, &name, service_name, "IPv4").port("http", i32::from(POD_PORT), "TCP");
    for ep in endpoints {
        b = b.ready(&ep.to_string(), OTHER_NODE);
    }
    let object = b.build();
    let admission = SliceSpec::admit(&object);
    assert!(matches!(&admission, Admission::Accepted { skipped, .. } if skipped.is_empty()), "{name}: {admission:?}");
    (SliceName::new(namespace, &name), admission)
}

/// Sets service `i` (with its slice, in `version`) into the builder.
fn set_numbered(builder: &mut StateBuilder, i: usize, version: u8) {
    let ns = namespace_of(i);
    let name = format!("svc-{i}");
    let (sname, sadm) = admit_service(&ns, &name, cluster_ip(i));
    builder.set_service(sname, Some(sadm));
    let eps: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|j| endpoint_ip(i, j, version)).collect();
    let (lname, ladm) = admit_slice(&ns, &name, &eps);
    builder.set_slice(lname, Some(ladm));
}

fn unset_numbered(builder: &mut StateBuilder, i: usize) {
    let ns = namespace_of(i);
    let name = format!("svc-{i}");
    builder.set_slice(SliceName::new(&ns, &format!("{name}-1")), None);
    builder.set_service(ServiceName::new(&ns, &name), None);
}

// ---------------------------------------------------------------------------------------
// Safety: children that run iptables must be inside a namespace of the bench's.

use ferry_netlab::guard::refuse_host_namespace;

// ---------------------------------------------------------------------------------------
// Timing the tools: a wrapper around the real `IptablesTool`.

/// What the tools cost so far (the wrapper adds, [`Meter`] takes differences).
#[derive(Clone, Copy, Debug, Default)]
struct ToolStats {
    restores: usize,
    restore_time: Duration,
    restore_bytes: usize,
    saves: usize,
    save_time: Duration,
    /// `--test` runs (the backend bisects a refused restore with them).
    tests: usize,
    test_time: Duration,
}

/// The real `IptablesTool`, each run timed into a shared [`ToolStats`].
#[derive(Debug)]
struct TimedTool {
    inner: IptablesTool,
    stats: Arc<Mutex<ToolStats>>,
}

impl IptablesRunner for TimedTool {
    fn restore(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        let t = Instant::now();
        let result = self.inner.restore(family, input);
        let took = t.elapsed();
        let mut s = self.stats.lock().expect("stats lock");
        s.restores += 1;
        s.restore_time += took;
        s.restore_bytes += input.len();
        result
    }

    fn test(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        let t = Instant::now();
        let result = self.inner.test(family, input);
        let took = t.elapsed();
        let mut s = self.stats.lock().expect("stats lock");
        s.tests += 1;
        s.test_time += took;
        result
    }

    fn save(&self, family: IpFamily) -> Result<String, BackendError> {
        let t = Instant::now();
        let result = self.inner.save(family);
        let took = t.elapsed();
        let mut s = self.stats.lock().expect("stats lock");
        s.saves += 1;
        s.save_time += took;
        result
    }
}

/// One sync, measured.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    wall: Duration,
    restore: Duration,
    save: Duration,
    /// `--test` runs: time and count (0 unless the kernel refused something).
    test: Duration,
    tests: usize,
    restores: usize,
    bytes: usize,
    /// CPU seconds of the tools run during the sync.
    user: f64,
    sys: f64,
    operations: usize,
    /// Service ports the kernel refused (`SyncReport::refused`): 0 in a sound run.
    refused: usize,
}

impl Sample {
    /// The sync's time outside the tools: render, plan, diff, spawning and piping.
    fn ours(&self) -> Duration {
        self.wall.saturating_sub(self.restore + self.save + self.test)
    }
}

/// A backend on the timed tools of `variant`, and the means to measure its syncs.
struct Meter {
    backend: IptablesBackend,
    stats: Arc<Mutex<ToolStats>>,
}

impl Meter {
    fn new(config: IptConfig, variant: Variant) -> Meter {
        let stats = Arc::new(Mutex::new(ToolStats::default()));
        let tool = TimedTool { inner: IptablesTool { variant }, stats: Arc::clone(&stats) };
        Meter { backend: IptablesBackend::with_runner(config, Box::new(tool)), stats }
    }

    fn stats(&self) -> ToolStats {
        *self.stats.lock().expect("stats lock")
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>, what: &str) -> (SyncReport, Sample) {
        let (s0, cpu0) = (self.stats(), children_cpu());
        let t = Instant::now();
        let report = self.backend.sync(state, request).unwrap_or_else(|e| panic!("{what}: {e}"));
        let wall = t.elapsed();
        let (s1, cpu1) = (self.stats(), children_cpu());
        let sample = Sample {
            wall,
            restore: s1.restore_time - s0.restore_time,
            save: s1.save_time - s0.save_time,
            test: s1.test_time - s0.test_time,
            tests: s1.tests - s0.tests,
            restores: s1.restores - s0.restores,
            bytes: s1.restore_bytes - s0.restore_bytes,
            user: cpu1.0 - cpu0.0,
            sys: cpu1.1 - cpu0.1,
            operations: report.operations,
            refused: report.refused.len(),
        };
        (report, sample)
    }
}

/// User and system CPU seconds of this process's waited-for children (`cutime`, `cstime`
/// in /proc/self/stat, in USER_HZ = 100 ticks a second): what the `iptables-*-restore` and
/// `-save` runs cost in user space (parsing, cache building) and in the kernel (netlink or
/// getsockopt/setsockopt, commit).
fn children_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a number") / 100.0;
    (ticks(16), ticks(17))
}

// ---------------------------------------------------------------------------------------
// Parts 1-4: one variant and size, in a child inside a fresh namespace.

type Fields = BTreeMap<String, f64>;

fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1_000.0
}

/// Records a series of syncs as `{key}_us` (median wall), `{key}_restore_us`,
/// `{key}_save_us`, `{key}_ours_us` (medians), `{key}_operations`, `{key}_bytes`,
/// `{key}_restores` (the most of one sync), `{key}_user_us`, `{key}_sys_us` (the tools'
/// CPU, mean per sync) and `{key}_tests`, `{key}_refused` (totals).
fn record(r: &mut Fields, key: &str, samples: &[Sample]) {
    let med = |f: fn(&Sample) -> Duration| us(median(samples.iter().map(f).collect()));
    let max = |f: fn(&Sample) -> usize| samples.iter().map(f).max().unwrap_or(0) as f64;
    let mean = |f: fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / samples.len() as f64;
    r.insert(format!("{key}_us"), med(|s| s.wall));
    r.insert(format!("{key}_restore_us"), med(|s| s.restore));
    r.insert(format!("{key}_save_us"), med(|s| s.save));
    r.insert(format!("{key}_ours_us"), med(Sample::ours));
    r.insert(format!("{key}_operations"), max(|s| s.operations));
    r.insert(format!("{key}_min_operations"), samples.iter().map(|s| s.operations).min().unwrap_or(0) as f64);
    r.insert(format!("{key}_bytes"), max(|s| s.bytes));
    r.insert(format!("{key}_restores"), max(|s| s.restores));
    r.insert(format!("{key}_user_us"), mean(|s| s.user) * 1e6);
    r.insert(format!("{key}_sys_us"), mean(|s| s.sys) * 1e6);
    r.insert(format!("{key}_tests"), samples.iter().map(|s| s.tests).sum::<usize>() as f64);
    r.insert(format!("{key}_refused"), samples.iter().map(|s| s.refused).sum::<usize>() as f64);
}

fn child_sync(variant: Variant, n: usize) -> ExitCode {
    refuse_host_namespace("--child-sync");
    let config = IptConfig::default();
    let mut r = Fields::new();

    let t = Instant::now();
    let mut builder = StateBuilder::new(THIS_NODE);
    for i in 0..n {
        set_numbered(&mut builder, i, 0);
    }
    let d = builder.rebuild();
    assert_eq!(d.added.len(), n);
    r.insert("build_us".into(), us(t.elapsed()));

    // 1. The full sync into empty tables.
    let mut meter = Meter::new(config.clone(), variant);
    let (report, full) = meter.sync(builder.state(), SyncRequest::Full, "full sync");
    record(&mut r, "full", &[full]);
    r.insert("kernel_objects".into(), report.kernel_objects as f64);
    r.insert("hwm_full_mib".into(), proc_status_mib(std::process::id(), "VmHWM"));

    // 1b. The restore input of a first sync, rendered apart (median of 3).
    let mut renders = Vec::new();
    let mut text = String::new();
    for _ in 0..RENDER_REPETITIONS {
        let t = Instant::now();
        text = IptablesBackend::render_inputs(builder.state(), &config);
        renders.push(t.elapsed());
    }
    r.insert("render_us".into(), us(median(renders)));
    r.insert("input_bytes".into(), text.len() as f64);
    r.insert("input_lines".into(), text.lines().count() as f64);
    drop(text);

    // What the kernel holds, as iptables-save shows it.
    let (listing, took) = save_all(variant);
    r.insert("save_all_us".into(), us(took));
    r.insert("saved_lines".into(), listing.lines().count() as f64);
    r.insert("saved_kube_chains".into(), listing.lines().filter(|l| l.starts_with(":KUBE-")).count() as f64);
    r.insert("saved_kube_rules".into(), listing.lines().filter(|l| l.starts_with("-A KUBE-")).count() as f64);
    let filter = listing.split("\n*").find(|t| t.starts_with("filter\n")).unwrap_or("");
    r.insert("saved_filter_kube_rules".into(), filter.lines().filter(|l| l.starts_with("-A KUBE-")).count() as f64);
    drop(listing);

    // The floor of one restore run at this size (process start, lock, cache, commit), per
    // table: a sync's writes are in nat (endpoints, services) and filter (rejects).
    for table in ["nat", "filter"] {
        let floor: Vec<Duration> = (0..FLOOR_REPETITIONS).map(|_| restore_floor(variant, table)).collect();
        r.insert(format!("floor_{table}_us"), us(median(floor)));
    }

    // 2. One service added (then deleted again, timed as well).
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for rep in 0..REPETITIONS {
        let i = n + rep;
        set_numbered(&mut builder, i, 0);
        let diff = builder.rebuild();
        assert!(diff.added.len() == 1 && diff.removed.is_empty() && diff.changed.is_empty(), "{diff:?}");
        add.push(meter.sync(builder.state(), SyncRequest::Changes(&diff), "add sync").1);

        unset_numbered(&mut builder, i);
        let diff = builder.rebuild();
        assert!(diff.removed.len() == 1 && diff.added.is_empty() && diff.changed.is_empty(), "{diff:?}");
        del.push(meter.sync(builder.state(), SyncRequest::Changes(&diff), "delete sync").1);
    }
    record(&mut r, "add", &add);
    record(&mut r, "delete", &del);

    // 3. One endpoint changed: service n/2 alternates between two slices one address apart.
    let target = n / 2;
    let mut change = Vec::new();
    for rep in 0..REPETITIONS {
        set_numbered(&mut builder, target, if rep % 2 == 0 { 1 } else { 0 });
        let diff = builder.rebuild();
        assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.len() == 1, "{diff:?}");
        let c = &diff.changed[0].endpoints;
        assert!(c.added.len() == 1 && c.removed.len() == 1, "{diff:?}");
        change.push(meter.sync(builder.state(), SyncRequest::Changes(&diff), "endpoint sync").1);
    }
    record(&mut r, "endpoint", &change);

    // 4. No change.
    let empty = StateDiff::default();
    let none: Vec<Sample> = (0..NO_CHANGE_REPETITIONS)
        .map(|_| meter.sync(builder.state(), SyncRequest::Changes(&empty), "no-change sync").1)
        .collect();
    record(&mut r, "nochange", &none);
    r.insert("nochange_total_operations".into(), none.iter().map(|s| s.operations).sum::<usize>() as f64);

    // A periodic resync (`--sync-period`): Full on tables the backend filled itself.
    let (_, resync) = meter.sync(builder.state(), SyncRequest::Full, "resync");
    record(&mut r, "resync", &[resync]);

    r.insert("peak_rss_mib".into(), proc_status_mib(std::process::id(), "VmHWM"));
    r.insert("services".into(), n as f64);

    let line: Vec<String> = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{RESULT_PREFIX} {}", line.join(" "));
    // Freeing ~10^5 strings only slows the exit; the namespace (and its tables) goes with
    // the parent's guard.
    std::mem::forget(builder);
    std::mem::forget(meter);
    ExitCode::SUCCESS
}

/// `iptables-<variant>-save` of every IPv4 table, and how long it took.
fn save_all(variant: Variant) -> (String, Duration) {
    let binary = variant.binary(IpFamily::V4, "save");
    let t = Instant::now();
    let out = Command::new(&binary).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{binary}: {e}"));
    let took = t.elapsed();
    assert!(out.status.success(), "{binary}: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// One `iptables-<variant>-restore -w 5 --noflush` that declares a chain of the bench's own
/// (not a kube-ferry name) in `table` and deletes it again: what any restore touching that
/// table pays at this size (legacy reads and replaces the whole table; nft fetches a cache).
fn restore_floor(variant: Variant, table: &str) -> Duration {
    let binary = variant.binary(IpFamily::V4, "restore");
    let input = format!(
        "*{table}\n:FERRY-BENCH-FLOOR - [0:0]\n-A FERRY-BENCH-FLOOR -j RETURN\n-F FERRY-BENCH-FLOOR\n-X FERRY-BENCH-FLOOR\nCOMMIT\n"
    );
    let t = Instant::now();
    let mut child = Command::new(&binary)
        .args(["-w", "5", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write to restore");
    let out = child.wait_with_output().expect("restore ends");
    let took = t.elapsed();
    assert!(out.status.success(), "{binary}: {}", String::from_utf8_lossy(&out.stderr));
    took
}

// ---------------------------------------------------------------------------------------
// Part 5: installing N services in the lab's node, and connecting from its client.

/// In the node's namespace: removes kube-ferry's chains (of an earlier install), then syncs
/// `n - 1` filler services and the measured one (`zz-measured/svc` at [`MEASURED_IP`]:80),
/// every one of them with the pods `pods` as endpoints. Prints the sync's time.
fn child_install(variant: Variant, n: usize, pods: &[String]) -> ExitCode {
    refuse_host_namespace("--child-install");
    let pods: Vec<Ipv4Addr> = pods.iter().map(|p| p.parse().expect("pod address")).collect();
    let mut builder = StateBuilder::new(THIS_NODE);
    for i in 0..n.saturating_sub(1) {
        let ns = namespace_of(i);
        let name = format!("svc-{i}");
        let (sname, sadm) = admit_service(&ns, &name, cluster_ip(i));
        builder.set_service(sname, Some(sadm));
        let (lname, ladm) = admit_slice(&ns, &name, &pods);
        builder.set_slice(lname, Some(ladm));
    }
    let (sname, sadm) = admit_service(MEASURED_NAMESPACE, "svc", MEASURED_IP);
    builder.set_service(sname, Some(sadm));
    let (lname, ladm) = admit_slice(MEASURED_NAMESPACE, "svc", &pods);
    builder.set_slice(lname, Some(ladm));
    builder.rebuild();
    assert_eq!(builder.state().len(), n);
    let mut backend = IptablesBackend::new(IptConfig::default(), variant);
    backend.cleanup().expect("remove the previous chains");
    let t = Instant::now();
    backend.sync(builder.state(), SyncRequest::Full).expect("full sync in the lab");
    println!("{RESULT_PREFIX} install_us={}", us(t.elapsed()));
    std::mem::forget(builder);
    std::mem::forget(backend);
    ExitCode::SUCCESS
}

/// In the client's namespace: `count` TCP connects to each of `addrs` (comma-separated),
/// interleaved so that both see the same conditions, after a warm-up; prints, per address,
/// `FERRY_BENCH_LATENCY ADDR` and the connect() times in µs.
fn latency(addrs: &str, count: usize) -> ExitCode {
    refuse_host_namespace("--latency");
    let addrs: Vec<SocketAddr> = addrs.split(',').map(|a| a.parse().expect("--latency ADDR,...")).collect();
    let connect = |addr: &SocketAddr| {
        let t = Instant::now();
        let s =
            TcpStream::connect_timeout(addr, Duration::from_secs(2)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let took = t.elapsed();
        drop(s);
        took
    };
    for _ in 0..LATENCY_WARMUP {
        for addr in &addrs {
            connect(addr);
        }
    }
    let mut samples: Vec<Vec<String>> = vec![Vec::with_capacity(count); addrs.len()];
    for _ in 0..count {
        for (addr, out) in addrs.iter().zip(&mut samples) {
            out.push(format!("{:.1}", connect(addr).as_nanos() as f64 / 1_000.0));
        }
    }
    for (addr, out) in addrs.iter().zip(samples) {
        println!("{LATENCY_PREFIX} {addr} {}", out.join(","));
    }
    ExitCode::SUCCESS
}

/// The connect() times (µs) of one round and case, to the service and straight to a pod.
struct LatencyRun {
    services: usize,
    round: usize,
    to_service: Vec<f64>,
    to_pod: Vec<f64>,
    install_us: f64,
}

/// Every run of part 5 for one variant.
struct Latency {
    runs: Vec<LatencyRun>,
}

impl Latency {
    /// Every sample with `services` installed, to the service (or to the pod).
    fn all(&self, services: usize, to_pod: bool) -> Vec<f64> {
        let runs = self.runs.iter().filter(|r| r.services == services);
        runs.flat_map(|r| if to_pod { &r.to_pod } else { &r.to_service }).copied().collect()
    }
}

fn measure_latency(exe: &Path, variant: Variant) -> Result<Latency, String> {
    eprintln!("sync bench: iptables-{}: connect latency, 1 and {LATENCY_SERVICES} services ...", variant.name());
    let mut lab = Lab::single_node_tagged("bench", ENDPOINTS).map_err(|e| format!("the lab did not build: {e}"))?;
    lab.start_pod_servers_with(&PodServer::new().tcp(POD_PORT))
        .map_err(|e| format!("pod servers did not start: {e}"))?;
    let pods: Vec<String> = lab.pods().iter().map(|p| p.ip().to_string()).collect();
    let to_service = SocketAddr::from((MEASURED_IP, SERVICE_PORT)).to_string();
    let to_pod = lab.pod(0).addr(POD_PORT).to_string();
    let mut lat = Latency { runs: Vec::new() };
    for round in 0..LATENCY_ROUNDS {
        for n in [1, LATENCY_SERVICES] {
            let mut install = vec!["--child-install".to_owned(), variant.name().to_owned(), n.to_string()];
            install.extend(pods.iter().cloned());
            let stdout = run_in(lab.node(0).ns(), exe, &install, &format!("installing {n} services"))?;
            let install_us = stdout
                .lines()
                .find_map(|l| l.strip_prefix(RESULT_PREFIX))
                .map(parse_fields)
                .and_then(|f| f.get("install_us").copied())
                .unwrap_or(f64::NAN);
            let args = vec!["--latency".to_owned(), format!("{to_service},{to_pod}"), LATENCY_CONNECTS.to_string()];
            let stdout = run_in(lab.client().ns(), exe, &args, "the latency client")?;
            let samples = |addr: &str| -> Vec<f64> {
                stdout
                    .lines()
                    .filter_map(|l| l.strip_prefix(LATENCY_PREFIX))
                    .find_map(|l| l.trim().strip_prefix(addr))
                    .map(|l| l.trim().split(',').map(|x| x.parse().expect("µs")).collect())
                    .unwrap_or_default()
            };
            let run = LatencyRun {
                services: n,
                round,
                to_service: samples(&to_service),
                to_pod: samples(&to_pod),
                install_us,
            };
            if run.to_service.is_empty() || run.to_pod.is_empty() {
                return Err(format!("the latency client printed no samples:\n{stdout}"));
            }
            lat.runs.push(run);
        }
    }
    drop(lab);
    Ok(lat)
}

// ---------------------------------------------------------------------------------------
// The parent.

fn run_in(ns: &Netns, exe: &Path, args: &[String], what: &str) -> Result<String, String> {
    let out = ns.command(exe).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_fields(line: &str) -> Fields {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

/// One child's results: its variant and fields.
struct Run {
    variant: Variant,
    fields: Fields,
}

impl Run {
    fn get(&self, key: &str) -> f64 {
        *self.fields.get(key).unwrap_or(&f64::NAN)
    }

    fn services(&self) -> usize {
        self.get("services") as usize
    }
}

fn parent() -> ExitCode {
    Lab::require_root();
    let pid = std::process::id();
    // Children inherit it and compare it with their own namespace (see refuse_host_namespace).
    ferry_netlab::guard::mark_parent();
    let sizes: Vec<usize> = match std::env::var("FERRY_BENCH_SIZES") {
        Ok(s) => s.split(',').map(|x| x.trim().replace('_', "").parse().expect("FERRY_BENCH_SIZES: numbers")).collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    };
    let variants: Vec<Variant> = match std::env::var("FERRY_BENCH_VARIANTS") {
        Ok(s) => s.split(',').map(parse_variant).collect(),
        Err(_) => DEFAULT_VARIANTS.to_vec(),
    };
    let skip = std::env::var("FERRY_BENCH_SKIP").unwrap_or_default();
    let exe = std::env::current_exe().expect("the bench's own path");
    ferry_netlab::set_binaries(Binaries {
        podserver: Program::new(&exe).arg("--podserver"),
        probe: Program::new(&exe).arg("--probe"),
    });

    // Parts 1-4: a fresh namespace per variant and size.
    let mut runs: Vec<Run> = Vec::new();
    for &variant in variants.iter().filter(|_| !skip.contains("sync")) {
        for &n in &sizes {
            let v = variant.name();
            eprintln!("sync bench: iptables-{v}: {n} services x {ENDPOINTS} endpoints ...");
            let ns = Netns::create(format!("kf-bench-{pid}-{v}-{n}")).expect("bench namespace");
            let args = ["--child-sync".to_owned(), v.to_owned(), n.to_string()];
            match run_in(&ns, &exe, &args, &format!("the {v} child for {n} services")) {
                Ok(stdout) => match stdout.lines().find_map(|l| l.strip_prefix(RESULT_PREFIX)) {
                    Some(line) => runs.push(Run { variant, fields: parse_fields(line) }),
                    None => eprintln!("sync bench: the {v} child for {n} services printed no result:\n{stdout}"),
                },
                Err(e) => eprintln!("sync bench: {e}"),
            }
            drop(ns);
        }
    }

    // Part 5: a lab per variant.
    let mut latencies: Vec<(Variant, Latency)> = Vec::new();
    for &variant in variants.iter().filter(|_| !skip.contains("latency")) {
        match measure_latency(&exe, variant) {
            Ok(l) => latencies.push((variant, l)),
            Err(e) => eprintln!("sync bench: iptables-{}: {e}", variant.name()),
        }
    }

    report(&runs, &latencies);

    let left: Vec<String> = ferry_netlab::list_namespaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&format!("kf-bench-{pid}-")))
        .collect();
    if left.is_empty() {
        eprintln!("sync bench: no namespace of this run is left (`ip netns list`)");
    } else {
        eprintln!("sync bench: namespaces left behind: {left:?}");
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// Output.

fn ms(us: f64) -> String {
    if us < 1_000.0 {
        format!("{:.3}", us / 1_000.0)
    } else {
        format!("{:.1}", us / 1_000.0)
    }
}

/// (min, median) of a sample.
fn stats(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s.first().copied().unwrap_or(f64::NAN), s.get(s.len() / 2).copied().unwrap_or(f64::NAN))
}

fn report(runs: &[Run], latencies: &[(Variant, Latency)]) {
    println!();
    println!(
        "| variant | services | full sync (ms) | of which restore (ms) | restore input (MB) | ops (full) | one-service add (ms) | delete (ms) | one-endpoint change (ms) | of which restore (ms) | ops per endpoint change | no-change sync (ms, ops) | kernel objects |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        println!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {}, {} | {} |",
            r.variant.name(),
            thousands(r.services()),
            ms(r.get("full_us")),
            ms(r.get("full_restore_us")),
            r.get("input_bytes") / 1e6,
            thousands(r.get("full_operations") as usize),
            ms(r.get("add_us")),
            ms(r.get("delete_us")),
            ms(r.get("endpoint_us")),
            ms(r.get("endpoint_restore_us")),
            r.get("endpoint_operations"),
            ms(r.get("nochange_us")),
            r.get("nochange_total_operations"),
            thousands(r.get("kernel_objects") as usize),
        );
    }
    println!();
    println!("Details (medians; CPU is the iptables tools' user / sys per sync, from cutime/cstime):");
    for r in runs {
        println!(
            "- {} at {} services: full sync {} ms = restore {} ms ({} runs, {:.2} MB fed, CPU {} / {} ms) + save {} ms + in-process {} ms; \
             render_inputs alone {} ms ({:.2} MB, {} lines); \
             add {} ms (restore {} ms, in-process {} ms, {} ops, {} bytes, CPU {} / {} ms); \
             delete {} ms ({} ops); \
             endpoint change {} ms (restore {} ms, in-process {} ms, {}-{} ops, {} bytes, {} restore run(s), CPU {} / {} ms); \
             restore floor (a chain of its own created and deleted) nat {} ms, filter {} ms; \
             periodic resync (Full on filled tables) {} ms (restore {} ms, {} ops); \
             iptables-save (nat + filter): {} ms, {} lines, {} KUBE- chains, {} KUBE- rules ({} in filter); \
             state build {} ms; this child's peak RSS {:.1} MiB after the full sync, {:.1} MiB at the end",
            r.variant.name(),
            thousands(r.services()),
            ms(r.get("full_us")),
            ms(r.get("full_restore_us")),
            r.get("full_restores"),
            r.get("full_bytes") / 1e6,
            ms(r.get("full_user_us")),
            ms(r.get("full_sys_us")),
            ms(r.get("full_save_us")),
            ms(r.get("full_ours_us")),
            ms(r.get("render_us")),
            r.get("input_bytes") / 1e6,
            thousands(r.get("input_lines") as usize),
            ms(r.get("add_us")),
            ms(r.get("add_restore_us")),
            ms(r.get("add_ours_us")),
            r.get("add_operations"),
            r.get("add_bytes"),
            ms(r.get("add_user_us")),
            ms(r.get("add_sys_us")),
            ms(r.get("delete_us")),
            r.get("delete_operations"),
            ms(r.get("endpoint_us")),
            ms(r.get("endpoint_restore_us")),
            ms(r.get("endpoint_ours_us")),
            r.get("endpoint_min_operations"),
            r.get("endpoint_operations"),
            r.get("endpoint_bytes"),
            r.get("endpoint_restores"),
            ms(r.get("endpoint_user_us")),
            ms(r.get("endpoint_sys_us")),
            ms(r.get("floor_nat_us")),
            ms(r.get("floor_filter_us")),
            ms(r.get("resync_us")),
            ms(r.get("resync_restore_us")),
            thousands(r.get("resync_operations") as usize),
            ms(r.get("save_all_us")),
            thousands(r.get("saved_lines") as usize),
            thousands(r.get("saved_kube_chains") as usize),
            thousands(r.get("saved_kube_rules") as usize),
            thousands(r.get("saved_filter_kube_rules") as usize),
            ms(r.get("build_us")),
            r.get("hwm_full_mib"),
            r.get("peak_rss_mib"),
        );
    }
    for r in runs {
        let keys = ["full", "add", "delete", "endpoint", "nochange", "resync"];
        let refused: f64 = keys.iter().map(|k| r.get(&format!("{k}_refused"))).sum();
        let tests: f64 = keys.iter().map(|k| r.get(&format!("{k}_tests"))).sum();
        if refused > 0.0 || tests > 0.0 {
            println!(
                "- WARNING: {} at {} services: the kernel refused {refused} service port(s), {tests} `--test` run(s): the times above include the bisection",
                r.variant.name(),
                thousands(r.services()),
            );
        }
    }
    for (variant, l) in latencies {
        let (min1, med1) = stats(&l.all(1, false));
        let (minm, medm) = stats(&l.all(LATENCY_SERVICES, false));
        let (minp1, medp1) = stats(&l.all(1, true));
        let (minpm, medpm) = stats(&l.all(LATENCY_SERVICES, true));
        println!(
            "- {}: connect() latency to a ClusterIP (client -> node -> pod, {} connects per case over {LATENCY_ROUNDS} rounds): \
             1 service min {min1:.1} µs / median {med1:.1} µs; {} services min {minm:.1} µs / median {medm:.1} µs; \
             straight to a pod (no DNAT, interleaved with the above): with 1 service min {minp1:.1} / median {medp1:.1} µs, \
             with {} min {minpm:.1} / median {medpm:.1} µs",
            variant.name(),
            l.all(1, false).len(),
            thousands(LATENCY_SERVICES),
            thousands(LATENCY_SERVICES),
        );
        for run in &l.runs {
            let ((mins, meds), (minp, medp)) = (stats(&run.to_service), stats(&run.to_pod));
            println!(
                "  - round {}, {} service(s) (installed in {} ms): to the service min {mins:.1} / median {meds:.1} µs, to the pod min {minp:.1} / median {medp:.1} µs",
                run.round + 1,
                thousands(run.services),
                ms(run.install_us),
            );
        }
    }
    println!();
    println!("Targets:");
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let line = |what: &str, got: Option<(String, bool)>| match got {
        Some((g, ok)) => println!("- {what}: {g}: {}", verdict(ok)),
        None => println!("- {what}: not measured"),
    };
    let at = |variant: Variant, n: usize| runs.iter().find(|r| r.variant == variant && r.services() == n);
    for (variant, target) in [(Variant::Legacy, TARGET_FULL_10K_LEGACY), (Variant::Nft, TARGET_FULL_10K_NFT)] {
        line(
            &format!("full sync of 10,000 x 3 < {} s ({})", target.as_secs(), variant.name()),
            at(variant, 10_000).map(|r| (format!("{} ms", ms(r.get("full_us"))), r.get("full_us") < us(target))),
        );
    }
    for variant in [Variant::Nft, Variant::Legacy] {
        line(
            &format!("one endpoint change at 10,000 < 350 ms ({})", variant.name()),
            at(variant, 10_000)
                .map(|r| (format!("{} ms", ms(r.get("endpoint_us"))), r.get("endpoint_us") < us(TARGET_ENDPOINT_10K))),
        );
    }
    line(
        &format!("operations per endpoint change a handful (<= {TARGET_ENDPOINT_OPERATIONS}) at every size"),
        (!runs.is_empty()).then(|| {
            let each: Vec<String> = runs
                .iter()
                .map(|r| format!("{} {}: {}", r.variant.name(), thousands(r.services()), r.get("endpoint_operations")))
                .collect();
            let ok = runs.iter().all(|r| r.get("endpoint_operations") <= TARGET_ENDPOINT_OPERATIONS);
            (each.join(", "), ok)
        }),
    );
    line(
        "no-change sync sends nothing",
        (!runs.is_empty()).then(|| {
            let ops: f64 = runs.iter().map(|r| r.get("nochange_total_operations")).sum();
            let restores: f64 = runs.iter().map(|r| r.get("nochange_restores")).sum();
            (format!("{ops} operations, {restores} restore runs"), ops == 0.0 && restores == 0.0)
        }),
    );
    for variant in [Variant::Nft, Variant::Legacy] {
        line(
            &format!("first-packet latency at 10,000 within 1.5x of 1 service, medians ({})", variant.name()),
            latencies.iter().find(|(v, _)| *v == variant).map(|(_, l)| {
                let ((min1, med1), (minm, medm)) = (stats(&l.all(1, false)), stats(&l.all(LATENCY_SERVICES, false)));
                (
                    format!(
                        "median {medm:.1} µs vs {med1:.1} µs ({:.2}x; min {minm:.1} µs vs {min1:.1} µs, {:.2}x)",
                        medm / med1,
                        minm / min1
                    ),
                    medm <= med1 * TARGET_LATENCY_RATIO,
                )
            }),
        );
    }
}
