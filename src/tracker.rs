//! The hand-off between the sources (watch side) and the sync loop.
//!
//! Sources record the newest summary of each object here; the sync loop takes them all
//! at once. Recording never waits for a sync, and a burst of changes to one object
//! collapses into its latest value, so the watch side never blocks on a slow backend
//! and memory is bounded by the number of objects, not the number of events.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use ferry_model::{Admission, NodeSpec, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};
use tokio::sync::Notify;

/// Which list a source has finished (the first sync waits for both, so nothing is
/// programmed from half a picture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// The Services list.
    Services,
    /// The EndpointSlices list.
    EndpointSlices,
}

/// The changes recorded since the sync loop last took them.
#[derive(Debug, Default)]
pub struct PendingChanges {
    /// The newest admission of each changed Service; `None` = deleted.
    pub services: HashMap<ServiceName, Option<Admission<ServiceSpec>>>,
    /// The newest admission of each changed EndpointSlice; `None` = deleted.
    pub slices: HashMap<SliceName, Option<Admission<SliceSpec>>>,
    /// The newest Node summary, if it changed; `Some(None)` = deleted.
    pub node: Option<Option<NodeSpec>>,
    /// When the oldest of these changes was recorded.
    pub oldest: Option<Instant>,
}

impl PendingChanges {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.slices.is_empty() && self.node.is_none()
    }

    /// Feeds every change into the builder.
    pub fn apply_to(self, builder: &mut StateBuilder) {
        for (name, admission) in self.services {
            builder.set_service(name, admission);
        }
        for (name, admission) in self.slices {
            builder.set_slice(name, admission);
        }
        if let Some(node) = self.node {
            builder.set_node(node);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    pending: PendingChanges,
    services_listed: bool,
    slices_listed: bool,
    last_queued: Option<std::time::SystemTime>,
}

/// Shared between the sources and the sync loop; see the module docs.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl ChangeTracker {
    /// An empty tracker with neither list complete.
    pub fn new() -> ChangeTracker {
        ChangeTracker::default()
    }

    fn record(&self, edit: impl FnOnce(&mut PendingChanges)) {
        {
            let mut inner = self.lock();
            edit(&mut inner.pending);
            inner.pending.oldest.get_or_insert_with(Instant::now);
            inner.last_queued = Some(std::time::SystemTime::now());
        }
        self.notify.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain maps behind: still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a Service's newest admission (`None`: deleted).
    pub fn service(&self, name: ServiceName, admission: Option<Admission<ServiceSpec>>) {
        self.record(|p| {
            p.services.insert(name, admission);
        });
    }

    /// Records an EndpointSlice's newest admission (`None`: deleted).
    pub fn slice(&self, name: SliceName, admission: Option<Admission<SliceSpec>>) {
        self.record(|p| {
            p.slices.insert(name, admission);
        });
    }

    /// Records this node's newest summary (`None`: deleted).
    pub fn node(&self, node: Option<NodeSpec>) {
        self.record(|p| p.node = Some(node));
    }

    /// Marks one of the two lists as complete.
    pub fn listed(&self, kind: ListKind) {
        {
            let mut inner = self.lock();
            match kind {
                ListKind::Services => inner.services_listed = true,
                ListKind::EndpointSlices => inner.slices_listed = true,
            }
        }
        self.notify.notify_one();
    }

    /// Whether both lists have completed at least once.
    pub fn initial_lists_done(&self) -> bool {
        let inner = self.lock();
        inner.services_listed && inner.slices_listed
    }

    /// Takes every pending change, leaving none.
    pub fn take(&self) -> PendingChanges {
        std::mem::take(&mut self.lock().pending)
    }

    /// The number of pending service and slice changes, for metrics.
    pub fn pending_counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.pending.services.len(), inner.pending.slices.len())
    }

    /// When the oldest pending change was recorded.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.lock().pending.oldest
    }

    /// When any change was last recorded (wall clock), for metrics.
    pub fn last_queued(&self) -> Option<std::time::SystemTime> {
        self.lock().last_queued
    }

    /// Waits until something is recorded or a list completes after this call began
    /// (or a notification was left unconsumed before it).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}
