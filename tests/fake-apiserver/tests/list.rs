//! Lists, gets and error responses through the real kube client.

mod common;

use common::{client, name_of, node, slice, svc};
use ferry_fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn paginated_list_returns_everything_in_order() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    for (ns, name) in [("b", "s1"), ("a", "s2"), ("a", "s1"), ("c", "s0"), ("b", "s0")] {
        server.apply(&svc(ns, name, &[]));
    }
    let api: Api<Service> = Api::all(client(&server.url()));
    let mut lp = ListParams::default().limit(2);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await?;
        pages += 1;
        assert!(page.items.len() <= 2);
        assert_eq!(page.metadata.resource_version.as_deref(), Some("5"));
        seen.extend(
            page.items.iter().map(|s| format!("{}/{}", s.metadata.namespace.as_deref().unwrap_or(""), name_of(s))),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                assert_eq!(page.metadata.remaining_item_count, Some(5 - seen.len() as i64));
                lp = lp.continue_token(&token);
            }
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["a/s1", "a/s2", "b/s0", "b/s1", "c/s0"]);
    assert_eq!(server.list_requests("Service"), 3);
    assert_eq!(server.list_requests("Node"), 0);

    // Namespaced list.
    let api_b: Api<Service> = Api::namespaced(client(&server.url()), "b");
    let names: Vec<_> = api_b.list(&ListParams::default()).await?.items.iter().map(name_of).collect();
    assert_eq!(names, ["s0", "s1"]);
    Ok(())
}

#[tokio::test]
async fn continue_token_serves_a_consistent_snapshot() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    for name in ["a", "b", "c", "d"] {
        server.apply(&svc("default", name, &[]));
    }
    let api: Api<Service> = Api::all(client(&server.url()));
    let first = api.list(&ListParams::default().limit(2)).await?;
    let token = first.metadata.continue_.clone().expect("continue token");
    // Changes after the first page do not leak into the second.
    server.delete::<Service>(Some("default"), "c");
    server.apply(&svc("default", "e", &[]));
    let second = api.list(&ListParams::default().limit(2).continue_token(&token)).await?;
    let names: Vec<_> = second.items.iter().map(name_of).collect();
    assert_eq!(names, ["c", "d"]);
    assert_eq!(second.metadata.resource_version.as_deref(), Some("4"));
    assert!(second.metadata.continue_.is_none());

    // After compaction the token is too old: 410 Expired.
    server.compact();
    let err = api.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("unexpected error {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "plain", &[("app", "web")]));
    server.apply(&svc("default", "other-proxy", &[("service.kubernetes.io/service-proxy-name", "foo")]));
    server.apply(&svc("kube-system", "dns", &[("app", "dns")]));
    let api: Api<Service> = Api::all(client(&server.url()));
    let names = |lp: ListParams| {
        let api = api.clone();
        async move { api.list(&lp).await.map(|l| l.items.iter().map(name_of).collect::<Vec<_>>()) }
    };
    assert_eq!(
        names(ListParams::default().labels("!service.kubernetes.io/service-proxy-name")).await?,
        ["plain", "dns"]
    );
    assert_eq!(names(ListParams::default().labels("app=web")).await?, ["plain"]);
    assert_eq!(names(ListParams::default().labels("app in (web,dns),app!=web")).await?, ["dns"]);
    assert_eq!(names(ListParams::default().fields("metadata.namespace=kube-system")).await?, ["dns"]);
    assert_eq!(names(ListParams::default().fields("metadata.name=plain")).await?, ["plain"]);
    // Pagination composes with selectors.
    let page = api.list(&ListParams::default().labels("!service.kubernetes.io/service-proxy-name").limit(1)).await?;
    assert_eq!(page.items.iter().map(name_of).collect::<Vec<_>>(), ["plain"]);
    assert!(page.metadata.continue_.is_some());
    // Malformed selectors are a 400.
    let err = api.list(&ListParams::default().fields("spec.type=ClusterIP")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 400));
    Ok(())
}

#[tokio::test]
async fn endpoint_slices_nodes_get_and_not_found() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    let c = client(&server.url());
    server.apply(&slice("ns1", "web-abc"));
    server.apply(&node("node-1"));
    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "ns1");
    let list = slices.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].address_type, "IPv4");
    let nodes: Api<Node> = Api::all(c.clone());
    let n = nodes.get("node-1").await?;
    assert_eq!(n.metadata.resource_version.as_deref(), Some("2"));
    assert!(n.metadata.uid.is_some() && n.metadata.creation_timestamp.is_some());
    let err = nodes.get("nope").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"));

    // An unknown resource path is a 404 with a Status body.
    let req = http_get(&server.url(), "/api/v1/pods").await?;
    assert!(req.starts_with("HTTP/1.1 404"), "{req}");
    assert!(req.contains("\"kind\":\"Status\""), "{req}");
    Ok(())
}

#[tokio::test]
async fn fail_lists_injects_500s() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    server.apply(&svc("default", "a", &[]));
    let api: Api<Service> = Api::all(client(&server.url()));
    server.fail_lists(2);
    for _ in 0..2 {
        let err = api.list(&ListParams::default()).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 500), "expected 500");
    }
    assert_eq!(api.list(&ListParams::default()).await?.items.len(), 1);
    assert_eq!(server.list_requests("Service"), 3);
    Ok(())
}

#[test]
fn apply_from_sync_code_before_any_runtime_use() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(FakeApiServer::start()).unwrap();
    // Plain sync calls, outside the runtime.
    assert_eq!(server.apply(&svc("default", "a", &[])), 1);
    assert_eq!(server.apply(&svc("default", "a", &[("x", "y")])), 2);
    assert_eq!(server.delete::<Service>(None, "a"), Some(3));
    assert_eq!(server.delete::<Service>(None, "a"), None);
    assert_eq!(server.current_resource_version(), 3);
}

/// A raw HTTP/1.1 GET, returning the whole response as text.
async fn http_get(url: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
