//! Requests made from inside a namespace, by running `ferry-probe` there.

use std::io::Read;
use std::net::SocketAddr;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::probe_program;
use crate::error::LabError;
use crate::netns::{describe, Netns};

/// `ferry-probe`'s exit code for an answer (printed on stdout).
pub const EXIT_OK: i32 = 0;
/// `ferry-probe`'s exit code for any other failure (described on stderr).
pub const EXIT_OTHER: i32 = 1;
/// `ferry-probe`'s exit code for a refusal: a TCP RST to the SYN, or ICMP port unreachable.
pub const EXIT_REFUSED: i32 = 2;
/// `ferry-probe`'s exit code when nothing came back in time.
pub const EXIT_TIMEOUT: i32 = 3;
/// `ferry-probe`'s exit code for ICMP host/network unreachable (or no route).
pub const EXIT_UNREACHABLE: i32 = 4;
/// `ferry-probe`'s exit code when the kernel does not support the protocol (SCTP).
pub const EXIT_UNSUPPORTED: i32 = 5;
/// `ferry-probe`'s exit code for a connection reset after it was established.
pub const EXIT_RESET: i32 = 6;
/// `ferry-probe`'s exit code for bad arguments.
pub const EXIT_USAGE: i32 = 64;

/// A transport protocol the probe and the pod server speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP: connect, read one line.
    Tcp,
    /// UDP: send one datagram, read the reply.
    Udp,
    /// SCTP (one-to-one style): connect, read one line. Only if the kernel has SCTP.
    Sctp,
}

impl Proto {
    /// The lower-case name used on `ferry-probe`'s command line (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// How a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Actively refused: TCP RST to the SYN, or ICMP port unreachable (a `reject`).
    #[error("refused")]
    Refused,
    /// No answer within the timeout (dropped, or nothing listening behind a black hole).
    #[error("timed out")]
    TimedOut,
    /// ICMP host or network unreachable, or no route.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The connection was established, then reset before an answer came.
    #[error("reset after connecting")]
    Reset,
    /// The kernel lacks the protocol (SCTP on kernels built without it).
    #[error("protocol unsupported by this kernel: {0}")]
    Unsupported(String),
    /// Any other failure of the probe, as it described it.
    #[error("probe failed: {0}")]
    Other(String),
    /// The probe could not be run at all.
    #[error(transparent)]
    Lab(#[from] LabError),
}

/// One line of the pod server's answer, `NAME PEER_IP:PEER_PORT`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The `--name` the answering pod server was given.
    pub name: String,
    /// The address the server saw the request come from (after any NAT).
    pub peer: SocketAddr,
}

impl Answer {
    /// Parses an answer line (surrounding whitespace ignored); `None` if it is not one.
    pub fn parse(line: &str) -> Option<Answer> {
        let (name, peer) = line.trim().split_once(' ')?;
        Some(Answer { name: name.to_owned(), peer: peer.parse().ok()? })
    }
}

/// Connects over TCP from inside `ns` to `addr` and returns the line the server wrote
/// (without its newline).
pub fn tcp_request(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    request(ns, Proto::Tcp, addr, None, timeout)
}

/// Sends one UDP datagram from inside `ns` to `addr` and returns the reply (without its
/// newline). An ICMP port unreachable is [`ProbeError::Refused`].
pub fn udp_request(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    request(ns, Proto::Udp, addr, None, timeout)
}

/// Makes one request of `proto` from inside `ns` to `addr`, from the local address `bind`
/// if given (a fixed source port makes the same 5-tuple twice), waiting up to `timeout`
/// for the answer. Returns the answer line without its newline.
pub fn request(
    ns: &Netns,
    proto: Proto,
    addr: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let program = probe_program()?;
    let mut command = ns.command(&program.path);
    command.args(&program.args).args([proto.as_str(), &addr.to_string(), &timeout.as_millis().to_string()]);
    if let Some(bind) = bind {
        command.args(["--bind", &bind.to_string()]);
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
    // The probe keeps its own time; this only guards against a probe that hangs.
    let deadline = Instant::now() + timeout + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Other(format!("`{}` did not finish in time", describe(&command))));
            }
        }
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let said = || stderr.trim().to_owned();
    match status.code() {
        Some(EXIT_OK) => Ok(stdout.trim_end_matches(['\n', '\r']).to_owned()),
        Some(EXIT_REFUSED) => Err(ProbeError::Refused),
        Some(EXIT_TIMEOUT) => Err(ProbeError::TimedOut),
        Some(EXIT_UNREACHABLE) => Err(ProbeError::Unreachable(said())),
        Some(EXIT_UNSUPPORTED) => Err(ProbeError::Unsupported(said())),
        Some(EXIT_RESET) => Err(ProbeError::Reset),
        _ => Err(ProbeError::Other(format!("`{}` exited {status}: {}", describe(&command), said()))),
    }
}

/// Whether this kernel has SCTP (a socket `AF_INET, SOCK_STREAM, IPPROTO_SCTP` can be
/// created). The answer is the same in every namespace.
pub fn sctp_supported() -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::from(IPPROTO_SCTP))).is_ok()
}

/// IANA protocol number of SCTP (`IPPROTO_SCTP`).
pub const IPPROTO_SCTP: i32 = 132;
