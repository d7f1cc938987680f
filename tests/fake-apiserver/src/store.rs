//! The object store: one global resourceVersion counter, the current objects, the event
//! history used for watch replay and consistent paginated lists, and the open watchers.

use crate::meta::{meta_str, now, set_meta};
use crate::types::{TypeIdx, TypeInfo, Types};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// `(namespace or "", name)`; the BTreeMap order is the list order.
pub(crate) type ObjKey = (String, String);

/// The objects of one type.
pub(crate) type Objects = BTreeMap<ObjKey, Arc<Value>>;

/// Kind of a stored watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as kept in the history.
#[derive(Debug)]
pub(crate) struct HistEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    pub type_idx: TypeIdx,
    pub kind: EventKind,
    pub key: ObjKey,
    /// The new state (for deletes: the last state, stamped with the delete's RV).
    pub object: Arc<Value>,
    /// The state before the change (none for creates).
    pub prev: Option<Arc<Value>>,
}

/// What the store pushes to an open watch stream.
#[derive(Debug, Clone)]
pub(crate) enum WatchMsg {
    Event(Arc<HistEvent>),
    /// A bookmark at the given resourceVersion.
    Bookmark(u64),
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WatchStart {
    /// `resourceVersion` unset or `"0"`: synthetic ADDED events for the current state.
    Current,
    /// Replay every event with a larger RV.
    After(u64),
}

/// A watch (or continue token) asked for history that was compacted away.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

struct Watcher {
    type_idx: TypeIdx,
    bookmarks: bool,
    tx: UnboundedSender<WatchMsg>,
}

/// The whole mutable state of the fake server.
#[derive(Default)]
pub(crate) struct Store {
    pub types: Types,
    rv: u64,
    /// History holds every event with RV > `compacted`.
    compacted: u64,
    objects: Vec<Objects>,
    history: VecDeque<Arc<HistEvent>>,
    watchers: Vec<Watcher>,
    uids: u64,
    list_counts: HashMap<String, usize>,
    watch_counts: HashMap<String, usize>,
    failing_lists: usize,
}

impl Store {
    /// Registers a type, returning its index.
    pub fn register(&mut self, info: TypeInfo) -> TypeIdx {
        let idx = self.types.register(info);
        self.objects.resize_with(self.types.len(), Objects::new);
        idx
    }

    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The object key for `namespace`/`name` of type `idx`, normalising the namespace.
    pub fn key(&self, idx: TypeIdx, namespace: Option<&str>, name: &str) -> ObjKey {
        let ns = match (self.types.get(idx).namespaced, namespace) {
            (false, _) => "",
            (true, Some(ns)) if !ns.is_empty() => ns,
            (true, _) => "default",
        };
        (ns.to_string(), name.to_string())
    }

    /// Creates or updates an object; returns the new resourceVersion.
    pub fn apply(&mut self, idx: TypeIdx, mut obj: Value) -> Result<u64, String> {
        let info = self.types.get(idx).clone();
        let name = meta_str(&obj, "name").filter(|n| !n.is_empty()).ok_or("object has no metadata.name")?.to_string();
        let key = self.key(idx, meta_str(&obj, "namespace"), &name);
        obj["kind"] = json!(info.kind);
        obj["apiVersion"] = json!(info.api_version);
        if info.namespaced {
            set_meta(&mut obj, "namespace", json!(key.0));
        } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        let prev = self.objects[idx].get(&key).cloned();
        self.rv += 1;
        set_meta(&mut obj, "resourceVersion", json!(self.rv.to_string()));
        match &prev {
            Some(p) => {
                for f in ["uid", "creationTimestamp"] {
                    set_meta(&mut obj, f, p["metadata"][f].clone());
                }
                let gen = p["metadata"]["generation"].as_i64().unwrap_or(1);
                let bump = i64::from(p.get("spec") != obj.get("spec"));
                set_meta(&mut obj, "generation", json!(gen + bump));
            }
            None => {
                if meta_str(&obj, "uid").is_none() {
                    self.uids += 1;
                    let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
                    set_meta(&mut obj, "uid", json!(uid));
                }
                if meta_str(&obj, "creationTimestamp").is_none() {
                    set_meta(&mut obj, "creationTimestamp", now());
                }
                set_meta(&mut obj, "generation", json!(1));
            }
        }
        let object = Arc::new(obj);
        self.objects[idx].insert(key.clone(), object.clone());
        let kind = if prev.is_some() { EventKind::Modified } else { EventKind::Added };
        self.record(idx, kind, key, object, prev);
        Ok(self.rv)
    }

