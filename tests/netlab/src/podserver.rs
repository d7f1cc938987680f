//! The pod server's logic: `ferry-podserver --name NAME [--tcp PORT]... [--udp PORT]... [--sctp PORT]...`
//! (the binary of that name is a thin wrapper around [`podserver_main`]).
//!
//! The lab's pod server. It listens on `0.0.0.0` (and `[::]`, IPv6 only, where the
//! namespace has IPv6) on every port given. On each TCP or SCTP connection it writes one
//! line `NAME PEER_IP:PEER_PORT` and closes; to each UDP datagram it replies with that
//! line. Once every listener is bound it prints `ferry-podserver ready ...` on stdout.
//! If the kernel has no SCTP it says `sctp unavailable` and exits 5 (it never fakes it).
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::hosts::PODSERVER_READY;
use crate::probe::{EXIT_OTHER, EXIT_UNSUPPORTED, EXIT_USAGE, IPPROTO_SCTP};
use socket2::{Domain, Protocol, Socket, Type};

const USAGE: &str = "usage: ferry-podserver --name NAME [--tcp PORT]... [--udp PORT]... [--sctp PORT]...";

struct Args {
    name: String,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    sctp: Vec<u16>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args { name: String::new(), tcp: Vec::new(), udp: Vec::new(), sctp: Vec::new() };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || value.parse::<u16>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--name" => args.name = value.clone(),
            "--tcp" => args.tcp.push(port()?),
            "--udp" => args.udp.push(port()?),
            "--sctp" => args.sctp.push(port()?),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.name.is_empty() || args.name.contains(char::is_whitespace) {
        return Err("--name NAME is required (no spaces)".to_owned());
    }
    Ok(args)
}

/// A socket bound to the wildcard address of `v6`'s family on `port`; `Ok(None)` when the
/// namespace has no IPv6 (only asked for `[::]`).
fn bind(v6: bool, ty: Type, proto: Option<Protocol>, port: u16) -> io::Result<Option<Socket>> {
    let (domain, addr) = if v6 {
        (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
    } else {
        (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
    };
    let socket = match Socket::new(domain, ty, proto) {
        Ok(s) => s,
        // EAFNOSUPPORT: IPv6 is off here.
        Err(e) if v6 && e.raw_os_error() == Some(97) => return Ok(None),
        Err(e) => return Err(e),
    };
    if v6 {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => {}
        // EADDRNOTAVAIL: IPv6 disabled in this namespace.
        Err(e) if v6 && e.raw_os_error() == Some(99) => return Ok(None),
        Err(e) => return Err(e),
    }
    if ty == Type::STREAM {
        socket.listen(128)?;
    }
    Ok(Some(socket))
}

fn answer(name: &str, peer: SocketAddr) -> String {
    format!("{name} {peer}\n")
}

/// Writes the answer, then drains what the client sent (closing with unread data would
/// reset the connection and could lose the answer).
fn serve<S: Read + Write>(mut conn: S, line: &str, shutdown: impl FnOnce(&S), timeout: impl FnOnce(&S)) {
    if conn.write_all(line.as_bytes()).and_then(|()| conn.flush()).is_err() {
        return;
    }
    shutdown(&conn);
    timeout(&conn);
    let mut sink = [0u8; 1024];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

const DRAIN: Option<Duration> = Some(Duration::from_secs(1));

fn tcp_loop(listener: TcpListener, name: Arc<str>) {
    for conn in listener.incoming().flatten() {
        let name = name.clone();
        thread::spawn(move || {
            let Ok(peer) = conn.peer_addr() else { return };
            let line = answer(&name, peer);
            serve(conn, &line, |c| drop(c.shutdown(Shutdown::Write)), |c| drop(c.set_read_timeout(DRAIN)));
        });
    }
}

fn sctp_loop(listener: Socket, name: Arc<str>) {
    while let Ok((conn, peer)) = listener.accept() {
        let name = name.clone();
        thread::spawn(move || {
            let Some(peer) = peer.as_socket() else { return };
            let line = answer(&name, peer);
            serve(conn, &line, |c| drop(c.shutdown(Shutdown::Write)), |c| drop(c.set_read_timeout(DRAIN)));
        });
    }
}

fn udp_loop(socket: UdpSocket, name: Arc<str>) {
    let mut buf = [0u8; 65536];
    while let Ok((_, peer)) = socket.recv_from(&mut buf) {
        let _ = socket.send_to(answer(&name, peer).as_bytes(), peer);
    }
}

fn run(args: Args) -> Result<String, (u8, String)> {
    let name: Arc<str> = Arc::from(args.name.as_str());
    let fail = |what: String| move |e: io::Error| (EXIT_OTHER as u8, format!("{what}: {e}"));
    let mut v6 = true;
    for &port in &args.sctp {
        for family in [false, true] {
            let proto = Some(Protocol::from(IPPROTO_SCTP));
            match bind(family, Type::STREAM, proto, port) {
                Ok(Some(s)) => drop(thread::spawn({
                    let name = name.clone();
                    move || sctp_loop(s, name)
                })),
                Ok(None) => v6 = false,
                // EPROTONOSUPPORT / ESOCKTNOSUPPORT: this kernel has no SCTP.
                Err(e) if matches!(e.raw_os_error(), Some(93 | 94)) => {
                    return Err((EXIT_UNSUPPORTED as u8, format!("sctp unavailable: {e}")));
                }
                Err(e) => return Err(fail(format!("sctp port {port}"))(e)),
            }
        }
    }
    for &port in &args.tcp {
        for family in [false, true] {
            match bind(family, Type::STREAM, None, port).map_err(fail(format!("tcp port {port}")))? {
                Some(s) => drop(thread::spawn({
                    let name = name.clone();
                    move || tcp_loop(s.into(), name)
                })),
                None => v6 = false,
            }
        }
    }
    for &port in &args.udp {
        for family in [false, true] {
            match bind(family, Type::DGRAM, None, port).map_err(fail(format!("udp port {port}")))? {
                Some(s) => drop(thread::spawn({
                    let name = name.clone();
                    move || udp_loop(s.into(), name)
                })),
                None => v6 = false,
            }
        }
    }
    let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    Ok(format!(
        "{PODSERVER_READY} name={} tcp={} udp={} sctp={} ipv6={}",
        args.name,
        list(&args.tcp),
        list(&args.udp),
        list(&args.sctp),
        if v6 { "on" } else { "off" }
    ))
}

/// Runs the pod server with `args` (the command line without the program name). It
/// returns only on failure, with the exit code to use: once listening it serves until
/// the process is killed.
pub fn podserver_main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match parse(args.into_iter()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferry-podserver: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    match run(args) {
        Ok(ready) => {
            let mut out = io::stdout();
            let _ = writeln!(out, "{ready}").and_then(|()| out.flush());
            // The listeners run on their threads until the process is killed.
            loop {
                thread::park();
            }
        }
        Err((code, message)) => {
            eprintln!("ferry-podserver: {message}");
            ExitCode::from(code)
        }
    }
}
