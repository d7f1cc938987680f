//! Benchmark of the model (`ferry-model`) as the controller uses it.
//!
//! Run with `cargo bench --bench model`. Plain `std::time::Instant`, no harness.
//!
//! Objects arrive one by one and are admitted at once: every Service and EndpointSlice is
//! generated, admitted, handed to the builder and dropped, so the process never holds all
//! Kubernetes objects at once (as the controller never does).
//!
//! Each size runs in its own child process (the binary re-executes itself with
//! `FERRY_BENCH_N=<services>`), so the peak RSS (VmHWM) of a row is that size's alone.
//! The parent prints a markdown table and checks the targets at 30,000 services; it exits
//! non-zero when one is missed.
//!
//! Environment:
//! - `FERRY_BENCH_SIZES=1000,10000`: the sizes to run (default 1000,10000,30000).
//! - `FERRY_BENCH_N=<n>`: run one size in this process and print one result line (what
//!   the parent sets for its children).
//! - `FERRY_BENCH_BREAKDOWN=1` (with `FERRY_BENCH_N`): also print to stderr where the
//!   time of the full `diff::diff` goes (map walk versus id comparisons).

use ferry_fixtures::measure::{median, proc_status_mib, thousands};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ferry_fixtures::{service, slice};
use ferry_model::diff::diff;
use ferry_model::{Admission, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, StateDiff};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 30_000];
const ENDPOINTS_PER_SLICE: usize = 10;
const NODES: usize = 20;
const NAMESPACES: usize = 50;
/// The builder's node: one of the `NODES`, so ~5% of endpoints are local.
const THIS_NODE: usize = 7;
const CHANGE_REPETITIONS: usize = 200;
const ADD_REPETITIONS: usize = 50;
const FULL_DIFF_REPETITIONS: usize = 20;
const RESULT_PREFIX: &str = "FERRY_BENCH_RESULT";

// Targets, checked at the largest size (30,000 services).
const TARGET_SIZE: usize = 30_000;
const TARGET_FULL_BUILD: Duration = Duration::from_secs(1);
const TARGET_ONE_ENDPOINT: Duration = Duration::from_millis(1);
const TARGET_PEAK_RSS_MIB: f64 = 150.0;

fn main() -> ExitCode {
    if let Ok(n) = std::env::var("FERRY_BENCH_N") {
        let n: usize = n.parse().expect("FERRY_BENCH_N is a number of services");
        let result = run_one(n);
        println!("{RESULT_PREFIX} {}", result.to_line());
        return ExitCode::SUCCESS;
    }
    parent()
}

// ---------------------------------------------------------------------------------------
// Object generation: deterministic, one object at a time.

fn namespace_of(i: usize) -> String {
    format!("ns-{:02}", i % NAMESPACES)
}

fn node_name(n: usize) -> String {
    format!("node-{n:02}")
}

/// A cluster IP in 10.96.0.0/12 (10.96.0.0 - 10.111.255.255), skipping 10.96.0.0-10.96.0.15
/// (the API server's and DNS's addresses live there in a real cluster).
fn cluster_ip(i: usize) -> String {
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 16));
    let ip = Ipv4Addr::from(base + u32::try_from(i).expect("fits") % ((1 << 20) - 16));
    ip.to_string()
}

/// A pod IP in 10.244.0.0/16, never ending in .0 or .255. With 10 endpoints per service
/// the /16 (64,516 such addresses) wraps after ~6,450 services: pods then back several
/// services, which only repeats addresses across services, never within one slice.
fn pod_ip(k: usize) -> String {
    let k = k % (256 * 254);
    Ipv4Addr::new(10, 244, (k / 254) as u8, (k % 254 + 1) as u8).to_string()
}

fn service_object(i: usize) -> Service {
    service(&namespace_of(i), &format!("svc-{i}")).cluster_ip(&cluster_ip(i)).port("http", 80, "TCP").build()
}

/// The slice of service `i`. `variant` 1 replaces the address of endpoint 3 with one no
/// other endpoint of the slice uses (the "one-endpoint change").
fn slice_object(i: usize, variant: u8) -> EndpointSlice {
    let mut b = slice(&namespace_of(i), &format!("svc-{i}-{:05x}", i * 7919 % 0x10_0000), &format!("svc-{i}"), "IPv4")
        .port("http", 8080, "TCP");
    for j in 0..ENDPOINTS_PER_SLICE {
        let k = i * ENDPOINTS_PER_SLICE + j;
        let address = if variant == 1 && j == 3 { pod_ip(k + 32_768) } else { pod_ip(k) };
        b = b.ready(&address, &node_name(k % NODES));
    }
    b.build()
}

