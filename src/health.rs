//! Proxy health as `/healthz` and `/livez` report it (B29).
//!
//! Healthy while syncs keep up: a change that has waited longer than twice the sync
//! period without reaching the kernel makes both endpoints answer 503. `/healthz` also
//! answers 503 while this node is being deleted (a deletion timestamp or the
//! `ToBeDeletedByClusterAutoscaler` taint), so load balancers drain it; `/livez`
//! ignores the node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::tracker::ChangeTracker;

/// Shared by the sync loop (which reports progress) and the health server.
#[derive(Debug)]
pub struct ProxyHealth {
    timeout: Duration,
    tracker: Arc<ChangeTracker>,
    inner: Mutex<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    last_updated: Option<SystemTime>,
    /// The oldest change the sync loop has taken but not yet programmed.
    in_flight_since: Option<Instant>,
    node_being_deleted: bool,
}

/// One answer of the health server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Whether to answer 200.
    #[serde(skip)]
    pub healthy: bool,
    /// RFC 3339 time of the last successful sync, empty before the first.
    pub last_updated: String,
    /// RFC 3339 time of this answer.
    pub current_time: String,
    /// `false` while the node is being deleted (only `/healthz` reports it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_eligible: Option<bool>,
}

impl ProxyHealth {
    /// Health for a proxy whose full resync runs every `sync_period`.
    pub fn new(sync_period: Duration, tracker: Arc<ChangeTracker>) -> ProxyHealth {
        ProxyHealth { timeout: sync_period * 2, tracker, inner: Mutex::new(HealthInner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sync loop took changes queued since `oldest` and is programming them.
    pub fn sync_started(&self, oldest: Option<Instant>) {
        let mut inner = self.lock();
        inner.in_flight_since = match (inner.in_flight_since, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Every taken change reached the kernel.
    pub fn sync_succeeded(&self) {
        let mut inner = self.lock();
        inner.in_flight_since = None;
        inner.last_updated = Some(SystemTime::now());
    }

    /// Records whether this node is being deleted.
    pub fn set_node_being_deleted(&self, deleting: bool) {
        self.lock().node_being_deleted = deleting;
    }

    /// Whether a change has waited too long, as of `now`.
    fn stalled(&self, now: Instant) -> bool {
        let in_flight = self.lock().in_flight_since;
        let oldest = match (in_flight, self.tracker.oldest_pending()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.is_some_and(|t| now.saturating_duration_since(t) > self.timeout)
    }

    /// The `/healthz` answer.
    pub fn healthz(&self) -> HealthReport {
        let eligible = !self.lock().node_being_deleted;
        let mut report = self.report(Some(eligible));
        report.healthy &= eligible;
        report
    }

    /// The `/livez` answer.
    pub fn livez(&self) -> HealthReport {
        self.report(None)
    }

    fn report(&self, node_eligible: Option<bool>) -> HealthReport {
        let last = self.lock().last_updated;
        HealthReport {
            healthy: !self.stalled(Instant::now()),
            last_updated: last.map(rfc3339).unwrap_or_default(),
            current_time: rfc3339(SystemTime::now()),
            node_eligible,
        }
    }
}

/// A wall-clock time in RFC 3339.
pub fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t).map(|ts| ts.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::ServiceName;

    #[test]
    fn a_change_older_than_twice_the_sync_period_is_unhealthy() {
        let tracker = Arc::new(ChangeTracker::new());
        let health = ProxyHealth::new(Duration::from_millis(10), tracker.clone());
        assert!(health.healthz().healthy);
        tracker.service(ServiceName::new("a", "b"), None);
        assert!(health.healthz().healthy, "a fresh change is fine");
        std::thread::sleep(Duration::from_millis(30));
        assert!(!health.healthz().healthy);
        assert!(!health.livez().healthy);
        // Taken by the sync loop but not yet programmed: still unhealthy.
        let pending = tracker.take();
        health.sync_started(pending.oldest);
        assert!(!health.livez().healthy);
        health.sync_succeeded();
        assert!(health.livez().healthy);
        assert!(!health.livez().last_updated.is_empty());
    }

    #[test]
    fn a_node_being_deleted_fails_healthz_but_not_livez() {
        let health = ProxyHealth::new(Duration::from_secs(30), Arc::new(ChangeTracker::new()));
        health.set_node_being_deleted(true);
        assert!(!health.healthz().healthy);
        assert_eq!(health.healthz().node_eligible, Some(false));
        assert!(health.livez().healthy);
    }
}
