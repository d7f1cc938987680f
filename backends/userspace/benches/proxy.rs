//! kube-ferry's userspace TCP proxy against HAProxy, same machine, same run, same backends.
//!
//! `cargo bench -p ferry-userspace --bench proxy`. Everything is on loopback: two backends
//! in this process (one Tokio runtime), the kube-ferry frontend in this process (its own
//! two-worker runtime, through the crate's public API), HAProxy as a child process
//! (`mode tcp`, round-robin, two threads), and blocking clients on plain threads.
//!
//! Backend protocol (the first byte of a connection chooses):
//! - `D`: the backend sends bytes as fast as it can until the client goes (download).
//! - `U`: the backend reads and discards until EOF (upload).
//! - `R` + 15 bytes: the backend answers 128 bytes and closes (request/response).
//! - nothing: the backend waits (idle connections for the memory test).
//!
//! Measured: one long connection's throughput each way; connections per second and
//! request latency with 4 client threads; kube-ferry's RSS per idle connection (and
//! HAProxy's, from /proc/PID/status). Always exits 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_userspace::balancer::Balancer;
use ferry_userspace::listener::{Limits, TcpFrontend};
use ferry_userspace::tcp::{CopyMethod, TcpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Idle connections for the memory test (fewer when the descriptor limit cannot be raised).
const IDLE_CONNECTIONS: usize = 10_000;
/// Descriptors wanted: 10,000 proxied (client, proxy x2, backend) plus 10,000 direct (x2).
const NOFILE_WANTED: u64 = 65_536;
const REEXEC_MARK: &str = "FERRY_PROXY_BENCH_PRLIMIT";
const THROUGHPUT_SECONDS: u64 = 3;
const THROUGHPUT_MAX_BYTES: u64 = 2 << 30;
const CPS_SECONDS: u64 = 3;
const CPS_THREADS: usize = 4;
const RESPONSE: usize = 128;
const TARGET_KIB_PER_CONNECTION: f64 = 64.0;

const IDLE_CLIENTS_ARG: &str = "--idle-clients";

/// Connections the backends hold open right now.
static BACKEND_OPEN: AtomicUsize = AtomicUsize::new(0);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == IDLE_CLIENTS_ARG) {
        return idle_clients(args[i + 1].parse().unwrap(), args[i + 2].parse().unwrap());
    }
    let idle_n = ensure_nofile();
    let backend_rt = runtime("backend");
    let backends = [start_backend(&backend_rt), start_backend(&backend_rt)];

    // kube-ferry: the frontend exactly as the userspace backend builds it.
    let proxy_rt = runtime("ferry");
    let limits = Limits::new(1_000_000, 1_000_000);
    let start = |copy: CopyMethod| {
        let balancer = Arc::new(Mutex::new(Balancer::new(backends.to_vec(), None)));
        proxy_rt
            .block_on(TcpFrontend::start(
                "127.0.0.1:0".parse().unwrap(),
                balancer,
                TcpFrontend::service_semaphore(&limits),
                limits.clone(),
                TcpOptions { idle: Duration::from_secs(600), copy, sources: None },
            ))
            .expect("kube-ferry frontend")
    };
    // The default (adaptive) first; then the two pure methods it chooses between.
    let frontends = [start(CopyMethod::default()), start(CopyMethod::Buffered), start(CopyMethod::Splice)];
    let ferry = frontends[0].addr();

    let haproxy = match Haproxy::start(&backends) {
        Ok(h) => Some(h),
        Err(e) => {
            println!("HAProxy could not start: {e} (install it with `apt-get install -y haproxy`)");
            None
        }
    };
    let hap = haproxy.as_ref().map(|h| h.addr);
    let direct = backends[0];
    println!(
        "backends {} {}; kube-ferry {ferry} ({:?}), {} (buffered), {} (splice); HAProxy {}",
        backends[0],
        backends[1],
        CopyMethod::default(),
        frontends[1].addr(),
        frontends[2].addr(),
        hap.map_or("-".into(), |a| a.to_string())
    );

    // (1) Throughput of one long connection.
    let targets = [Some(direct), Some(ferry), Some(frontends[1].addr()), Some(frontends[2].addr()), hap];
    const HAP: usize = 4;
    let mut down = [None; 5];
    let mut up = [None; 5];
    for (i, target) in targets.into_iter().enumerate() {
        let Some(target) = target else { continue };
        down[i] = Some(download(target));
        up[i] = Some(upload(target));
        println!("throughput {target}: down {:.0} MB/s, up {:.0} MB/s", down[i].unwrap(), up[i].unwrap());
    }

    // (2) Connections per second and latency.
    let mut cps: [Option<Cps>; 5] = [None, None, None, None, None];
    for (i, target) in targets.into_iter().enumerate() {
        let Some(target) = target else { continue };
        let _ = requests(target, Duration::from_millis(300)); // warm up
        let r = requests(target, Duration::from_secs(CPS_SECONDS));
        println!(
            "requests {target}: {:.0} conn/s, p50 {:.0} µs, p99 {:.0} µs, {} errors",
            r.per_second, r.p50, r.p99, r.errors
        );
        cps[i] = Some(r);
    }

    // (3) Memory per idle connection.
    let ferry_mem = idle_memory_ferry(ferry, direct, idle_n);
    let hap_mem = haproxy.as_ref().map(|h| idle_memory_haproxy(h, idle_n));

    drop(haproxy);
    drop(frontends);

    // The table.
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let c = |i: usize, g: fn(&Cps) -> f64, p: usize| f(cps[i].as_ref().map(g), p);
    let added = |i: usize| match (&cps[0], &cps[i]) {
        (Some(d), Some(x)) => format!("{:+.0}", x.p99 - d.p99),
        _ => "-".into(),
    };
    println!();
    println!(
        "| measure | direct to backend | kube-ferry ({:?}, the default) | kube-ferry (buffered) | kube-ferry (splice) | HAProxy |",
        CopyMethod::default()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let cells = |values: [String; 5]| values.join(" | ");
    println!("| 1 connection, backend → client (MB/s) | {} |", cells(down.map(|v| f(v, 0))));
    println!("| 1 connection, client → backend (MB/s) | {} |", cells(up.map(|v| f(v, 0))));
    let row = |label: &str, g: fn(&Cps) -> f64| println!("| {label} | {} |", cells(std::array::from_fn(|i| c(i, g, 0))));
    row(&format!("new connections/s ({CPS_THREADS} threads, {CPS_SECONDS} s, 16 B → 128 B)"), |r| r.per_second);
    row("request latency p50 (µs)", |r| r.p50);
    row("request latency p99 (µs)", |r| r.p99);
    println!("| p99 added vs direct (µs) | 0 | {} |", (1..5).map(added).collect::<Vec<_>>().join(" | "));
    row("failed requests", |r| r.errors as f64);
    println!(
        "| RSS per idle connection, {idle_n} held (KiB) | - | {:.1} (proxy + backends; {:.1} without the backends' share) | - | - | {} |",
        ferry_mem.process_kib,
        ferry_mem.proxy_kib,
        f(hap_mem, 1)
    );
    println!();
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    match (down[1], down[HAP], up[1], up[HAP]) {
        (Some(fd), Some(hd), Some(fu), Some(hu)) => {
            println!(
                "{}: kube-ferry throughput backend → client >= HAProxy's ({fd:.0} vs {hd:.0} MB/s)",
                verdict(fd >= hd)
            );
            println!(
                "{}: kube-ferry throughput client → backend >= HAProxy's ({fu:.0} vs {hu:.0} MB/s)",
                verdict(fu >= hu)
            );
        }
        _ => println!("FAIL: kube-ferry throughput >= HAProxy's (HAProxy not measured)"),
    }
    match (&cps[1], &cps[HAP]) {
        (Some(fc), Some(hc)) => println!(
            "{}: kube-ferry conn/s >= HAProxy's ({:.0} vs {:.0})",
            verdict(fc.per_second >= hc.per_second),
            fc.per_second,
            hc.per_second
        ),
        _ => println!("FAIL: kube-ferry conn/s >= HAProxy's (HAProxy not measured)"),
    }
    println!(
        "{}: kube-ferry memory < {TARGET_KIB_PER_CONNECTION} KiB per idle connection ({:.1} KiB with the backends' share, {:.1} KiB without, {idle_n} connections{})",
        verdict(ferry_mem.process_kib < TARGET_KIB_PER_CONNECTION),
        ferry_mem.process_kib,
        ferry_mem.proxy_kib,
        if idle_n < IDLE_CONNECTIONS { "; fewer than 10,000: descriptor limit" } else { "" }
    );
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build().unwrap()
}

