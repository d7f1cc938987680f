//! The sync loop: takes coalesced changes, rebuilds the model, hands the diff to the
//! backend.
//!
//! Guarantees:
//! - Nothing is programmed before both the Services and the EndpointSlices have listed
//!   completely once.
//! - At most one sync starts per `min_sync_period`; changes arriving meanwhile are
//!   coalesced (0 = sync on every change).
//! - A full resync runs every `sync_period`, to repair drift.
//! - A sync whose diff is empty does not call the backend.
//! - A failed sync is retried with exponential backoff (from `retry_initial` up to
//!   `sync_period`); the retry is a full sync, and whatever was programmed before stays.
//! - The backend runs on a blocking thread: the watch side only ever records changes.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_model::state::HealthCheck;
use ferry_model::{Backend, StateBuilder, StateDiff, SyncReport, SyncRequest};
use tokio::sync::watch;
use tokio::time::sleep_until;
use tracing::{debug, error, info, warn};

use crate::health::ProxyHealth;
use crate::metrics::{unix_seconds, ProxyMetrics};
use crate::tracker::ChangeTracker;

/// Timing of the sync loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTiming {
    /// The least time between the starts of two syncs.
    pub min_sync_period: Duration,
    /// The time between full resyncs.
    pub sync_period: Duration,
    /// The first retry delay after a failed sync (doubling up to `sync_period`).
    pub retry_initial: Duration,
}

impl SyncTiming {
    /// Checks that the periods make sense together.
    pub fn new(min_sync_period: Duration, sync_period: Duration) -> Result<SyncTiming, String> {
        if sync_period.is_zero() {
            return Err("--sync-period must be greater than 0".into());
        }
        if sync_period < min_sync_period {
            return Err(format!(
                "--sync-period ({sync_period:?}) must be at least --min-sync-period ({min_sync_period:?})"
            ));
        }
        Ok(SyncTiming { min_sync_period, sync_period, retry_initial: Duration::from_secs(1).min(sync_period) })
    }
}

/// What the sync loop publishes after every successful sync that changed something.
#[derive(Clone, Debug, Default)]
pub struct Programmed {
    /// The health-check node ports the state asks for, with their local endpoints (B30).
    pub health_checks: Vec<HealthCheck>,
    /// Service ports programmed.
    pub service_ports: usize,
    /// Syncs done so far.
    pub syncs: u64,
}

/// One sync loop with its builder and backend.
pub struct SyncLoop {
    tracker: Arc<ChangeTracker>,
    health: Arc<ProxyHealth>,
    metrics: Arc<ProxyMetrics>,
    timing: SyncTiming,
    builder: Option<StateBuilder>,
    backend: Option<Box<dyn Backend>>,
    programmed: watch::Sender<Programmed>,
    known_rejections: BTreeSet<String>,
    syncs: u64,
}

enum Wake {
    Change,
    Periodic,
    Retry,
}

impl SyncLoop {
    /// A loop programming `backend` for the node `node_name`.
    pub fn new(
        node_name: &str,
        backend: Box<dyn Backend>,
        tracker: Arc<ChangeTracker>,
        health: Arc<ProxyHealth>,
        metrics: Arc<ProxyMetrics>,
        timing: SyncTiming,
    ) -> SyncLoop {
        SyncLoop {
            tracker,
            health,
            metrics,
            timing,
            builder: Some(StateBuilder::new(node_name)),
            backend: Some(backend),
            programmed: watch::channel(Programmed::default()).0,
            known_rejections: BTreeSet::new(),
            syncs: 0,
        }
    }

    /// Follows what is programmed (for the health-check servers and tests).
    pub fn subscribe(&self) -> watch::Receiver<Programmed> {
        self.programmed.subscribe()
    }

