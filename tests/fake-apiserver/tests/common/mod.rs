//! Helpers shared by the integration tests.
#![allow(dead_code)]

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// A kube client talking plain HTTP to `url`.
pub fn client(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().expect("valid url"));
    kube::Client::try_from(config).expect("client")
}

/// A Service `ns/name` with the given labels.
pub fn svc(ns: &str, name: &str, labels: &[(&str, &str)]) -> Service {
    Service { metadata: meta(Some(ns), name, labels), ..Default::default() }
}

/// An EndpointSlice `ns/name`.
pub fn slice(ns: &str, name: &str) -> EndpointSlice {
    EndpointSlice { metadata: meta(Some(ns), name, &[]), address_type: "IPv4".into(), endpoints: vec![], ports: None }
}

/// A Node `name`.
pub fn node(name: &str) -> Node {
    Node { metadata: meta(None, name, &[]), ..Default::default() }
}

fn meta(ns: Option<&str>, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

/// The next item of `s`, failing the test after 10 seconds.
pub async fn next<S: Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("timed out waiting for the next stream item")
        .expect("stream ended")
}

/// The next successful watcher event, skipping (and returning) errors seen on the way.
pub async fn next_ok<K: Debug, S>(s: &mut S, errors: &mut Vec<watcher::Error>) -> Event<K>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    loop {
        match next(s).await {
            Ok(ev) => return ev,
            Err(e) => errors.push(e),
        }
    }
}

/// Names of objects in an event, for compact assertions.
pub fn name_of<K: kube::Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

/// Reads a full initial list (Init, InitApply*, InitDone) and returns the names.
pub async fn read_init<K, S>(s: &mut S, errors: &mut Vec<watcher::Error>) -> Vec<String>
where
    K: kube::Resource + Debug,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    match next_ok(s, errors).await {
        Event::Init => {}
        other => panic!("expected Init, got {other:?}"),
    }
    let mut names = Vec::new();
    loop {
        match next_ok(s, errors).await {
            Event::InitApply(k) => names.push(name_of(&k)),
            Event::InitDone => return names,
            other => panic!("expected InitApply/InitDone, got {other:?}"),
        }
    }
}

/// Waits (up to 10s) until `f` holds.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10s");
}

/// Asserts nothing arrives on `s` for `ms` milliseconds.
pub async fn quiet<S: Stream + Unpin>(s: &mut S, ms: u64)
where
    S::Item: Debug,
{
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(ms), s.next()).await {
        panic!("expected no item, got {item:?}");
    }
}

/// Runs a watcher in its own task (as a controller would, so it re-watches without the
/// test polling it) and returns its events.
pub fn spawn_watcher<K>(
    api: kube::Api<K>,
    config: watcher::Config,
) -> futures::channel::mpsc::UnboundedReceiver<Result<Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        let mut w = watcher::watcher(api, config).boxed();
        while let Some(ev) = w.next().await {
            if tx.unbounded_send(ev).is_err() {
                return;
            }
        }
    });
    rx
}
