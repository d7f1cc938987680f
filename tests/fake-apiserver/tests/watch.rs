//! Raw watch semantics through `Api::watch`.

mod common;

use common::{client, name_of, next, quiet, svc};
use ferry_fake_apiserver::FakeApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, WatchEvent, WatchParams};
use std::time::{Duration, Instant};

fn summary(ev: &WatchEvent<Service>) -> String {
    match ev {
        WatchEvent::Added(s) => {
            format!("ADDED {} {}", name_of(s), s.metadata.resource_version.as_deref().unwrap_or(""))
        }
        WatchEvent::Modified(s) => {
            format!("MODIFIED {} {}", name_of(s), s.metadata.resource_version.as_deref().unwrap_or(""))
        }
        WatchEvent::Deleted(s) => {
            format!("DELETED {} {}", name_of(s), s.metadata.resource_version.as_deref().unwrap_or(""))
        }
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {} {}", e.code, e.reason),
    }
}

#[tokio::test]
async fn replays_history_then_streams_live() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[])); // 1
    server.apply(&svc("default", "b", &[])); // 2
    server.apply(&svc("default", "a", &[("x", "1")])); // 3
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = api.watch(&WatchParams::default(), "1").await?.boxed();
    assert_eq!(summary(&next(&mut w).await?), "ADDED b 2");
    assert_eq!(summary(&next(&mut w).await?), "MODIFIED a 3");
    server.delete::<Service>(None, "b");
    assert_eq!(summary(&next(&mut w).await?), "DELETED b 4");
    server.send_bookmarks();
    assert_eq!(summary(&next(&mut w).await?), "BOOKMARK 4");

    // resourceVersion "0": synthetic ADDED for the current state.
    let mut w0 = api.watch(&WatchParams::default(), "0").await?.boxed();
    assert_eq!(summary(&next(&mut w0).await?), "ADDED a 3");
    assert_eq!(server.watch_requests("Service"), 2);
    Ok(())
}

#[tokio::test]
async fn selector_transitions_become_added_and_deleted() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    let proxy = ("service.kubernetes.io/service-proxy-name", "other");
    server.apply(&svc("default", "a", &[])); // 1
    let api: Api<Service> = Api::all(client(&server.url()));
    let wp = WatchParams::default().labels("!service.kubernetes.io/service-proxy-name");
    let mut w = api.watch(&wp, "1").await?.boxed();
    server.apply(&svc("default", "a", &[proxy])); // 2: leaves the selection
    assert_eq!(summary(&next(&mut w).await?), "DELETED a 2");
    server.apply(&svc("default", "a", &[proxy, ("x", "y")])); // 3: still outside
    server.apply(&svc("default", "a", &[])); // 4: enters again
    assert_eq!(summary(&next(&mut w).await?), "ADDED a 4");
    server.apply(&svc("default", "b", &[proxy])); // 5: never matches
    server.delete::<Service>(None, "b"); // 6
    server.delete::<Service>(None, "a"); // 7
    assert_eq!(summary(&next(&mut w).await?), "DELETED a 7");
    quiet(&mut w, 100).await;
    Ok(())
}

#[tokio::test]
async fn compacted_resource_version_gets_410() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[]));
    server.apply(&svc("default", "b", &[]));
    server.compact();
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = api.watch(&WatchParams::default(), "1").await?.boxed();
    match next(&mut w).await? {
        WatchEvent::Error(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert_eq!(s.message, "too old resource version: 1 (2)");
        }
        other => panic!("expected ERROR, got {}", summary(&other)),
    }
    assert!(w.next().await.is_none(), "stream must end after the 410");
    // Watching from the compaction point itself is fine.
    let mut w = api.watch(&WatchParams::default(), "2").await?.boxed();
    server.apply(&svc("default", "c", &[]));
    assert_eq!(summary(&next(&mut w).await?), "ADDED c 3");
    Ok(())
}

#[tokio::test]
async fn timeout_bookmark_interval_and_close() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    let api: Api<Service> = Api::all(client(&server.url()));
    let start = Instant::now();
    let mut w = api.watch(&WatchParams::default().timeout(1), "0").await?.boxed();
    assert!(tokio::time::timeout(Duration::from_secs(5), w.next()).await?.is_none());
    assert!(start.elapsed() >= Duration::from_millis(900));

    server.set_bookmark_interval(Some(Duration::from_millis(50)));
    let mut w = api.watch(&WatchParams::default(), "0").await?.boxed();
    assert_eq!(summary(&next(&mut w).await?), "BOOKMARK 0");
    assert_eq!(summary(&next(&mut w).await?), "BOOKMARK 0");
    // Without allowWatchBookmarks nothing is sent.
    let mut quiet_w = api.watch(&WatchParams::default().disable_bookmarks(), "0").await?.boxed();
    quiet(&mut quiet_w, 200).await;
    server.set_bookmark_interval(None);

    server.close_watches();
    assert!(tokio::time::timeout(Duration::from_secs(5), async { while w.next().await.is_some() {} }).await.is_ok());
    Ok(())
}