    /// Runs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        while !self.tracker.initial_lists_done() {
            tokio::select! {
                _ = self.tracker.changed() => {}
                _ = &mut shutdown => return,
            }
        }
        info!("Services and EndpointSlices listed; first sync");
        let mut need_full = true;
        let mut last_start: Option<Instant> = None;
        let mut next_full = Instant::now() + self.timing.sync_period;
        let mut retry: Option<(Instant, Duration)> = None;
        let mut first = true;
        loop {
            let wake = if first {
                first = false;
                Wake::Change
            } else {
                let retry_at = retry.map(|(at, _)| at);
                tokio::select! {
                    _ = self.tracker.changed() => Wake::Change,
                    _ = sleep_until(next_full.into()) => Wake::Periodic,
                    _ = sleep_until(retry_at.unwrap_or(next_full).into()), if retry_at.is_some() => Wake::Retry,
                    _ = &mut shutdown => return,
                }
            };
            if matches!(wake, Wake::Periodic) {
                need_full = true;
            }
            // Coalesce: wait out the minimum period, and a pending retry's delay.
            let mut earliest = last_start.map(|t| t + self.timing.min_sync_period);
            if let (Some((at, _)), Wake::Change) = (retry, &wake) {
                earliest = Some(earliest.map_or(at, |e| e.max(at)));
            }
            if let Some(earliest) = earliest.filter(|e| *e > Instant::now()) {
                tokio::select! {
                    _ = sleep_until(earliest.into()) => {}
                    _ = &mut shutdown => return,
                }
            }
            let started = Instant::now();
            last_start = Some(started);
            let full = need_full;
            match self.sync_once(full).await {
                Ok(()) => {
                    need_full = false;
                    retry = None;
                    if full {
                        next_full = started + self.timing.sync_period;
                    }
                }
                Err(()) => {
                    need_full = true;
                    let delay = retry.map_or(self.timing.retry_initial, |(_, d)| (d * 2).min(self.timing.sync_period));
                    warn!(retry_in = ?delay, "sync failed; retrying with a full sync");
                    retry = Some((Instant::now() + delay, delay));
                }
            }
        }
    }

    async fn sync_once(&mut self, full: bool) -> Result<(), ()> {
        let pending = self.tracker.take();
        self.metrics.service_changes.inc_by(pending.services.len() as u64);
        self.metrics.endpoint_changes.inc_by(pending.slices.len() as u64);
        if let Some(t) = self.tracker.last_queued() {
            self.metrics.last_queued_timestamp.set(unix_seconds(t));
        }
        self.metrics.pending_service_changes.set(0);
        self.metrics.pending_endpoint_changes.set(0);
        self.health.sync_started(pending.oldest);
        if let Some(Some(node)) = &pending.node {
            self.health.set_node_being_deleted(node.being_deleted);
        }

        let (Some(mut builder), Some(mut backend)) = (self.builder.take(), self.backend.take()) else {
            // Only reachable if a previous blocking task panicked and lost them.
            error!("the sync loop lost its state after a panic; exiting the loop");
            return Err(());
        };
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            pending.apply_to(&mut builder);
            let diff = builder.rebuild();
            let result = if full || !diff.is_empty() {
                let request = if full { SyncRequest::Full } else { SyncRequest::Changes(&diff) };
                Some(backend.sync(builder.state(), request))
            } else {
                None
            };
            (builder, backend, diff, result)
        })
        .await;
        let (builder, backend, diff, result) = match joined {
            Ok(parts) => parts,
            Err(e) => {
                error!(error = %e, "the backend panicked during a sync");
                self.metrics.sync_failures.inc();
                return Err(());
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        self.report_rejections(&builder);
        let outcome = self.finish(&builder, &diff, result, full, seconds);
        self.builder = Some(builder);
        self.backend = Some(backend);
        outcome
    }

    fn finish(
        &mut self,
        builder: &StateBuilder,
        diff: &StateDiff,
        result: Option<Result<SyncReport, ferry_model::BackendError>>,
        full: bool,
        seconds: f64,
    ) -> Result<(), ()> {
        match result {
            None => {
                debug!("no change; nothing sent to the kernel");
                self.health.sync_succeeded();
                Ok(())
            }
            Some(Ok(report)) => {
                self.syncs += 1;
                for refusal in &report.refused {
                    error!(service_port = %refusal.object, detail = %refusal.detail, "the kernel refused this service port; it is left out, every other one is programmed");
                }
                self.metrics.record_sync(builder.state(), &report, seconds);
                self.health.sync_succeeded();
                info!(
                    full,
                    ports_touched = diff.touched_ports(),
                    service_ports = report.service_ports,
                    endpoints = report.endpoints,
                    operations = report.operations,
                    seconds,
                    "synced"
                );
                self.programmed.send_replace(Programmed {
                    health_checks: builder.state().health_checks(),
                    service_ports: builder.state().len(),
                    syncs: self.syncs,
                });
                Ok(())
            }
            Some(Err(e)) => {
                self.metrics.sync_failures.inc();
                error!(error = %e, "the backend could not sync; what was programmed before stays in place");
                Err(())
            }
        }
    }

    fn report_rejections(&mut self, builder: &StateBuilder) {
        let now: BTreeSet<String> = builder.rejections().map(ToString::to_string).collect();
        for new in now.difference(&self.known_rejections) {
            warn!("{new}");
        }
        if now != self.known_rejections {
            self.metrics.set_rejections(builder.rejections());
            self.known_rejections = now;
        }
    }
}
