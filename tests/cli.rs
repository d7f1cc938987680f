//! The `kube-ferry` binary as a user runs it.

use std::process::Command;

fn kube_ferry(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-ferry")).args(args).output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn render_without_arguments_prints_the_built_in_examples() {
    let (ok, out, err) = kube_ferry(&["render"]);
    assert!(ok, "{err}");
    assert!(err.is_empty(), "the examples parse and build cleanly: {err}");
    assert!(out.contains("4 service ports, 8 endpoints"), "{out}");
    for line in [
        "demo/web:http/TCP (IPv4)",
        "clusterIP 10.96.0.10:80  nodePort 30080  externalIP 192.0.2.10",
        "demo/dns:dns/UDP (IPv4)",
        "demo/dns:dns-tcp/TCP (IPv4)",
        "-> 10.244.1.13:5353",
        "loadBalancer 203.0.113.80  from 198.51.100.0/24",
        "internal=Cluster external=Local  affinity ClientIP 600s  healthCheckNodePort 32000",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        !out.contains("db") && !out.contains("mesh") && !out.contains("upstream"),
        "ignored services stay out:\n{out}"
    );
    assert!(!out.contains("skipped"), "{out}");
}

#[test]
fn render_names_skipped_objects_and_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: x}\nspec:\n  clusterIP: 10.96.0.1\n  ports: [{port: 0}]\n").unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: Service\nmetadata: [\n").unwrap();
    let (ok, out, err) = kube_ferry(&["render", "--manifests", dir.path().to_str().unwrap(), "--node", "n1"]);
    assert!(ok, "{err}");
    assert!(out.contains("Service x/bad skipped: spec.ports[0].port 0 is not a port number"), "{out}");
    assert!(err.contains("broken.yaml:"), "{err}");
}

#[test]
fn ipvs_without_ipvs_and_without_fallback_fails_at_start_with_a_clear_message() {
    // Run in a network namespace of its own (`unshare --net`, root): whatever this kernel
    // has, nothing may be programmed in the machine's own namespace. The manifest
    // directory does not exist, so a kernel that has IPVS stops right after the backend
    // is made, before any sync.
    let out = Command::new("unshare")
        .args(["--net", "--", env!("CARGO_BIN_EXE_kube-ferry"), "--mode", "ipvs", "--ipvs-no-fallback"])
        .args(["--manifests", "/nonexistent-kube-ferry-dir", "--hostname-override", "node-a"])
        .args(["--healthz-bind-address", "", "--metrics-bind-address", ""])
        .output()
        .expect("unshare runs (util-linux; root)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("this kernel has no IPVS") || err.contains("/nonexistent-kube-ferry-dir: not a directory"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    let (ok, _, err) = kube_ferry(&["--sync-period", "1s", "--min-sync-period", "5s", "--manifests", "examples"]);
    assert!(!ok && err.contains("--sync-period (1s) must be at least --min-sync-period (5s)"), "{err}");
    let (ok, _, err) = kube_ferry(&["--min-sync-period", "soon"]);
    assert!(!ok && err.contains("is not a duration"), "{err}");
    let (ok, _, err) = kube_ferry(&["--cluster-cidr", "10.0.0.0/8,10.1.0.0/16", "--manifests", "examples"]);
    assert!(!ok && err.contains("one CIDR per family"), "{err}");
}

#[test]
fn version_prints_the_version() {
    let (ok, out, _) = kube_ferry(&["version"]);
    assert!(ok && out.starts_with("kube-ferry 0."), "{out}");
}

#[test]
fn render_prints_the_nftables_transaction_for_the_flags_given() {
    let (ok, out, err) = kube_ferry(&["render", "--mode", "nftables"]);
    assert!(ok, "{err}");
    assert!(out.contains("add table ip kube-ferry") && out.contains("add table ip6 kube-ferry"), "{out}");
    assert!(!out.contains("jump mark-for-masquerade\n") || !out.contains("saddr != 10.244.0.0/16"), "{out}");
    let (ok, out, err) = kube_ferry(&["render", "--mode", "nftables", "--cluster-cidr", "10.244.0.0/16"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("ip saddr != 10.244.0.0/16 jump mark-for-masquerade"),
        "the cluster CIDR shapes the masquerade rules (B22):\n{out}"
    );
}

#[test]
fn render_prints_the_iptables_restore_input_for_the_flags_given() {
    let (ok, out, err) = kube_ferry(&["render", "--mode", "iptables", "--cluster-cidr", "10.244.0.0/16"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("# iptables-restore --noflush\n*nat\n") && out.contains("# ip6tables-restore --noflush"),
        "{out}"
    );
    assert!(out.contains("-I PREROUTING 1 -m comment --comment kube-ferry -j KUBE-SERVICES"), "{out}");
    assert!(
        out.contains("! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"),
        "the cluster CIDR shapes the masquerade rules (B22):\n{out}"
    );
    assert!(out.contains("--comment \"demo/web:http cluster IP\""), "rules name their service port:\n{out}");
}

#[test]
fn render_prints_the_ipvs_virtual_services_as_ipvsadm_lists_them() {
    let (ok, out, err) = kube_ferry(&["render", "--mode", "ipvs", "--cluster-cidr", "10.244.0.0/16"]);
    assert!(ok, "{err}");
    for line in [
        "Prot LocalAddress:Port Scheduler Flags",
        "TCP  10.96.0.10:80 rr",
        "  -> 10.244.1.11:8080             Masq    1      0          0",
        "TCP  10.96.0.80:443 rr persistent 600",
        "TCP  172.18.0.2:30080 rr",
        "UDP  10.96.0.53:53 rr",
        "# addresses on kube-ipvs0: 10.96.0.10 10.96.0.53 10.96.0.80 192.0.2.10 203.0.113.80",
        "table ip kube-ferry-ipvs {",
        "@cluster-ports ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}
