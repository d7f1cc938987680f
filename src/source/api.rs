//! The API source: kube-rs watchers on Services, EndpointSlices and this node's Node.
//!
//! The watcher's event contract (kube-runtime): after `Init`, every object is sent as
//! `InitApply`, then `InitDone`; later `Apply` and `Delete`. A relist (after a watch
//! error, a 410 Gone or an API server restart) starts again with `Init`. This source
//! records every object as it comes, and at `InitDone` deletes only the objects the
//! relist no longer holds, so a relist never deletes, even briefly, what still exists.
//! Objects are admitted (summarised) at once and the full objects dropped.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tracing::{info, warn};

use ferry_model::spec::{HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL};
use ferry_model::{NodeSpec, ServiceName, ServiceSpec, SliceName, SliceSpec};

use crate::tracker::{ChangeTracker, ListKind};

/// How to reach the API server.
#[derive(Clone, Debug, Default)]
pub struct ApiTarget {
    /// `--kubeconfig`: a kubeconfig file.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// `--master`: the API server's URL, overriding the kubeconfig's.
    pub master: Option<String>,
}

/// Makes a client: the kubeconfig when given, else in-cluster configuration; `master`
/// overrides the server URL either way (and alone, talks to that URL directly).
pub async fn make_client(target: &ApiTarget) -> anyhow::Result<Client> {
    use anyhow::Context;
    let mut config = match (&target.kubeconfig, &target.master) {
        (Some(path), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?
        }
        (None, Some(master)) => kube::Config::new(
            master.parse().with_context(|| format!("--master {master:?} is not a URL"))?,
        ),
        (None, None) => kube::Config::incluster().context(
            "not running in a cluster (no service account); pass --kubeconfig or --master, or --manifests DIR to run without a cluster",
        )?,
    };
    if let (Some(_), Some(master)) = (&target.kubeconfig, &target.master) {
        config.cluster_url = master.parse().with_context(|| format!("--master {master:?} is not a URL"))?;
    }
    Client::try_from(config).context("cannot build the API client")
}

/// Watches Services, EndpointSlices and the Node `node_name` until the process ends,
/// recording every change in `tracker`.
pub async fn run_api_source(client: Client, node_name: String, tracker: Arc<ChangeTracker>) {
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().labels(&format!("!{SERVICE_PROXY_NAME_LABEL}")),
    );
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("!{HEADLESS_LABEL}")),
    );
    let nodes = watcher::watcher(
        Api::<Node>::all(client),
        watcher::Config::default().fields(&format!("metadata.name={node_name}")),
    );
    let t = tracker.clone();
    let services = follow(
        services,
        "Services",
        move |change| match change {
            Change::Listed => t.listed(ListKind::Services),
            Change::Apply(s) => t.service(key_of_service(&s), Some(ServiceSpec::admit(&s))),
            Change::Delete(key) => t.service(key, None),
        },
        key_of_service,
    );
    let t = tracker.clone();
    let slices = follow(
        slices,
        "EndpointSlices",
        move |change| match change {
            Change::Listed => t.listed(ListKind::EndpointSlices),
            Change::Apply(s) => t.slice(key_of_slice(&s), Some(SliceSpec::admit(&s))),
            Change::Delete(key) => t.slice(key, None),
        },
        key_of_slice,
    );
    let t = tracker;
    let nodes = follow(
        nodes,
        "Node",
        move |change| match change {
            Change::Listed => {}
            Change::Apply(n) => t.node(Some(NodeSpec::admit(&n))),
            Change::Delete(()) => t.node(None),
        },
        |_: &Node| (),
    );
    tokio::join!(services, slices, nodes);
}

fn key_of_service(s: &Service) -> ServiceName {
    ServiceName::new(s.metadata.namespace.as_deref().unwrap_or("default"), s.metadata.name.as_deref().unwrap_or(""))
}

fn key_of_slice(s: &EndpointSlice) -> SliceName {
    SliceName::new(s.metadata.namespace.as_deref().unwrap_or("default"), s.metadata.name.as_deref().unwrap_or(""))
}

/// What [`follow`] reports for one resource.
enum Change<K, Key> {
    /// A complete list (initial or relist) has been delivered.
    Listed,
    /// An object exists in this form.
    Apply(K),
    /// The object with this key is gone.
    Delete(Key),
}

/// Follows one watcher stream, turning relists into applies plus the deletes of what
/// vanished; errors are logged and the watcher retries with backoff.
async fn follow<K, Key>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    what: &'static str,
    mut handle: impl FnMut(Change<K, Key>),
    key_of: impl Fn(&K) -> Key,
) where
    K: Clone + std::fmt::Debug + Send + 'static,
    Key: Clone + Eq + Hash,
{
    let mut known: HashSet<Key> = HashSet::new();
    let mut relisted: HashSet<Key> = HashSet::new();
    let mut stream = std::pin::pin!(stream.default_backoff());
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(obj)) => {
                relisted.insert(key_of(&obj));
                handle(Change::Apply(obj));
            }
            Ok(Event::InitDone) => {
                let gone: Vec<Key> = known.difference(&relisted).cloned().collect();
                for key in gone {
                    handle(Change::Delete(key));
                }
                known = std::mem::take(&mut relisted);
                info!(objects = known.len(), "{what} listed");
                handle(Change::Listed);
            }
            Ok(Event::Apply(obj)) => {
                known.insert(key_of(&obj));
                handle(Change::Apply(obj));
            }
            Ok(Event::Delete(obj)) => {
                let key = key_of(&obj);
                known.remove(&key);
                handle(Change::Delete(key));
            }
            Err(e) => warn!(error = %e, "watching {what} failed; retrying (a relist follows if needed)"),
        }
    }
}
