//! Request routing and the list / get endpoints.

use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Expired, ObjKey, Store};
use crate::types::TypeIdx;
use crate::watch;
use axum::body::Body;
use axum::extract::Query;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The store as shared between the server handle and the connection tasks.
pub(crate) type Shared = Arc<Mutex<Store>>;

/// Locks the store, ignoring poisoning (a panicking test thread must not wedge the server).
pub(crate) fn lock(store: &Shared) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The JSON of a `meta.k8s.io/v1` `Status` failure.
pub(crate) fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The 410 `Status` for a compacted resourceVersion.
pub(crate) fn expired_json(e: Expired) -> Value {
    let msg = format!("too old resource version: {} ({})", e.requested, e.oldest);
    status_json(410, "Expired", &msg)
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// An error response with a `Status` body.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status_json(code.as_u16(), reason, message))
}

fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// What a request path addresses.
struct Target {
    idx: TypeIdx,
    namespace: Option<String>,
    name: Option<String>,
}

fn route(store: &Store, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ((*v).to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return None,
    };
    let idx = store.types.find(&api_version, plural)?;
    let namespaced = store.types.get(idx).namespaced;
    // Namespaced objects are only addressable by name inside a namespace, and
    // cluster-scoped ones never live under /namespaces/.
    if (namespace.is_some() && !namespaced) || (namespaced && namespace.is_none() && name.is_some()) {
        return None;
    }
    Some(Target { idx, namespace: namespace.map(str::to_string), name: name.map(str::to_string) })
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

/// Serves one HTTP request.
pub(crate) async fn handle(store: Shared, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "fake-apiserver request");
    let query = match Query::<HashMap<String, String>>::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(e) => return Ok(bad_request(&format!("invalid query: {e}"))),
    };
    let not_found = || {
        let msg = format!("the server could not find the requested resource (path {path})");
        status(StatusCode::NOT_FOUND, "NotFound", &msg)
    };
    let guard = lock(&store);
    let Some(target) = route(&guard, &path) else {
        return Ok(not_found());
    };
    drop(guard);
    if req.method() != Method::GET {
        let msg = format!("the fake API server only serves GET, not {}", req.method());
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &msg));
    }
    let labels = match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return Ok(bad_request(&format!("unable to parse requirement: {e}"))),
    };
    let mut fields = match FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return Ok(bad_request(&e)),
    };
    if truthy(&query, "watch") {
        if let Some(name) = &target.name {
            fields = fields.with_name(name);
        }
        let filter = watch::Filter { namespace: target.namespace, labels, fields };
        return Ok(watch::serve(&store, target.idx, filter, &query));
    }
    let store = lock(&store);
    let info = store.types.get(target.idx).clone();
    if let Some(name) = &target.name {
        let key = store.key(target.idx, target.namespace.as_deref(), name);
        return Ok(match store.get(target.idx, &key) {
            Some(obj) => json_response(StatusCode::OK, &obj),
            None => {
                let msg = format!("{} \"{name}\" not found", info.plural);
                status(StatusCode::NOT_FOUND, "NotFound", &msg)
            }
        });
    }
    Ok(list(store, target, &labels, &fields, &query))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    String::from_utf8(bytes?).ok()
}

/// A continue token: the snapshot RV and the last key already returned.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    hex(&json!({"rv": rv, "start": [key.0, key.1]}).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, ObjKey)> {
    let v: Value = serde_json::from_str(&unhex(token)?).ok()?;
    let rv = v.get("rv")?.as_u64()?;
    let ns = v.pointer("/start/0")?.as_str()?.to_string();
    let name = v.pointer("/start/1")?.as_str()?.to_string();
    Some((rv, (ns, name)))
}

fn list(
    mut store: MutexGuard<'_, Store>,
    t: Target,
    labels: &LabelSelector,
    fields: &FieldSelector,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let info = store.types.get(t.idx).clone();
    if store.count_list(&info.kind) {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "injected list failure (fail_lists)");
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("limit: invalid value"),
    };
    let (snapshot_rv, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        None => (store.rv(), None),
        Some(tok) => match decode_continue(tok) {
            Some((rv, key)) => (rv, Some(key)),
            None => return bad_request("continue key is not valid"),
        },
    };
    let objs = match store.snapshot(t.idx, snapshot_rv) {
        Ok(o) => o,
        Err(_) => {
            let msg = "The provided continue parameter is too old to display a consistent list result. \
                       You can start a new list without the continue parameter.";
            return status(StatusCode::GONE, "Expired", msg);
        }
    };
    drop(store);
    let lower = start.map_or(Bound::Unbounded, Bound::Excluded);
    let matching: Vec<(&ObjKey, &Arc<Value>)> = objs
        .range((lower, Bound::Unbounded))
        .filter(|(k, o)| t.namespace.as_ref().is_none_or(|ns| *ns == k.0) && labels.matches(o) && fields.matches(o))
        .collect();
    let page = limit.unwrap_or(usize::MAX).min(matching.len());
    let items: Vec<&Value> = matching[..page].iter().map(|(_, o)| o.as_ref()).collect();
    let mut metadata = json!({"resourceVersion": snapshot_rv.to_string()});
    if page < matching.len() {
        // `page >= 1` here: a zero limit means "no limit", so a short page is never empty.
        let (last, _) = matching[page - 1];
        metadata["continue"] = json!(encode_continue(snapshot_rv, last));
        if labels.is_empty() && fields.is_empty() {
            metadata["remainingItemCount"] = json!(matching.len() - page);
        }
    }
    let body = json!({
        "kind": info.list_kind(),
        "apiVersion": info.api_version,
        "metadata": metadata,
        "items": items,
    });
    json_response(StatusCode::OK, &body)
}
