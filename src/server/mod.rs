//! The HTTP servers operators rely on: `/healthz` and `/livez` (B29), `/metrics` (B31)
//! and one health-check server per `healthCheckNodePort` (B30).

mod service_health;

pub use service_health::{run_service_health_servers, ServiceHealthServers};

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::health::{HealthReport, ProxyHealth};
use crate::metrics::ProxyMetrics;

fn health_response(report: HealthReport) -> Response {
    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::to_string(&report).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], body)
        .into_response()
}

/// The router of the healthz address: `/healthz` and `/livez`.
pub fn health_router(health: Arc<ProxyHealth>) -> Router {
    let h = health.clone();
    Router::new()
        .route("/healthz", get(move || async move { health_response(h.healthz()) }))
        .route("/livez", get(move || async move { health_response(health.livez()) }))
}

/// The router of the metrics address: `/metrics` (and `/healthz`, as kube-proxy's
/// metrics port also answers it).
pub fn metrics_router(metrics: Arc<ProxyMetrics>, health: Arc<ProxyHealth>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    metrics.encode(),
                )
            }),
        )
        .route("/healthz", get(move || async move { health_response(health.healthz()) }))
}

/// Serves `router` on `listener` until the process ends or the server fails.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
