//! `kube-ferry demo`, the real binary, end to end: it builds its lab, shows requests
//! through kube-ferry, and removes everything. Needs root (CI has it); fails, never
//! skips, without it.

use std::process::Command;
use std::time::Instant;

#[test]
fn demo_shows_both_pods_and_both_kinds_of_source_and_leaves_nothing() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-ferry")).arg("demo").output().expect("kube-ferry demo runs");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = format!("exit: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(out.status.success(), "the demo failed (it needs root and iproute2, nftables, conntrack):\n{shown}");
    eprintln!("kube-ferry demo took {took:?}");

    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" ClusterIP ") || l.contains(" NodePort ") || l.contains(" external IP "))
        .collect();
    for pod in ["pod-0", "pod-1"] {
        assert!(rows.iter().any(|r| r.split_whitespace().any(|w| w == pod)), "{pod} answered no request:\n{shown}");
    }
    assert!(stdout.contains("masqueraded: from outside the cluster CIDR"), "no masqueraded source shown:\n{shown}");
    assert!(rows.iter().any(|r| r.trim_end().ends_with(" kept")), "no kept (non-masqueraded) source shown:\n{shown}");
    assert!(stdout.contains("all answered"), "{shown}");
    for kind in [
        "web ClusterIP 10.96.0.10:80",
        "dns ClusterIP 10.96.0.53:53",
        "web NodePort 192.0.2.1:30080",
        "web external IP 198.51.100.10:80",
    ] {
        assert!(stdout.contains(kind), "no request to {kind}:\n{shown}");
    }
    assert!(stdout.contains("cleaned up in"), "{shown}");

    let namespaces = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    let left: Vec<&str> = namespaces.lines().filter(|n| n.starts_with("kf-demo")).collect();
    assert!(left.is_empty(), "the demo left namespaces behind: {left:?}\n{shown}");
}