fn service_key(i: usize) -> ServiceName {
    ServiceName::new(&namespace_of(i), &format!("svc-{i}"))
}

fn slice_key(s: &EndpointSlice) -> SliceName {
    SliceName::new(s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap_or(""))
}

/// Generates, admits and drops a Service; returns the admission and the time `admit` took.
fn admit_service(i: usize) -> (ServiceName, Admission<ServiceSpec>, Duration) {
    let object = service_object(i);
    let t = Instant::now();
    let admission = ServiceSpec::admit(&object);
    let took = t.elapsed();
    drop(object);
    assert!(
        matches!(&admission, Admission::Accepted { skipped, .. } if skipped.is_empty()),
        "service {i}: {admission:?}"
    );
    (service_key(i), admission, took)
}

/// Generates, admits and drops an EndpointSlice.
fn admit_slice(i: usize, variant: u8) -> (SliceName, Admission<SliceSpec>, Duration) {
    let object = slice_object(i, variant);
    let key = slice_key(&object);
    let t = Instant::now();
    let admission = SliceSpec::admit(&object);
    let took = t.elapsed();
    drop(object);
    assert!(
        matches!(&admission, Admission::Accepted { skipped, .. } if skipped.is_empty()),
        "slice {i}: {admission:?}"
    );
    (key, admission, took)
}

// ---------------------------------------------------------------------------------------
// One size, in a child process.

#[derive(Debug, Default)]
struct SizeResult {
    services: usize,
    endpoints: usize,
    local_endpoints: usize,
    generate: Duration,
    admit: Duration,
    set: Duration,
    first_rebuild: Duration,
    change_median: Duration,
    change_max: Duration,
    add_median: Duration,
    relist_admit: Duration,
    relist: Duration,
    state_clone: Duration,
    full_diff: Duration,
    full_diff_first: Duration,
    rss_after_build_mib: f64,
    peak_rss_mib: f64,
}

impl SizeResult {
    fn full_build(&self) -> Duration {
        self.admit + self.set + self.first_rebuild
    }

    fn to_line(&self) -> String {
        let us = |d: Duration| d.as_nanos() as f64 / 1_000.0;
        let fields: [(&str, String); 17] = [
            ("services", self.services.to_string()),
            ("endpoints", self.endpoints.to_string()),
            ("local_endpoints", self.local_endpoints.to_string()),
            ("generate_us", us(self.generate).to_string()),
            ("admit_us", us(self.admit).to_string()),
            ("set_us", us(self.set).to_string()),
            ("first_rebuild_us", us(self.first_rebuild).to_string()),
            ("change_median_us", us(self.change_median).to_string()),
            ("change_max_us", us(self.change_max).to_string()),
            ("add_median_us", us(self.add_median).to_string()),
            ("relist_admit_us", us(self.relist_admit).to_string()),
            ("relist_us", us(self.relist).to_string()),
            ("state_clone_us", us(self.state_clone).to_string()),
            ("full_diff_us", us(self.full_diff).to_string()),
            ("full_diff_first_us", us(self.full_diff_first).to_string()),
            ("rss_after_build_mib", self.rss_after_build_mib.to_string()),
            ("peak_rss_mib", self.peak_rss_mib.to_string()),
        ];
        fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }

    fn from_line(line: &str) -> SizeResult {
        let map: BTreeMap<&str, &str> = line.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
        let num = |k: &str| -> f64 {
            map.get(k).unwrap_or_else(|| panic!("child result lacks {k}: {line}")).parse().expect("a number")
        };
        let dur = |k: &str| Duration::from_nanos((num(k) * 1_000.0).round() as u64);
        SizeResult {
            services: num("services") as usize,
            endpoints: num("endpoints") as usize,
            local_endpoints: num("local_endpoints") as usize,
            generate: dur("generate_us"),
            admit: dur("admit_us"),
            set: dur("set_us"),
            first_rebuild: dur("first_rebuild_us"),
            change_median: dur("change_median_us"),
            change_max: dur("change_max_us"),
            add_median: dur("add_median_us"),
            relist_admit: dur("relist_admit_us"),
            relist: dur("relist_us"),
            state_clone: dur("state_clone_us"),
            full_diff: dur("full_diff_us"),
            full_diff_first: dur("full_diff_first_us"),
            rss_after_build_mib: num("rss_after_build_mib"),
            peak_rss_mib: num("peak_rss_mib"),
        }
    }
}

