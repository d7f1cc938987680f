//! The accept loop: one task owning the listener and every connection task, so that a
//! simulated restart can abort all connections at once.

use crate::http::{handle, Shared};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// A running accept loop.
pub(crate) struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, aborts every open connection and waits until all sockets are closed.
    pub async fn stop(self) {
        // An Err means the loop already ended; either way we wait for it below.
        let _ = self.shutdown.send(());
        if let Err(e) = self.task.await {
            tracing::warn!("fake-apiserver accept loop ended abnormally: {e}");
        }
    }
}

/// Binds a listener with SO_REUSEADDR so that a restart can rebind the same port while
/// the aborted connections linger in TIME_WAIT.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn serve_connection(stream: TcpStream, store: Shared) {
    let service = service_fn(move |req| handle(store.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("fake-apiserver connection ended: {e}");
    }
}

/// Spawns the accept loop on the current tokio runtime.
pub(crate) fn spawn(listener: TcpListener, store: Shared) -> Running {
    let (shutdown, mut stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                // Fires on an explicit stop and when the handle is dropped.
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn(serve_connection(stream, store.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("fake-apiserver accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        // Aborts every connection task (dropping its socket) and waits for them.
        conns.shutdown().await;
    });
    Running { shutdown, task }
}