    /// Deletes an object; returns the resourceVersion of the deletion if it existed.
    pub fn delete(&mut self, idx: TypeIdx, key: ObjKey) -> Option<u64> {
        let prev = self.objects[idx].remove(&key)?;
        self.rv += 1;
        let mut last = (*prev).clone();
        set_meta(&mut last, "resourceVersion", json!(self.rv.to_string()));
        self.record(idx, EventKind::Deleted, key, Arc::new(last), Some(prev));
        Some(self.rv)
    }

    fn record(
        &mut self,
        type_idx: TypeIdx,
        kind: EventKind,
        key: ObjKey,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(HistEvent { rv: self.rv, type_idx, kind, key, object, prev });
        self.history.push_back(ev.clone());
        self.watchers.retain(|w| w.type_idx != type_idx || w.tx.send(WatchMsg::Event(ev.clone())).is_ok());
    }

    /// Drops all history: watches and continue tokens from an older RV now get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Sends a bookmark at the current RV to every watcher that allowed bookmarks.
    pub fn send_bookmarks(&mut self) {
        let rv = self.rv;
        self.watchers.retain(|w| !w.bookmarks || w.tx.send(WatchMsg::Bookmark(rv)).is_ok());
    }

    /// Ends every open watch stream.
    pub fn close_watches(&mut self) {
        self.watchers.clear();
    }

    /// One object, if it exists.
    pub fn get(&self, idx: TypeIdx, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects[idx].get(key).cloned()
    }

    /// The objects of type `idx` as they were at resourceVersion `rv`, reconstructed by
    /// undoing the retained history.
    pub fn snapshot(&self, idx: TypeIdx, rv: u64) -> Result<Objects, Expired> {
        if rv < self.compacted {
            return Err(Expired { requested: rv, oldest: self.compacted });
        }
        let mut objs = self.objects[idx].clone();
        for ev in self.history.iter().rev().take_while(|e| e.rv > rv) {
            if ev.type_idx != idx {
                continue;
            }
            match &ev.prev {
                Some(p) => objs.insert(ev.key.clone(), p.clone()),
                None => objs.remove(&ev.key),
            };
        }
        Ok(objs)
    }

    /// Opens a watch on type `idx`: the replayed events are queued before the receiver is
    /// handed out, atomically with registering for live events.
    pub fn watch(
        &mut self,
        idx: TypeIdx,
        start: WatchStart,
        bookmarks: bool,
    ) -> Result<UnboundedReceiver<WatchMsg>, Expired> {
        let (tx, rx) = unbounded_channel();
        let replay: Vec<Arc<HistEvent>> = match start {
            WatchStart::After(rv) if rv < self.compacted => {
                return Err(Expired { requested: rv, oldest: self.compacted });
            }
            WatchStart::After(rv) => self.history.iter().filter(|e| e.rv > rv && e.type_idx == idx).cloned().collect(),
            WatchStart::Current => self.objects[idx]
                .iter()
                .map(|(key, obj)| {
                    let rv = meta_str(obj, "resourceVersion").and_then(|s| s.parse().ok());
                    Arc::new(HistEvent {
                        rv: rv.unwrap_or(self.rv),
                        type_idx: idx,
                        kind: EventKind::Added,
                        key: key.clone(),
                        object: obj.clone(),
                        prev: None,
                    })
                })
                .collect(),
        };
        for ev in replay {
            // The receiver is alive in this scope, so sending cannot fail.
            let _ = tx.send(WatchMsg::Event(ev));
        }
        self.watchers.push(Watcher { type_idx: idx, bookmarks, tx });
        Ok(rx)
    }

    /// Counts a list request for `kind`; returns whether it must fail (see `fail_lists`).
    pub fn count_list(&mut self, kind: &str) -> bool {
        *self.list_counts.entry(kind.to_string()).or_default() += 1;
        if self.failing_lists > 0 {
            self.failing_lists -= 1;
            return true;
        }
        false
    }

    /// Counts a watch request for `kind`.
    pub fn count_watch(&mut self, kind: &str) {
        *self.watch_counts.entry(kind.to_string()).or_default() += 1;
    }

    /// Makes the next `n` list requests fail.
    pub fn fail_lists(&mut self, n: usize) {
        self.failing_lists = n;
    }

    /// List requests seen for `kind`.
    pub fn list_count(&self, kind: &str) -> usize {
        self.list_counts.get(kind).copied().unwrap_or(0)
    }

    /// Watch requests seen for `kind`.
    pub fn watch_count(&self, kind: &str) -> usize {
        self.watch_counts.get(kind).copied().unwrap_or(0)
    }
}
