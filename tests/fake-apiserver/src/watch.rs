//! The watch endpoint: a chunked stream of newline-delimited JSON watch events.

use crate::http::{expired_json, lock, Shared};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventKind, HistEvent, WatchMsg, WatchStart};
use crate::types::{TypeIdx, TypeInfo};
use axum::body::Body;
use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Sleep;

/// Which objects a watcher sees.
pub(crate) struct Filter {
    /// `Some` for a watch under `/namespaces/{ns}/`.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
        self.namespace.as_ref().is_none_or(|want| want == ns) && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Converts a stored event into what this watcher must see, as the API server's
    /// watch cache does: an update that leaves the selection is a DELETED (of the old
    /// state, at the new RV), one that enters it is an ADDED.
    fn convert(&self, ev: &HistEvent) -> Option<(&'static str, Value)> {
        let now = self.matches(&ev.object);
        let before = ev.prev.as_deref().is_some_and(|p| self.matches(p));
        match (ev.kind, before, now) {
            (EventKind::Added, _, true) => Some(("ADDED", (*ev.object).clone())),
            (EventKind::Modified, true, true) => Some(("MODIFIED", (*ev.object).clone())),
            (EventKind::Modified, false, true) => Some(("ADDED", (*ev.object).clone())),
            (EventKind::Modified, true, false) => {
                let mut old = ev.prev.as_deref().cloned().unwrap_or(Value::Null);
                old["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                Some(("DELETED", old))
            }
            (EventKind::Deleted, true, _) => Some(("DELETED", (*ev.object).clone())),
            _ => None,
        }
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut s = json!({"type": event_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

struct StreamState {
    rx: UnboundedReceiver<WatchMsg>,
    filter: Filter,
    info: TypeInfo,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl StreamState {
    /// The next line to write, or `None` when the stream must end.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let msg = match &mut self.deadline {
                Some(deadline) => tokio::select! {
                    m = self.rx.recv() => m,
                    () = deadline.as_mut() => None,
                },
                None => self.rx.recv().await,
            }?;
            match msg {
                WatchMsg::Event(ev) => {
                    if let Some((ty, obj)) = self.filter.convert(&ev) {
                        return Some(line(ty, obj));
                    }
                }
                WatchMsg::Bookmark(rv) => {
                    let obj = json!({
                        "kind": self.info.kind,
                        "apiVersion": self.info.api_version,
                        "metadata": {"resourceVersion": rv.to_string()},
                    });
                    return Some(line("BOOKMARK", obj));
                }
            }
        }
    }
}

fn streaming(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// Opens a watch on type `idx` and returns the streaming response.
pub(crate) fn serve(store: &Shared, idx: TypeIdx, filter: Filter, q: &HashMap<String, String>) -> Response<Body> {
    let start = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => WatchStart::Current,
        Some(rv) => match rv.parse() {
            Ok(rv) => WatchStart::After(rv),
            Err(_) => {
                let msg = format!("resourceVersion: Invalid value: {rv:?}");
                return crate::http::status(StatusCode::BAD_REQUEST, "BadRequest", &msg);
            }
        },
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true" || v == "1");
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).filter(|t| *t > 0);
    let mut guard = lock(store);
    let info = guard.types.get(idx).clone();
    guard.count_watch(&info.kind);
    let rx = guard.watch(idx, start, bookmarks);
    drop(guard);
    let rx = match rx {
        Ok(rx) => rx,
        Err(expired) => {
            let bytes = line("ERROR", expired_json(expired));
            let once = futures::stream::once(async move { Ok::<_, Infallible>(bytes) });
            return streaming(Body::from_stream(once));
        }
    };
    let deadline = timeout.map(|t| Box::pin(tokio::time::sleep(Duration::from_secs(t))));
    let state = StreamState { rx, filter, info, deadline };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let line = st.next_line().await?;
        Some((Ok::<_, Infallible>(line), st))
    });
    streaming(Body::from_stream(stream))
}
