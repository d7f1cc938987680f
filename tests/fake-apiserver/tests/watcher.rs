//! `kube::runtime::watcher` against the fake server: initial list, live events, relists
//! after 410 Gone, re-watches after restarts, bookmarks.

mod common;

use common::{client, eventually, name_of, next_ok, quiet, read_init, spawn_watcher, svc};
use ferry_fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use std::sync::Arc;

const NO_PROXY: &str = "!service.kubernetes.io/service-proxy-name";
const PROXY: (&str, &str) = ("service.kubernetes.io/service-proxy-name", "other");

fn config() -> watcher::Config {
    watcher::Config::default().labels(NO_PROXY).page_size(2)
}

#[tokio::test]
async fn initial_list_then_apply_and_delete() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    for name in ["a", "b", "c"] {
        server.apply(&svc("default", name, &[]));
    }
    server.apply(&svc("default", "skip", &[PROXY]));
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = spawn_watcher(api, config());
    let mut errors = Vec::new();
    assert_eq!(read_init(&mut w, &mut errors).await, ["a", "b", "c"]);
    // page size 2 over 3 matching objects: two list pages.
    assert_eq!(server.list_requests("Service"), 2);

    server.apply(&svc("default", "d", &[]));
    match next_ok(&mut w, &mut errors).await {
        Event::Apply(s) => assert_eq!(name_of(&s), "d"),
        other => panic!("expected Apply, got {other:?}"),
    }
    server.delete::<Service>(Some("default"), "a");
    match next_ok(&mut w, &mut errors).await {
        Event::Delete(s) => assert_eq!(name_of(&s), "a"),
        other => panic!("expected Delete, got {other:?}"),
    }
    // Labelling a Service for another proxy removes it from this watcher's view.
    server.apply(&svc("default", "b", &[PROXY]));
    match next_ok(&mut w, &mut errors).await {
        Event::Delete(s) => assert_eq!(name_of(&s), "b"),
        other => panic!("expected Delete, got {other:?}"),
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(server.watch_requests("Service"), 1);
    Ok(())
}

#[tokio::test]
async fn gone_after_compaction_triggers_relist() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[]));
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = spawn_watcher(api, config());
    let mut errors = Vec::new();
    assert_eq!(read_init(&mut w, &mut errors).await, ["a"]);
    eventually(|| server.watch_requests("Service") == 1).await;

    // A change this watcher filters out (RV 2), then history up to it is lost and the
    // stream ends: the re-watch from RV 1 gets 410 and the watcher relists.
    server.apply(&svc("default", "b", &[PROXY]));
    server.compact();
    server.close_watches();
    match next_ok(&mut w, &mut errors).await {
        Event::Init => {}
        other => panic!("expected Init (relist), got {other:?}"),
    }
    let mut names = Vec::new();
    loop {
        match next_ok(&mut w, &mut errors).await {
            Event::InitApply(s) => names.push(name_of(&s)),
            Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names, ["a"]);
    assert!(errors.iter().any(|e| matches!(e, watcher::Error::WatchError(s) if s.code == 410)), "{errors:?}");
    assert_eq!(server.list_requests("Service"), 2);
    assert_eq!(server.watch_requests("Service"), 2);
    Ok(())
}

#[tokio::test]
async fn restart_causes_rewatch_without_relist() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[]));
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = spawn_watcher(api, config());
    let mut errors = Vec::new();
    assert_eq!(read_init(&mut w, &mut errors).await, ["a"]);
    eventually(|| server.watch_requests("Service") == 1).await;
    let lists = server.list_requests("Service");
    let addr = server.addr();

    server.restart(false).await?;
    assert_eq!(server.addr(), addr);
    // Written while the watch is down: must be replayed by the re-watch.
    server.apply(&svc("default", "b", &[]));
    match next_ok(&mut w, &mut errors).await {
        Event::Apply(s) => assert_eq!(name_of(&s), "b"),
        other => panic!("expected Apply, got {other:?}"),
    }
    assert_eq!(server.watch_requests("Service"), 2);
    assert_eq!(server.list_requests("Service"), lists, "no relist expected");

    // A restart that loses history, after a change the watcher filters out, forces a relist.
    server.apply(&svc("default", "hidden", &[PROXY]));
    server.restart(true).await?;
    let mut init_seen = false;
    loop {
        match next_ok(&mut w, &mut errors).await {
            Event::Init => init_seen = true,
            Event::InitApply(_) => assert!(init_seen),
            Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(server.list_requests("Service") > lists);
    Ok(())
}

#[tokio::test]
async fn bookmarks_advance_the_resume_point() -> anyhow::Result<()> {
    let server = Arc::new(FakeApiServer::start().await?);
    server.apply(&svc("default", "a", &[]));
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = spawn_watcher(api, config());
    let mut errors = Vec::new();
    assert_eq!(read_init(&mut w, &mut errors).await, ["a"]);
    eventually(|| server.watch_requests("Service") == 1).await;

    // Writes this watcher does not see (filtered out), from another thread.
    let s2 = server.clone();
    std::thread::spawn(move || {
        for i in 0..5 {
            s2.apply(&svc("default", &format!("other-{i}"), &[PROXY]));
        }
    })
    .join()
    .expect("thread");
    server.send_bookmarks();
    // The bookmark produces no watcher event; give the watcher time to consume it.
    quiet(&mut w, 300).await;
    // History up to now is dropped; the watcher resumes from the bookmark RV, which is
    // exactly the compaction point, so no 410 and no relist.
    server.compact();
    let lists = server.list_requests("Service");
    server.close_watches();
    eventually(|| server.watch_requests("Service") == 2).await;
    server.apply(&svc("default", "z", &[]));
    match next_ok(&mut w, &mut errors).await {
        Event::Apply(s) => assert_eq!(name_of(&s), "z"),
        other => panic!("expected Apply, got {other:?}"),
    }
    assert_eq!(server.list_requests("Service"), lists);
    assert!(errors.is_empty(), "{errors:?}");
    Ok(())
}

#[tokio::test]
async fn failed_list_is_retried() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[]));
    server.fail_lists(1);
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut w = spawn_watcher(api, config());
    let mut errors = Vec::new();
    // Init is emitted before the first list; the failed list resets the watcher.
    let mut inits = 0;
    loop {
        match next_ok(&mut w, &mut errors).await {
            Event::Init => inits += 1,
            Event::InitApply(s) => assert_eq!(name_of(&s), "a"),
            Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(inits, 2);
    assert!(matches!(errors.as_slice(), [watcher::Error::InitialListFailed(_)]), "{errors:?}");
    assert_eq!(server.list_requests("Service"), 2);
    Ok(())
}
