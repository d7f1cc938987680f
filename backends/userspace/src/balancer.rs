//! Endpoint choice for one service port: round-robin, or by client address with
//! affinity (B15). Pure: time is passed in (`now`, seconds on any monotonic clock), so
//! every rule here is tested without sleeping.
//!
//! Guarantees:
//! - With no endpoints, [`Balancer::pick`] returns `None` (the caller refuses, B19).
//! - Round-robin is fair across updates: the rotation continues from where it was, over
//!   the new list, so an update never sends a burst to the first endpoint.
//! - A client with affinity keeps its endpoint while it stays in the list and the client
//!   was seen within the timeout; each pick refreshes it (the timeout counts inactivity).
//!   An update that removes its endpoint drops the affinity; one that keeps it keeps it.
//! - [`Balancer::pick_excluding`] skips endpoints a connection attempt already failed on
//!   (retry on the next one); a failed endpoint is never chosen again for that attempt.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The choice for one service port.
#[derive(Debug, Default)]
pub struct Balancer {
    endpoints: Vec<SocketAddr>,
    next: usize,
    affinity: Option<u64>,
    clients: HashMap<IpAddr, (SocketAddr, u64)>,
}

impl Balancer {
    /// A balancer over `endpoints`; `affinity_seconds` turns ClientIP affinity on.
    pub fn new(endpoints: Vec<SocketAddr>, affinity_seconds: Option<u64>) -> Balancer {
        Balancer { endpoints, next: 0, affinity: affinity_seconds, clients: HashMap::new() }
    }

    /// The endpoints, in rotation order.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Replaces the endpoints (and the affinity setting). Rotation continues; affinities
    /// to endpoints still present stay, the others go.
    pub fn update(&mut self, endpoints: Vec<SocketAddr>, affinity_seconds: Option<u64>) {
        if self.endpoints.is_empty() {
            self.next = 0;
        } else if !endpoints.is_empty() {
            // Continue after the endpoint that was picked last, if it is still there.
            let last = self.endpoints[(self.next + self.endpoints.len() - 1) % self.endpoints.len()];
            self.next = endpoints.iter().position(|e| *e == last).map_or(self.next % endpoints.len(), |i| i + 1);
        }
        if affinity_seconds.is_none() {
            self.clients.clear();
        }
        self.clients.retain(|_, (ep, _)| endpoints.contains(ep));
        self.endpoints = endpoints;
        self.affinity = affinity_seconds;
    }

    /// The endpoint for a new connection from `client` at time `now`.
    pub fn pick(&mut self, client: IpAddr, now: u64) -> Option<SocketAddr> {
        self.pick_excluding(client, now, &[])
    }

    /// Like [`Balancer::pick`], never returning one of `failed` (endpoints this connection
    /// already failed on): `None` once every endpoint has failed.
    pub fn pick_excluding(&mut self, client: IpAddr, now: u64, failed: &[SocketAddr]) -> Option<SocketAddr> {
        if let Some(timeout) = self.affinity {
            if let Some((ep, seen)) = self.clients.get(&client).copied() {
                if now.saturating_sub(seen) <= timeout && !failed.contains(&ep) {
                    self.clients.insert(client, (ep, now));
                    return Some(ep);
                }
            }
        }
        let n = self.endpoints.len();
        let chosen = (0..n).map(|k| (self.next + k) % n).find(|i| !failed.contains(&self.endpoints[i % n]))?;
        self.next = (chosen + 1) % n;
        let ep = self.endpoints[chosen];
        if self.affinity.is_some() {
            self.clients.insert(client, (ep, now));
        }
        Some(ep)
    }

