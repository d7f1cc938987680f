//! The sync loop on its own, driven through the change tracker.

use std::sync::Arc;
use std::time::Duration;

use ferry_fixtures::{service, RecordingBackend};
use ferry_model::{ServiceName, ServiceSpec};
use kube_ferry::health::ProxyHealth;
use kube_ferry::metrics::ProxyMetrics;
use kube_ferry::sync::{SyncLoop, SyncTiming};
use kube_ferry::tracker::{ChangeTracker, ListKind};

#[tokio::test]
async fn nothing_is_programmed_until_both_lists_are_complete_and_no_change_means_no_call() {
    let tracker = Arc::new(ChangeTracker::new());
    let backend = RecordingBackend::new();
    let timing = SyncTiming::new(Duration::ZERO, Duration::from_secs(30)).unwrap();
    let health = Arc::new(ProxyHealth::new(timing.sync_period, tracker.clone()));
    let sync = SyncLoop::new(
        "node-a",
        Box::new(backend.clone()),
        tracker.clone(),
        health,
        Arc::new(ProxyMetrics::new()),
        timing,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sync.run(async move {
        let _ = stopped.await;
    }));

    let svc = service("default", "web").cluster_ip("10.96.0.10").port("", 80, "TCP").build();
    tracker.service(ServiceName::new("default", "web"), Some(ServiceSpec::admit(&svc)));
    tracker.listed(ListKind::Services);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.sync_count(), 0, "Services listed, EndpointSlices not yet: no sync");

    tracker.listed(ListKind::EndpointSlices);
    tokio::time::timeout(Duration::from_secs(5), async {
        while backend.sync_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a sync once both lists are in");
    assert!(backend.syncs()[0].full);

    // The same object again: the builder sees no change and the backend is not called.
    tracker.service(ServiceName::new("default", "web"), Some(ServiceSpec::admit(&svc)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.sync_count(), 1);

    let _ = stop.send(());
    task.await.unwrap();
}

#[test]
fn sync_period_must_not_be_shorter_than_min_sync_period() {
    let err = SyncTiming::new(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err();
    assert!(err.contains("--sync-period") && err.contains("--min-sync-period"), "{err}");
    assert!(SyncTiming::new(Duration::ZERO, Duration::ZERO).is_err());
}