/// Asserts the diff is one changed port whose endpoints lost one and gained one.
fn assert_one_endpoint_change(d: &StateDiff, what: &str) {
    assert!(d.added.is_empty() && d.removed.is_empty() && !d.node_changed, "{what}: {d:?}");
    assert_eq!(d.changed.len(), 1, "{what}: {d:?}");
    let change = &d.changed[0];
    assert!(!change.frontend_changed, "{what}: {d:?}");
    assert_eq!(change.endpoints.added.len(), 1, "{what}: {d:?}");
    assert_eq!(change.endpoints.removed.len(), 1, "{what}: {d:?}");
    assert!(change.endpoints.updated.is_empty(), "{what}: {d:?}");
}

fn run_one(n: usize) -> SizeResult {
    let mut r = SizeResult { services: n, ..SizeResult::default() };
    let mut builder = StateBuilder::new(&node_name(THIS_NODE));

    // 1. Full build: every object generated, admitted, set and dropped; then the first
    //    rebuild. Generation is timed apart and not counted.
    let started = Instant::now();
    for i in 0..n {
        let (name, admission, took) = admit_service(i);
        r.admit += took;
        let t = Instant::now();
        builder.set_service(name, Some(admission));
        r.set += t.elapsed();

        let (name, admission, took) = admit_slice(i, 0);
        r.admit += took;
        let t = Instant::now();
        builder.set_slice(name, Some(admission));
        r.set += t.elapsed();
    }
    r.generate = started.elapsed().saturating_sub(r.admit + r.set);
    let t = Instant::now();
    let first = builder.rebuild();
    r.first_rebuild = t.elapsed();
    assert_eq!(first.added.len(), n, "first rebuild adds every service port");
    assert!(first.removed.is_empty() && first.changed.is_empty());
    drop(first);
    let state = builder.state();
    assert_eq!(state.len(), n);
    r.endpoints = state.endpoint_count();
    assert_eq!(r.endpoints, n * ENDPOINTS_PER_SLICE);
    r.local_endpoints = state.ports().flat_map(|(_, p)| p.endpoints.iter()).filter(|e| e.is_local).count();
    r.rss_after_build_mib = proc_status_mib(std::process::id(), "VmRSS");

    // 2. One-endpoint change: one slice replaced by a version with one endpoint's address
    //    changed, alternating between the two versions. Timed: set_slice + rebuild.
    let target = n / 2;
    let mut times = Vec::with_capacity(CHANGE_REPETITIONS);
    for rep in 0..CHANGE_REPETITIONS {
        let variant = if rep % 2 == 0 { 1 } else { 0 };
        let (name, admission, _) = admit_slice(target, variant);
        let t = Instant::now();
        builder.set_slice(name, Some(admission));
        let d = builder.rebuild();
        times.push(t.elapsed());
        assert_one_endpoint_change(&d, "one-endpoint change");
    }
    r.change_max = *times.iter().max().expect("repetitions");
    r.change_median = median(times);

    // 3. One service added: a new service and its slice. Timed: set_service + set_slice +
    //    rebuild. Each is deleted again (untimed) so the state stays at n services.
    let mut times = Vec::with_capacity(ADD_REPETITIONS);
    for rep in 0..ADD_REPETITIONS {
        let i = n + rep;
        let (svc_name, svc_admission, _) = admit_service(i);
        let (slice_name, slice_admission, _) = admit_slice(i, 0);
        let t = Instant::now();
        builder.set_service(svc_name.clone(), Some(svc_admission));
        builder.set_slice(slice_name.clone(), Some(slice_admission));
        let d = builder.rebuild();
        times.push(t.elapsed());
        assert_eq!(d.added.len(), 1, "one service added: {d:?}");
        assert!(d.removed.is_empty() && d.changed.is_empty(), "one service added: {d:?}");
        builder.set_slice(slice_name, None);
        builder.set_service(svc_name, None);
        let d = builder.rebuild();
        assert_eq!(d.removed.len(), 1, "one service deleted: {d:?}");
    }
    r.add_median = median(times);

    // 4. No-change relist: every slice set again to an identical admission. Timed:
    //    set_slice (all n) + rebuild; admission of the relisted objects timed apart.
    for i in 0..n {
        let (name, admission, took) = admit_slice(i, 0);
        r.relist_admit += took;
        let t = Instant::now();
        builder.set_slice(name, Some(admission));
        r.relist += t.elapsed();
    }
    assert!(!builder.has_pending_changes(), "identical slices leave nothing pending");
    let t = Instant::now();
    let d = builder.rebuild();
    r.relist += t.elapsed();
    assert!(d.is_empty(), "no-change relist: {d:?}");

    // 5. Full diff between two states differing in one endpoint: the state is cloned
    //    (sharing unchanged ports, as a backend's committed copy does), one endpoint is
    //    changed through the builder, then diff::diff(old, new) is timed.
    let t = Instant::now();
    let old = builder.state().clone();
    r.state_clone = t.elapsed();
    let (name, admission, _) = admit_slice(target, 1);
    builder.set_slice(name, Some(admission));
    let incremental = builder.rebuild();
    assert_one_endpoint_change(&incremental, "one-endpoint change before the full diff");
    let t = Instant::now();
    let full = black_box(diff(black_box(&old), black_box(builder.state())));
    r.full_diff_first = t.elapsed();
    assert_one_endpoint_change(&full, "full diff");
    assert_eq!(full, incremental, "the full diff equals the incremental one");
    // The first run is cold (as a backend's sync would usually find it); the table
    // reports the median of repeated runs, the details the first.
    let mut times = vec![r.full_diff_first];
    for _ in 0..FULL_DIFF_REPETITIONS {
        let t = Instant::now();
        let again = black_box(diff(black_box(&old), black_box(builder.state())));
        times.push(t.elapsed());
        assert_eq!(again, full);
    }
    r.full_diff = median(times);
    if std::env::var_os("FERRY_BENCH_BREAKDOWN").is_some() {
        breakdown_full_diff(&old, builder.state());
    }
    drop(old);

    // 6. Peak RSS of this process (this size only).
    r.peak_rss_mib = proc_status_mib(std::process::id(), "VmHWM");
    black_box(&builder);
    // The process ends right after: freeing ~10^6 small allocations would only slow it.
    std::mem::forget(builder);
    r
}

