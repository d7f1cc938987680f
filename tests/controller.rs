//! The controller against a real kube client and an in-process API server.

mod common;

use std::time::Duration;

use common::*;
use ferry_fake_apiserver::FakeApiServer;
use ferry_fixtures::{node, service, slice};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

const WAIT: Duration = Duration::from_secs(10);

fn web() -> Service {
    service("default", "web").cluster_ip("10.96.0.10").port("http", 80, "TCP").build()
}

fn web_slice(addrs: &[&str]) -> EndpointSlice {
    let mut s = slice("default", "web-1", "web", "IPv4").port("http", 8080, "TCP");
    for a in addrs {
        s = s.ready(a, NODE);
    }
    s.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_and_delete_reach_the_backend() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;

    eventually("the first sync", WAIT, || last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.5:8080"])).await;
    let first = &backend.syncs()[0];
    assert!(first.full, "the first sync is full");

    api.apply(&web_slice(&["10.244.1.5", "10.244.1.6"]));
    eventually("the new endpoint", WAIT, || {
        last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.5:8080,10.244.1.6:8080"])
    })
    .await;
    let last = backend.syncs().pop().unwrap();
    let diff = last.diff.expect("an incremental sync");
    assert_eq!(diff.changed.len(), 1);
    assert_eq!(
        diff.changed[0].endpoints.added.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["10.244.1.6:8080"]
    );

    api.apply(&service("default", "api").cluster_ip("10.96.0.11").port("", 443, "TCP").build());
    eventually("the second service", WAIT, || backend.last_state().is_some_and(|s| s.len() == 2)).await;

    api.delete::<Service>(Some("default"), "web");
    eventually("the deleted service gone", WAIT, || last_is(&backend, &["default/api/TCP (IPv4) -> "])).await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_for_another_proxy_and_headless_slices_are_not_even_watched() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(
        &service("default", "mesh")
            .cluster_ip("10.96.0.12")
            .port("", 80, "TCP")
            .label("service.kubernetes.io/service-proxy-name", "other")
            .build(),
    );
    api.apply(&web_slice(&["10.244.1.5"]));
    api.apply(
        &slice("default", "db-1", "db", "IPv4")
            .label("service.kubernetes.io/headless", "")
            .ready("10.244.1.9", NODE)
            .build(),
    );
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    let state = backend.last_state().unwrap();
    assert_eq!(summary(&state), vec!["default/web:http/TCP (IPv4) -> 10.244.1.5:8080"]);
    // The headless slice was filtered by the API server: no "missing service" rejection.
    let metrics = reqwest::get(format!("http://{}/metrics", controller.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("db-1"), "{metrics}");
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sync_has_the_whole_picture_even_when_a_list_fails() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    api.fail_lists(2);
    let (controller, backend) = api_controller(&api, config(Duration::ZERO, Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    let first = &backend.syncs()[0];
    assert_eq!(summary(&first.state), vec!["default/web:http/TCP (IPv4) -> 10.244.1.5:8080"], "never half a picture");
    assert!(api.list_requests("Service") + api.list_requests("EndpointSlice") >= 3);
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_changes_is_coalesced_into_a_handful_of_syncs() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(250), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() == 1).await;
    let before = backend.sync_count();
    for i in 0..1000u32 {
        let ip = format!("10.244.{}.{}", 2 + i / 250, 1 + i % 250);
        api.apply(&web_slice(&["10.244.1.5", &ip]));
    }
    let expected = "default/web:http/TCP (IPv4) -> 10.244.1.5:8080,10.244.5.250:8080";
    eventually("the last change", WAIT, || last_is(&backend, &[expected])).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let syncs = backend.sync_count() - before;
    assert!((1..=8).contains(&syncs), "1,000 changes took {syncs} syncs");
    // Consecutive syncs are at least min-sync-period apart.
    let times: Vec<_> = backend.syncs().iter().map(|s| s.at).collect();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(240), "syncs {:?} apart", pair[1] - pair[0]);
    }
    controller.stop().await;
}

/// Forces the next watch to get 410 Gone: a change the watchers filter out moves the
/// resource version on, then history is compacted and the watches closed.
fn force_410(api: &FakeApiServer) {
    api.apply(
        &service("default", "filtered")
            .cluster_ip("10.96.9.9")
            .port("", 1, "TCP")
            .label("service.kubernetes.io/service-proxy-name", "x")
            .build(),
    );
    api.apply(&slice("default", "filtered-1", "filtered", "IPv4").label("service.kubernetes.io/headless", "").build());
    api.compact();
    api.close_watches();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_relists_without_spurious_deletes_and_applies_what_changed_meanwhile() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    api.apply(&service("default", "old").cluster_ip("10.96.0.13").port("", 80, "TCP").build());
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.last_state().is_some_and(|s| s.len() == 2)).await;
    let lists_before = api.list_requests("Service");

    // The watch breaks; meanwhile "old" is deleted and compacted out of history, so the
    // only way to learn about it is the relist.
    api.delete::<Service>(Some("default"), "old");
    force_410(&api);
    eventually("a relist", WAIT, || api.list_requests("Service") > lists_before).await;
    eventually("the deletion found by the relist", WAIT, || {
        last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.5:8080"])
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for sync in backend.syncs() {
        assert!(
            summary(&sync.state).contains(&"default/web:http/TCP (IPv4) -> 10.244.1.5:8080".to_owned()),
            "web (or its endpoint) was dropped during the relist: {:?}",
            summary(&sync.state)
        );
        if let Some(diff) = &sync.diff {
            assert!(diff.removed.iter().all(|id| &*id.service.name == "old"), "spurious removal: {diff:?}");
        }
    }
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_is_survived_without_spurious_deletes() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    let lists_before = api.list_requests("EndpointSlice");
    force_410(&api);
    api.restart(true).await.unwrap();
    api.apply(&web_slice(&["10.244.1.5", "10.244.1.7"]));
    eventually("the change after the restart", WAIT, || {
        last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.5:8080,10.244.1.7:8080"])
    })
    .await;
    assert!(api.list_requests("EndpointSlice") > lists_before, "a restart that lost history forces a relist");
    for sync in backend.syncs() {
        assert_eq!(sync.state.len(), 1, "the service was never dropped");
        assert!(!sync.state.ports().next().unwrap().1.endpoints.is_empty(), "its endpoint was never dropped");
    }
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_retried_as_a_full_sync_with_backoff() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() == 1).await;
    backend.fail_next(2);
    api.apply(&web_slice(&["10.244.1.6"]));
    eventually("success after two failures", WAIT, || backend.sync_count() == 4 && !backend.syncs()[3].failed).await;
    let syncs = backend.syncs();
    assert!(syncs[1].failed && syncs[2].failed);
    assert!(!syncs[1].full, "the change itself is sent incrementally");
    assert!(syncs[2].full && syncs[3].full, "retries are full syncs");
    let first_gap = syncs[2].at - syncs[1].at;
    let second_gap = syncs[3].at - syncs[2].at;
    assert!(first_gap >= Duration::from_millis(900), "first retry after {first_gap:?}");
    assert!(second_gap >= first_gap + Duration::from_millis(500), "backoff grows: {first_gap:?} then {second_gap:?}");
    assert!(last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.6:8080"]));
    let metrics = reqwest::get(format!("http://{}/metrics", controller.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kubeferry_sync_proxy_rules_failures_total 2"), "{metrics}");
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_zone_and_deletion_come_from_its_node_object() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply(&node("node-b").zone("zone-x").build());
    api.apply(&web());
    api.apply(
        &slice("default", "web-1", "web", "IPv4")
            .port("http", 8080, "TCP")
            .ready("10.244.1.5", NODE)
            .hints(&["zone-a"], &[])
            .ready("10.244.2.5", "node-b")
            .hints(&["zone-b"], &[])
            .build(),
    );
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    let cluster_set = |b: &ferry_fixtures::RecordingBackend| {
        b.last_state()
            .map(|s| s.ports().next().unwrap().1.cluster_endpoints().map(|e| e.addr().to_string()).collect::<Vec<_>>())
    };
    eventually("both endpoints without a zone", WAIT, || cluster_set(&backend).is_some_and(|c| c.len() == 2)).await;
    api.apply(&node(NODE).zone("zone-b").build());
    eventually("zone-b's endpoint only", WAIT, || cluster_set(&backend) == Some(vec!["10.244.2.5:8080".into()])).await;

    let healthz = format!("http://{}/healthz", controller.healthz_addr.unwrap());
    assert_eq!(reqwest::get(&healthz).await.unwrap().status(), 200);
    api.apply(&node(NODE).zone("zone-b").taint("ToBeDeletedByClusterAutoscaler").build());
    eventually_async("healthz 503 for a node being deleted", WAIT, || {
        let url = healthz.clone();
        async move { reqwest::get(&url).await.map(|r| r.status() == 503).unwrap_or(false) }
    })
    .await;
    let livez = format!("http://{}/livez", controller.healthz_addr.unwrap());
    assert_eq!(reqwest::get(&livez).await.unwrap().status(), 200, "livez ignores the node");
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_keep_the_watch_going_without_relists() {
    let api = FakeApiServer::start().await.unwrap();
    api.set_bookmark_interval(Some(Duration::from_millis(30)));
    api.apply(&web());
    api.apply(&web_slice(&["10.244.1.5"]));
    let (controller, backend) = api_controller(&api, config(Duration::from_millis(20), Duration::from_secs(30))).await;
    eventually("the first sync", WAIT, || backend.sync_count() > 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // several bookmarks
    api.apply(&web_slice(&["10.244.1.8"]));
    eventually("a change after bookmarks", WAIT, || {
        last_is(&backend, &["default/web:http/TCP (IPv4) -> 10.244.1.8:8080"])
    })
    .await;
    assert_eq!(api.list_requests("Service"), 1, "bookmarks never cause a relist");
    assert_eq!(api.list_requests("EndpointSlice"), 1);
    controller.stop().await;
}
