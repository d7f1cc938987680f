//! `ferry_ipvs::link::DummyLink` against a real kernel: the `kube-ipvs0` dummy link
//! created, its IPv4 and IPv6 host addresses added, read back, compared with `ip addr`,
//! proven local (`ip route get`, a TCP connection), changed idempotently without touching
//! the others (watched with `ip monitor`), a non-dummy link of the name refused, and the
//! link deleted.
//!
//! Runs only in a network namespace of its own: unless `FERRY_LINK_TEST_IN_NETNS` is set
//! ("the caller isolated me"), it calls unshare(CLONE_NEWNET) itself, first thing in a
//! single-threaded main, so every socket, thread and `ip` child lives in the fresh
//! namespace; it refuses to go on in the namespace it started in or in PID 1's. On a
//! kernel without dummy links it prints "link kernel test NOT RUN" to stderr and exits 0,
//! or fails if `FERRY_REQUIRE_IPVS=1` (the VM harness sets it). Addresses are from the
//! documentation ranges 198.51.100.0/24 and 2001:db8::/32. Needs root and `ip` (iproute2).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use ferry_ipvs::link::{DummyLink, LinkError, LINK_NAME};

const IN_NETNS: &str = "FERRY_LINK_TEST_IN_NETNS";
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
        println!("dummy_link_against_the_kernel: test");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = isolate() {
        eprintln!("link kernel test FAILED: {e}");
        return ExitCode::FAILURE;
    }
    match scenario() {
        Ok(Ran::Yes) => {
            println!("link kernel test PASSED");
            ExitCode::SUCCESS
        }
        Ok(Ran::NoDummyLinks(reason)) => not_run(&reason),
        Err(e) => {
            eprintln!("link kernel test FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Ran {
    Yes,
    NoDummyLinks(String),
}

fn netns_of(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// Moves this (still single-threaded) process into a fresh network namespace, or, if the
/// caller says it did that, checks it is not PID 1's.
fn isolate() -> Outcome {
    let started_in = netns_of("self");
    let init = netns_of("1");
    if std::env::var_os(IN_NETNS).is_none() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            format!(
                "cannot create a network namespace (unshare(CLONE_NEWNET): {e}); it needs root \
                 (CAP_SYS_ADMIN): run `sudo cargo test -p ferry-ipvs --test link_kernel`"
            )
        })?;
        std::env::set_var(IN_NETNS, "1");
        let mine = netns_of("self");
        ensure!(
            mine.is_some() && mine != started_in && mine != init,
            "unshare(CLONE_NEWNET) left me in {mine:?} (started in {started_in:?}, PID 1 in {init:?}): refusing"
        );
    } else {
        ensure!(
            started_in.is_some() && init.is_some() && started_in != init,
            "{IN_NETNS} is set but this may be the machine's own network namespace ({started_in:?}, PID 1 in \
             {init:?}): refusing to touch its links; unset it and let the test isolate itself"
        );
    }
    println!("running in network namespace {:?}", netns_of("self"));
    // Local delivery goes through lo, which a fresh namespace has down.
    ip(&["link", "set", "lo", "up"])?;
    Ok(())
}

