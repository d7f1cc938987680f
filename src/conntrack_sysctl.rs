//! The conntrack sysctls kube-proxy sets at start (`--conntrack-*`), set the same way:
//! `nf_conntrack_max` from the per-core figure and the minimum, the TCP established and
//! close-wait timeouts, TCP be-liberal, the UDP timeouts. A value already in place is not
//! written; one the namespace does not allow (`nf_conntrack_max` outside the host's
//! network namespace is read-only) is skipped with a log line, never an error.

use std::time::Duration;

/// One sysctl to write: its path under `/proc/sys` and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlWrite {
    /// E.g. `net/netfilter/nf_conntrack_max`.
    pub path: &'static str,
    /// The value to write.
    pub value: String,
}

/// What `--conntrack-*` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackSettings {
    /// `--conntrack-max-per-core` (0: leave `nf_conntrack_max`).
    pub max_per_core: u32,
    /// `--conntrack-min`.
    pub min: u32,
    /// `--conntrack-tcp-timeout-established` (0: leave).
    pub tcp_established: Duration,
    /// `--conntrack-tcp-timeout-close-wait` (0: leave).
    pub tcp_close_wait: Duration,
    /// `--conntrack-tcp-be-liberal`.
    pub tcp_be_liberal: bool,
    /// `--conntrack-udp-timeout` (0: leave).
    pub udp: Duration,
    /// `--conntrack-udp-timeout-stream` (0: leave).
    pub udp_stream: Duration,
}

/// The writes `settings` ask for on a machine with `cpus` CPUs, as kube-proxy computes
/// them: `nf_conntrack_max = max(max_per_core * cpus, min)` when `max_per_core > 0`.
pub fn plan(settings: &ConntrackSettings, cpus: u32) -> Vec<SysctlWrite> {
    let mut out = Vec::new();
    let mut push = |path: &'static str, value: String| out.push(SysctlWrite { path, value });
    if settings.max_per_core > 0 {
        let max = settings.max_per_core.saturating_mul(cpus.max(1)).max(settings.min);
        push("net/netfilter/nf_conntrack_max", max.to_string());
    }
    let seconds = |d: Duration| (!d.is_zero()).then(|| d.as_secs().max(1).to_string());
    if let Some(s) = seconds(settings.tcp_established) {
        push("net/netfilter/nf_conntrack_tcp_timeout_established", s);
    }
    if let Some(s) = seconds(settings.tcp_close_wait) {
        push("net/netfilter/nf_conntrack_tcp_timeout_close_wait", s);
    }
    if settings.tcp_be_liberal {
        push("net/netfilter/nf_conntrack_tcp_be_liberal", "1".into());
    }
    if let Some(s) = seconds(settings.udp) {
        push("net/netfilter/nf_conntrack_udp_timeout", s);
    }
    if let Some(s) = seconds(settings.udp_stream) {
        push("net/netfilter/nf_conntrack_udp_timeout_stream", s);
    }
    out
}

/// Applies `writes` under `root` (`/proc/sys` on a node): skips values already there,
/// logs and skips the ones that cannot be written. Returns the paths written.
pub fn apply(writes: &[SysctlWrite], root: &std::path::Path) -> Vec<&'static str> {
    let mut written = Vec::new();
    for w in writes {
        let path = root.join(w.path);
        match std::fs::read_to_string(&path) {
            Ok(current) if current.trim() == w.value => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::info!(sysctl = w.path, error = %e, "conntrack sysctl not available here; skipped");
                continue;
            }
        }
        match std::fs::write(&path, &w.value) {
            Ok(()) => {
                tracing::info!(sysctl = w.path, value = %w.value, "set conntrack sysctl");
                written.push(w.path);
            }
            Err(e) => tracing::info!(
                sysctl = w.path,
                value = %w.value,
                error = %e,
                "this network namespace does not allow setting it; skipped (kube-proxy skips it too)"
            ),
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ConntrackSettings {
        ConntrackSettings {
            max_per_core: 32_768,
            min: 131_072,
            tcp_established: Duration::from_secs(86_400),
            tcp_close_wait: Duration::from_secs(3_600),
            tcp_be_liberal: false,
            udp: Duration::ZERO,
            udp_stream: Duration::ZERO,
        }
    }

    #[test]
    fn kube_proxys_defaults_on_two_and_on_eight_cpus() {
        let two = plan(&defaults(), 2);
        assert_eq!(two[0], SysctlWrite { path: "net/netfilter/nf_conntrack_max", value: "131072".into() }, "the minimum wins");
        assert_eq!(plan(&defaults(), 8)[0].value, "262144");
        let paths: Vec<&str> = two.iter().map(|w| w.path).collect();
        assert_eq!(
            paths,
            [
                "net/netfilter/nf_conntrack_max",
                "net/netfilter/nf_conntrack_tcp_timeout_established",
                "net/netfilter/nf_conntrack_tcp_timeout_close_wait"
            ]
        );
        let zero = ConntrackSettings {
            max_per_core: 0,
            tcp_established: Duration::ZERO,
            tcp_close_wait: Duration::ZERO,
            tcp_be_liberal: true,
            udp: Duration::from_secs(30),
            udp_stream: Duration::from_secs(120),
            ..defaults()
        };
        let values: Vec<(&str, String)> = plan(&zero, 2).into_iter().map(|w| (w.path, w.value)).collect();
        assert_eq!(
            values,
            [
                ("net/netfilter/nf_conntrack_tcp_be_liberal", "1".to_owned()),
                ("net/netfilter/nf_conntrack_udp_timeout", "30".to_owned()),
                ("net/netfilter/nf_conntrack_udp_timeout_stream", "120".to_owned())
            ]
        );
    }

    #[test]
    fn values_in_place_are_not_written_and_missing_ones_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net/netfilter");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nf_conntrack_max"), "131072\n").unwrap();
        std::fs::write(dir.join("nf_conntrack_tcp_timeout_established"), "432000\n").unwrap();
        let written = apply(&plan(&defaults(), 2), root.path());
        assert_eq!(written, ["net/netfilter/nf_conntrack_tcp_timeout_established"], "close_wait is absent: skipped");
        assert_eq!(std::fs::read_to_string(dir.join("nf_conntrack_tcp_timeout_established")).unwrap(), "86400");
    }
}