/// The soft descriptor limit from /proc/self/limits.
fn nofile_soft() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Re-executes under `prlimit --nofile` when the limit is too low; returns how many idle
/// connections the limit allows.
fn ensure_nofile() -> usize {
    let soft = nofile_soft();
    if soft < NOFILE_WANTED && std::env::var_os(REEXEC_MARK).is_none() {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().expect("own path");
        let nofile = format!("--nofile={NOFILE_WANTED}:{NOFILE_WANTED}");
        // prlimit fails without CAP_SYS_RESOURCE when the hard limit is lower: try it first.
        let allowed = Command::new("prlimit")
            .arg(&nofile)
            .arg("true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !allowed {
            println!("descriptor limit {soft}, and prlimit {nofile} is not permitted here");
        } else {
            println!("descriptor limit {soft}: re-running under prlimit {nofile}");
            let e = Command::new("prlimit")
                .arg(format!("--nofile={NOFILE_WANTED}:{NOFILE_WANTED}"))
                .arg("--")
                .arg(exe)
                .args(std::env::args_os().skip(1))
                .env(REEXEC_MARK, "1")
                .exec();
            println!("prlimit failed ({e}); going on with the current limit");
        }
    }
    let soft = nofile_soft();
    // The idle clients are in a child process: here 3 descriptors per proxied idle
    // connection (proxy x2, backend), and some to spare.
    let n = (soft.saturating_sub(300) / 3) as usize;
    if n < IDLE_CONNECTIONS {
        println!("descriptor limit {soft}: the idle test uses {n} connections, not {IDLE_CONNECTIONS}");
    }
    n.min(IDLE_CONNECTIONS)
}

