//! The boundary every backend implements.

use crate::diff::StateDiff;
use crate::state::ProxyState;

/// What a sync asks of a backend.
#[derive(Clone, Copy, Debug)]
pub enum SyncRequest<'a> {
    /// Make the kernel match the whole state: on start, after a failed sync, and every
    /// `--sync-period`. A backend still sends only what differs from what it committed
    /// (or finds), and repairs drift.
    Full,
    /// Only these changes happened since the last successful sync.
    Changes(&'a StateDiff),
}

/// What one sync did, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Service ports programmed after the sync.
    pub service_ports: usize,
    /// Endpoints programmed after the sync.
    pub endpoints: usize,
    /// Operations sent to the kernel in this sync (0 when nothing had to change).
    pub operations: usize,
    /// Kernel objects (rules, chains, map elements, virtual servers) after the sync.
    pub kernel_objects: usize,
    /// Service ports the kernel refused and that were left out so the rest could be
    /// programmed (B34): empty in a sync that took everything.
    pub refused: Vec<Refusal>,
    /// Counts the backend keeps of its own, as totals since it started (the userspace
    /// proxy's `connections_refused_at_limit`, say), exported as
    /// `kubeferry_backend_events{event=NAME}`; empty for backends that keep none.
    pub events: Vec<(&'static str, u64)>,
}

/// One service port the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused (a service port id).
    pub object: String,
    /// The kernel's or the tool's words.
    pub detail: String,
}

/// The items of `items` that `check` refuses, found by halving (a refused half is split
/// again; an accepted one is done), so one bad service port among thousands costs a few
/// dozen checks, not thousands. Each refused item comes with the words of its check. The
/// backends use it to leave out what the kernel refuses and program the rest (B34).
pub fn find_refused<T>(items: &[T], mut check: impl FnMut(&[T]) -> Result<(), BackendError>) -> Vec<(&T, String)> {
    let mut refused = Vec::new();
    let mut pending = vec![items];
    while let Some(part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        match check(part) {
            Ok(()) => {}
            Err(e) if part.len() == 1 => refused.push((&part[0], e.to_string())),
            Err(_) => {
                let (a, b) = part.split_at(part.len() / 2);
                pending.push(a);
                pending.push(b);
            }
        }
    }
    refused
}

/// What a cleanup removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// One line per removed thing (a table, a chain, a virtual server, an address).
    pub removed: Vec<String>,
}

/// Why a backend could not sync. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The kernel (or its tool) refused the update. What was programmed before is
    /// still in place; the sync is retried with backoff.
    #[error("the kernel refused the update: {detail}")]
    Refused {
        /// The kernel's or the tool's words.
        detail: String,
    },
    /// A tool or kernel feature the backend needs is missing.
    #[error("{what} is not available: {hint}")]
    Unavailable {
        /// What is missing.
        what: String,
        /// How to get it (a Debian package, a kernel module, another --mode).
        hint: String,
    },
    /// Any other failure, described.
    #[error("{0}")]
    Other(String),
}

/// A backend renders the [`ProxyState`] into the kernel. It knows nothing about
/// Kubernetes objects, only the state.
///
/// The sync loop guarantees: `sync` is called from one thread at a time; the first
/// call is [`SyncRequest::Full`]; after a failed call the next one is `Full`;
/// [`SyncRequest::Changes`] holds exactly the changes since the last successful call.
pub trait Backend: Send {
    /// The mode's name (`nftables`, `iptables`, `ipvs`, `userspace`).
    fn mode(&self) -> &'static str;

    /// Makes the kernel match `state`. On error, what worked before must still work
    /// (B34).
    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError>;

    /// Removes everything this backend ever created (B28), and nothing else (B27).
    fn cleanup(&mut self) -> Result<CleanupReport, BackendError>;

    /// Reads back from the kernel (not from this process's memory) every frontend the
    /// mode has programmed, with its endpoints, for `kube-ferry status` (B32).
    fn status(&mut self) -> Result<Vec<crate::ProgrammedFrontend>, BackendError> {
        Err(BackendError::Unavailable {
            what: format!("`kube-ferry status` for --mode {}", self.mode()),
            hint: "not built for this mode yet".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_items_are_found_by_halving() {
        let items: Vec<u32> = (0..1000).collect();
        let mut checks = 0;
        let refused = find_refused(&items, |part| {
            checks += 1;
            match part.iter().find(|i| **i == 3 || **i == 777) {
                Some(i) => Err(BackendError::Refused { detail: format!("item {i}") }),
                None => Ok(()),
            }
        });
        let mut found: Vec<u32> = refused.iter().map(|(i, _)| **i).collect();
        found.sort();
        assert_eq!(found, [3, 777]);
        assert!(refused.iter().all(|(i, d)| d.contains(&format!("item {i}"))));
        assert!(checks <= 2 * 2 * 11, "{checks} checks");
        assert!(find_refused(&items, |_| Ok(())).is_empty());
    }
}
