//! Benchmark of the nftables backend (`ferry-nftables`) against a real kernel.
//!
//! Run with `cargo bench -p ferry-nftables --bench sync` as root. Plain `std::time::Instant`,
//! no harness. It is not run in CI: it prints PASS/FAIL against the targets and
//! exits 0 whatever they say.
//!
//! Network safety: nothing here touches the machine's own network namespace. The parent
//! creates namespaces of its own (`kf-bench-<pid>-...`, deleted by `ferry_netlab::Netns`
//! guards on return and while a panic unwinds) and re-executes itself inside them with
//! `ip netns exec NS <this binary> --child-... ARGS` (argument vectors, never a shell). Every
//! child that may run `nft` first checks that its namespace is not the one of PID 1 and
//! refuses to go on if it is.
//!
//! What is measured, N ClusterIP services x 3 TCP endpoints each (one port):
//! 1. `sync(Full)` into an empty kernel table in a fresh namespace, and apart from it a
//!    replica of its in-process part (render the fragments, merge, `transaction`, `script`,
//!    the committed `FragmentTable`) so that nft's share is known; the CPU time of the `nft`
//!    children (user / sys) says where nft's share goes;
//! 2. one service added when N exist: `StateBuilder` diff -> `sync(Changes(&diff))`, median of 10
//!    (and the delete that follows each add);
//! 3. one endpoint changed: the same, median of 10;
//! 4. `sync(Changes(&empty diff))` (the sync loop never makes that call; it must send nothing);
//! 5. kernel objects: `SyncReport::kernel_objects` and the lines of `nft list table ip kube-ferry`;
//! 6. peak RSS (VmHWM) of the real `kube-ferry` binary (`target/release/kube-ferry`, next to
//!    this bench) at 10,000 services read from manifests, after its first full sync;
//! 7. TCP connect() latency from the lab's client to a ClusterIP with 1 and with 10,000
//!    services installed (`ferry_netlab::Lab`, 3 pods serving on 8080).
//!
//! Environment:
//! - `FERRY_BENCH_SIZES=1000,10000`: the sizes of 1-5 (default 1000,10000,30000).
//! - `FERRY_BENCH_SKIP=sync,rss,latency`: skip parts 1-5, 6 and/or 7.
//! - `FERRY_BENCH_KUBE_FERRY=PATH`: the kube-ferry binary for part 6.
//! - `FERRY_BENCH_BREAKDOWN=1`: print, per size, where the in-process time of an incremental
//!   sync goes (render / transaction / script / dropping the old render).

use ferry_fixtures::measure::{median, proc_status_mib, thousands};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ferry_fixtures::{service, slice};
use ferry_model::IpFamily;
use ferry_model::{
    Admission, Backend, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, StateDiff, SyncRequest,
};
use ferry_netlab::{Binaries, Lab, Netns, Program};
use ferry_nftables::incremental::FragmentTable;
use ferry_nftables::render::{base_ruleset, merge, render_fragment, NftConfig};
use ferry_nftables::ruleset::{script, transaction, TableFamily};
use ferry_nftables::NftablesBackend;

const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 30_000];
const ENDPOINTS: usize = 3;
const REPETITIONS: usize = 10;
const NO_CHANGE_REPETITIONS: usize = 5;
const RENDER_REPETITIONS: usize = 3;
const RESULT_PREFIX: &str = "FERRY_BENCH_RESULT";
const LATENCY_PREFIX: &str = "FERRY_BENCH_LATENCY";
const THIS_NODE: &str = "node-a";
const OTHER_NODE: &str = "node-b";
const POD_PORT: u16 = 8080;
const SERVICE_PORT: u16 = 80;

// Targets from the issue.
const TARGET_FULL_10K: Duration = Duration::from_secs(2);
const TARGET_FULL_30K: Duration = Duration::from_secs(8);
const TARGET_ADD_10K: Duration = Duration::from_millis(20);
const TARGET_ENDPOINT_10K: Duration = Duration::from_millis(10);
const TARGET_RSS_MIB: f64 = 70.0;
const TARGET_LATENCY_RATIO: f64 = 1.10;

