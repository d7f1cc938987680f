//! The IPVS client against a real kernel: every request of `ferry_ipvs::genl` applied,
//! dumped back, compared with `ipvsadm -Ln`, and removed again.
//!
//! Runs only in a network namespace of its own (IPVS state is per namespace): unless
//! `FERRY_IPVS_TEST_IN_NETNS` is set, it re-executes itself under `unshare --net`
//! (util-linux or busybox). On a kernel without IPVS it prints "kernel test NOT RUN" to
//! stderr and exits 0, or fails if `FERRY_REQUIRE_IPVS=1` (the VM harness sets it).
//! Addresses are from the documentation ranges 198.51.100.0/24 and 2001:db8::/32.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, ExitCode};

use ferry_ipvs::genl::{IpvsClient, IpvsError, Protocol, RealServer, Scheduler, Timeouts, VirtualService};

const IN_NETNS: &str = "FERRY_IPVS_TEST_IN_NETNS";
const REQUIRE: &str = "FERRY_REQUIRE_IPVS";

type Outcome = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn main() -> ExitCode {
    // `cargo test -- --list` comes here too: this binary has one test.
    if std::env::args().any(|a| a == "--list") {
        println!("ipvs_client_against_the_kernel: test");
        return ExitCode::SUCCESS;
    }
    if std::env::var_os(IN_NETNS).is_none() {
        return outside_netns();
    }
    if let Err(e) = check_own_netns() {
        eprintln!("kernel test FAILED: {e}");
        return ExitCode::FAILURE;
    }
    let mut ipvs = match IpvsClient::connect() {
        Ok(client) => client,
        Err(e @ IpvsError::NotAvailable { .. }) => return not_run(&e.to_string()),
        Err(e) => {
            eprintln!("kernel test FAILED: connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    match scenario(&mut ipvs) {
        Ok(()) => {
            println!("kernel test PASSED ({} netlink messages sent)", ipvs.messages_sent());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kernel test FAILED: {e}");
            let _ = ipvs.flush(); // the namespace dies with us anyway
            ExitCode::FAILURE
        }
    }
}

/// Before isolation: never touch this namespace's IPVS (or load modules) from here.
fn outside_netns() -> ExitCode {
    if let Some(reason) = kernel_lacks_ipvs() {
        return not_run(&reason);
    }
    let probe = Command::new("unshare").args(["--net", "true"]).status();
    if !probe.as_ref().is_ok_and(|s| s.success()) {
        eprintln!(
            "kernel test FAILED: cannot create a network namespace (`unshare --net true`: {probe:?}); \
             it needs root (CAP_SYS_ADMIN) and unshare (Debian package util-linux): run `sudo cargo test`"
        );
        return ExitCode::FAILURE;
    }
    ferry_netlab::guard::mark_parent();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("kernel test FAILED: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status =
        Command::new("unshare").arg("--net").arg(exe).args(std::env::args_os().skip(1)).env(IN_NETNS, "1").status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        other => {
            eprintln!("kernel test FAILED: the run in a fresh network namespace ended with {other:?}");
            ExitCode::FAILURE
        }
    }
}

fn not_run(reason: &str) -> ExitCode {
    eprintln!("==========================================================================");
    eprintln!("kernel test NOT RUN: this kernel has no IPVS (it runs in the VM: tests/vm)");
    eprintln!("  reason: {reason}");
    eprintln!("==========================================================================");
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        eprintln!("kernel test FAILED: {REQUIRE}=1 demands a kernel with IPVS");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn kernel_lacks_ipvs() -> Option<String> {
    ferry_netlab::features::ipvs_missing()
}

/// Refuses to run in the namespace the test was started in, or in PID 1's. Without the
/// parent's mark (`FERRY_IPVS_TEST_IN_NETNS` set by hand: "I isolated it myself"), PID 1's
/// namespace must be readable and different.
fn check_own_netns() -> Outcome {
    use ferry_netlab::guard::{netns_of, refuse_host_namespace, PARENT_NETNS_ENV};
    if std::env::var_os(PARENT_NETNS_ENV).is_some() {
        refuse_host_namespace("ipvs kernel test");
    } else {
        let (mine, init) = (netns_of("self"), netns_of("1"));
        ensure!(
            mine.is_some() && init.is_some() && mine != init,
            "{IN_NETNS} is set but this may be the machine's own network namespace ({mine:?}, PID 1 in {init:?}): \
             refusing to touch its IPVS; unset it and let the test isolate itself"
        );
    }
    println!("running in network namespace {:?}", netns_of("self"));
    // A fresh namespace has lo down and so no local routing table: the kernel then calls
    // every IPv4 address a broadcast one and refuses it as a real server (EINVAL).
    let up = Command::new("ip").args(["link", "set", "lo", "up"]).status();
    ensure!(
        up.as_ref().is_ok_and(|s| s.success()),
        "`ip link set lo up` in the test namespace: {up:?} (Debian package iproute2)"
    );
    Ok(())
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal address")
}

fn step(text: &str) {
    println!("ok: {text}");
}

fn scenario(ipvs: &mut IpvsClient) -> Outcome {
    ensure!(ipvs.services().map_err(|e| e.to_string())?.is_empty(), "a fresh namespace has IPVS services");

    let tcp4 = VirtualService::new(ip("198.51.100.10"), Protocol::Tcp, 80);
    let udp4 = VirtualService::new(ip("198.51.100.10"), Protocol::Udp, 53);
    let sctp4 = VirtualService::new(ip("198.51.100.10"), Protocol::Sctp, 3868);
    let tcp6 =
        VirtualService { persistence: Some(10800), ..VirtualService::new(ip("2001:db8::10"), Protocol::Tcp, 443) };
    let udp6 = VirtualService {
        scheduler: Scheduler::WeightedRoundRobin,
        ..VirtualService::new(ip("2001:db8::10"), Protocol::Udp, 53)
    };
    let mut services = vec![tcp4.clone(), udp4.clone(), sctp4.clone(), tcp6.clone(), udp6.clone()];
    for svc in &services {
        let before = ipvs.messages_sent();
        ipvs.add_service(svc).map_err(|e| e.to_string())?;
        ensure!(ipvs.messages_sent() == before + 1, "add_service sent {} messages", ipvs.messages_sent() - before);
    }
    step("added 5 virtual services (IPv4 TCP/UDP/SCTP, IPv6 TCP persistent/UDP wrr), one message each");

    let dup = ipvs.add_service(&tcp4).expect_err("adding a service twice must fail");
    ensure!(dup.is_already_exists(), "second NEW_SERVICE: {dup}");
    ensure!(
        dup.to_string()
            .starts_with("virtual service TCP 198.51.100.10:80: the kernel refused NEW_SERVICE: File exists (EEXIST)"),
        "EEXIST message: {dup}"
    );
    step(&format!("duplicate service refused: {dup}"));

    let bogus = VirtualService {
        scheduler: Scheduler::Other("nosuch".into()),
        ..VirtualService::new(ip("198.51.100.11"), Protocol::Tcp, 80)
    };
    let err = ipvs.add_service(&bogus).expect_err("an unknown scheduler must fail");
    ensure!(
        err.errno() == Some(2 /* ENOENT */) && err.to_string().contains("modprobe ip_vs_nosuch"),
        "unknown scheduler: {err}"
    );
    step(&format!("unknown scheduler refused: {err}"));

    same_services(ipvs, &services)?;
    step("service dump equals what was added (IPv4 and IPv6 in one dump)");

    let rs4a = RealServer::new(ip("198.51.100.20"), 8080, 1);
    let rs4b = RealServer::new(ip("198.51.100.21"), 8080, 2);
    let rs4u = RealServer::new(ip("198.51.100.20"), 5353, 1);
    let rs6 = RealServer::new(ip("2001:db8::20"), 8443, 3);
    let rs6u = RealServer::new(ip("2001:db8::21"), 53, 1);
    let rs_sctp = RealServer::new(ip("198.51.100.22"), 3868, 1);
    let mut servers: Vec<(VirtualService, Vec<RealServer>)> = vec![
        (tcp4.clone(), vec![rs4a.clone(), rs4b.clone()]),
        (udp4.clone(), vec![rs4u.clone()]),
        (sctp4.clone(), vec![rs_sctp.clone()]),
        (tcp6.clone(), vec![rs6.clone()]),
        (udp6.clone(), vec![rs6u.clone()]),
    ];
    for (svc, list) in &servers {
        for rs in list {
            let before = ipvs.messages_sent();
            ipvs.add_real_server(svc, rs).map_err(|e| e.to_string())?;
            ensure!(ipvs.messages_sent() == before + 1, "add_real_server sent more than one message");
        }
    }
    step("added 6 real servers");
    let dup = ipvs.add_real_server(&tcp4, &rs4a).expect_err("adding a real server twice must fail");
    ensure!(dup.is_already_exists(), "second NEW_DEST: {dup}");
    step(&format!("duplicate real server refused: {dup}"));
    let orphan = ipvs
        .add_real_server(&VirtualService::new(ip("198.51.100.99"), Protocol::Tcp, 1), &rs4a)
        .expect_err("a real server of a missing service must fail");
    ensure!(orphan.is_not_found(), "NEW_DEST on a missing service: {orphan}");
    step(&format!("real server of a missing service refused: {orphan}"));

    same_real_servers(ipvs, &servers)?;
    compare_with_ipvsadm(ipvs)?;
    step("real server dumps equal what was added; ipvsadm -Ln agrees");

    // Weight and scheduler changes.
    let rs4b_drained = RealServer { weight: 0, ..rs4b.clone() };
    ipvs.update_real_server(&tcp4, &rs4b_drained).map_err(|e| e.to_string())?;
    servers[0].1[1] = rs4b_drained;
    let tcp4_wrr = VirtualService { scheduler: Scheduler::WeightedRoundRobin, persistence: Some(60), ..tcp4.clone() };
    ipvs.update_service(&tcp4_wrr).map_err(|e| e.to_string())?;
    services[0] = tcp4_wrr.clone();
    servers[0].0 = tcp4_wrr.clone();
    let tcp6_plain = VirtualService { persistence: None, ..tcp6.clone() };
    ipvs.update_service(&tcp6_plain).map_err(|e| e.to_string())?;
    services[3] = tcp6_plain.clone();
    servers[3].0 = tcp6_plain;
    same_services(ipvs, &services)?;
    same_real_servers(ipvs, &servers)?;
    compare_with_ipvsadm(ipvs)?;
    step("SET_DEST weight 0, SET_SERVICE rr->wrr persistent 60, persistence off: dumps and ipvsadm agree");

    let missing_rs = RealServer::new(ip("198.51.100.98"), 1, 1);
    let err = ipvs.update_real_server(&tcp4, &missing_rs).expect_err("SET_DEST of a missing server");
    ensure!(err.is_not_found(), "SET_DEST missing: {err}");
    let missing_svc = VirtualService::new(ip("198.51.100.99"), Protocol::Udp, 9);
    let err = ipvs.update_service(&missing_svc).expect_err("SET_SERVICE of a missing service");
    ensure!(err.is_not_found(), "SET_SERVICE missing: {err}");
    step(&format!("updates of missing objects are not-found: {err}"));

    // Timeouts.
    let initial = ipvs.timeouts().map_err(|e| e.to_string())?;
    step(&format!("initial timeouts {initial:?}"));
    ipvs.set_timeouts(&Timeouts { tcp: 1000, tcp_fin: 60, udp: 200 }).map_err(|e| e.to_string())?;
    let t = ipvs.timeouts().map_err(|e| e.to_string())?;
    ensure!(t == Timeouts { tcp: 1000, tcp_fin: 60, udp: 200 }, "timeouts after set: {t:?}");
    ipvs.set_timeouts(&Timeouts { tcp: 0, tcp_fin: 0, udp: 30 }).map_err(|e| e.to_string())?;
    let t = ipvs.timeouts().map_err(|e| e.to_string())?;
    ensure!(t == Timeouts { tcp: 1000, tcp_fin: 60, udp: 30 }, "0 must leave a timeout unchanged: {t:?}");
    if let Some(out) = ipvsadm(&["-Ln", "--timeout"])? {
        ensure!(out.contains("Timeout (tcp tcpfin udp): 1000 60 30"), "ipvsadm --timeout says: {out}");
    }
    step("SET_CONFIG/GET_CONFIG round-trip, 0 = unchanged, ipvsadm agrees");

    // Deletion.
    ipvs.delete_real_server(&tcp4_wrr, &rs4a).map_err(|e| e.to_string())?;
    servers[0].1.remove(0);
    same_real_servers(ipvs, &servers)?;
    let err = ipvs.delete_real_server(&tcp4_wrr, &rs4a).expect_err("deleting a real server twice");
    ensure!(err.is_not_found(), "second DEL_DEST: {err}");
    step(&format!("DEL_DEST; a second one is not-found: {err}"));
    for svc in &services {
        ipvs.delete_service(svc).map_err(|e| e.to_string())?;
    }
    ensure!(ipvs.services().map_err(|e| e.to_string())?.is_empty(), "services left after deleting all");
    let err = ipvs.delete_service(&tcp4).expect_err("deleting a service twice");
    ensure!(err.is_not_found(), "second DEL_SERVICE: {err}");
    let gone = ipvs.real_servers(&tcp4).map_err(|e| e.to_string())?;
    ensure!(gone.is_empty(), "real servers of a deleted service: {gone:?}");
    if let Some(out) = ipvsadm(&["-Ln"])? {
        ensure!(
            !out.lines().any(|l| l.starts_with("TCP") || l.starts_with("UDP") || l.starts_with("SCTP")),
            "ipvsadm still lists: {out}"
        );
    }
    step(&format!("DEL_SERVICE of all; table empty; a second one is not-found: {err}"));

    // Dumps bigger than one datagram.
    let many: Vec<VirtualService> =
        (0..500).map(|i| VirtualService::new(ip("198.51.100.30"), Protocol::Tcp, 20000 + i)).collect();
    for svc in &many {
        ipvs.add_service(svc).map_err(|e| e.to_string())?;
    }
    for port in 30000..30300 {
        ipvs.add_real_server(&many[0], &RealServer::new(ip("198.51.100.40"), port, 1)).map_err(|e| e.to_string())?;
    }
    same_services(ipvs, &many)?;
    let dumped = ipvs.real_servers(&many[0]).map_err(|e| e.to_string())?;
    ensure!(dumped.len() == 300, "dump of 300 real servers returned {}", dumped.len());
    step("500 services and 300 real servers of one come back complete from multi-datagram dumps");

    // Flush.
    ipvs.add_service(&udp4).map_err(|e| e.to_string())?;
    ipvs.add_real_server(&udp4, &rs4u).map_err(|e| e.to_string())?;
    ipvs.flush().map_err(|e| e.to_string())?;
    ensure!(ipvs.services().map_err(|e| e.to_string())?.is_empty(), "services left after FLUSH");
    ipvs.set_timeouts(&initial).map_err(|e| e.to_string())?;
    step("FLUSH empties the table; timeouts restored");
    Ok(())
}

fn same_services(ipvs: &mut IpvsClient, expected: &[VirtualService]) -> Outcome {
    let got: BTreeSet<String> = ipvs.services().map_err(|e| e.to_string())?.iter().map(|s| format!("{s:?}")).collect();
    let want: BTreeSet<String> = expected.iter().map(|s| format!("{s:?}")).collect();
    ensure!(got == want, "service dump differs:\n got {got:#?}\nwant {want:#?}");
    Ok(())
}

fn same_real_servers(ipvs: &mut IpvsClient, expected: &[(VirtualService, Vec<RealServer>)]) -> Outcome {
    for (svc, list) in expected {
        let got: BTreeSet<String> =
            ipvs.real_servers(svc).map_err(|e| e.to_string())?.iter().map(|r| format!("{r:?}")).collect();
        let want: BTreeSet<String> = list.iter().map(|r| format!("{r:?}")).collect();
        ensure!(got == want, "real servers of {svc} differ:\n got {got:#?}\nwant {want:#?}");
    }
    Ok(())
}

/// `Ok(None)` if there is no ipvsadm binary.
fn ipvsadm(args: &[&str]) -> Result<Option<String>, String> {
    match Command::new("ipvsadm").args(args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("note: no ipvsadm binary (Debian package ipvsadm); skipping its cross-check");
            Ok(None)
        }
        Err(e) => Err(format!("ipvsadm {args:?}: {e}")),
        Ok(out) if !out.status.success() => {
            Err(format!("ipvsadm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)))
        }
        Ok(out) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
    }
}

/// What `ipvsadm -Ln` prints for the client's own dump, compared as normalized lines.
fn compare_with_ipvsadm(ipvs: &mut IpvsClient) -> Outcome {
    let Some(out) = ipvsadm(&["-Ln"])? else { return Ok(()) };
    let mut got = BTreeSet::new();
    let mut current = String::new();
    for line in out.lines() {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if ["TCP ", "UDP ", "SCTP "].iter().any(|p| line.starts_with(p)) {
            current = words.clone();
            got.insert(words);
        } else if line.trim_start().starts_with("-> ") && !current.is_empty() {
            got.insert(format!("{current} {words}"));
        }
    }
    let mut want = BTreeSet::new();
    for svc in ipvs.services().map_err(|e| e.to_string())? {
        let persistent = svc.persistence.map(|t| format!(" persistent {t}")).unwrap_or_default();
        let head = format!("{svc} {}{persistent}", svc.scheduler);
        for rs in ipvs.real_servers(&svc).map_err(|e| e.to_string())? {
            want.insert(format!(
                "{head} -> {rs} Masq {} {} {}",
                rs.weight, rs.active_connections, rs.inactive_connections
            ));
        }
        want.insert(head);
    }
    ensure!(got == want, "ipvsadm -Ln differs from the dump:\nipvsadm {got:#?}\n   dump {want:#?}\nraw:\n{out}");
    println!("ipvsadm -Ln:\n{}", out.trim_end());
    Ok(())
}