    /// Forgets clients idle longer than the timeout (bounded memory); returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let Some(timeout) = self.affinity else { return 0 };
        let before = self.clients.len();
        self.clients.retain(|_, (_, seen)| now.saturating_sub(*seen) <= timeout);
        before - self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 244, 1, i], 8080))
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn no_endpoints_nothing_to_pick() {
        let mut b = Balancer::new(Vec::new(), None);
        assert_eq!(b.pick(client(1), 0), None);
        let mut b = Balancer::new(Vec::new(), Some(10));
        assert_eq!(b.pick(client(1), 0), None);
    }

    #[test]
    fn one_endpoint_always() {
        let mut b = Balancer::new(vec![ep(1)], None);
        assert!((0..5).all(|t| b.pick(client(1), t) == Some(ep(1))));
    }

    #[test]
    fn many_endpoints_in_turn() {
        let mut b = Balancer::new(vec![ep(1), ep(2), ep(3)], None);
        let picks: Vec<_> = (0..6).map(|t| b.pick(client(1), t).unwrap()).collect();
        assert_eq!(picks, [ep(1), ep(2), ep(3), ep(1), ep(2), ep(3)]);
    }

    #[test]
    fn updates_keep_the_rotation_fair() {
        let mut b = Balancer::new(vec![ep(1), ep(2), ep(3)], None);
        assert_eq!(b.pick(client(1), 0), Some(ep(1)));
        // A new endpoint arrives: the rotation goes on after ep(1), not back to the start.
        b.update(vec![ep(1), ep(2), ep(3), ep(4)], None);
        let picks: Vec<_> = (0..4).map(|t| b.pick(client(1), t).unwrap()).collect();
        assert_eq!(picks, [ep(2), ep(3), ep(4), ep(1)]);
        // Over many updates every endpoint gets its share.
        let mut counts = HashMap::new();
        for t in 0..300 {
            if t % 7 == 0 {
                b.update(vec![ep(1), ep(2), ep(3), ep(4)], None);
            }
            *counts.entry(b.pick(client(1), t).unwrap()).or_insert(0) += 1;
        }
        assert!(counts.values().all(|n| (70..=80).contains(n)), "{counts:?}");
    }

    #[test]
    fn affinity_keeps_a_client_until_it_is_idle_too_long() {
        let mut b = Balancer::new(vec![ep(1), ep(2)], Some(10));
        let first = b.pick(client(1), 0).unwrap();
        assert!((1..=30).step_by(5).all(|t| b.pick(client(1), t) == Some(first)), "each pick refreshes it");
        assert_eq!(b.pick(client(2), 31), Some(if first == ep(1) { ep(2) } else { ep(1) }), "others rotate");
        // Idle for more than the timeout: a fresh choice.
        b.pick(client(1), 100);
        assert_eq!(b.expire(200), 2, "idle clients are forgotten");
    }

    #[test]
    fn affinity_survives_updates_unless_its_endpoint_goes() {
        let mut b = Balancer::new(vec![ep(1), ep(2)], Some(60));
        let first = b.pick(client(1), 0).unwrap();
        b.update(vec![ep(1), ep(2), ep(3)], Some(60));
        assert_eq!(b.pick(client(1), 1), Some(first));
        let remaining: Vec<_> = [ep(1), ep(2), ep(3)].into_iter().filter(|e| *e != first).collect();
        b.update(remaining.clone(), Some(60));
        let again = b.pick(client(1), 2).unwrap();
        assert!(remaining.contains(&again));
        // Switching affinity off spreads again (B15).
        b.update(remaining.clone(), None);
        let picks: std::collections::HashSet<_> = (3..7).map(|t| b.pick(client(1), t).unwrap()).collect();
        assert_eq!(picks.len(), 2);
    }

    #[test]
    fn failing_endpoints_are_skipped_for_that_attempt() {
        let mut b = Balancer::new(vec![ep(1), ep(2), ep(3)], Some(60));
        assert_eq!(b.pick_excluding(client(1), 0, &[ep(1)]), Some(ep(2)));
        // The client's affinity points at ep(2); if it fails, the next one is taken.
        assert_eq!(b.pick_excluding(client(1), 1, &[ep(2)]), Some(ep(3)));
        assert_eq!(b.pick_excluding(client(1), 2, &[ep(1), ep(2), ep(3)]), None);
    }
}