const RSS_SERVICES: usize = 10_000;
const LATENCY_SERVICES: usize = 10_000;
const LATENCY_CONNECTS: usize = 300;
const LATENCY_WARMUP: usize = 20;
const LATENCY_ROUNDS: usize = 2;
/// The measured service of part 7: last by namespace, name and address.
const MEASURED_NAMESPACE: &str = "zz-measured";
const MEASURED_IP: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 1);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-sync") => child_sync(args[1].parse().expect("--child-sync N")),
        Some("--child-install") => child_install(args[1].parse().expect("--child-install N"), &args[2..]),
        Some("--latency") => latency(&args[1], args[2].parse().expect("--latency ADDR COUNT")),
        Some("--podserver") => ferry_netlab::podserver_main(args.into_iter().skip(1)),
        Some("--probe") => ferry_netlab::probe_main(args.into_iter().skip(1)),
        // `cargo bench` passes `--bench`; anything else is the parent.
        _ => parent(),
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
/// `variant` 1 moves endpoint 1 to an address no other endpoint uses.
fn endpoint_ip(i: usize, j: usize, variant: u8) -> Ipv4Addr {
    let k = i * ENDPOINTS + j + if variant == 1 && j == 1 { 4_000_000 } else { 0 };
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

/// Sets service `i` (with its slice, in `variant`) into the builder.
fn set_numbered(builder: &mut StateBuilder, i: usize, variant: u8) {
    let ns = namespace_of(i);
    let name = format!("svc-{i}");
    let (sname, sadm) = admit_service(&ns, &name, cluster_ip(i));
    builder.set_service(sname, Some(sadm));
    let eps: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|j| endpoint_ip(i, j, variant)).collect();
    let (lname, ladm) = admit_slice(&ns, &name, &eps);
    builder.set_slice(lname, Some(ladm));
}

/// Sets service `i` as a NodePort service (port 30000 + i % 2000), endpoints in `variant`.
fn set_nodeport(builder: &mut StateBuilder, i: usize, variant: u8) {
    let ns = namespace_of(i);
    let name = format!("svc-{i}");
    let node_port = 30000 + i32::try_from(i % 2000).expect("fits");
    let object = service(&ns, &name)
        .cluster_ip(&cluster_ip(i).to_string())
        .type_("NodePort")
        .node_port("http", i32::from(SERVICE_PORT), "TCP", node_port)
        .build();
    builder.set_service(ServiceName::new(&ns, &name), Some(ServiceSpec::admit(&object)));
    let eps: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|j| endpoint_ip(i, j, variant)).collect();
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
// Safety: children that run nft must be inside a namespace of the bench's.

use ferry_netlab::guard::refuse_host_namespace;

// ---------------------------------------------------------------------------------------
// Parts 1-5: one size, in a child inside a fresh namespace.

/// A replica of the in-process part of `NftablesBackend::sync_changes` (as of
/// 2026-12-01): render the fragments of the touched ports, plan against the committed
/// fragments, write the script, commit the plan. It runs on a `FragmentTable` of its own,
/// after the backend's sync, so the difference between the two times is nft's.
/// Returns the four times (render, plan, script, commit).
fn ours_incremental(
    table: &mut FragmentTable,
    state: &ferry_model::ProxyState,
    diff: &StateDiff,
    config: &NftConfig,
) -> [Duration; 4] {
    let t = Instant::now();
    let touched = diff.added.iter().chain(diff.changed.iter().map(|c| &c.id)).chain(&diff.removed);
    let changes: Vec<_> =
        touched.map(|id| (id.clone(), state.get(id).map(|port| render_fragment(id, port, config)))).collect();
    let t_render = t.elapsed();
    let t = Instant::now();
    let plan = table.plan(changes);
    let t_plan = t.elapsed();
    let t = Instant::now();
    black_box(script(TableFamily::Ip, &config.table, &plan.ops));
    let t_script = t.elapsed();
    let t = Instant::now();
    table.commit(plan);
    let t_commit = t.elapsed();
    [t_render, t_plan, t_script, t_commit]
}

/// A replica of the in-process part of `NftablesBackend::sync_full` (as of 2026-12-01):
/// one fragment per port, merged into the fixed part, the full transaction and its script,
/// and the committed fragment table. Returns (render + merge, transaction + script, commit,
/// script bytes, the table).
fn ours_full(
    state: &ferry_model::ProxyState,
    config: &NftConfig,
) -> (Duration, Duration, Duration, usize, FragmentTable) {
    let t = Instant::now();
    let fragments: Vec<_> = state.ports().map(|(id, port)| (id.clone(), render_fragment(id, port, config))).collect();
    let mut desired = base_ruleset(IpFamily::V4, config);
    for (_, fragment) in &fragments {
        merge(&mut desired, fragment);
    }
    let desired6 = base_ruleset(IpFamily::V6, config);
    let t_render = t.elapsed();
    let t = Instant::now();
    let mut text = script(TableFamily::Ip, &config.table, &transaction(None, &desired));
    text.push_str(&script(TableFamily::Ip6, &config.table, &transaction(None, &desired6)));
    let t_script = t.elapsed();
    let t = Instant::now();
    let table = FragmentTable::from_fragments(fragments);
    let t_commit = t.elapsed();
    let bytes = black_box(text).len();
    drop(desired);
    (t_render, t_script, t_commit, bytes, table)
}

