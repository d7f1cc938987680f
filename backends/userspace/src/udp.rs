//! One UDP frontend: a flow per client address, each with its own upstream socket to the
//! endpoint chosen when the flow began.
//!
//! Guarantees:
//! - A client's datagrams go to one endpoint while its flow lives; replies come back from
//!   the frontend's own address (the service address), so clients see what they asked.
//! - A flow idle (no datagram either way) for `idle` ends; its next datagram starts a new
//!   flow, and so a new choice (which is how an endpoint removed meanwhile stops being used).
//! - At most `max_flows` flows; datagrams that would start one more are dropped and counted.
//! - With no endpoint, datagrams are dropped (a proxy cannot send the kernel's ICMP reject).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::balancer::Balancer;
use crate::sources::SourceRanges;
use crate::tcp::now_seconds;

/// The largest datagram relayed.
const DATAGRAM: usize = 65_536;

#[derive(Debug)]
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Flow>>>;

/// A UDP frontend.
#[derive(Debug)]
pub struct UdpFrontend {
    addr: SocketAddr,
    balancer: Arc<Mutex<Balancer>>,
    flows: Flows,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is still consistent here.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl UdpFrontend {
    /// Listens on `addr` (must run in a Tokio runtime).
    pub async fn start(
        addr: SocketAddr,
        balancer: Arc<Mutex<Balancer>>,
        idle: Duration,
        max_flows: usize,
        sources: Option<SourceRanges>,
    ) -> std::io::Result<UdpFrontend> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let addr = socket.local_addr()?;
        let flows: Flows = Arc::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let (chooser, table, lost) = (balancer.clone(), flows.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; DATAGRAM];
            loop {
                let Ok((n, client)) = socket.recv_from(&mut buffer).await else { continue };
                if sources.as_ref().is_some_and(|s| !s.allows(client.ip())) {
                    continue; // outside loadBalancerSourceRanges (B10): dropped
                }
                let existing = lock(&table).get(&client).map(|f| (f.upstream.clone(), f.last.clone()));
                let (upstream, last) = match existing {
                    Some(flow) => flow,
                    None => {
                        if lock(&table).len() >= max_flows {
                            lost.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let Some(endpoint) = lock(&chooser).pick(client.ip(), now_seconds()) else {
                            lost.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let Ok(flow) = open_flow(endpoint, client, socket.clone(), table.clone(), idle).await else {
                            lost.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        flow
                    }
                };
                *lock(&last) = Instant::now();
                if let Err(e) = upstream.send(&buffer[..n]).await {
                    debug!(%client, error = %e, "datagram to the endpoint failed");
                }
            }
        });
        Ok(UdpFrontend { addr, balancer, flows, dropped, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its balancer.
    pub fn balancer(&self) -> &Arc<Mutex<Balancer>> {
        &self.balancer
    }

    /// The flows alive now.
    pub fn flows(&self) -> usize {
        lock(&self.flows).len()
    }

    /// Datagrams dropped: no endpoint, or the flow table full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl UdpFrontend {
    /// Stops and returns once the socket is closed.
    pub async fn stop(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for UdpFrontend {
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.flows).clear();
    }
}

/// A new flow from `client` to `endpoint`: an upstream socket, and a task relaying its
/// replies from `front` until the flow is idle for `idle`.
async fn open_flow(
    endpoint: SocketAddr,
    client: SocketAddr,
    front: Arc<UdpSocket>,
    table: Flows,
    idle: Duration,
) -> std::io::Result<(Arc<UdpSocket>, Arc<Mutex<Instant>>)> {
    let any: SocketAddr = if endpoint.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }
        .map_err(|_| std::io::Error::other("unspecified address"))?;
    let upstream = Arc::new(UdpSocket::bind(any).await?);
    upstream.connect(endpoint).await?;
    let last = Arc::new(Mutex::new(Instant::now()));
    lock(&table).insert(client, Flow { upstream: upstream.clone(), last: last.clone() });
    let (reader, seen) = (upstream.clone(), last.clone());
    tokio::spawn(async move {
        let mut buffer = vec![0u8; DATAGRAM];
        loop {
            match tokio::time::timeout(idle, reader.recv(&mut buffer)).await {
                Ok(Ok(n)) => {
                    *lock(&seen) = Instant::now();
                    let _ = front.send_to(&buffer[..n], client).await;
                }
                Ok(Err(_)) => {}
                Err(_) if lock(&seen).elapsed() >= idle => break,
                Err(_) => {}
            }
        }
        lock(&table).remove(&client);
    });
    Ok((upstream, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP server on loopback answering each datagram with `name`.
    async fn named(name: &'static str) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((_, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(name.as_bytes(), from).await;
            }
        });
        addr
    }

    async fn ask(client: &UdpSocket, to: SocketAddr) -> (String, SocketAddr) {
        client.send_to(b"?", to).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf)).await.unwrap().unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    #[tokio::test]
    async fn a_client_sticks_to_its_endpoint_replies_come_from_the_frontend_and_idle_flows_end() {
        let (a, b) = (named("pod-a").await, named("pod-b").await);
        let balancer = Arc::new(Mutex::new(Balancer::new(vec![a, b], None)));
        let front =
            UdpFrontend::start("127.0.0.1:0".parse().unwrap(), balancer, Duration::from_millis(300), 2, None).await.unwrap();
        let one = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let two = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (first, from) = ask(&one, front.addr()).await;
        assert_eq!(from, front.addr(), "replies come from the service address");
        for _ in 0..3 {
            assert_eq!(ask(&one, front.addr()).await.0, first, "one flow, one endpoint");
        }
        let (other, _) = ask(&two, front.addr()).await;
        assert_ne!(other, first, "the next flow goes to the next endpoint");
        assert_eq!(front.flows(), 2);
        // A third client: the table is full, its datagram is dropped and counted.
        let three = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        three.send_to(b"?", front.addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(front.dropped(), 1);
        // Idle flows end; the next datagram starts a new one.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(front.flows(), 0);
        assert!(ask(&three, front.addr()).await.0.starts_with("pod-"));
    }

    #[tokio::test]
    async fn without_endpoints_datagrams_are_dropped() {
        let balancer = Arc::new(Mutex::new(Balancer::new(Vec::new(), None)));
        let front =
            UdpFrontend::start("127.0.0.1:0".parse().unwrap(), balancer, Duration::from_secs(1), 10, None).await.unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(b"?", front.addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!((front.flows(), front.dropped()), (0, 1));
    }
}
