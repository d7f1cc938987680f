//! `loadBalancerSourceRanges` for a proxy (B10): which clients a load-balancer IP's
//! frontend serves. Shared between the backend, which updates it every sync, and the
//! frontends, which check every new client against it, so a change of ranges applies to
//! the next connection without restarting a listener.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// The source ranges of one service port's load-balancer IPs; empty allows every client.
#[derive(Clone, Debug, Default)]
pub struct SourceRanges(Arc<RwLock<Vec<IpNet>>>);

impl SourceRanges {
    /// Ranges allowing the clients inside `ranges` (every client when empty).
    pub fn new(ranges: Vec<IpNet>) -> SourceRanges {
        SourceRanges(Arc::new(RwLock::new(ranges)))
    }

    /// Replaces the ranges; frontends sharing them see the new ones at their next client.
    pub fn set(&self, ranges: Vec<IpNet>) {
        // A poisoned lock only means a panic elsewhere; the vector is still whole.
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = ranges;
    }

    /// Whether `client` may use the frontend: no ranges, or one containing it.
    pub fn allows(&self, client: IpAddr) -> bool {
        let ranges = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        ranges.is_empty() || ranges.iter().any(|r| r.contains(&client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allows_all_and_updates_apply_to_every_clone() {
        let ranges = SourceRanges::default();
        let frontend_copy = ranges.clone();
        assert!(frontend_copy.allows("203.0.113.9".parse().unwrap()));
        ranges.set(vec!["192.0.2.0/30".parse().unwrap()]);
        assert!(frontend_copy.allows("192.0.2.2".parse().unwrap()));
        assert!(!frontend_copy.allows("192.0.2.9".parse().unwrap()));
        assert!(!frontend_copy.allows("2001:db8::1".parse().unwrap()));
    }
}