fn child_sync(n: usize) -> ExitCode {
    refuse_host_namespace("--child-sync");
    let config = NftConfig::default();
    let mut r: BTreeMap<String, f64> = BTreeMap::new();
    let us = |d: Duration| d.as_nanos() as f64 / 1_000.0;

    let t = Instant::now();
    let mut builder = StateBuilder::new(THIS_NODE);
    for i in 0..n {
        set_numbered(&mut builder, i, 0);
    }
    let d = builder.rebuild();
    assert_eq!(d.added.len(), n);
    r.insert("build_us".into(), us(t.elapsed()));

    // 1b. The full sync into an empty table.
    r.insert("rss_build_mib".into(), proc_status_mib(std::process::id(), "VmRSS"));
    r.insert("hwm_build_mib".into(), proc_status_mib(std::process::id(), "VmHWM"));
    let mut backend = NftablesBackend::new(config.clone());
    let cpu = children_cpu();
    let t = Instant::now();
    let report = backend.sync(builder.state(), SyncRequest::Full).expect("full sync");
    r.insert("full_sync_us".into(), us(t.elapsed()));
    let after = children_cpu();
    r.insert("full_nft_user_us".into(), (after.0 - cpu.0) * 1e6);
    r.insert("full_nft_sys_us".into(), (after.1 - cpu.1) * 1e6);
    r.insert("kernel_objects".into(), report.kernel_objects as f64);
    r.insert("full_operations".into(), report.operations as f64);

    // Before anything else of this bench allocates: the state plus the backend's full sync.
    r.insert("hwm_full_mib".into(), proc_status_mib(std::process::id(), "VmHWM"));
    r.insert("rss_full_mib".into(), proc_status_mib(std::process::id(), "VmRSS"));

    // 1a. Our part of a full sync, alone (median of 3; run after the real one, so its peak
    //     memory does not count in the one above).
    let (mut renders, mut scripts, mut commits) = (Vec::new(), Vec::new(), Vec::new());
    let mut script_bytes = 0;
    let mut replica = FragmentTable::default();
    for _ in 0..RENDER_REPETITIONS {
        let (render, script, commit, bytes, table) = ours_full(builder.state(), &config);
        renders.push(render);
        scripts.push(script);
        commits.push(commit);
        script_bytes = bytes;
        replica = table;
    }
    r.insert("render_us".into(), us(median(renders)));
    r.insert("full_script_us".into(), us(median(scripts)));
    r.insert("full_commit_us".into(), us(median(commits)));
    r.insert("full_script_bytes".into(), script_bytes as f64);

    // 5. What the kernel holds.
    let t = Instant::now();
    let out = Command::new(nft_path()).args(["list", "table", "ip", "kube-ferry"]).output().expect("nft list");
    assert!(out.status.success(), "nft list: {}", String::from_utf8_lossy(&out.stderr));
    r.insert("list_us".into(), us(t.elapsed()));
    r.insert("list_lines".into(), out.stdout.iter().filter(|&&b| b == b'\n').count() as f64);
    let listing = String::from_utf8_lossy(&out.stdout);
    r.insert("listed_chains".into(), listing.lines().filter(|l| l.trim_start().starts_with("chain ")).count() as f64);

    // nft's own floor at this size: a no-op transaction (process start, cache fetch).
    let mut floor = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        nft_apply("add table ip kube-ferry\n");
        floor.push(t.elapsed());
    }
    r.insert("nft_noop_us".into(), us(median(floor)));

    let mut ours_parts: BTreeMap<&str, Vec<[Duration; 4]>> = BTreeMap::new();

    // 2. One service added (then deleted again, timed as well).
    let (mut add, mut add_ours, mut del, mut del_ours) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut add_ops = 0;
    let mut add_cpu = (0.0, 0.0);
    for rep in 0..REPETITIONS {
        let i = n + rep;
        set_numbered(&mut builder, i, 0);
        let diff = builder.rebuild();
        assert!(diff.added.len() == 1 && diff.removed.is_empty() && diff.changed.is_empty(), "{diff:?}");
        let cpu = children_cpu();
        let t = Instant::now();
        let report = backend.sync(builder.state(), SyncRequest::Changes(&diff)).expect("add sync");
        add.push(t.elapsed());
        let after = children_cpu();
        add_cpu.0 += after.0 - cpu.0;
        add_cpu.1 += after.1 - cpu.1;
        add_ops = report.operations;
        let parts = ours_incremental(&mut replica, builder.state(), &diff, &config);
        add_ours.push(parts.iter().sum::<Duration>());
        ours_parts.entry("add").or_default().push(parts);

        unset_numbered(&mut builder, i);
        let diff = builder.rebuild();
        assert!(diff.removed.len() == 1 && diff.added.is_empty() && diff.changed.is_empty(), "{diff:?}");
        let t = Instant::now();
        backend.sync(builder.state(), SyncRequest::Changes(&diff)).expect("delete sync");
        del.push(t.elapsed());
        let parts = ours_incremental(&mut replica, builder.state(), &diff, &config);
        del_ours.push(parts.iter().sum::<Duration>());
    }
    r.insert("add_us".into(), us(median(add)));
    r.insert("add_ours_us".into(), us(median(add_ours)));
    r.insert("add_operations".into(), add_ops as f64);
    r.insert("add_nft_user_us".into(), add_cpu.0 * 1e6 / REPETITIONS as f64);
    r.insert("add_nft_sys_us".into(), add_cpu.1 * 1e6 / REPETITIONS as f64);
    r.insert("delete_us".into(), us(median(del)));
    r.insert("delete_ours_us".into(), us(median(del_ours)));

    // 3. One endpoint changed: service n/2 alternates between two slices one address apart.
    let target = n / 2;
    let (mut change, mut change_ours) = (Vec::new(), Vec::new());
    let mut change_ops = 0;
    let mut change_cpu = (0.0, 0.0);
    for rep in 0..REPETITIONS {
        set_numbered(&mut builder, target, if rep % 2 == 0 { 1 } else { 0 });
        let diff = builder.rebuild();
        assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.changed.len() == 1, "{diff:?}");
        let c = &diff.changed[0].endpoints;
        assert!(c.added.len() == 1 && c.removed.len() == 1, "{diff:?}");
        let cpu = children_cpu();
        let t = Instant::now();
        let report = backend.sync(builder.state(), SyncRequest::Changes(&diff)).expect("endpoint sync");
        change.push(t.elapsed());
        let after = children_cpu();
        change_cpu.0 += after.0 - cpu.0;
        change_cpu.1 += after.1 - cpu.1;
        change_ops = report.operations;
        let parts = ours_incremental(&mut replica, builder.state(), &diff, &config);
        change_ours.push(parts.iter().sum::<Duration>());
        ours_parts.entry("endpoint").or_default().push(parts);
    }
    r.insert("endpoint_us".into(), us(median(change)));
    r.insert("endpoint_ours_us".into(), us(median(change_ours)));
    r.insert("endpoint_operations".into(), change_ops as f64);
    r.insert("endpoint_nft_user_us".into(), change_cpu.0 * 1e6 / REPETITIONS as f64);
    r.insert("endpoint_nft_sys_us".into(), change_cpu.1 * 1e6 / REPETITIONS as f64);

    // 3b. The same for a NodePort service: its port needs chains of its own (shape A), so
    // its changes go through `nft` and the kernel validates the table's chains.
    let (mut np_add, mut np_change) = (Vec::new(), Vec::new());
    for rep in 0..REPETITIONS {
        let t = Instant::now();
        let variant = u8::from(rep % 2 == 1);
        set_nodeport(&mut builder, n + REPETITIONS, variant);
        let diff = builder.rebuild();
        backend.sync(builder.state(), SyncRequest::Changes(&diff)).expect("NodePort sync");
        let elapsed = t.elapsed();
        if rep == 0 {
            np_add.push(elapsed);
        } else {
            np_change.push(elapsed);
        }
        let _ = ours_incremental(&mut replica, builder.state(), &diff, &config);
    }
    r.insert("nodeport_add_us".into(), us(median(np_add)));
    r.insert("nodeport_endpoint_us".into(), us(median(np_change)));

    // 4. No change.
    let empty = StateDiff::default();
    let mut none = Vec::new();
    let mut none_ops = 0;
    for _ in 0..NO_CHANGE_REPETITIONS {
        let t = Instant::now();
        let report = backend.sync(builder.state(), SyncRequest::Changes(&empty)).expect("no-change sync");
        none.push(t.elapsed());
        none_ops += report.operations;
    }
    r.insert("nochange_us".into(), us(median(none)));
    r.insert("nochange_operations".into(), none_ops as f64);

    // A periodic resync (`--sync-period`): Full on a table the backend filled itself.
    let t = Instant::now();
    let report = backend.sync(builder.state(), SyncRequest::Full).expect("resync");
    r.insert("resync_us".into(), us(t.elapsed()));
    r.insert("resync_operations".into(), report.operations as f64);

    // Breakdown of the in-process part of an incremental sync (medians).
    for (what, parts) in &ours_parts {
        for (k, label) in ["render", "plan", "script", "commit"].iter().enumerate() {
            let v: Vec<Duration> = parts.iter().map(|p| p[k]).collect();
            let key = format!("{what}_{label}_us");
            r.insert(key, us(median(v)));
        }
    }
    r.insert("peak_rss_mib".into(), proc_status_mib(std::process::id(), "VmHWM"));
    r.insert("services".into(), n as f64);

    let line: Vec<String> = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{RESULT_PREFIX} {}", line.join(" "));
    // Freeing ~10^5 strings only slows the exit; the namespace (and table) goes with the parent's guard.
    std::mem::forget(builder);
    std::mem::forget(replica);
    std::mem::forget(backend);
    ExitCode::SUCCESS
}

