//! TCP through one service port: an endpoint chosen by the [`Balancer`], connected with
//! escalating timeouts and moved past on failure, then bytes copied both ways.
//!
//! Guarantees:
//! - Connection attempts use [`CONNECT_TIMEOUTS`] in turn (250 ms, 500 ms, 1 s, 2 s), each on
//!   the next endpoint not yet failed; when every endpoint failed (or there is none) the
//!   client is closed at once.
//! - Half-close: when one side ends its stream, the other side's write half is shut down
//!   and the other direction keeps flowing until it ends too.
//! - A connection idle (no byte either way) for `idle` is closed.
//! - Buffers are bounded: one 64 KiB buffer per direction (measured against 16 KiB:
//!   ~1.7x the throughput of one connection, docs/performance.md), allocated once bytes flow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tracing::debug;

use crate::balancer::Balancer;

/// The timeouts of successive connection attempts (each on another endpoint).
pub const CONNECT_TIMEOUTS: [Duration; 4] =
    [Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];

/// The copy buffer of one direction once bytes flow in bulk.
const BUFFER: usize = 64 * 1024;
/// The copy buffer of one direction at first.
const FIRST_BUFFER: usize = 4 * 1024;
/// Bytes one direction moves through its buffer before [`CopyMethod::Adaptive`] moves it
/// to `splice(2)`: past the size of a request or response, so short connections never
/// make pipes.
pub const SPLICE_AFTER: u64 = 1 << 20;

/// How a TCP frontend moves bytes between client and endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CopyMethod {
    /// Read into a buffer per direction (4 KiB, grown to 64 KiB in bulk) and write it out.
    Buffered,
    /// `splice(2)` through a pipe per direction, never through user space
    /// ([`crate::pipe_copy`]).
    Splice,
    /// Buffered until a direction has moved [`SPLICE_AFTER`] bytes, then `splice(2)`: short
    /// connections never make pipes, bulk ones never copy through user space. The default
    /// (measured: docs/performance.md).
    #[default]
    Adaptive,
}

impl CopyMethod {
    /// Copies both ways until both directions ended or nothing moved for `idle`; returns
    /// the bytes copied (to upstream, to client).
    pub async fn copy(self, client: TcpStream, upstream: TcpStream, idle: Duration) -> (u64, u64) {
        match self {
            CopyMethod::Buffered | CopyMethod::Adaptive => buffered(client, upstream, idle, self).await,
            CopyMethod::Splice => crate::pipe_copy::splice_both_ways(client, upstream, idle).await,
        }
    }
}

/// What every connection of a TCP frontend is proxied with.
#[derive(Clone, Debug)]
pub struct TcpOptions {
    /// A connection idle (no byte either way) this long is closed.
    pub idle: Duration,
    /// How bytes are moved.
    pub copy: CopyMethod,
    /// Only clients these ranges allow are proxied (a load-balancer IP's
    /// `loadBalancerSourceRanges`, B10); others are reset at once. `None`: every client.
    pub sources: Option<crate::sources::SourceRanges>,
}

/// Seconds on the process's monotonic clock, for the balancer's affinity timeouts.
pub fn now_seconds() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Connects to an endpoint for `client`, retrying on the next one on failure. Returns the
/// stream and the endpoint, or `None` when no endpoint answered.
pub async fn connect(balancer: &Arc<Mutex<Balancer>>, client: SocketAddr) -> Option<(TcpStream, SocketAddr)> {
    let mut failed = Vec::new();
    for timeout in CONNECT_TIMEOUTS {
        // A poisoned lock means a panic elsewhere mid-update; the balancer is still usable.
        let pick = balancer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pick_excluding(
            client.ip(),
            now_seconds(),
            &failed,
        );
        let endpoint = pick?;
        match tokio::time::timeout(timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => return Some((stream, endpoint)),
            Ok(Err(e)) => debug!(%endpoint, error = %e, "endpoint refused; trying the next"),
            Err(_) => debug!(%endpoint, ?timeout, "endpoint did not answer in time; trying the next"),
        }
        failed.push(endpoint);
    }
    None
}

/// Copies both ways between `client` and `upstream` until both directions ended, or
/// nothing moved for `idle`. Returns the bytes copied (to upstream, to client).
async fn buffered(client: TcpStream, upstream: TcpStream, idle: Duration, method: CopyMethod) -> (u64, u64) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let activity = Arc::new(Activity::new());
    let up = one_way(cr, uw, idle, activity.clone(), method);
    let down = one_way(ur, cw, idle, activity, method);
    tokio::join!(up, down)
}

