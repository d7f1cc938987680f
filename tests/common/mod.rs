//! Helpers for the binary's integration tests: a controller wired to a fake API
//! server or a manifest directory, with a recording backend.
#![allow(dead_code)]

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferry_fake_apiserver::FakeApiServer;
use ferry_fixtures::RecordingBackend;
use ferry_model::ProxyState;
use kube_ferry::controller::{Controller, ControllerConfig, Source};
use kube_ferry::sync::SyncTiming;

pub const NODE: &str = "node-a";

/// A config for tests: servers on ephemeral loopback ports.
pub fn config(min_sync: Duration, sync_period: Duration) -> ControllerConfig {
    ControllerConfig {
        node_name: NODE.into(),
        timing: SyncTiming::new(min_sync, sync_period).expect("valid timing"),
        healthz_addr: Some((Ipv4Addr::LOCALHOST, 0).into()),
        metrics_addr: Some((Ipv4Addr::LOCALHOST, 0).into()),
        health_check_ip: Ipv4Addr::LOCALHOST.into(),
    }
}

/// A real kube client for the fake server.
pub fn client(api: &FakeApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(api.url().parse().expect("url"))).expect("client")
}

/// A controller on the fake API server with a fresh recording backend.
pub async fn api_controller(api: &FakeApiServer, config: ControllerConfig) -> (Controller, RecordingBackend) {
    let backend = RecordingBackend::new();
    let controller = Controller::start(config, Source::Api(client(api)), Box::new(backend.clone()))
        .await
        .expect("controller starts");
    (controller, backend)
}

/// A controller reading the manifests in `dir`, with a fresh recording backend.
pub async fn dir_controller(dir: &std::path::Path, config: ControllerConfig) -> (Controller, RecordingBackend) {
    let backend = RecordingBackend::new();
    let controller = Controller::start(config, Source::Dir(dir.to_owned()), Box::new(backend.clone()))
        .await
        .expect("controller starts");
    (controller, backend)
}

/// Polls `cond` every 10 ms until it holds, failing the test with `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`eventually`], for an async condition.
pub async fn eventually_async<F: Future<Output = bool>>(what: &str, limit: Duration, mut cond: impl FnMut() -> F) {
    let start = Instant::now();
    while !cond().await {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The endpoints of every port in a state, as "port-id -> ip:port,..." lines.
pub fn summary(state: &ProxyState) -> Vec<String> {
    state
        .ports()
        .map(|(id, p)| {
            let eps: Vec<String> = p.endpoints.iter().map(|e| e.addr().to_string()).collect();
            format!("{id} -> {}", eps.join(","))
        })
        .collect()
}

/// Whether the backend's last state has exactly these summary lines.
pub fn last_is(backend: &RecordingBackend, expected: &[&str]) -> bool {
    backend.last_state().is_some_and(|s| summary(&s) == expected)
}
