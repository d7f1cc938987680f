//! The deployment manifests under `manifests/`, checked without a cluster: every document
//! is a well-formed object of its kind, the RBAC grants exactly what kube-ferry uses, each
//! mode's DaemonSet is as designed, and its arguments parse with kube-ferry's own CLI, so
//! the manifests cannot drift from the binary unnoticed.
//!
//! `manifests/<mode>/all.yaml` are generated from `manifests/base/` by
//! [`render_variant`]; `KUBE_FERRY_WRITE_MANIFESTS=1 cargo test --test manifests`
//! rewrites them after the base changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use kube_ferry::cli::{Cli, Command, Mode, RunArgs};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-ferry";
const NODE: &str = "node-a";
const HEALTHZ_PORT: u16 = 10256;
const IMAGE_REPO: &str = "ghcr.io/kube-ferry/kube-ferry";

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

// ---- the design of each mode ----------------------------------------------------------

/// The capabilities each mode's container adds (after dropping ALL).
fn designed_capabilities(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Nftables | Mode::Iptables | Mode::Ipvs => &["NET_ADMIN", "NET_RAW"],
        Mode::Userspace => &["NET_ADMIN", "NET_BIND_SERVICE"],
    }
}

/// Whether a mode drives iptables (the host's xtables lock) and looks at the node's
/// kernel modules (read only).
fn uses_xtables(mode: Mode) -> bool {
    match mode {
        Mode::Iptables | Mode::Ipvs => true,
        Mode::Nftables | Mode::Userspace => false,
    }
}

/// The base's capability lines, which each variant replaces with its own.
const BASE_CAPABILITIES: &str = "              # NET_ADMIN: nftables and conntrack (stale UDP flows) over netlink.
              # NET_RAW: the nftables backend needs none; it is kept so the image's
              # iptables tools (iptables-legacy uses a raw socket) work under `kubectl
              # exec`, e.g. to inspect kube-proxy's leftover rules. Drop it if you like.
              # No SYS_MODULE: nftables mode loads no modules (the kernel loads nf_tables
              # and its expressions itself), so no /lib/modules or xtables lock either.
              add: [NET_ADMIN, NET_RAW]
";

fn variant_capabilities(mode: Mode) -> &'static str {
    match mode {
        Mode::Nftables => BASE_CAPABILITIES,
        Mode::Iptables => {
            "              # NET_ADMIN: iptables rules and conntrack (stale UDP flows) over netlink.
              # NET_RAW: iptables-legacy talks to the kernel over a raw socket.
              # No SYS_MODULE: kube-ferry loads no modules. The node must provide
              # ip_tables, iptable_nat and the xt_* matches (built in, loaded at boot, or
              # autoloaded by the kernel); /lib/modules is mounted to see which it has.
              add: [NET_ADMIN, NET_RAW]
"
        }
        Mode::Ipvs => {
            "              # NET_ADMIN: IPVS virtual servers (generic netlink), service addresses
              # on kube-ipvs0, the masquerade rules in iptables, conntrack.
              # NET_RAW: iptables-legacy talks to the kernel over a raw socket.
              # No SYS_MODULE: kube-ferry does not load ip_vs itself. Load ip_vs,
              # ip_vs_rr, ip_vs_wrr, ip_vs_sh and nf_conntrack on the nodes (for example
              # from /etc/modules-load.d); /lib/modules is mounted to see which are there.
              add: [NET_ADMIN, NET_RAW]
"
        }
        Mode::Userspace => {
            "              # NET_ADMIN: the service addresses go on a local dummy interface so the
              # proxy can bind them (this mode is for kernels with no nftables, iptables
              # or IPVS to redirect with).
              # NET_BIND_SERVICE: it listens on service ports below 1024 (53, 80, 443...);
              # with every capability dropped even root needs it, and hostNetwork shares
              # the node's net.ipv4.ip_unprivileged_port_start (1024 by default).
              # No NET_RAW (plain TCP and UDP sockets), no SYS_MODULE, no mounts.
              add: [NET_ADMIN, NET_BIND_SERVICE]
"
        }
    }
}

