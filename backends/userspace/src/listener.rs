//! One TCP frontend (an address and port of a service port): accepts, bounds, proxies.
//!
//! Guarantees:
//! - At most `per_service` concurrent connections for this frontend's service port and
//!   `total` for the whole proxy (the [`Limits`] shared by all frontends); a connection over
//!   either limit is closed at once, counted in [`Limits::refused`], and logged once a
//!   second at most.
//! - Endpoint updates ([`TcpFrontend::balancer`]) apply to new connections; established
//!   ones go on to the endpoint they have.
//! - Dropping the frontend stops accepting (its listener closes); established connections
//!   are not cut.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::balancer::Balancer;
use crate::tcp::{connect, TcpOptions};

/// Connection limits shared by every frontend of one proxy.
#[derive(Debug)]
pub struct Limits {
    total: Arc<Semaphore>,
    per_service: usize,
    refused: AtomicU64,
    last_warning: Mutex<Option<std::time::Instant>>,
}

impl Limits {
    /// At most `total` connections in all, `per_service` per service port.
    pub fn new(total: usize, per_service: usize) -> Arc<Limits> {
        Arc::new(Limits {
            total: Arc::new(Semaphore::new(total)),
            per_service,
            refused: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    /// Connections closed because a limit was reached, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self, frontend: SocketAddr, which: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            warn!(%frontend, limit = which, refused = self.refused(), "connection limit reached; new connections are closed");
        }
    }
}

/// A listening TCP frontend.
#[derive(Debug)]
pub struct TcpFrontend {
    addr: SocketAddr,
    balancer: Arc<Mutex<Balancer>>,
    accept: JoinHandle<()>,
}

impl TcpFrontend {
    /// Listens on `addr` and proxies to `balancer`'s endpoints (must run in a Tokio
    /// runtime). `service` is the semaphore of its service port, shared by the port's
    /// frontends.
    pub async fn start(
        addr: SocketAddr,
        balancer: Arc<Mutex<Balancer>>,
        service: Arc<Semaphore>,
        limits: Arc<Limits>,
        options: TcpOptions,
    ) -> std::io::Result<TcpFrontend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let chooser = balancer.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, say: wait a little rather than spin.
                        warn!(frontend = %addr, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if options.sources.as_ref().is_some_and(|s| !s.allows(peer.ip())) {
                    // Outside loadBalancerSourceRanges (B10): reset, not proxied.
                    let _ = client.set_zero_linger();
                    continue;
                }
                let Ok(global) = limits.total.clone().try_acquire_owned() else {
                    limits.refuse(addr, "total");
                    continue;
                };
                let Ok(local) = service.clone().try_acquire_owned() else {
                    limits.refuse(addr, "per service");
                    continue;
                };
                let chooser = chooser.clone();
                let (copy, idle) = (options.copy, options.idle);
                tokio::spawn(async move {
                    let _permits = (global, local);
                    if let Some((upstream, _)) = connect(&chooser, peer).await {
                        copy.copy(client, upstream, idle).await;
                    }
                });
            }
        });
        Ok(TcpFrontend { addr, balancer, accept })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its balancer (update the endpoints through it).
    pub fn balancer(&self) -> &Arc<Mutex<Balancer>> {
        &self.balancer
    }

    /// The per-service semaphore for a port allowing `limits.per_service` connections.
    pub fn service_semaphore(limits: &Limits) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(limits.per_service))
    }
}

impl TcpFrontend {
    /// Stops accepting and returns once the listening socket is closed (new connections
    /// are then refused by the kernel); established connections are not cut.
    pub async fn stop(mut self) {
        self.accept.abort();
        let accept = std::mem::replace(&mut self.accept, tokio::spawn(async {}));
        let _ = accept.await;
    }
}

impl Drop for TcpFrontend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::CopyMethod;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn named_server(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                    let mut sink = [0u8; 64];
                    // Hold the connection until the client goes.
                    let _ = s.read(&mut sink).await;
                });
            }
        });
        addr
    }

    async fn ask(addr: SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(3), c.read(&mut buf)).await.unwrap().unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn frontend_addr() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn connections_rotate_over_the_endpoints_and_follow_updates() {
        let (a, b) = (named_server("pod-a").await, named_server("pod-b").await);
        let limits = Limits::new(100, 100);
        let balancer = Arc::new(Mutex::new(Balancer::new(vec![a, b], None)));
        let frontend = TcpFrontend::start(
            frontend_addr(),
            balancer,
            TcpFrontend::service_semaphore(&limits),
            limits.clone(),
            TcpOptions { idle: Duration::from_secs(5), copy: CopyMethod::Buffered, sources: None },
        )
        .await
        .unwrap();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..4 {
            seen.push(ask(frontend.addr()).await);
        }
        seen.sort();
        assert_eq!(seen, ["pod-a", "pod-a", "pod-b", "pod-b"]);
        frontend.balancer().lock().unwrap().update(vec![b], None);
        assert_eq!(ask(frontend.addr()).await, "pod-b");
        let addr = frontend.addr();
        drop(frontend);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "a removed frontend stops listening");
    }

    #[tokio::test]
    async fn the_per_service_limit_closes_what_is_over_it_and_counts() {
        let a = named_server("pod-a").await;
        let limits = Limits::new(100, 2);
        let balancer = Arc::new(Mutex::new(Balancer::new(vec![a], None)));
        let frontend = TcpFrontend::start(
            frontend_addr(),
            balancer,
            TcpFrontend::service_semaphore(&limits),
            limits.clone(),
            TcpOptions { idle: Duration::from_secs(5), copy: CopyMethod::Splice, sources: None },
        )
        .await
        .unwrap();
        // Two held connections use the limit up.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(frontend.addr()).await.unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).await.unwrap();
            held.push(c);
        }
        assert_eq!(ask(frontend.addr()).await, "", "the third is closed at once");
        assert_eq!(limits.refused(), 1);
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ask(frontend.addr()).await, "pod-a", "permits come back when connections end");
    }
}