/// User and system CPU seconds of this process's waited-for children (`cutime`, `cstime`
/// in /proc/self/stat, in USER_HZ = 100 ticks a second): what the `nft` runs cost in user
/// space (parsing, cache building) and in the kernel (netlink dumps, commit).
fn children_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a number") / 100.0;
    (ticks(16), ticks(17))
}

fn nft_path() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("nft")
}

fn nft_apply(text: &str) {
    let mut child = Command::new(nft_path())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft runs");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to nft");
    let out = child.wait_with_output().expect("nft ends");
    assert!(out.status.success(), "nft -f -: {}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------
// Part 7: installing N services in the lab's node, and connecting from its client.

/// In the node's namespace: removes the tables, then syncs `n - 1` filler services and the
/// measured one (`zz-measured/svc` at [`MEASURED_IP`]:80), every one of them with the pods
/// `pods` as endpoints. Prints nothing but errors.
fn child_install(n: usize, pods: &[String]) -> ExitCode {
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
    let mut backend = NftablesBackend::new(NftConfig::default());
    backend.cleanup().expect("remove the previous tables");
    backend.sync(builder.state(), SyncRequest::Full).expect("full sync in the lab");
    ExitCode::SUCCESS
}

/// In the client's namespace: `count` TCP connects to `addr` after a warm-up; prints the
/// connect() times in µs.
fn latency(addr: &str, count: usize) -> ExitCode {
    refuse_host_namespace("--latency");
    let addr: SocketAddr = addr.parse().expect("--latency ADDR");
    let connect = || {
        let t = Instant::now();
        let s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let took = t.elapsed();
        drop(s);
        took
    };
    for _ in 0..LATENCY_WARMUP {
        connect();
    }
    let samples: Vec<String> = (0..count).map(|_| format!("{:.1}", connect().as_nanos() as f64 / 1_000.0)).collect();
    println!("{LATENCY_PREFIX} {}", samples.join(","));
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// The parent.

type Fields = BTreeMap<String, f64>;

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

struct Latency {
    one: Vec<f64>,
    many: Vec<f64>,
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
    let skip = std::env::var("FERRY_BENCH_SKIP").unwrap_or_default();
    let exe = std::env::current_exe().expect("the bench's own path");

    // Parts 1-5.
    let mut results: Vec<Fields> = Vec::new();
    for &n in sizes.iter().filter(|_| !skip.contains("sync")) {
        eprintln!("sync bench: {n} services x {ENDPOINTS} endpoints ...");
        let ns = Netns::create(format!("kf-bench-{pid}-sync{n}")).expect("bench namespace");
        match run_in(&ns, &exe, &["--child-sync".into(), n.to_string()], &format!("the child for {n} services")) {
            Ok(stdout) => match stdout.lines().find_map(|l| l.strip_prefix(RESULT_PREFIX)) {
                Some(line) => results.push(parse_fields(line)),
                None => eprintln!("sync bench: the child for {n} services printed no result:\n{stdout}"),
            },
            Err(e) => eprintln!("sync bench: {e}"),
        }
        drop(ns);
    }

    // Part 6.
    let rss = if skip.contains("rss") { None } else { measure_rss(pid) };
    // Part 7.
    let lat = if skip.contains("latency") { None } else { measure_latency(&exe) };

    report(&results, rss.as_ref(), lat.as_ref());

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

struct Rss {
    hwm_mib: f64,
    rss_mib: f64,
    first_sync_line: String,
    manifest_bytes: u64,
    /// VmRSS and VmHWM when the log said the first sync began.
    before_sync: Option<(f64, f64)>,
}

fn kube_ferry_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_BENCH_KUBE_FERRY") {
        return Some(PathBuf::from(p));
    }
    // The bench is `target/<profile>/deps/sync-<hash>`; the binary is `target/<profile>/kube-ferry`.
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    Some(dir.join("kube-ferry"))
}

/// The manifests of part 6: `RSS_SERVICES` services with their slices, 1,000 per file.
fn write_manifests(dir: &Path) -> u64 {
    let mut bytes = 0;
    for file in 0..RSS_SERVICES.div_ceil(1_000) {
        let mut text = String::new();
        for i in file * 1_000..((file + 1) * 1_000).min(RSS_SERVICES) {
            let ns = namespace_of(i);
            let ip = cluster_ip(i);
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: {ns}}}\nspec:\n  type: ClusterIP\n  clusterIP: {ip}\n  clusterIPs: [{ip}]\n  ports:\n  - {{name: http, port: {SERVICE_PORT}, protocol: TCP}}\n"
            ));
            text.push_str(&format!(
                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{i}-1\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: svc-{i}}}\naddressType: IPv4\nports:\n- {{name: http, port: {POD_PORT}, protocol: TCP}}\nendpoints:\n"
            ));
            for j in 0..ENDPOINTS {
                text.push_str(&format!(
                    "- addresses: [{}]\n  nodeName: {OTHER_NODE}\n  conditions: {{ready: true, serving: true, terminating: false}}\n",
                    endpoint_ip(i, j, 0)
                ));
            }
        }
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("services-{file:02}.yaml")), text).expect("write manifests");
    }
    bytes
}