fn not_run(reason: &str) -> ExitCode {
    eprintln!("==========================================================================");
    eprintln!("link kernel test NOT RUN: this kernel has no dummy links (it runs in the VM: tests/vm)");
    eprintln!("  reason: {reason}");
    eprintln!("==========================================================================");
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        eprintln!("link kernel test FAILED: {REQUIRE}=1 demands a kernel with dummy links");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn addr(text: &str) -> IpAddr {
    text.parse().expect("literal address")
}

fn set(texts: &[&str]) -> BTreeSet<IpAddr> {
    texts.iter().map(|t| addr(t)).collect()
}

fn step(text: &str) {
    println!("ok: {text}");
}

fn err<T>(r: Result<T, LinkError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// `ip ARGS`: its stdout, or an error with its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e} (Debian package iproute2)", args.join(" ")))?;
    ensure!(out.status.success(), "`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn scenario() -> Result<Ran, String> {
    let bad = DummyLink::open("no/slash").expect_err("a name with / must be refused");
    ensure!(matches!(bad, LinkError::InvalidName { .. }), "open(\"no/slash\"): {bad}");

    let mut link = err(DummyLink::open(LINK_NAME))?;
    ensure!(!err(link.exists())?, "{LINK_NAME} exists in a fresh namespace");
    not_a_dummy(&mut link)?;

    // Contract: ensure creates the link (true), then finds it (false).
    match link.ensure() {
        Ok(true) => {}
        Ok(false) => return Err(format!("first ensure() found an existing {LINK_NAME}")),
        Err(e) if e.is_unsupported() => {
            ensure!(e.to_string().contains("modprobe dummy"), "the no-dummy error must say `modprobe dummy`: {e}");
            ensure!(!err(link.exists())?, "a failed ensure() left a link behind");
            step(&format!("no dummy links here, the error says so: {e}"));
            return Ok(Ran::NoDummyLinks(e.to_string()));
        }
        Err(e) => return Err(format!("first ensure(): {e}")),
    }
    ensure!(!err(link.ensure())?, "second ensure() created the link again");
    ensure!(err(link.exists())?, "exists() is false after ensure()");
    let shown = ip(&["-d", "-o", "link", "show", "dev", LINK_NAME])?;
    ensure!(shown.contains(" dummy "), "ip -d link show: not a dummy: {shown}");
    ensure!(shown.contains("state DOWN") && !shown.contains(",UP"), "the link must stay down: {shown}");
    step(&format!("ensure() created {LINK_NAME} (true), then found it (false); dummy, DOWN"));
    ensure!(err(link.addresses())?.is_empty(), "a new link has host addresses");

    let all = ["198.51.100.10", "198.51.100.11", "2001:db8::10", "2001:db8::11"];
    let add: Vec<IpAddr> = all.iter().map(|t| addr(t)).collect();
    err(link.change(&add, &[]))?;
    same_addresses(&mut link, &set(&all))?;
    let shown = ip(&["-o", "addr", "show", "dev", LINK_NAME])?;
    for line in shown.lines().filter(|l| l.contains(" inet6 ")) {
        ensure!(line.contains("nodad") && !line.contains("tentative"), "IPv6 address not nodad or tentative: {line}");
    }
    step("added 2 IPv4 /32 and 2 IPv6 /128 (nodad): addresses() and `ip addr` agree");

    for text in all {
        is_local(text)?;
    }
    ensure!(
        ip(&["route", "get", "198.51.100.200"]).map_or(true, |out| !out.starts_with("local")),
        "198.51.100.200 is not on the link but routes as local"
    );
    connects("198.51.100.10")?;
    connects("2001:db8::10")?;
    step("on the DOWN link, all four are local (`ip route get`), TCP connects over IPv4 and IPv6");

    // Contract: add existing, remove missing are no-ops; addresses in neither list (and
    // the existing one re-added) see no event at all.
    let monitor = Monitor::start()?;
    err(link.change(
        &[addr("198.51.100.10"), addr("2001:db8::10"), addr("198.51.100.12")],
        &[addr("198.51.100.11"), addr("2001:db8::11"), addr("198.51.100.99"), addr("2001:db8::99")],
    ))?;
    let events = monitor.stop()?;
    same_addresses(&mut link, &set(&["198.51.100.10", "198.51.100.12", "2001:db8::10"]))?;
    ensure!(events.iter().any(|e| e.contains("198.51.100.12/32")), "no event for the added address: {events:#?}");
    ensure!(
        events.iter().any(|e| e.contains("Deleted") && e.contains("198.51.100.11/32")),
        "no deletion event: {events:#?}"
    );
    for untouched in ["198.51.100.10/", "2001:db8::10/"] {
        ensure!(!events.iter().any(|e| e.contains(untouched)), "{untouched} flapped: {events:#?}");
    }
    step(&format!("change(add existing+new, remove present+missing): only these events: {events:?}"));
    ensure!(ip(&["route", "get", "198.51.100.11"]).map_or(true, |o| !o.starts_with("local")), ".11 still local");

    let again = Monitor::start()?;
    err(link.change(&[addr("198.51.100.10"), addr("2001:db8::10")], &[addr("198.51.100.11")]))?;
    let events = again.stop()?;
    ensure!(events.is_empty(), "a change with nothing to do made events: {events:#?}");
    step("repeating a change is a no-op: no address event at all");

    let both = link.change(&[addr("198.51.100.13")], &[addr("198.51.100.13")]).expect_err("add and remove");
    ensure!(matches!(both, LinkError::AddAndRemove { .. }), "add+remove of one address: {both}");
    same_addresses(&mut link, &set(&["198.51.100.10", "198.51.100.12", "2001:db8::10"]))?;
    step(&format!("one address in both lists is refused, nothing changed: {both}"));

    many(&mut link)?;

    ensure!(err(link.delete())?, "delete() of the existing link returned false");
    ensure!(!err(link.exists())?, "the link exists after delete()");
    ensure!(!err(link.delete())?, "a second delete() returned true");
    let missing = link.change(&[addr("198.51.100.10")], &[]).expect_err("change on a missing link");
    ensure!(matches!(missing, LinkError::Missing { .. }), "change() on a missing link: {missing}");
    let missing = link.addresses().expect_err("addresses of a missing link");
    ensure!(matches!(missing, LinkError::Missing { .. }), "addresses() on a missing link: {missing}");
    ensure!(ip(&["route", "get", "198.51.100.10"]).map_or(true, |o| !o.starts_with("local")), "local after delete");
    step(&format!("delete() true then false; a missing link is named: {missing}"));
    Ok(Ran::Yes)
}

/// Contract: a change of thousands of addresses (kept in flight together) is applied
/// completely, and removed completely, leaving the others.
fn many(link: &mut DummyLink) -> Outcome {
    const N: u16 = 1000; // four times `IN_FLIGHT`
    let before = err(link.addresses())?;
    let bulk: Vec<IpAddr> = (1..=N).map(|i| IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, i / 256, i % 256])).collect();
    let started = std::time::Instant::now();
    err(link.change(&bulk, &[]))?;
    let added_in = started.elapsed();
    let now = err(link.addresses())?;
    ensure!(now.len() == before.len() + bulk.len(), "after adding {N}: {} addresses", now.len());
    ensure!(bulk.iter().all(|ip| now.contains(ip)), "some of the {N} addresses are missing");
    let started = std::time::Instant::now();
    err(link.change(&[], &bulk))?;
    let removed_in = started.elapsed();
    ensure!(err(link.addresses())? == before, "after removing the {N}, the others changed");
    step(&format!(
        "{N} IPv6 addresses added in {added_in:?} and removed in {removed_in:?} (emulated VM: not a benchmark)"
    ));
    Ok(())
}

