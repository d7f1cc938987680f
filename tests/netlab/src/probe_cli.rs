//! The probe's logic: `ferry-probe tcp|udp|sctp ADDR TIMEOUT_MS [--bind ADDR]` (the
//! binary of that name is a thin wrapper around [`probe_main`]).
//!
//! The lab's client, run inside a namespace by `ferry_netlab::request`. It makes one
//! request and prints the first line of the answer on stdout (exit 0), or says what
//! happened instead, with distinct exit codes: `refused` 2, `timeout` 3, unreachable 4,
//! protocol unsupported 5, reset 6, any other error 1, bad arguments 64.
use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::probe::{
    EXIT_OTHER, EXIT_REFUSED, EXIT_RESET, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_UNSUPPORTED, EXIT_USAGE, IPPROTO_SCTP,
};
use socket2::{Domain, Protocol, Socket, Type};

const USAGE: &str = "usage: ferry-probe tcp|udp|sctp ADDR TIMEOUT_MS [--bind ADDR]";

/// The exit code and word for an error.
fn classify(e: &io::Error) -> (i32, String) {
    match e.kind() {
        ErrorKind::ConnectionRefused => (EXIT_REFUSED, "refused".to_owned()),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => (EXIT_TIMEOUT, "timeout".to_owned()),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => (EXIT_UNREACHABLE, format!("unreachable: {e}")),
        ErrorKind::ConnectionReset => (EXIT_RESET, "reset".to_owned()),
        // EPROTONOSUPPORT, ESOCKTNOSUPPORT, EAFNOSUPPORT.
        _ if matches!(e.raw_os_error(), Some(93 | 94 | 97)) => (EXIT_UNSUPPORTED, format!("unsupported: {e}")),
        _ => (EXIT_OTHER, format!("error: {e}")),
    }
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().next().unwrap_or_default().to_owned()
}

fn stream(
    proto: Option<Protocol>,
    addr: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
) -> io::Result<String> {
    let start = Instant::now();
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, proto)?;
    if let Some(bind) = bind {
        socket.set_reuse_address(true)?;
        socket.bind(&bind.into())?;
    }
    socket.connect_timeout(&addr.into(), timeout)?;
    let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    socket.set_read_timeout(Some(left))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut reader = &socket;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset after a whole line still delivered the answer.
            Err(e) if got.contains(&b'\n') && e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    if got.is_empty() {
        return Err(io::Error::new(ErrorKind::UnexpectedEof, "connection closed without an answer"));
    }
    Ok(first_line(&got))
}

fn datagram(addr: SocketAddr, bind: Option<SocketAddr>, timeout: Duration) -> io::Result<String> {
    let local = bind.unwrap_or_else(|| {
        if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        }
    });
    let socket = UdpSocket::bind(local)?;
    // Connected: an ICMP port unreachable comes back as ECONNREFUSED, and only answers
    // from `addr` itself are accepted (as a real client would).
    socket.connect(addr)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(b"ferry-probe\n")?;
    let mut buf = [0u8; 65536];
    let n = socket.recv(&mut buf)?;
    Ok(first_line(&buf[..n]))
}

/// Runs the probe with `args` (the command line without the program name): one request,
/// its answer on stdout; returns the exit code to use.
pub fn probe_main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let argv: Vec<String> = args.into_iter().collect();
    let parsed = (|| -> Result<_, String> {
        let [proto, addr, ms, rest @ ..] = argv.as_slice() else { return Err("three arguments needed".to_owned()) };
        let addr: SocketAddr = addr.parse().map_err(|e| format!("ADDR {addr}: {e}"))?;
        let ms: u64 = ms.parse().map_err(|e| format!("TIMEOUT_MS {ms}: {e}"))?;
        let bind = match rest {
            [] => None,
            [flag, b] if flag == "--bind" => Some(b.parse::<SocketAddr>().map_err(|e| format!("--bind {b}: {e}"))?),
            _ => return Err(format!("unexpected arguments {rest:?}")),
        };
        Ok((proto.clone(), addr, Duration::from_millis(ms.max(1)), bind))
    })();
    let (proto, addr, timeout, bind) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry-probe: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let result = match proto.as_str() {
        "tcp" => stream(None, addr, bind, timeout),
        "sctp" => stream(Some(Protocol::from(IPPROTO_SCTP)), addr, bind, timeout),
        "udp" => datagram(addr, bind, timeout),
        other => {
            eprintln!("ferry-probe: unknown protocol {other}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let (code, word) = classify(&e);
            println!("{}", word.split(':').next().unwrap_or("error"));
            eprintln!("ferry-probe: {proto} {addr}: {word}");
            ExitCode::from(code as u8)
        }
    }
}