/// Where the time of `diff::diff` goes (`FERRY_BENCH_BREAKDOWN=1`, printed to stderr):
/// walking both maps, comparing ids as `diff` does (string compares), comparing ids by
/// pointer first (what an `Arc::ptr_eq` fast path would cost).
fn breakdown_full_diff(old: &ferry_model::ProxyState, new: &ferry_model::ProxyState) {
    use std::sync::Arc;
    let time = |what: &str, f: &dyn Fn() -> usize| {
        let mut best = Duration::MAX;
        let mut out = 0;
        for _ in 0..5 {
            let t = Instant::now();
            out = black_box(f());
            best = best.min(t.elapsed());
        }
        eprintln!("breakdown: {what}: {:.3} ms (best of 5, result {out})", best.as_secs_f64() * 1e3);
    };
    time("diff::diff", &|| diff(black_box(old), black_box(new)).touched_ports());
    time("walk both maps only", &|| {
        old.ports().zip(new.ports()).filter(|((a, _), (b, _))| std::ptr::eq(*a, *b)).count()
    });
    time("walk + id == (string compares)", &|| old.ports().zip(new.ports()).filter(|((a, _), (b, _))| a == b).count());
    time("walk + id cmp (as diff does)", &|| {
        old.ports().zip(new.ports()).filter(|((a, _), (b, _))| a.cmp(b) == std::cmp::Ordering::Equal).count()
    });
    time("walk + id ptr_eq fast path", &|| {
        old.ports()
            .zip(new.ports())
            .filter(|((a, _), (b, _))| {
                Arc::ptr_eq(&a.service.namespace, &b.service.namespace)
                    && Arc::ptr_eq(&a.service.name, &b.service.name)
                    && Arc::ptr_eq(&a.port_name, &b.port_name)
                    && a.protocol == b.protocol
                    && a.family == b.family
            })
            .count()
    });
    time("walk + port pointer compare", &|| {
        old.ports().zip(new.ports()).filter(|((_, a), (_, b))| std::ptr::eq(*a, *b)).count()
    });
}