/// Contract: a link of the name that is not a dummy is refused by name by every method,
/// and is neither changed nor deleted.
fn not_a_dummy(link: &mut DummyLink) -> Outcome {
    ip(&["link", "add", LINK_NAME, "type", "veth", "peer", "name", "ferry-peer0"])
        .map_err(|e| format!("{e} (the test needs veth links: CONFIG_VETH, `modprobe veth`)"))?;
    ensure!(err(link.exists())?, "exists() is false with a veth named {LINK_NAME}");
    let results = [
        ("ensure", link.ensure().map(|_| ())),
        ("addresses", link.addresses().map(|_| ())),
        ("change", link.change(&[addr("198.51.100.10")], &[])),
        ("delete", link.delete().map(|_| ())),
    ];
    for (what, result) in results {
        match result {
            Err(LinkError::NotDummy { ref name, ref kind }) if name == LINK_NAME && kind == "veth" => {}
            other => return Err(format!("{what}() with a veth named {LINK_NAME}: {other:?}")),
        }
    }
    let text = link.ensure().expect_err("not a dummy").to_string();
    ensure!(text.contains(LINK_NAME) && text.contains("veth"), "the error must name link and kind: {text}");
    let shown = ip(&["-o", "addr", "show", "dev", LINK_NAME])?;
    ensure!(!shown.contains("198.51.100."), "an address went onto the veth: {shown}");
    ip(&["link", "delete", LINK_NAME])?;
    ensure!(!err(link.exists())?, "the veth is still there");
    step(&format!("a veth named {LINK_NAME} is refused by ensure/addresses/change/delete and left alone: {text}"));
    Ok(())
}

fn same_addresses(link: &mut DummyLink, want: &BTreeSet<IpAddr>) -> Outcome {
    let got = err(link.addresses())?;
    ensure!(&got == want, "addresses():\n got {got:?}\nwant {want:?}");
    // What `ip` sees: "2: kube-ipvs0    inet 198.51.100.10/32 scope global ..."
    let shown = ip(&["-o", "addr", "show", "dev", LINK_NAME])?;
    let listed: BTreeSet<String> = shown
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
            words.get(at + 1).map(|w| w.to_string())
        })
        .filter(|a| !a.starts_with("fe80:"))
        .collect();
    let expected: BTreeSet<String> =
        want.iter().map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })).collect();
    ensure!(listed == expected, "`ip addr show dev {LINK_NAME}` lists {listed:?}, want {expected:?}\n{shown}");
    Ok(())
}

fn is_local(text: &str) -> Outcome {
    let out = if text.contains(':') { ip(&["-6", "route", "get", text])? } else { ip(&["route", "get", text])? };
    ensure!(out.starts_with("local "), "`ip route get {text}` is not local: {out}");
    Ok(())
}

/// A listener on the wildcard address of `target`'s family accepts a connection to
/// `target` from this namespace, and sees `target` as its local address.
fn connects(target: &str) -> Outcome {
    let target = addr(target);
    let any: IpAddr = if target.is_ipv4() { addr("0.0.0.0") } else { addr("::") };
    let listener = TcpListener::bind(SocketAddr::new(any, 0)).map_err(|e| format!("bind {any}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let to = SocketAddr::new(target, port);
    let mut client =
        TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| format!("connect to {to}: {e}"))?;
    // Connected, so the connection waits in the backlog: accept does not block.
    let (mut server, peer) = listener.accept().map_err(|e| format!("accept on {any}:{port}: {e}"))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    ensure!(local == to, "accepted on {local}, connected to {to}");
    client.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut got = [0u8; 4];
    server.read_exact(&mut got).map_err(|e| e.to_string())?;
    ensure!(&got == b"ping", "read {got:?}");
    println!("   TCP {peer} -> {to} accepted on [{any}]:{port}");
    Ok(())
}

/// `ip -o monitor address` in the background: every address event while it runs.
struct Monitor(Child);

impl Monitor {
    fn start() -> Result<Monitor, String> {
        let child = Command::new("ip")
            .args(["-o", "monitor", "address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `ip monitor`: {e} (Debian package iproute2)"))?;
        // Let it subscribe before anything happens (generous under emulation).
        std::thread::sleep(Duration::from_millis(500));
        Ok(Monitor(child))
    }

    fn stop(mut self) -> Result<Vec<String>, String> {
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.0.kill();
        let out = self.0.wait_with_output().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
    }
}
