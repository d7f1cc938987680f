//! Prometheus metrics (B31), all under the `kubeferry_` prefix.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use ferry_model::{ProxyState, Rejection, SyncReport};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric kube-ferry exports, registered once.
#[derive(Debug)]
pub struct ProxyMetrics {
    registry: Registry,
    /// Seconds each sync took, backend included.
    pub sync_duration: Histogram,
    /// Wall-clock time of the last successful sync (Unix seconds).
    pub last_sync_timestamp: Gauge<f64, AtomicU64>,
    /// Wall-clock time a change was last queued (Unix seconds).
    pub last_queued_timestamp: Gauge<f64, AtomicU64>,
    /// Service changes queued and not yet synced.
    pub pending_service_changes: Gauge,
    /// EndpointSlice changes queued and not yet synced.
    pub pending_endpoint_changes: Gauge,
    /// Service changes seen.
    pub service_changes: Counter,
    /// EndpointSlice changes seen.
    pub endpoint_changes: Counter,
    /// Syncs the backend failed.
    pub sync_failures: Counter,
    /// Syncs completed.
    pub syncs: Counter,
    /// What is programmed, by kind: `service_ports`, `endpoints`, `kernel_objects`.
    pub programmed: Family<Labels, Gauge>,
    /// Service ports with a Local policy and no local endpoint, by `traffic_policy`
    /// (`internal`, `external`).
    pub no_local_endpoints: Family<Labels, Gauge>,
    /// Service ports the kernel refused in the last sync (left out; see the log).
    pub refused_service_ports: Gauge,
    /// 1 for every object skipped as invalid, labelled with its kind, namespace and name.
    pub rejected_objects: Family<Labels, Gauge>,
    /// The backend's own counts (totals since it started, as of the last sync), by `event`.
    pub backend_events: Family<Labels, Gauge>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics::new()
    }
}

impl ProxyMetrics {
    /// Registers every metric.
    pub fn new() -> ProxyMetrics {
        let mut registry = Registry::with_prefix("kubeferry");
        let m = ProxyMetrics {
            sync_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            last_sync_timestamp: Gauge::default(),
            last_queued_timestamp: Gauge::default(),
            pending_service_changes: Gauge::default(),
            pending_endpoint_changes: Gauge::default(),
            service_changes: Counter::default(),
            endpoint_changes: Counter::default(),
            sync_failures: Counter::default(),
            syncs: Counter::default(),
            programmed: Family::default(),
            no_local_endpoints: Family::default(),
            rejected_objects: Family::default(),
            refused_service_ports: Gauge::default(),
            backend_events: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sync_proxy_rules_duration_seconds",
            "Time one sync took, backend included",
            m.sync_duration.clone(),
        );
        registry.register(
            "sync_proxy_rules_last_timestamp_seconds",
            "Unix time of the last successful sync",
            m.last_sync_timestamp.clone(),
        );
        registry.register(
            "sync_proxy_rules_last_queued_timestamp_seconds",
            "Unix time a change was last queued",
            m.last_queued_timestamp.clone(),
        );
        registry.register(
            "sync_proxy_rules_service_changes_pending",
            "Service changes queued, not yet synced",
            m.pending_service_changes.clone(),
        );
        registry.register(
            "sync_proxy_rules_endpoint_changes_pending",
            "EndpointSlice changes queued, not yet synced",
            m.pending_endpoint_changes.clone(),
        );
        registry.register("sync_proxy_rules_service_changes", "Service changes seen", m.service_changes.clone());
        registry.register(
            "sync_proxy_rules_endpoint_changes",
            "EndpointSlice changes seen",
            m.endpoint_changes.clone(),
        );
        registry.register(
            "sync_proxy_rules_failures",
            "Syncs the backend failed (retried with backoff)",
            m.sync_failures.clone(),
        );
        registry.register("sync_proxy_rules", "Syncs completed", m.syncs.clone());
        registry.register("programmed_objects", "What is programmed, by kind", m.programmed.clone());
        registry.register(
            "sync_proxy_rules_no_local_endpoints",
            "Service ports with a Local policy and no local endpoint",
            m.no_local_endpoints.clone(),
        );
        registry.register(
            "kernel_refused_service_ports",
            "Service ports the kernel refused in the last sync (left out)",
            m.refused_service_ports.clone(),
        );
        registry.register(
            "rejected_objects",
            "Objects skipped as invalid (1 each; see the log for the reason)",
            m.rejected_objects.clone(),
        );
        registry.register(
            "backend_events",
            "The backend's own counts, totals since it started as of the last sync (userspace: connections_refused_at_limit, udp_datagrams_dropped)",
            m.backend_events.clone(),
        );
        ProxyMetrics { registry, ..m }
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Records a successful sync.
    pub fn record_sync(&self, state: &ProxyState, report: &SyncReport, seconds: f64) {
        self.syncs.inc();
        self.sync_duration.observe(seconds);
        self.last_sync_timestamp.set(unix_seconds(SystemTime::now()));
        let set = |kind: &str, n: usize| {
            self.programmed.get_or_create(&vec![("kind", kind.to_owned())]).set(n as i64);
        };
        set("service_ports", report.service_ports);
        set("endpoints", report.endpoints);
        set("kernel_objects", report.kernel_objects);
        self.refused_service_ports.set(report.refused.len() as i64);
        for (event, total) in &report.events {
            self.backend_events.get_or_create(&vec![("event", (*event).to_owned())]).set(*total as i64);
        }
        let (mut internal, mut external) = (0, 0);
        for (_, port) in state.ports() {
            let has_local = port.local_endpoints().next().is_some();
            internal += usize::from(port.internal_policy_local && !has_local);
            external += usize::from(port.external_policy_local && port.externally_accessible() && !has_local);
        }
        self.no_local_endpoints.get_or_create(&vec![("traffic_policy", "internal".into())]).set(internal as i64);
        self.no_local_endpoints.get_or_create(&vec![("traffic_policy", "external".into())]).set(external as i64);
    }

    /// Replaces the set of rejected objects.
    pub fn set_rejections<'a>(&self, rejections: impl Iterator<Item = &'a Rejection>) {
        self.rejected_objects.clear();
        for r in rejections {
            let labels = vec![
                ("kind", r.object.kind.to_string()),
                ("namespace", r.object.namespace.to_string()),
                ("name", r.object.name.to_string()),
            ];
            self.rejected_objects.get_or_create(&labels).set(1);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backends_own_counts_are_exported_by_event() {
        let metrics = ProxyMetrics::new();
        let report = SyncReport { events: vec![("connections_refused_at_limit", 3)], ..SyncReport::default() };
        metrics.record_sync(&ProxyState::default(), &report, 0.01);
        let text = metrics.encode();
        assert!(text.contains("kubeferry_backend_events{event=\"connections_refused_at_limit\"} 3"), "{text}");
    }
}