/// When either direction last moved a byte (milliseconds since `start`): one atomic, not a
/// lock, per chunk.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// Activity now.
    pub(crate) fn new() -> Activity {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    /// Something moved now.
    pub(crate) fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since something last moved.
    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Copies `from` into `to` until `from` ends (then shuts `to`'s write half: half-close) or
/// neither direction moved for `idle`. The buffer is allocated when the first byte
/// arrives (so an idle connection holds none), small at first ([`FIRST_BUFFER`]) and
/// grown to [`BUFFER`] once a read fills it, so a short request/response connection never
/// zeroes 128 KiB. Under [`CopyMethod::Adaptive`], a direction that has moved
/// [`SPLICE_AFTER`] bytes continues with `splice(2)`.
async fn one_way(
    from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    idle: Duration,
    activity: Arc<Activity>,
    method: CopyMethod,
) -> u64 {
    let mut buffer: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        if method == CopyMethod::Adaptive && total >= SPLICE_AFTER {
            total += crate::pipe_copy::one_way(from.as_ref(), to.as_ref(), idle, &activity).await;
            break;
        }
        match tokio::time::timeout(idle, from.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            // Idle here; the other direction may still be busy.
            Err(_) if activity.idle_for() >= idle => break,
            Err(_) => continue,
        }
        if buffer.is_empty() {
            buffer = vec![0u8; FIRST_BUFFER];
        }
        match from.try_read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
                total += n as u64;
                activity.touch();
                if n == buffer.len() && buffer.len() < BUFFER {
                    buffer = vec![0u8; BUFFER];
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown().await;
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A server on loopback that answers each connection with `name` and echoes what it
    /// reads until the client half-closes.
    async fn server(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf).await;
                    let _ = s.write_all(&buf).await;
                });
            }
        });
        addr
    }

    /// An address nothing listens on (bound, then closed).
    async fn dead() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    fn client() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_skipped_and_the_next_one_answers() {
        let (gone, alive) = (dead().await, server("alive").await);
        let balancer = Arc::new(Mutex::new(Balancer::new(vec![gone, alive], None)));
        for _ in 0..3 {
            let (_, endpoint) = connect(&balancer, client()).await.expect("the live endpoint");
            assert_eq!(endpoint, alive);
        }
        let none = Arc::new(Mutex::new(Balancer::new(vec![gone], None)));
        assert!(connect(&none, client()).await.is_none(), "every endpoint failed: refused (B19)");
        let empty = Arc::new(Mutex::new(Balancer::new(Vec::new(), None)));
        assert!(connect(&empty, client()).await.is_none());
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_with_half_close() {
        let upstream_addr = server("pod-a").await;
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let u = TcpStream::connect(upstream_addr).await.unwrap();
            CopyMethod::Buffered.copy(c, u, Duration::from_secs(5)).await
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        c.write_all(b"hello through the proxy").await.unwrap();
        c.shutdown().await.unwrap(); // half-close: the server still answers after this
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "pod-a\nhello through the proxy");
    }

    #[tokio::test]
    async fn adaptive_copy_moves_bulk_data_on_to_splice_intact() {
        let upstream_addr = server("pod-a").await;
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let proxy = tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let u = TcpStream::connect(upstream_addr).await.unwrap();
            CopyMethod::Adaptive.copy(c, u, Duration::from_secs(5)).await
        });
        let payload: Vec<u8> = (0..3 * SPLICE_AFTER as usize + 17).map(|i| (i % 251) as u8).collect();
        let c = TcpStream::connect(front_addr).await.unwrap();
        let (mut r, mut w) = c.into_split();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(&got[..6], b"pod-a\n");
        assert!(got[6..] == payload[..], "the echo came back changed ({} of {} bytes)", got.len() - 6, payload.len());
        let (up, down) = proxy.await.unwrap();
        assert_eq!((up, down), (payload.len() as u64, payload.len() as u64 + 6));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let upstream_addr = server("pod-a").await;
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let done = tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let u = TcpStream::connect(upstream_addr).await.unwrap();
            CopyMethod::Adaptive.copy(c, u, Duration::from_millis(200)).await
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        let mut line = [0u8; 6];
        c.read_exact(&mut line).await.unwrap();
        let copied = tokio::time::timeout(Duration::from_secs(3), done).await.expect("closed when idle").unwrap();
        assert_eq!(copied, (0, 6));
    }
}