/// Appended to the base DaemonSet (whose container and pod spec end it) for the modes
/// that use iptables.
const XTABLES_MOUNTS: &str = "            # The iptables tools take the node's xtables lock, shared with every other
            # iptables user on the node: it must be the host's file.
            - name: xtables-lock
              mountPath: /run/xtables.lock
            # Read only, to see which kernel modules the node has; kube-ferry loads none.
            - name: lib-modules
              mountPath: /lib/modules
              readOnly: true
";

const XTABLES_VOLUMES: &str = "        - name: xtables-lock
          hostPath:
            path: /run/xtables.lock
            type: FileOrCreate
        - name: lib-modules
          hostPath:
            path: /lib/modules
            type: Directory
";

/// Where the base DaemonSet's container mounts end and its volumes begin.
const MOUNTS_END: &str = "              readOnly: true\n      volumes:\n";

fn replace_once(text: &str, from: &str, to: &str, what: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the base must hold {what} exactly once: {from:?}");
    text.replacen(from, to, 1)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `manifests/<mode>/all.yaml` as generated from `manifests/base/`: the same objects, the
/// ServiceAccount and the DaemonSet in kube-system, the mode's `--mode`, capabilities and
/// (for iptables and ipvs) mounts.
fn render_variant(mode: Mode) -> String {
    let base = manifests_dir().join("base");
    let name = mode.name();
    let in_namespace = |text: &str| {
        replace_once(
            text,
            "metadata:\n  name: kube-ferry\n",
            &format!("metadata:\n  name: kube-ferry\n  namespace: {NAMESPACE}\n"),
            "the object's name",
        )
    };
    let service_account = in_namespace(&read(&base.join("serviceaccount.yaml")));
    let rbac = read(&base.join("rbac.yaml"));
    let mut daemonset = in_namespace(&read(&base.join("daemonset.yaml")));
    daemonset = replace_once(&daemonset, "- --mode=nftables\n", &format!("- --mode={name}\n"), "the mode flag");
    daemonset = replace_once(&daemonset, BASE_CAPABILITIES, variant_capabilities(mode), "the capabilities");
    if uses_xtables(mode) {
        // The mounts join the config mount; the volumes end the pod spec and the file.
        daemonset = replace_once(
            &daemonset,
            MOUNTS_END,
            &format!("              readOnly: true\n{XTABLES_MOUNTS}      volumes:\n"),
            "the end of the container's mounts",
        );
        daemonset.push_str(XTABLES_VOLUMES);
    }
    let configmap = in_namespace(&read(&base.join("configmap.yaml")));
    format!(
        "# kube-ferry with --mode={name}: its ServiceAccount, ClusterRole, ClusterRoleBinding,\n\
         # ConfigMap and DaemonSet, in {NAMESPACE}. Apply with `kubectl apply -f manifests/{name}/all.yaml`.\n\
         # Generated from manifests/base/ by tests/manifests.rs: edit the base, then run\n\
         #   KUBE_FERRY_WRITE_MANIFESTS=1 cargo test --test manifests\n\
         ---\n{service_account}---\n{rbac}---\n{configmap}---\n{daemonset}"
    )
}

// ---- loading -----------------------------------------------------------------------------

/// One YAML document, as JSON.
struct Doc {
    origin: String,
    value: Value,
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            out.push(path);
        }
    }
}

fn is_kustomization(path: &Path) -> bool {
    path.file_stem().is_some_and(|s| s == "kustomization" || s == "Kustomization")
}

fn docs_of(path: &Path) -> Vec<Doc> {
    let text = read(path);
    let mut docs = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let origin = format!("{} document {}", path.display(), i + 1);
        let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"));
        if !value.is_null() {
            docs.push(Doc { origin, value });
        }
    }
    docs
}