// ---------------------------------------------------------------------------------------
// The parent: one child per size, then the table and the targets.

fn parent() -> ExitCode {
    let sizes: Vec<usize> = match std::env::var("FERRY_BENCH_SIZES") {
        Ok(s) => s.split(',').map(|x| x.trim().replace('_', "").parse().expect("FERRY_BENCH_SIZES: numbers")).collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    };
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut results = Vec::new();
    for &n in &sizes {
        eprintln!("model bench: {n} services x {ENDPOINTS_PER_SLICE} endpoints ...");
        let out = Command::new(&exe)
            .env("FERRY_BENCH_N", n.to_string())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", exe.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            eprintln!("model bench: the child for {n} services failed ({})", out.status);
            return ExitCode::FAILURE;
        }
        let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(RESULT_PREFIX)) else {
            eprintln!("model bench: the child for {n} services printed no result:\n{stdout}");
            return ExitCode::FAILURE;
        };
        results.push(SizeResult::from_line(line));
    }

    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    println!();
    println!(
        "| services | endpoints | admit (ms) | first rebuild (ms) | full build total (ms) | one-endpoint change median / max (µs) | one-service add median (µs) | no-change relist (ms) | full diff (ms) | peak RSS (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {:.3} | {:.1} |",
            thousands(r.services),
            thousands(r.endpoints),
            ms(r.admit),
            ms(r.first_rebuild),
            ms(r.full_build()),
            us(r.change_median),
            us(r.change_max),
            us(r.add_median),
            ms(r.relist),
            r.full_diff.as_secs_f64() * 1e3,
            r.peak_rss_mib,
        );
    }
    println!();
    println!("Details (not in the table):");
    for r in &results {
        println!(
            "- {} services: set_service/set_slice {} ms, object generation {} ms (not counted), relist admission {} ms (not in the relist column), state clone {} µs, first (cold) full diff {} µs, local endpoints {} ({:.1}%), RSS after the first build {:.1} MiB",
            thousands(r.services),
            ms(r.set),
            ms(r.generate),
            ms(r.relist_admit),
            us(r.state_clone),
            us(r.full_diff_first),
            r.local_endpoints,
            100.0 * r.local_endpoints as f64 / r.endpoints.max(1) as f64,
            r.rss_after_build_mib,
        );
    }

    println!();
    let Some(big) = results.iter().find(|r| r.services == TARGET_SIZE) else {
        println!("Targets: not checked ({} services was not run).", thousands(TARGET_SIZE));
        return ExitCode::SUCCESS;
    };
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let checks = [
        (
            format!("full build of {} services x {ENDPOINTS_PER_SLICE} endpoints < 1 s", thousands(TARGET_SIZE)),
            format!("{} ms", ms(big.full_build())),
            big.full_build() < TARGET_FULL_BUILD,
        ),
        (
            "one-endpoint change (set_slice + rebuild, median) < 1 ms".to_owned(),
            format!("{} µs (max {} µs)", us(big.change_median), us(big.change_max)),
            big.change_median < TARGET_ONE_ENDPOINT,
        ),
        (
            "full diff::diff of two states one endpoint apart (median) < 1 ms".to_owned(),
            format!("{} µs", us(big.full_diff)),
            big.full_diff < TARGET_ONE_ENDPOINT,
        ),
        (
            "peak RSS < 150 MiB".to_owned(),
            format!("{:.1} MiB", big.peak_rss_mib),
            big.peak_rss_mib < TARGET_PEAK_RSS_MIB,
        ),
    ];
    println!("Targets at {} services:", thousands(TARGET_SIZE));

    for (what, got, ok) in &checks {
        println!("- {what}: {got}: {}", verdict(*ok));
    }
    if checks.iter().all(|(_, _, ok)| *ok) {
        ExitCode::SUCCESS
    } else {
        eprintln!("model bench: a target was missed at {} services", thousands(TARGET_SIZE));
        ExitCode::FAILURE
    }
}