fn start_backend(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                BACKEND_OPEN.fetch_add(1, Ordering::Relaxed);
                let _ = s.set_nodelay(true);
                let mut cmd = [0u8; 1];
                if s.read_exact(&mut cmd).await.is_ok() {
                    match cmd[0] {
                        b'D' => {
                            let chunk = vec![0x5au8; 256 * 1024];
                            while s.write_all(&chunk).await.is_ok() {}
                        }
                        b'U' => {
                            let mut buf = vec![0u8; 256 * 1024];
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        }
                        b'R' => {
                            let mut rest = [0u8; 15];
                            if s.read_exact(&mut rest).await.is_ok() {
                                let _ = s.write_all(&[b'r'; RESPONSE]).await;
                            }
                        }
                        _ => {}
                    }
                }
                BACKEND_OPEN.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// HAProxy as a child process; ended (by its PID) on drop.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Haproxy {
    fn start(backends: &[SocketAddr; 2]) -> Result<Haproxy, String> {
        let dir = std::env::temp_dir().join(format!("ferry-proxy-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // As high as this process's descriptor limit allows (2 per connection).
        let maxconn = ((nofile_soft().saturating_sub(200)) / 2).min(100_000);
        let conf = format!(
            "global\n    maxconn {maxconn}\n    nbthread 2\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 600s\n    timeout server 600s\n\
             frontend bench\n    bind {addr}\n    default_backend pods\n\
             backend pods\n    balance roundrobin\n    server a {}\n    server b {}\n",
            backends[0], backends[1]
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("haproxy.out")).map_err(|e| e.to_string())?;
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut h = Haproxy { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while StdStream::connect(addr).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                let out = std::fs::read_to_string(h.dir.join("haproxy.out")).unwrap_or_default();
                return Err(format!("exited {status}: {out}"));
            }
            if Instant::now() > deadline {
                return Err("its port did not accept within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(h)
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // Only the child this bench started, by its PID.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rss_kib(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// MB/s (10^6 bytes) of one connection, backend to client.
fn download(target: SocketAddr) -> f64 {
    let mut s = StdStream::connect(target).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"D").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let limit = Duration::from_secs(THROUGHPUT_SECONDS);
    let mut total = 0u64;
    while total < THROUGHPUT_MAX_BYTES && start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// MB/s of one connection, client to backend.
fn upload(target: SocketAddr) -> f64 {
    let mut s = StdStream::connect(target).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"U").unwrap();
    let buf = vec![0xa5u8; 256 * 1024];
    let start = Instant::now();
    let limit = Duration::from_secs(THROUGHPUT_SECONDS);
    let mut total = 0u64;
    while total < THROUGHPUT_MAX_BYTES && start.elapsed() < limit {
        if s.write_all(&buf).is_err() {
            break;
        }
        total += buf.len() as u64;
    }
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

struct Cps {
    per_second: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

/// Short connections (connect, 16-byte request, 128-byte answer, close) from
/// [`CPS_THREADS`] threads for `length`; latency is connect to the answer's EOF.
fn requests(target: SocketAddr, length: Duration) -> Cps {
    let start = Instant::now();
    let threads: Vec<_> = (0..CPS_THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0;
                let mut answer = Vec::with_capacity(RESPONSE);
                while start.elapsed() < length {
                    let t = Instant::now();
                    let ok = (|| -> std::io::Result<bool> {
                        let mut s = StdStream::connect(target)?;
                        s.set_nodelay(true)?;
                        s.set_read_timeout(Some(Duration::from_secs(5)))?;
                        s.write_all(b"R123456789abcdef")?;
                        answer.clear();
                        s.read_to_end(&mut answer)?;
                        Ok(answer.len() == RESPONSE)
                    })();
                    match ok {
                        Ok(true) => latencies.push(t.elapsed().as_nanos() as u64),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (l, e) = t.join().unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).map_or(0.0, |&ns| ns as f64 / 1e3)
    };
    Cps { per_second: all.len() as f64 / elapsed, p50: pct(0.50), p99: pct(0.99), errors }
}

/// Child-process mode: holds `n` idle connections to `target`, says how many on stdout,
/// and exits when stdin closes.
fn idle_clients(target: SocketAddr, n: usize) {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match StdStream::connect(target) {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("idle connection {} to {target} failed: {e}", held.len());
                break;
            }
        }
    }
    println!("{}", held.len());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Idle clients held by a child process (so their descriptors are not counted here).
struct Held {
    child: Child,
    count: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Opens `n` idle connections to `target` from a child process, waiting until the
/// backends hold `expect_open`.
fn hold(target: SocketAddr, n: usize, expect_open: usize) -> Held {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([IDLE_CLIENTS_ARG, &target.to_string(), &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("idle client process");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let count = line.trim().parse().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while BACKEND_OPEN.load(Ordering::Relaxed) < expect_open && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500)); // let the proxy settle
    Held { child, count }
}

struct FerryMemory {
    process_kib: f64,
    proxy_kib: f64,
}

/// RSS per idle connection through kube-ferry. The clients are in a child process; the
/// proxy and the backends are here. First `n` connections straight to the backends
/// (their share), closed; then `n` through kube-ferry (proxy and backends; the backends'
/// share now partly reuses memory freed by the first step, so subtracting it gives a
/// lower bound and the whole delta an upper bound for the proxy alone).
fn idle_memory_ferry(ferry: SocketAddr, direct: SocketAddr, n: usize) -> FerryMemory {
    let me = "/proc/self/status";
    wait_backends_idle();
    let r0 = rss_kib(me);
    let direct_held = hold(direct, n, n);
    let r1 = rss_kib(me);
    let d = direct_held.count.max(1) as f64;
    drop(direct_held);
    wait_backends_idle();
    let r2 = rss_kib(me);
    let proxied = hold(ferry, n, n);
    let r3 = rss_kib(me);
    println!(
        "idle: RSS {r0} KiB -> {r1} KiB with {} direct; {r2} KiB after closing -> {r3} KiB with {} through kube-ferry; backends hold {}",
        d,
        proxied.count,
        BACKEND_OPEN.load(Ordering::Relaxed)
    );
    let process_kib = (r3.saturating_sub(r2)) as f64 / proxied.count.max(1) as f64;
    let direct_kib = (r1.saturating_sub(r0)) as f64 / d;
    drop(proxied);
    FerryMemory { process_kib, proxy_kib: process_kib - direct_kib }
}

/// RSS of the HAProxy process per idle connection.
fn idle_memory_haproxy(h: &Haproxy, n: usize) -> f64 {
    wait_backends_idle();
    let r0 = h.rss_kib();
    let held = hold(h.addr, n, n);
    let r1 = h.rss_kib();
    println!("idle HAProxy: RSS {r0} KiB -> {r1} KiB with {} connections", held.count);
    r1.saturating_sub(r0) as f64 / held.count.max(1) as f64
}

fn wait_backends_idle() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while BACKEND_OPEN.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
