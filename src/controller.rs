//! Wiring: a source, the sync loop, a backend and the servers, started together.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ferry_model::Backend;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::error;

use crate::health::ProxyHealth;
use crate::metrics::ProxyMetrics;
use crate::server::{health_router, metrics_router, run_service_health_servers, serve};
use crate::source::api::run_api_source;
use crate::source::file::run_file_source;
use crate::sync::{Programmed, SyncLoop, SyncTiming};
use crate::tracker::ChangeTracker;

/// Where the objects come from.
#[derive(Clone)]
pub enum Source {
    /// The API server, through this client.
    Api(kube::Client),
    /// A directory of manifests (`--manifests`).
    Dir(PathBuf),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Api(_) => f.write_str("Source::Api"),
            Source::Dir(dir) => write!(f, "Source::Dir({})", dir.display()),
        }
    }
}

/// What a controller needs besides its source and backend.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// This node's name: endpoints with this `nodeName` are local.
    pub node_name: String,
    /// Sync periods.
    pub timing: SyncTiming,
    /// `/healthz` and `/livez`; `None` serves nothing.
    pub healthz_addr: Option<SocketAddr>,
    /// `/metrics`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// Where health-check node port servers listen (0.0.0.0 on a node).
    pub health_check_ip: IpAddr,
}

/// A running controller.
#[derive(Debug)]
pub struct Controller {
    /// The address `/healthz` is served on, once bound.
    pub healthz_addr: Option<SocketAddr>,
    /// The address `/metrics` is served on, once bound.
    pub metrics_addr: Option<SocketAddr>,
    /// What the sync loop programmed last.
    pub programmed: watch::Receiver<Programmed>,
    /// The shared change tracker (for tests and diagnostics).
    pub tracker: Arc<ChangeTracker>,
    /// The metrics.
    pub metrics: Arc<ProxyMetrics>,
    stop: Option<oneshot::Sender<()>>,
    sync_task: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl Controller {
    /// Binds the servers (failing at once if an address is taken), then starts the
    /// source, the sync loop and the servers.
    pub async fn start(
        config: ControllerConfig,
        source: Source,
        backend: Box<dyn Backend>,
    ) -> anyhow::Result<Controller> {
        let tracker = Arc::new(ChangeTracker::new());
        let health = Arc::new(ProxyHealth::new(config.timing.sync_period, tracker.clone()));
        let metrics = Arc::new(ProxyMetrics::new());
        let mut tasks = Vec::new();

        let bound = |addr: Option<SocketAddr>, what: &'static str| async move {
            match addr {
                Some(addr) => TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for {what}; is another proxy running?"))
                    .map(Some),
                None => Ok(None),
            }
        };
        let healthz = bound(config.healthz_addr, "/healthz").await?;
        let metrics_listener = bound(config.metrics_addr, "/metrics").await?;
        let healthz_addr = healthz.as_ref().map(TcpListener::local_addr).transpose()?;
        let metrics_addr = metrics_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        if let Some(listener) = healthz {
            let router = health_router(health.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = serve(listener, router).await {
                    error!(error = %e, "the healthz server failed");
                }
            }));
        }
        if let Some(listener) = metrics_listener {
            let router = metrics_router(metrics.clone(), health.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = serve(listener, router).await {
                    error!(error = %e, "the metrics server failed");
                }
            }));
        }

        let sync = SyncLoop::new(&config.node_name, backend, tracker.clone(), health, metrics.clone(), config.timing);
        let programmed = sync.subscribe();
        tasks.push(tokio::spawn(run_service_health_servers(config.health_check_ip, sync.subscribe())));
        let node = config.node_name.clone();
        let t = tracker.clone();
        tasks.push(match source {
            Source::Api(client) => tokio::spawn(run_api_source(client, node, t)),
            Source::Dir(dir) => tokio::spawn(run_file_source(dir, node, t)),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let sync_task = tokio::spawn(sync.run(async move {
            let _ = stopped.await;
        }));
        Ok(Controller { healthz_addr, metrics_addr, programmed, tracker, metrics, stop: Some(stop), sync_task, tasks })
    }

    /// Stops everything; a sync in progress is finished first.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.sync_task).await;
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Waits until the sync loop ends (it only ends when stopped).
    pub async fn wait(&mut self) {
        let _ = (&mut self.sync_task).await;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.sync_task.abort();
        for task in &self.tasks {
            task.abort();
        }
    }
}
