//! An in-process fake Kubernetes API server for kube-ferry's controller tests.
//!
//! It serves the list/watch protocol over real HTTP on `127.0.0.1`, faithfully enough
//! for the real `kube` client and `kube::runtime::watcher`:
//!
//! * one global resourceVersion counter (like etcd), bumped by every create, update
//!   and delete;
//! * lists with `limit`/`continue` pagination over a consistent snapshot,
//!   `labelSelector` and `fieldSelector` (`metadata.name`, `metadata.namespace`);
//! * watches (`watch=true`) replaying history after `resourceVersion`, selector-aware
//!   ADDED/MODIFIED/DELETED translation, `410 Expired` after [`FakeApiServer::compact`],
//!   `timeoutSeconds` and `allowWatchBookmarks`;
//! * failure injection: [`FakeApiServer::fail_lists`], [`FakeApiServer::close_watches`]
//!   and [`FakeApiServer::restart`].
//!
//! Core v1 Services and Nodes and discovery.k8s.io/v1 EndpointSlices are served from
//! the start; any other `k8s_openapi` resource type is served once an object of it has
//! been applied (or it was [registered](FakeApiServer::register)).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod http;
mod meta;
mod selector;
mod server;
mod store;
mod types;
mod watch;

use crate::http::{lock, Shared};
use crate::store::Store;
use crate::types::{TypeIdx, TypeInfo};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A running fake API server. Dropping it stops the server and ends every connection.
pub struct FakeApiServer {
    store: Shared,
    addr: SocketAddr,
    running: Mutex<Option<server::Running>>,
    bookmark_interval: tokio::sync::watch::Sender<Option<Duration>>,
}

impl FakeApiServer {
    /// Starts a server on `127.0.0.1` with an OS-chosen port.
    ///
    /// Must be called inside a tokio runtime; the server's tasks run on it.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        let mut store = Store::default();
        store.register(TypeInfo::of::<Service>());
        store.register(TypeInfo::of::<EndpointSlice>());
        store.register(TypeInfo::of::<Node>());
        let store: Shared = Arc::new(Mutex::new(store));
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let running = server::spawn(listener, store.clone());
        let (bookmark_interval, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(bookmark_ticker(store.clone(), rx));
        tracing::debug!(%addr, "fake-apiserver listening");
        Ok(FakeApiServer { store, addr, running: Mutex::new(Some(running)), bookmark_interval })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address (stable across [`restart`](Self::restart)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves resource type `K` (lists of it are empty until objects are applied).
    pub fn register<K: k8s_openapi::Resource>(&self) {
        lock(&self.store).register(TypeInfo::of::<K>());
    }

    fn type_idx<K: k8s_openapi::Resource>(&self, store: &mut Store) -> TypeIdx {
        store.register(TypeInfo::of::<K>())
    }

    /// Creates or updates `obj` and returns its new resourceVersion; open watches get an
    /// ADDED or MODIFIED event.
    ///
    /// The server sets `metadata.resourceVersion`, and on create `uid`,
    /// `creationTimestamp` and `generation` (bumped on updates that change `spec`);
    /// updates keep the stored `uid` and `creationTimestamp`. Namespaced objects without
    /// a namespace land in `default`. Every call bumps the resourceVersion, even when
    /// nothing changed. Callable from sync code and from inside a tokio runtime.
    ///
    /// # Panics
    ///
    /// If `obj` has no `metadata.name` or cannot be serialized to JSON.
    pub fn apply<K: k8s_openapi::Resource + serde::Serialize>(&self, obj: &K) -> u64 {
        let value = serde_json::to_value(obj).expect("apply: object must serialize to JSON");
        let mut store = lock(&self.store);
        let idx = self.type_idx::<K>(&mut store);
        match store.apply(idx, value) {
            Ok(rv) => rv,
            Err(e) => panic!("FakeApiServer::apply: {e}"),
        }
    }

    /// Deletes an object and returns the resourceVersion of the deletion, or `None` if it
    /// did not exist. Open watches get a DELETED event carrying the last state.
    ///
    /// `namespace` is ignored for cluster-scoped kinds and defaults to `default`.
    pub fn delete<K: k8s_openapi::Resource>(&self, namespace: Option<&str>, name: &str) -> Option<u64> {
        let mut store = lock(&self.store);
        let idx = self.type_idx::<K>(&mut store);
        let key = store.key(idx, namespace, name);
        store.delete(idx, key)
    }

    /// Drops all event history: any watch from an older resourceVersion (and any list
    /// continue token from before now) gets `410 Expired`. Open watches keep streaming.
    pub fn compact(&self) {
        lock(&self.store).compact();
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch that asked
    /// for bookmarks.
    pub fn send_bookmarks(&self) {
        lock(&self.store).send_bookmarks();
    }

    /// Sends bookmarks periodically (`None`, the default: only on
    /// [`send_bookmarks`](Self::send_bookmarks)).
    pub fn set_bookmark_interval(&self, d: Option<Duration>) {
        self.bookmark_interval.send_replace(d);
    }

    /// Ends every open watch stream cleanly; clients must re-watch.
    pub fn close_watches(&self) {
        lock(&self.store).close_watches();
    }

    /// Makes the next `n` list requests (of any kind) answer HTTP 500 with a `Status`.
    pub fn fail_lists(&self, n: usize) {
        lock(&self.store).fail_lists(n);
    }

    /// Simulates an API server restart: stops accepting, aborts every open connection
    /// (watch streams end mid-chunk), then listens again on the same port. Objects and
    /// the resourceVersion counter are kept; with `lose_history` the event history is
    /// dropped too (as by [`compact`](Self::compact)), so resumed watches get 410.
    ///
    /// Must be called inside the tokio runtime the server was started on.
    pub async fn restart(&self, lose_history: bool) -> std::io::Result<()> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(running) = running {
            running.stop().await;
        }
        {
            let mut store = lock(&self.store);
            store.close_watches();
            if lose_history {
                store.compact();
            }
        }
        let listener = server::bind(self.addr).await?;
        let running = server::spawn(listener, self.store.clone());
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(running);
        Ok(())
    }

    /// How many list requests (including failed ones) were made for `kind`, e.g. `"Service"`.
    pub fn list_requests(&self, kind: &str) -> usize {
        lock(&self.store).list_count(kind)
    }

    /// How many watch requests were made for `kind`, e.g. `"Service"`.
    pub fn watch_requests(&self, kind: &str) -> usize {
        lock(&self.store).watch_count(kind)
    }

    /// The current global resourceVersion (0 before the first change).
    pub fn current_resource_version(&self) -> u64 {
        lock(&self.store).rv()
    }
}

/// Sends bookmarks on the configured interval; ends when the server handle is dropped.
async fn bookmark_ticker(store: Shared, mut rx: tokio::sync::watch::Receiver<Option<Duration>>) {
    loop {
        let interval = *rx.borrow_and_update();
        match interval {
            None => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Some(d) => tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(d) => lock(&store).send_bookmarks(),
            },
        }
    }
}
