//! One HTTP server per `healthCheckNodePort` (B30): 200 with the number of usable local
//! endpoints while there is at least one, 503 otherwise, so an external load balancer
//! sends traffic only to nodes that can serve it under `externalTrafficPolicy: Local`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ferry_model::state::HealthCheck;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::sync::Programmed;

/// The header carrying the endpoint count, as kube-proxy sends it.
pub const WEIGHT_HEADER: &str = "x-load-balancing-endpoint-weight";

/// The running health-check servers, one per node port.
#[derive(Debug)]
pub struct ServiceHealthServers {
    bind_ip: IpAddr,
    servers: BTreeMap<u16, Server>,
}

#[derive(Debug)]
struct Server {
    check: watch::Sender<HealthCheck>,
    task: JoinHandle<()>,
}

impl Drop for ServiceHealthServers {
    fn drop(&mut self) {
        for server in self.servers.values() {
            server.task.abort();
        }
    }
}

impl ServiceHealthServers {
    /// No servers yet; they will listen on `bind_ip` (0.0.0.0 on a node).
    pub fn new(bind_ip: IpAddr) -> ServiceHealthServers {
        ServiceHealthServers { bind_ip, servers: BTreeMap::new() }
    }

    /// The ports served now.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }

    /// Starts, updates and stops servers so exactly `checks` are served. A port that
    /// cannot be bound is logged and tried again on the next update.
    pub async fn update(&mut self, checks: &[HealthCheck]) {
        let wanted: BTreeMap<u16, &HealthCheck> = checks.iter().map(|c| (c.node_port, c)).collect();
        self.servers.retain(|port, server| {
            let keep = wanted.contains_key(port);
            if !keep {
                server.task.abort();
                info!(port, "health-check server stopped");
            }
            keep
        });
        for (port, check) in wanted {
            if let Some(server) = self.servers.get(&port) {
                server.check.send_if_modified(|c| {
                    let changed = c != check;
                    *c = check.clone();
                    changed
                });
                continue;
            }
            let addr = SocketAddr::new(self.bind_ip, port);
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let (tx, rx) = watch::channel(check.clone());
                    let task = tokio::spawn(async move {
                        if let Err(e) = axum::serve(listener, router(rx)).await {
                            error!(port, error = %e, "health-check server failed");
                        }
                    });
                    info!(port, service = %check.service, "health-check server started");
                    self.servers.insert(port, Server { check: tx, task });
                }
                Err(e) => {
                    error!(%addr, service = %check.service, error = %e, "cannot serve the health-check node port")
                }
            }
        }
    }
}

fn router(check: watch::Receiver<HealthCheck>) -> Router {
    Router::new().fallback(get(move || {
        let check = check.borrow().clone();
        async move {
            let n = check.local_endpoints;
            let status = if n > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let body = serde_json::json!({
                "service": { "namespace": &*check.service.namespace, "name": &*check.service.name },
                "localEndpoints": n,
                "serviceProxyHealthy": true,
            });
            (
                status,
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (HeaderName::from_static(WEIGHT_HEADER), n.to_string()),
                ],
                body.to_string(),
            )
                .into_response()
        }
    }))
}

/// Keeps the servers in step with what the sync loop programmed.
pub async fn run_service_health_servers(bind_ip: IpAddr, mut programmed: watch::Receiver<Programmed>) {
    let mut servers = ServiceHealthServers::new(bind_ip);
    loop {
        let checks = programmed.borrow_and_update().health_checks.clone();
        servers.update(&checks).await;
        if programmed.changed().await.is_err() {
            return;
        }
    }
}
