//! IPVS schedulers by name.

use std::fmt;
use std::str::FromStr;

/// An IPVS scheduler. Each needs the kernel module `ip_vs_<name>` (the kernel loads it on
/// first use if it can; otherwise adding the service fails with `ENOENT`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// `rr`, round robin: kube-proxy's default.
    #[default]
    RoundRobin,
    /// `wrr`, weighted round robin.
    WeightedRoundRobin,
    /// `lc`, least connections.
    LeastConnection,
    /// `wlc`, weighted least connections.
    WeightedLeastConnection,
    /// `lblc`, locality-based least connections.
    LocalityLeastConnection,
    /// `lblcr`, locality-based least connections with replication.
    LocalityLeastConnectionReplication,
    /// `dh`, destination hashing.
    DestinationHash,
    /// `sh`, source hashing.
    SourceHash,
    /// `sed`, shortest expected delay.
    ShortestExpectedDelay,
    /// `nq`, never queue.
    NeverQueue,
    /// `mh`, maglev hashing.
    MaglevHash,
    /// `fo`, weighted failover.
    WeightedFailover,
    /// `ovf`, weighted overflow.
    WeightedOverflow,
    /// `twos`, weighted random twos choice.
    TwoChoice,
    /// A name this client does not know, as the kernel reported it. [`FromStr`] never
    /// produces it; it only comes from dumps.
    Other(String),
}

const NAMES: &[(&str, Scheduler)] = &[
    ("rr", Scheduler::RoundRobin),
    ("wrr", Scheduler::WeightedRoundRobin),
    ("lc", Scheduler::LeastConnection),
    ("wlc", Scheduler::WeightedLeastConnection),
    ("lblc", Scheduler::LocalityLeastConnection),
    ("lblcr", Scheduler::LocalityLeastConnectionReplication),
    ("dh", Scheduler::DestinationHash),
    ("sh", Scheduler::SourceHash),
    ("sed", Scheduler::ShortestExpectedDelay),
    ("nq", Scheduler::NeverQueue),
    ("mh", Scheduler::MaglevHash),
    ("fo", Scheduler::WeightedFailover),
    ("ovf", Scheduler::WeightedOverflow),
    ("twos", Scheduler::TwoChoice),
];

impl Scheduler {
    /// The kernel's name (`rr`, `wrr`, ...), as sent in `IPVS_SVC_ATTR_SCHED_NAME`.
    pub fn name(&self) -> &str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConnection => "lc",
            Scheduler::WeightedLeastConnection => "wlc",
            Scheduler::LocalityLeastConnection => "lblc",
            Scheduler::LocalityLeastConnectionReplication => "lblcr",
            Scheduler::DestinationHash => "dh",
            Scheduler::SourceHash => "sh",
            Scheduler::ShortestExpectedDelay => "sed",
            Scheduler::NeverQueue => "nq",
            Scheduler::MaglevHash => "mh",
            Scheduler::WeightedFailover => "fo",
            Scheduler::WeightedOverflow => "ovf",
            Scheduler::TwoChoice => "twos",
            Scheduler::Other(name) => name,
        }
    }

    /// The scheduler a kernel name stands for; unknown names become [`Scheduler::Other`].
    pub fn from_kernel_name(name: &str) -> Scheduler {
        name.parse().unwrap_or_else(|_| Scheduler::Other(name.to_string()))
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name that is not one of the kernel's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown IPVS scheduler {0:?}: use one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos")]
pub struct UnknownScheduler(pub String);

/// Parses a kernel scheduler name (`rr`, `wlc`, ...), the spelling of kube-proxy's
/// `--ipvs-scheduler`; anything else is an [`UnknownScheduler`] naming the value.
impl FromStr for Scheduler {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Scheduler, UnknownScheduler> {
        NAMES.iter().find(|(n, _)| *n == s).map(|(_, sched)| sched.clone()).ok_or_else(|| UnknownScheduler(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_scheduler_round_trips_its_kernel_name() {
        for (name, sched) in NAMES {
            assert_eq!(sched.name(), *name);
            assert_eq!(name.parse::<Scheduler>().as_ref(), Ok(sched));
        }
        assert_eq!(Scheduler::default().name(), "rr");
    }

    #[test]
    fn unknown_names_are_refused_by_parse_but_kept_from_dumps() {
        let err = "rrr".parse::<Scheduler>().unwrap_err();
        assert!(err.to_string().contains("\"rrr\""), "{err}");
        assert_eq!(Scheduler::from_kernel_name("foo"), Scheduler::Other("foo".into()));
        assert_eq!(Scheduler::Other("foo".into()).name(), "foo");
    }
}
