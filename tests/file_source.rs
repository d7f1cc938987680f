//! The file source (`--manifests DIR`) driving the controller.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ferry_fixtures::RecordingBackend;
use kube_ferry::controller::Controller;

const WAIT: Duration = Duration::from_secs(15);

const WEB: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.1.5]
  nodeName: node-a
";

fn write(dir: &Path, name: &str, text: &str) {
    // Write then rename, as editors and `kubectl` style tools do.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn start(dir: &Path) -> (Controller, RecordingBackend) {
    dir_controller(dir, config(Duration::from_millis(20), Duration::from_secs(30))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_files_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", WEB);
    let (controller, backend) = start(dir.path()).await;
    eventually("the first sync", WAIT, || last_is(&backend, &["demo/web:http/TCP (IPv4) -> 10.244.1.5:8080"])).await;

    write(dir.path(), "web.yaml", &WEB.replace("10.244.1.5", "10.244.1.6"));
    eventually("the edited endpoint", WAIT, || last_is(&backend, &["demo/web:http/TCP (IPv4) -> 10.244.1.6:8080"]))
        .await;

    let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"api","namespace":"demo"},"spec":{"clusterIP":"10.96.0.11","ports":[{"port":443}]}}]}"#;
    write(dir.path(), "api.json", json);
    eventually("a new file", WAIT, || backend.last_state().is_some_and(|s| s.len() == 2)).await;

    std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
    eventually("a removed file's objects deleted", WAIT, || last_is(&backend, &["demo/api/TCP (IPv4) -> "])).await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_keeps_the_last_good_state() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", WEB);
    let (controller, backend) = start(dir.path()).await;
    eventually("the first sync", WAIT, || backend.sync_count() == 1).await;

    write(
        dir.path(),
        "web.yaml",
        &WEB.replace("ports: [{name: http, port: 80}]", "ports: [{name: http, port: eighty}]"),
    );
    // Another file changes too, so we know the directory was rescanned.
    write(dir.path(), "other.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: demo}\nspec:\n  clusterIP: 10.96.0.12\n  ports: [{port: 81}]\n");
    eventually("the other file", WAIT, || backend.last_state().is_some_and(|s| s.len() == 2)).await;
    let state = backend.last_state().unwrap();
    assert!(
        summary(&state).contains(&"demo/web:http/TCP (IPv4) -> 10.244.1.5:8080".to_owned()),
        "{:?}",
        summary(&state)
    );
    controller.stop().await;
}

#[test]
fn a_malformed_file_is_reported_with_its_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", &WEB.replace("clusterIP: 10.96.0.10", "clusterIP: [10.96.0.10"));
    let tracker = kube_ferry::tracker::ChangeTracker::new();
    let errors = kube_ferry::source::file::ManifestDir::new(dir.path(), NODE).scan(&tracker);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let expected_prefix = format!("{}:", dir.path().join("web.yaml").display());
    assert!(errors[0].starts_with(&expected_prefix), "{}", errors[0]);
    let line: usize = errors[0][expected_prefix.len()..].split(':').next().unwrap().parse().unwrap();
    assert!((5..=7).contains(&line), "the error points near line 5: {}", errors[0]);
    assert!(tracker.take().is_empty(), "nothing recorded from a broken file");
}

#[test]
fn a_duplicated_object_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", WEB);
    write(dir.path(), "b.yaml", WEB);
    let tracker = kube_ferry::tracker::ChangeTracker::new();
    let errors = kube_ferry::source::file::ManifestDir::new(dir.path(), NODE).scan(&tracker);
    assert!(errors.iter().any(|e| e.contains("Service demo/web is in both")), "{errors:?}");
}