/// The objects of one directory (not below it).
#[derive(Default)]
struct Objects {
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    daemonsets: Vec<DaemonSet>,
    namespaces: Vec<Namespace>,
    config_maps: Vec<ConfigMap>,
}

/// Where two JSON values differ, as paths.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let sub = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => differences(&sub, p, q, out),
                    (p, q) => out.push(format!("{sub}: {p:?} != {q:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

/// `doc` as a `T`, which must keep every field: a misspelt or misplaced field (which
/// Kubernetes would reject or, worse, ignore) shows as a difference after a round trip.
fn typed<T: DeserializeOwned + Serialize + Resource>(doc: &Doc) -> T {
    let object: T = serde_json::from_value(doc.value.clone())
        .unwrap_or_else(|e| panic!("{} is not a valid {}: {e}", doc.origin, T::KIND));
    let back = serde_json::to_value(&object).expect("k8s-openapi objects serialize");
    let mut diff = Vec::new();
    differences("", &doc.value, &back, &mut diff);
    assert!(
        diff.is_empty(),
        "{}: fields a {} does not have (or of the wrong shape):\n{}",
        doc.origin,
        T::KIND,
        diff.join("\n")
    );
    object
}

fn load_into(objects: &mut Objects, doc: &Doc) {
    let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let expect = |k: &str, v: &str| assert_eq!((kind, api_version), (k, v), "{}", doc.origin);
    match kind {
        "ServiceAccount" => {
            expect(ServiceAccount::KIND, ServiceAccount::API_VERSION);
            objects.service_accounts.push(typed(doc));
        }
        "ClusterRole" => {
            expect(ClusterRole::KIND, ClusterRole::API_VERSION);
            objects.cluster_roles.push(typed(doc));
        }
        "ClusterRoleBinding" => {
            expect(ClusterRoleBinding::KIND, ClusterRoleBinding::API_VERSION);
            objects.bindings.push(typed(doc));
        }
        "DaemonSet" => {
            expect(DaemonSet::KIND, DaemonSet::API_VERSION);
            objects.daemonsets.push(typed(doc));
        }
        "Namespace" => {
            expect(Namespace::KIND, Namespace::API_VERSION);
            objects.namespaces.push(typed(doc));
        }
        "ConfigMap" => {
            expect(ConfigMap::KIND, ConfigMap::API_VERSION);
            objects.config_maps.push(typed(doc));
        }
        other => panic!("{}: kind {other:?} is not one the manifests are meant to hold", doc.origin),
    }
}

fn load_dir(dir: &Path) -> Objects {
    let mut objects = Objects::default();
    let mut files = Vec::new();
    yaml_files(dir, &mut files);
    for file in files.iter().filter(|f| f.parent() == Some(dir) && !is_kustomization(f)) {
        for doc in docs_of(file) {
            load_into(&mut objects, &doc);
        }
    }
    objects
}

/// `base` and one directory per mode, with the mode each runs.
fn variants() -> Vec<(&'static str, Mode)> {
    let mut all = vec![("base", Mode::Nftables)];
    all.extend(Mode::value_variants().iter().map(|m| (m.name(), *m)));
    all
}

fn only<'a, T>(items: &'a [T], what: &str, dir: &str) -> &'a T {
    assert_eq!(items.len(), 1, "manifests/{dir} must hold exactly one {what}");
    &items[0]
}

fn pod_spec(daemonset: &DaemonSet) -> &PodSpec {
    daemonset.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("the DaemonSet has a pod spec")
}

fn container(daemonset: &DaemonSet) -> &Container {
    let containers = &pod_spec(daemonset).containers;
    assert_eq!(containers.len(), 1, "one container");
    assert!(pod_spec(daemonset).init_containers.is_none(), "no init containers");
    &containers[0]
}