/// `text` without ANSI escape sequences (kube-ferry's text log colours its fields).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn measure_rss(pid: u32) -> Option<Rss> {
    let Some(binary) = kube_ferry_path().filter(|p| p.is_file()) else {
        eprintln!("sync bench: no kube-ferry binary (build it with `cargo build --release --bin kube-ferry`); RSS not measured");
        return None;
    };
    eprintln!("sync bench: kube-ferry ({}) with {RSS_SERVICES} services from manifests ...", binary.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest_bytes = write_manifests(dir.path());
    let ns = Netns::create(format!("kf-bench-{pid}-rss")).expect("bench namespace");
    let args: Vec<String> = [
        "run",
        "--mode",
        "nftables",
        "--manifests",
        dir.path().to_str().expect("utf-8 temp path"),
        "--hostname-override",
        THIS_NODE,
        "--min-sync-period",
        "0",
        "--healthz-bind-address",
        "",
        "--metrics-bind-address",
        "",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut proxy = ns.spawn("kube-ferry", &binary, &args).expect("kube-ferry starts");
    let want = format!("service_ports={RSS_SERVICES}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut before_sync = None;
    let line = loop {
        let out = strip_ansi(&proxy.output());
        if before_sync.is_none() && out.contains("first sync") {
            // Manifests read and admitted, the first sync just begun (it takes seconds).
            before_sync = Some((proc_status_mib(proxy.pid(), "VmRSS"), proc_status_mib(proxy.pid(), "VmHWM")));
        }
        if let Some(l) = out.lines().find(|l| l.contains(" synced") && l.contains(&want)) {
            break Some(l.to_owned());
        }
        if proxy.try_wait().is_some() || Instant::now() > deadline {
            eprintln!("sync bench: kube-ferry did not sync {RSS_SERVICES} services:\n{out}");
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let result = line.map(|first_sync_line| {
        // `ip netns exec` execs kube-ferry under the same PID.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", proxy.pid())).unwrap_or_default();
        assert_eq!(comm.trim(), "kube-ferry", "the PID is kube-ferry's");
        Rss {
            hwm_mib: proc_status_mib(proxy.pid(), "VmHWM"),
            rss_mib: proc_status_mib(proxy.pid(), "VmRSS"),
            first_sync_line,
            manifest_bytes,
            before_sync,
        }
    });
    let _ = proxy.terminate(Duration::from_secs(5));
    drop(proxy);
    drop(ns);
    result
}

fn measure_latency(exe: &Path) -> Option<Latency> {
    ferry_netlab::set_binaries(Binaries {
        podserver: Program::new(exe).arg("--podserver"),
        probe: Program::new(exe).arg("--probe"),
    });
    eprintln!("sync bench: connect latency, 1 and {LATENCY_SERVICES} services ...");
    let mut lab = match Lab::single_node_tagged("bench", ENDPOINTS) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sync bench: the lab did not build: {e}");
            return None;
        }
    };
    if let Err(e) = lab.start_pod_servers_with(&ferry_netlab::PodServer::new().tcp(POD_PORT)) {
        eprintln!("sync bench: pod servers did not start: {e}");
        return None;
    }
    let pods: Vec<String> = lab.pods().iter().map(|p| p.ip().to_string()).collect();
    let target = SocketAddr::from((MEASURED_IP, SERVICE_PORT)).to_string();
    let mut lat = Latency { one: Vec::new(), many: Vec::new() };
    for _ in 0..LATENCY_ROUNDS {
        for n in [1, LATENCY_SERVICES] {
            let mut install = vec!["--child-install".to_owned(), n.to_string()];
            install.extend(pods.iter().cloned());
            if let Err(e) = run_in(lab.node(0).ns(), exe, &install, &format!("installing {n} services")) {
                eprintln!("sync bench: {e}");
                return None;
            }
            let args = vec!["--latency".to_owned(), target.clone(), LATENCY_CONNECTS.to_string()];
            let stdout = match run_in(lab.client().ns(), exe, &args, "the latency client") {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sync bench: {e}");
                    return None;
                }
            };
            let samples: Vec<f64> = stdout
                .lines()
                .find_map(|l| l.strip_prefix(LATENCY_PREFIX))
                .map(|l| l.trim().split(',').map(|x| x.parse().expect("µs")).collect())
                .unwrap_or_default();
            if n == 1 { &mut lat.one } else { &mut lat.many }.extend(samples);
        }
    }
    drop(lab);
    Some(lat)
}

// ---------------------------------------------------------------------------------------
// Output.

fn report(results: &[Fields], rss: Option<&Rss>, lat: Option<&Latency>) {
    let get = |r: &Fields, k: &str| *r.get(k).unwrap_or(&f64::NAN);
    let ms = |us: f64| if us < 1_000.0 { format!("{:.3}", us / 1_000.0) } else { format!("{:.1}", us / 1_000.0) };
    println!();
    println!(
        "| services | full sync (ms) | render part (ms) | one-service add (ms) | of which ours (ms) | one-endpoint change (ms) | of which ours (ms) | no-change sync (ms, ops) | kernel objects | `nft list table` lines |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}, {} | {} | {} |",
            thousands(get(r, "services") as usize),
            ms(get(r, "full_sync_us")),
            ms(get(r, "render_us") + get(r, "full_script_us") + get(r, "full_commit_us")),
            ms(get(r, "add_us")),
            ms(get(r, "add_ours_us")),
            ms(get(r, "endpoint_us")),
            ms(get(r, "endpoint_ours_us")),
            ms(get(r, "nochange_us")),
            get(r, "nochange_operations"),
            thousands(get(r, "kernel_objects") as usize),
            thousands(get(r, "list_lines") as usize),
        );
    }
    println!();
    println!("Details:");
    for r in results {
        println!(
            "- {} services: full sync in-process: render {} ms + transaction/script {} ms + commit {} ms ({:.1} MB of script, {} operations); \
             periodic resync (Full on a filled table) {} ms ({} operations); \
             one-service delete {} ms (ours {} ms); ops per add {}, per endpoint change {}; \
             a NodePort service (chain-routed): add {} ms, endpoint change {} ms; \
             nft no-op transaction {} ms; nft CPU (user / sys, ms): full sync {} / {}, per add {} / {}, per endpoint change {} / {}; `nft list table ip kube-ferry` {} ms, {} chains; state build {} ms; this child's memory: RSS {:.1} MiB after the state build (peak {:.1}), peak {:.1} MiB and RSS {:.1} MiB after the backend's full sync, peak {:.1} MiB at the end",
            thousands(get(r, "services") as usize),
            ms(get(r, "render_us")),
            ms(get(r, "full_script_us")),
            ms(get(r, "full_commit_us")),
            get(r, "full_script_bytes") / 1e6,
            get(r, "full_operations"),
            ms(get(r, "resync_us")),
            get(r, "resync_operations"),
            ms(get(r, "delete_us")),
            ms(get(r, "delete_ours_us")),
            get(r, "add_operations"),
            get(r, "endpoint_operations"),
            ms(get(r, "nodeport_add_us")),
            ms(get(r, "nodeport_endpoint_us")),
            ms(get(r, "nft_noop_us")),
            ms(get(r, "full_nft_user_us")),
            ms(get(r, "full_nft_sys_us")),
            ms(get(r, "add_nft_user_us")),
            ms(get(r, "add_nft_sys_us")),
            ms(get(r, "endpoint_nft_user_us")),
            ms(get(r, "endpoint_nft_sys_us")),
            ms(get(r, "list_us")),
            get(r, "listed_chains"),
            ms(get(r, "build_us")),
            get(r, "rss_build_mib"),
            get(r, "hwm_build_mib"),
            get(r, "hwm_full_mib"),
            get(r, "rss_full_mib"),
            get(r, "peak_rss_mib"),
        );
        if std::env::var_os("FERRY_BENCH_BREAKDOWN").is_some() {
            for what in ["add", "endpoint"] {
                println!(
                    "  - {what}, in-process (medians): render {} ms, plan {} ms, script {} ms, commit {} ms",
                    ms(get(r, &format!("{what}_render_us"))),
                    ms(get(r, &format!("{what}_plan_us"))),
                    ms(get(r, &format!("{what}_script_us"))),
                    ms(get(r, &format!("{what}_commit_us"))),
                );
            }
        }
    }
    if let Some(rss) = rss {
        println!(
            "- kube-ferry at {} services ({:.1} MB of manifests): peak RSS (VmHWM) {:.1} MiB, RSS after the first sync {:.1} MiB; its log: `{}`",
            thousands(RSS_SERVICES),
            rss.manifest_bytes as f64 / 1e6,
            rss.hwm_mib,
            rss.rss_mib,
            rss.first_sync_line.trim()
        );
        if let Some((now, hwm)) = rss.before_sync {
            println!(
                "  - when its first sync began (manifests read and admitted): RSS {now:.1} MiB, peak {hwm:.1} MiB"
            );
        }
    }
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (s.first().copied().unwrap_or(f64::NAN), s.get(s.len() / 2).copied().unwrap_or(f64::NAN))
    };
    if let Some(l) = lat {
        let (min1, med1) = stats(&l.one);
        let (minm, medm) = stats(&l.many);
        println!(
            "- connect() latency to a ClusterIP (client -> node -> pod, {} connects per case over {LATENCY_ROUNDS} rounds): \
             1 service min {min1:.1} µs / median {med1:.1} µs; {} services min {minm:.1} µs / median {medm:.1} µs",
            l.one.len(),
            thousands(LATENCY_SERVICES),
        );
    }

    println!();
    println!("Targets:");
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let by_size = |n: usize| results.iter().find(|r| get(r, "services") as usize == n);
    let line = |what: &str, got: Option<(String, bool)>| match got {
        Some((g, ok)) => println!("- {what}: {g}: {}", verdict(ok)),
        None => println!("- {what}: not measured"),
    };
    line(
        "full sync of 10,000 x 3 < 2 s",
        by_size(10_000)
            .map(|r| (format!("{} ms", ms(get(r, "full_sync_us"))), get(r, "full_sync_us") < us_of(TARGET_FULL_10K))),
    );
    line(
        "full sync of 30,000 x 3 < 8 s",
        by_size(30_000)
            .map(|r| (format!("{} ms", ms(get(r, "full_sync_us"))), get(r, "full_sync_us") < us_of(TARGET_FULL_30K))),
    );
    line(
        "one service added at 10,000 < 20 ms",
        by_size(10_000).map(|r| (format!("{} ms", ms(get(r, "add_us"))), get(r, "add_us") < us_of(TARGET_ADD_10K))),
    );
    line(
        "one endpoint change at 10,000 < 10 ms",
        by_size(10_000)
            .map(|r| (format!("{} ms", ms(get(r, "endpoint_us"))), get(r, "endpoint_us") < us_of(TARGET_ENDPOINT_10K))),
    );
    line(
        "no-change sync sends nothing",
        (!results.is_empty()).then(|| {
            let ops: f64 = results.iter().map(|r| get(r, "nochange_operations")).sum();
            (format!("{ops} operations"), ops == 0.0)
        }),
    );
    line(
        "kube-ferry peak RSS at 10,000 < 70 MiB",
        rss.map(|r| (format!("{:.1} MiB", r.hwm_mib), r.hwm_mib < TARGET_RSS_MIB)),
    );
    line(
        "first-packet latency at 10,000 within 10% of 1 service (medians)",
        lat.map(|l| {
            let ((_, med1), (_, medm)) = (stats(&l.one), stats(&l.many));
            (
                format!("{medm:.1} µs vs {med1:.1} µs ({:+.1}%)", (medm / med1 - 1.0) * 100.0),
                medm <= med1 * TARGET_LATENCY_RATIO,
            )
        }),
    );
}

fn us_of(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1_000.0
}
