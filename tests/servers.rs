//! /healthz, /livez, /metrics (B29, B31) and health-check node ports (B30).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

fn lb_local(hc_port: u16, local_ready: bool) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: shop, namespace: demo}}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.80
  externalTrafficPolicy: Local
  healthCheckNodePort: {hc_port}
  ports: [{{port: 443, nodePort: 30443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: shop-1
  namespace: demo
  labels: {{kubernetes.io/service-name: shop}}
addressType: IPv4
ports: [{{port: 8443, protocol: TCP}}]
endpoints:
- addresses: [10.244.1.14]
  nodeName: node-a
  conditions: {{ready: {local_ready}, serving: true, terminating: {}}}
- addresses: [10.244.2.24]
  nodeName: node-b
",
        !local_ready
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_livez_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), lb_local(free_port(), true)).unwrap();
    let (controller, backend) =
        dir_controller(dir.path(), config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    let base = format!("http://{}", controller.healthz_addr.unwrap());

    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(body["lastUpdated"].as_str().is_some_and(|s| s.ends_with('Z')), "{body}");
    assert!(body["currentTime"].as_str().is_some(), "{body}");
    assert_eq!(body["nodeEligible"], true);
    let r = reqwest::get(format!("{base}/livez")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reqwest::get(format!("{base}/nothing")).await.unwrap().status(), 404);

    let metrics = reqwest::get(format!("http://{}/metrics", controller.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "kubeferry_sync_proxy_rules_duration_seconds_bucket",
        "kubeferry_sync_proxy_rules_last_timestamp_seconds",
        "kubeferry_sync_proxy_rules_last_queued_timestamp_seconds",
        "kubeferry_sync_proxy_rules_service_changes_pending",
        "kubeferry_sync_proxy_rules_endpoint_changes_pending",
        "kubeferry_sync_proxy_rules_failures_total 0",
        "kubeferry_programmed_objects{kind=\"service_ports\"} 1",
        "kubeferry_programmed_objects{kind=\"endpoints\"} 2",
        "kubeferry_sync_proxy_rules_no_local_endpoints{traffic_policy=\"external\"} 0",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_503_when_a_change_waits_longer_than_twice_the_sync_period() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), lb_local(free_port(), true)).unwrap();
    let (controller, backend) = dir_controller(dir.path(), config(Duration::ZERO, Duration::from_millis(300))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    let url = format!("http://{}/livez", controller.healthz_addr.unwrap());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    // A slow backend: the next change takes 2 s to program, far over 2 x 300 ms.
    backend.set_delay(Duration::from_secs(2));
    std::fs::write(dir.path().join("shop.yaml"), lb_local(free_port(), false)).unwrap();
    eventually_async("livez 503 while a change is stuck", WAIT, || {
        let url = url.clone();
        async move { reqwest::get(&url).await.map(|r| r.status() == 503).unwrap_or(false) }
    })
    .await;
    backend.set_delay(Duration::ZERO);
    eventually_async("livez 200 once it is programmed", WAIT, || {
        let url = url.clone();
        async move { reqwest::get(&url).await.map(|r| r.status() == 200).unwrap_or(false) }
    })
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b30_health_check_node_port_counts_usable_local_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("shop.yaml"), lb_local(port, true)).unwrap();
    let (controller, _backend) =
        dir_controller(dir.path(), config(Duration::from_millis(20), Duration::from_secs(30))).await;
    let url = format!("http://127.0.0.1:{port}/");
    eventually_async("the health-check server", WAIT, || {
        let url = url.clone();
        async move { reqwest::get(&url).await.is_ok() }
    })
    .await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-load-balancing-endpoint-weight"], "1");
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["service"]["namespace"], "demo");
    assert_eq!(body["service"]["name"], "shop");
    assert_eq!(body["localEndpoints"], 1);

    // The local endpoint turns terminating: it counts 0, and the answer is 503.
    std::fs::write(dir.path().join("shop.yaml"), lb_local(port, false)).unwrap();
    eventually_async("503 with only a terminating local endpoint", WAIT, || {
        let url = url.clone();
        async move { reqwest::get(&url).await.map(|r| r.status() == 503).unwrap_or(false) }
    })
    .await;
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.headers()["x-load-balancing-endpoint-weight"], "0");

    // The service goes away: so does its server.
    std::fs::remove_file(dir.path().join("shop.yaml")).unwrap();
    eventually_async("the server closed", WAIT, || {
        let url = url.clone();
        async move { reqwest::get(&url).await.is_err() }
    })
    .await;
    controller.stop().await;
}