/// The container's arguments as the kubelet passes them: `$(VAR)` replaced by the
/// variable's value, here the node name for `NODE_NAME`.
fn expanded_args(container: &Container) -> Vec<String> {
    let env = container.env.as_deref().unwrap_or_default();
    let node_name = env.iter().find(|e| e.name == "NODE_NAME").expect("NODE_NAME is set");
    let field = node_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"), "NODE_NAME comes from the downward API");
    let values = BTreeMap::from([("NODE_NAME", NODE)]);
    container
        .args
        .as_deref()
        .expect("the container has args")
        .iter()
        .map(|arg| {
            let mut out = arg.clone();
            while let Some(start) = out.find("$(") {
                let end = out[start..].find(')').map(|e| start + e).expect("a closed $(...)");
                let var = &out[start + 2..end];
                let value = values.get(var).unwrap_or_else(|| panic!("{arg:?} refers to ${var}, which is not set"));
                out.replace_range(start..=end, value);
            }
            out
        })
        .collect()
}

fn parse_run_args(args: &[String]) -> RunArgs {
    let cli = Cli::try_parse_from(std::iter::once("kube-ferry".to_string()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("kube-ferry rejects the DaemonSet's args {args:?}:\n{e}"));
    match cli.command {
        None => cli.run,
        Some(Command::Run(run)) => *run,
        Some(other) => panic!("the DaemonSet runs {other:?}, not the proxy"),
    }
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn every_document_parses_into_its_kubernetes_type() {
    let mut files = Vec::new();
    yaml_files(&manifests_dir(), &mut files);
    assert!(files.len() >= 7, "the base's three files and four variants: {files:?}");
    let mut objects = Objects::default();
    for file in &files {
        let docs = docs_of(file);
        assert!(!docs.is_empty(), "{} holds no document", file.display());
        if is_kustomization(file) {
            continue; // kustomize's own format: YAML is all we check
        }
        for doc in &docs {
            load_into(&mut objects, doc);
        }
    }
    assert!(objects.namespaces.is_empty(), "kube-system exists already; the manifests create no namespace");
    assert_eq!(objects.daemonsets.len(), variants().len(), "one DaemonSet in the base and in each variant");
}

#[test]
fn every_mode_has_a_variant_and_every_variant_is_a_mode() {
    let mut dirs: Vec<String> = fs::read_dir(manifests_dir())
        .expect("manifests/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().expect("a name").to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut expected: Vec<String> = variants().iter().map(|(d, _)| d.to_string()).collect();
    expected.sort();
    assert_eq!(dirs, expected, "manifests/ holds base/ and one directory per --mode");
    for (dir, mode) in variants().into_iter().skip(1) {
        assert_eq!(Mode::from_str(dir, false), Ok(mode), "--mode accepts the directory name {dir}");
    }
}

#[test]
fn variants_are_generated_from_the_base() {
    let write = std::env::var_os("KUBE_FERRY_WRITE_MANIFESTS").is_some_and(|v| v == "1");
    for mode in Mode::value_variants() {
        let path = manifests_dir().join(mode.name()).join("all.yaml");
        let expected = render_variant(*mode);
        if write {
            fs::create_dir_all(path.parent().expect("a parent")).expect("create the variant's directory");
            fs::write(&path, &expected).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        let actual = read(&path);
        assert!(
            actual == expected,
            "{} is not what manifests/base/ generates; edit the base and run \
             KUBE_FERRY_WRITE_MANIFESTS=1 cargo test --test manifests\nfirst differing line: {:?}",
            path.display(),
            actual.lines().zip(expected.lines()).find(|(a, b)| a != b)
        );
        let files: Vec<_> = fs::read_dir(path.parent().expect("a parent"))
            .expect("the variant's directory")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(
            files,
            ["all.yaml"],
            "manifests/{} holds all.yaml only, so `kubectl apply -f` on it works",
            mode.name()
        );
    }
}

#[test]
fn cluster_role_grants_exactly_what_kube_ferry_uses() {
    let expected: BTreeSet<(&str, &str, &str)> = [
        ("", "services", "get"),
        ("", "services", "list"),
        ("", "services", "watch"),
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("discovery.k8s.io", "endpointslices", "get"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("discovery.k8s.io", "endpointslices", "watch"),
        ("", "events", "create"),
        ("", "events", "patch"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ]
    .into();
    for (dir, _) in variants() {
        let objects = load_dir(&manifests_dir().join(dir));
        let role = only(&objects.cluster_roles, "ClusterRole", dir);
        assert_eq!(role.metadata.name.as_deref(), Some(NAME));
        assert!(role.aggregation_rule.is_none(), "manifests/{dir}: no aggregation");
        let mut granted = BTreeSet::new();
        for rule in role.rules.as_deref().unwrap_or_default() {
            assert!(rule.non_resource_urls.is_none(), "manifests/{dir}: no non-resource URLs");
            assert!(
                rule.resource_names.is_none(),
                "manifests/{dir}: resourceNames would narrow, not widen, but none are meant"
            );
            for group in rule.api_groups.as_deref().unwrap_or_default() {
                for resource in rule.resources.as_deref().unwrap_or_default() {
                    for verb in &rule.verbs {
                        granted.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
        let granted: BTreeSet<(&str, &str, &str)> =
            granted.iter().map(|(g, r, v)| (g.as_str(), r.as_str(), v.as_str())).collect();
        assert_eq!(granted, expected, "manifests/{dir}: the ClusterRole grants exactly this (no wildcards, no more)");
    }
}

#[test]
fn binding_grants_the_role_to_the_daemonsets_service_account_in_kube_system() {
    for (dir, _) in variants() {
        let objects = load_dir(&manifests_dir().join(dir));
        let account = only(&objects.service_accounts, "ServiceAccount", dir);
        let role = only(&objects.cluster_roles, "ClusterRole", dir);
        let binding = only(&objects.bindings, "ClusterRoleBinding", dir);
        let daemonset = only(&objects.daemonsets, "DaemonSet", dir);
        let namespace = if dir == "base" { None } else { Some(NAMESPACE) };
        assert_eq!(account.metadata.namespace.as_deref(), namespace, "manifests/{dir}: the ServiceAccount's namespace");
        assert_eq!(daemonset.metadata.namespace.as_deref(), namespace, "manifests/{dir}: the DaemonSet's namespace");
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref(), "manifests/{dir}: roleRef");
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1, "manifests/{dir}: one subject");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(Some(&subjects[0].name), account.metadata.name.as_ref(), "manifests/{dir}: the subject");
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE), "manifests/{dir}: the subject's namespace");
        assert_eq!(
            pod_spec(daemonset).service_account_name,
            account.metadata.name,
            "manifests/{dir}: the pods' account"
        );
    }
}

#[test]
fn each_daemonset_is_as_its_mode_needs() {
    for (dir, mode) in variants() {
        let objects = load_dir(&manifests_dir().join(dir));
        let daemonset = only(&objects.daemonsets, "DaemonSet", dir);
        let at = format!("manifests/{dir}");
        let labels = BTreeMap::from([("k8s-app".to_string(), NAME.to_string())]);
        assert_eq!(daemonset.metadata.name.as_deref(), Some(NAME), "{at}");
        assert_eq!(daemonset.metadata.labels.as_ref(), Some(&labels), "{at}: labels");
        let spec = daemonset.spec.as_ref().expect("a spec");
        assert_eq!(spec.selector.match_labels.as_ref(), Some(&labels), "{at}: selector");
        assert_eq!(spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref()), Some(&labels), "{at}: pod labels");
        let strategy = spec.update_strategy.as_ref().expect("an update strategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"), "{at}");
        let max_unavailable = strategy.rolling_update.as_ref().and_then(|r| r.max_unavailable.as_ref());
        assert_eq!(max_unavailable, Some(&IntOrString::Int(1)), "{at}: maxUnavailable");

        let pod = pod_spec(daemonset);
        assert_eq!(pod.host_network, Some(true), "{at}: hostNetwork");
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"), "{at}");
        assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"), "{at}");
        let tolerations = pod.tolerations.as_deref().unwrap_or_default();
        assert!(
            tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()),
            "{at}: a toleration of every taint"
        );
        assert!(pod.host_pid.is_none() && pod.host_ipc.is_none(), "{at}: only the network is shared");

        let container = container(daemonset);
        let image = container.image.as_deref().expect("an image");
        assert_eq!(image, format!("{IMAGE_REPO}:{}", env!("CARGO_PKG_VERSION")), "{at}: the image of this version");
        assert!(container.command.is_none(), "{at}: the image's ENTRYPOINT runs kube-ferry");

        let security = container.security_context.as_ref().expect("a security context");
        assert_ne!(security.privileged, Some(true), "{at}: not privileged");
        assert_eq!(security.allow_privilege_escalation, Some(false), "{at}");
        let capabilities = security.capabilities.as_ref().expect("capabilities");
        assert_eq!(
            capabilities.drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{at}: every other capability dropped"
        );
        let added: Vec<&str> = capabilities.add.as_deref().unwrap_or_default().iter().map(String::as_str).collect();
        assert_eq!(added, designed_capabilities(mode), "{at}: the capabilities --mode={} needs", mode.name());
        assert!(!added.contains(&"SYS_MODULE") && !added.contains(&"SYS_ADMIN"), "{at}: kube-ferry loads no modules");

        for (probe, path) in [(&container.liveness_probe, "/livez"), (&container.readiness_probe, "/healthz")] {
            let get =
                probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{at}: a probe on {path}"));
            assert_eq!(get.path.as_deref(), Some(path), "{at}");
            assert_eq!(get.port, IntOrString::Int(HEALTHZ_PORT.into()), "{at}: {path} on the healthz port");
            assert!(get.scheme.as_deref().is_none_or(|s| s == "HTTP"), "{at}: the healthz server speaks HTTP");
        }

        let resources = container.resources.as_ref().expect("resources");
        let requests = resources.requests.as_ref().expect("requests");
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{at}: cpu and memory requests");
        assert!(resources.limits.as_ref().is_some_and(|l| l.contains_key("memory")), "{at}: a memory limit");

        let mounts: BTreeMap<&str, (&str, bool)> = container
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| (m.name.as_str(), (m.mount_path.as_str(), m.read_only == Some(true))))
            .collect();
        // The config file, from the ConfigMap, read only, in every mode.
        assert_eq!(mounts.get("config"), Some(&("/etc/kube-ferry", true)), "{at}: the ConfigMap's mount");
        let config_volume = pod.volumes.as_deref().unwrap_or_default().iter().find(|v| v.name == "config");
        assert_eq!(
            config_volume.and_then(|v| v.config_map.as_ref()).map(|c| c.name.as_str()),
            Some(NAME),
            "{at}: the config volume is the kube-ferry ConfigMap"
        );
        let mut mounts = mounts;
        mounts.remove("config");
        let volumes: BTreeMap<&str, (&str, Option<&str>)> = pod
            .volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|v| v.name != "config")
            .map(|v| {
                let host = v.host_path.as_ref().unwrap_or_else(|| panic!("{at}: volume {} is a hostPath", v.name));
                (v.name.as_str(), (host.path.as_str(), host.type_.as_deref()))
            })
            .collect();
        if uses_xtables(mode) {
            let expected_mounts = BTreeMap::from([
                ("xtables-lock", ("/run/xtables.lock", false)),
                ("lib-modules", ("/lib/modules", true)),
            ]);
            let expected_volumes = BTreeMap::from([
                ("xtables-lock", ("/run/xtables.lock", Some("FileOrCreate"))),
                ("lib-modules", ("/lib/modules", Some("Directory"))),
            ]);
            assert_eq!(mounts, expected_mounts, "{at}: the xtables lock (read-write) and /lib/modules (read only)");
            assert_eq!(volumes, expected_volumes, "{at}: from the host");
        } else {
            assert!(
                mounts.is_empty() && volumes.is_empty(),
                "{at}: --mode={} needs nothing of the host's",
                mode.name()
            );
        }
    }
}

#[test]
fn each_daemonsets_args_parse_with_kube_ferrys_cli_as_its_mode() {
    for (dir, mode) in variants() {
        let objects = load_dir(&manifests_dir().join(dir));
        let daemonset = only(&objects.daemonsets, "DaemonSet", dir);
        let container = container(daemonset);
        let args = expanded_args(container);
        let mut run = parse_run_args(&args);
        // The ConfigMap's config.conf, laid under the flags as `run` lays it.
        let config_map = only(&objects.config_maps, "ConfigMap", dir);
        let text = config_map.data.as_ref().and_then(|d| d.get("config.conf")).expect("the ConfigMap holds config.conf");
        let config = kube_ferry::config::parse_str(text).unwrap_or_else(|e| panic!("manifests/{dir}: config.conf: {e}"));
        assert_eq!(run.config.as_deref(), Some(Path::new("/etc/kube-ferry/config.conf")), "manifests/{dir}");
        let given: BTreeSet<String> = args.iter().filter_map(|a| a.strip_prefix("--")?.split('=').next()).map(|f| f.replace('-', "_")).collect();
        let report = kube_ferry::config::apply(&config, &mut run, &|id| given.contains(id));
        assert!(report.ignored.is_empty(), "manifests/{dir}: config.conf has fields kube-ferry ignores: {:?}", report.ignored);
        run.validate().unwrap_or_else(|e| panic!("manifests/{dir}: {e}"));
        assert_eq!(run.mode, mode, "manifests/{dir} runs --mode={}", mode.name());
        assert_eq!(
            run.hostname_override.as_deref(),
            Some(NODE),
            "manifests/{dir}: the node name from the downward API"
        );
        assert_eq!(run.cluster_cidr, ["10.244.0.0/16".parse::<ipnet::IpNet>().expect("a CIDR")], "the placeholder");
        let healthz = run.healthz_bind_address.0.expect("the healthz server is on");
        assert!(healthz.ip().is_unspecified(), "manifests/{dir}: the kubelet probes the node's address");
        assert_eq!(healthz.port(), HEALTHZ_PORT, "manifests/{dir}: the probes' port");
        let ports: Vec<i32> = container.ports.as_deref().unwrap_or_default().iter().map(|p| p.container_port).collect();
        assert_eq!(ports, [i32::from(HEALTHZ_PORT)], "manifests/{dir}: the declared port is healthz's");
        assert_eq!(run.metrics_bind_address.0, Some("127.0.0.1:10249".parse().expect("an address")), "manifests/{dir}");
        assert!(run.manifests.is_none() && run.kubeconfig.is_none() && run.master.is_none(), "in-cluster");
    }
}

#[test]
fn the_image_runs_what_the_manifests_expect() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = read(&root.join("Dockerfile"));
    // The binary the image builds is this package's (cargo defines this only for a bin target).
    assert!(env!("CARGO_BIN_EXE_kube-ferry").ends_with("kube-ferry"));
    for line in [
        "FROM rust:1-bookworm AS build",
        "cargo build --release --locked --bin kube-ferry",
        "FROM debian:bookworm-slim",
        "apt-get install -y --no-install-recommends nftables iptables conntrack iproute2",
        "ENTRYPOINT [\"/usr/local/bin/kube-ferry\"]",
    ] {
        assert!(dockerfile.contains(line), "the Dockerfile lacks {line:?}");
    }
    assert!(!dockerfile.lines().any(|l| l.trim_start().starts_with("USER")), "root, with the DaemonSet's capabilities");
    let ignored: Vec<String> = read(&root.join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "backends", "tests", "benches", "examples"] {
        assert!(!ignored.iter().any(|i| i == needed), ".dockerignore drops {needed}, which the build needs");
    }
}
