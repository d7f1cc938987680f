//! The IPVS backend's sync logic against an in-memory kernel: what it sends, what it
//! adopts after a restart, what it never touches, and graceful termination.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_fixtures::{service, slice};
use ferry_ipvs::genl::{IpvsError, Protocol, RealServer, Timeouts, VirtualService};
use ferry_ipvs::kernel::{AddressLink, IpvsTable};
use ferry_ipvs::{IpvsBackend, IpvsConfig};
use ferry_model::{Backend, BackendError, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest};
use ferry_nftables::nft::NftRunner;

type Key = (Protocol, IpAddr, u16);

/// The kernel's IPVS table, shared with the test.
#[derive(Default)]
struct Kernel {
    services: BTreeMap<Key, (VirtualService, BTreeMap<(IpAddr, u16), RealServer>)>,
    messages: u64,
    /// Requests refused for a service on this address (B34).
    refuse_address: Option<IpAddr>,
    addresses: BTreeSet<IpAddr>,
    scripts: Vec<String>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Kernel>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.0.lock().unwrap()
    }
    fn table(&self) -> Vec<String> {
        self.lock()
            .services
            .values()
            .map(|(s, servers)| {
                let rs: Vec<String> = servers.values().map(|r| format!("{}:{}w{}", r.address, r.port, r.weight)).collect();
                format!("{s} {} [{}]", s.scheduler.name(), rs.join(" "))
            })
            .collect()
    }
}

fn key(s: &VirtualService) -> Key {
    (s.protocol, s.address, s.port)
}

fn err(errno: i32) -> IpvsError {
    IpvsError::Refused { object: "fake".into(), command: "fake", errno, hint: String::new() }
}

impl IpvsTable for Shared {
    fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        Ok(k.services.values().map(|(s, _)| s.clone()).collect())
    }
    fn real_servers(&mut self, service: &VirtualService) -> Result<Vec<RealServer>, IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        Ok(k.services.get(&key(service)).map(|(_, r)| r.values().cloned().collect()).unwrap_or_default())
    }
    fn add_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        if k.refuse_address == Some(service.address) {
            return Err(err(22));
        }
        if k.services.contains_key(&key(service)) {
            return Err(err(17));
        }
        k.services.insert(key(service), (service.clone(), BTreeMap::new()));
        Ok(())
    }
    fn update_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        let entry = k.services.get_mut(&key(service)).ok_or_else(|| err(3))?;
        entry.0 = service.clone();
        Ok(())
    }
    fn delete_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        k.services.remove(&key(service)).map(drop).ok_or_else(|| err(3))
    }
    fn add_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        let entry = k.services.get_mut(&key(service)).ok_or_else(|| err(3))?;
        if entry.1.contains_key(&(server.address, server.port)) {
            return Err(err(17));
        }
        entry.1.insert((server.address, server.port), server.clone());
        Ok(())
    }
    fn update_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        let entry = k.services.get_mut(&key(service)).ok_or_else(|| err(3))?;
        let rs = entry.1.get_mut(&(server.address, server.port)).ok_or_else(|| err(2))?;
        rs.weight = server.weight;
        Ok(())
    }
    fn delete_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let mut k = self.lock();
        k.messages += 1;
        let entry = k.services.get_mut(&key(service)).ok_or_else(|| err(3))?;
        entry.1.remove(&(server.address, server.port)).map(drop).ok_or_else(|| err(2))
    }
    fn set_timeouts(&mut self, _: &Timeouts) -> Result<(), IpvsError> {
        self.lock().messages += 1;
        Ok(())
    }
    fn messages_sent(&self) -> u64 {
        self.lock().messages
    }
}

impl AddressLink for Shared {
    fn ensure(&mut self) -> Result<bool, String> {
        Ok(false)
    }
    fn addresses(&mut self) -> Result<BTreeSet<IpAddr>, String> {
        Ok(self.lock().addresses.clone())
    }
    fn change(&mut self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), String> {
        let mut k = self.lock();
        k.addresses.extend(add);
        for a in remove {
            k.addresses.remove(a);
        }
        Ok(())
    }
    fn delete(&mut self) -> Result<bool, String> {
        self.lock().addresses.clear();
        Ok(true)
    }
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, String> {
        Ok(vec!["192.0.2.7".parse().unwrap()])
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl NftRunner for Shared {
    fn apply(&self, script: &str) -> Result<(), BackendError> {
        self.lock().scripts.push(script.to_owned());
        Ok(())
    }
    fn check(&self, _: &str) -> Result<(), BackendError> {
        Ok(())
    }
    fn output(&self, _: &[&str]) -> Result<String, BackendError> {
        Ok("table ip kube-ferry-ipvs\ntable ip6 kube-ferry-ipvs\ntable ip foreign\n".into())
    }
}

fn backend(kernel: &Shared, config: IpvsConfig) -> IpvsBackend {
    IpvsBackend::with_parts(
        config,
        Box::new(kernel.clone()),
        Box::new(kernel.clone()),
        Box::new(kernel.clone()),
        Box::new(|_, _| Ok(())),
    )
}

fn web(b: &mut StateBuilder, eps: &[&str]) {
    let svc = service("demo", "web").cluster_ip("10.96.0.10").type_("NodePort").node_port("http", 80, "TCP", 30080).build();
    let mut s = slice("demo", "web-1", "web", "IPv4").port("http", 8080, "TCP");
    for ep in eps {
        s = s.ready(ep, "node-a");
    }
    b.set_service(ServiceName::new("demo", "web"), Some(ServiceSpec::admit(&svc)));
    b.set_slice(SliceName::new("demo", "web-1"), Some(SliceSpec::admit(&s.build())));
}

fn dns(b: &mut StateBuilder, eps: &[&str]) {
    let svc = service("demo", "dns").cluster_ip("10.96.0.53").port("dns", 53, "UDP").build();
    let mut s = slice("demo", "dns-1", "dns", "IPv4").port("dns", 5353, "UDP");
    for ep in eps {
        s = s.ready(ep, "node-a");
    }
    b.set_service(ServiceName::new("demo", "dns"), Some(ServiceSpec::admit(&svc)));
    b.set_slice(SliceName::new("demo", "dns-1"), Some(SliceSpec::admit(&s.build())));
}

#[test]
fn a_first_sync_programs_services_addresses_and_helpers_and_an_endpoint_change_is_a_few_messages() {
    let kernel = Shared::default();
    let mut ipvs = backend(&kernel, IpvsConfig::default());
    let mut b = StateBuilder::new("node-a");
    web(&mut b, &["10.244.0.5", "10.244.1.5"]);
    b.rebuild();
    let report = ipvs.sync(b.state(), SyncRequest::Full).unwrap();
    assert_eq!(
        kernel.table(),
        [
            "TCP 10.96.0.10:80 rr [10.244.0.5:8080w1 10.244.1.5:8080w1]",
            "TCP 192.0.2.7:30080 rr [10.244.0.5:8080w1 10.244.1.5:8080w1]",
        ]
    );
    assert_eq!(kernel.lock().addresses, BTreeSet::from(["10.96.0.10".parse().unwrap()]));
    let first = kernel.lock().scripts.last().unwrap().clone();
    assert!(first.contains("delete table ip kube-ferry-ipvs") && first.contains("10.96.0.10 . tcp . 80"), "{first}");
    assert!(report.refused.is_empty());

    // One more (local) endpoint: one message per virtual service, no dump, and one
    // element for the helper table (its hairpin pair), not a rewrite.
    let before = kernel.lock().messages;
    web(&mut b, &["10.244.0.5", "10.244.1.5", "10.244.2.5"]);
    let diff = b.rebuild();
    let scripts = kernel.lock().scripts.len();
    ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    assert_eq!(kernel.lock().messages - before, 2, "one NEW_DEST per virtual service");
    let k = kernel.lock();
    assert_eq!(k.scripts.len(), scripts + 1);
    assert_eq!(k.scripts[scripts], "add element ip kube-ferry-ipvs hairpin { 10.244.2.5 . 10.244.2.5 }\n");
    drop(k);

    // Nothing changed: nothing sent.
    let before = kernel.lock().messages;
    let diff = b.rebuild();
    let report = ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    assert_eq!(kernel.lock().messages, before);
    assert_eq!(report.operations, 0);
}

#[test]
fn a_removed_tcp_endpoint_drains_at_weight_zero_and_a_udp_one_goes_at_once() {
    let kernel = Shared::default();
    let mut ipvs = backend(&kernel, IpvsConfig::default());
    let mut b = StateBuilder::new("node-a");
    web(&mut b, &["10.244.0.5", "10.244.1.5"]);
    dns(&mut b, &["10.244.0.5", "10.244.1.5"]);
    b.rebuild();
    ipvs.sync(b.state(), SyncRequest::Full).unwrap();
    // The endpoint has an open connection.
    for (s, servers) in kernel.lock().services.values_mut() {
        if s.protocol == Protocol::Tcp {
            servers.get_mut(&("10.244.1.5".parse().unwrap(), 8080)).unwrap().active_connections = 1;
        }
    }
    web(&mut b, &["10.244.0.5"]);
    dns(&mut b, &["10.244.0.5"]);
    let diff = b.rebuild();
    let report = ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    assert_eq!(
        kernel.table(),
        [
            "TCP 10.96.0.10:80 rr [10.244.0.5:8080w1 10.244.1.5:8080w0]",
            "TCP 192.0.2.7:30080 rr [10.244.0.5:8080w1 10.244.1.5:8080w0]",
            "UDP 10.96.0.53:53 rr [10.244.0.5:5353w1]",
        ]
    );
    assert_eq!(report.events, [("real_servers_draining", 2)]);
    // The connection ends: the next sync deletes the drained servers.
    for (_, servers) in kernel.lock().services.values_mut() {
        for rs in servers.values_mut() {
            rs.active_connections = 0;
        }
    }
    let diff = b.rebuild();
    ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    assert!(kernel.table().iter().all(|l| !l.contains("10.244.1.5")), "{:?}", kernel.table());
    // A draining endpoint that comes back is weighted again, not re-added.
    let mut ipvs = backend(&kernel, IpvsConfig { graceful_period: Duration::from_secs(3600), ..IpvsConfig::default() });
    ipvs.sync(b.state(), SyncRequest::Full).unwrap();
    web(&mut b, &["10.244.0.5", "10.244.1.5"]);
    let diff = b.rebuild();
    ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    assert!(kernel.table()[0].contains("10.244.1.5:8080w1"), "{:?}", kernel.table());
}

#[test]
fn a_restart_adopts_the_kernel_and_foreign_services_stay() {
    let kernel = Shared::default();
    // A foreign virtual service, not on kube-ipvs0.
    let foreign = VirtualService::new("198.51.100.200".parse().unwrap(), Protocol::Tcp, 80);
    kernel.clone().add_service(&foreign).unwrap();
    let mut b = StateBuilder::new("node-a");
    web(&mut b, &["10.244.0.5"]);
    b.rebuild();
    backend(&kernel, IpvsConfig::default()).sync(b.state(), SyncRequest::Full).unwrap();
    let programmed = kernel.table();

    // A new process: the same state sends no change (B26) besides reading the kernel.
    let mut again = backend(&kernel, IpvsConfig::default());
    let before = kernel.lock().messages;
    again.sync(b.state(), SyncRequest::Full).unwrap();
    assert_eq!(kernel.table(), programmed);
    assert_eq!(kernel.lock().messages - before, 3, "one dump of services, one of each of ours' servers");

    // Deleted while it was down: removed on start; the foreign one stays (B27).
    b.set_service(ServiceName::new("demo", "web"), None);
    b.rebuild();
    let mut third = backend(&kernel, IpvsConfig::default());
    third.sync(b.state(), SyncRequest::Full).unwrap();
    assert_eq!(kernel.table(), ["TCP 198.51.100.200:80 rr []"]);
    assert!(kernel.lock().addresses.is_empty());

    // Cleanup removes ours only.
    web(&mut b, &["10.244.0.5"]);
    b.rebuild();
    third.sync(b.state(), SyncRequest::Full).unwrap();
    let report = third.cleanup().unwrap();
    assert_eq!(kernel.table(), ["TCP 198.51.100.200:80 rr []"]);
    assert!(report.removed.iter().any(|l| l == "virtual service TCP 10.96.0.10:80"), "{:?}", report.removed);
    assert!(report.removed.iter().any(|l| l == "table ip kube-ferry-ipvs"), "{:?}", report.removed);
}

#[test]
fn a_refused_virtual_service_is_reported_and_the_others_are_programmed() {
    let kernel = Shared::default();
    kernel.lock().refuse_address = Some("10.96.0.53".parse().unwrap());
    let mut ipvs = backend(&kernel, IpvsConfig::default());
    let mut b = StateBuilder::new("node-a");
    web(&mut b, &["10.244.0.5"]);
    dns(&mut b, &["10.244.0.5"]);
    b.rebuild();
    let report = ipvs.sync(b.state(), SyncRequest::Full).unwrap();
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert!(report.refused[0].object.contains("demo/dns"), "{:?}", report.refused);
    assert_eq!(kernel.table().len(), 2, "web's ClusterIP and NodePort are programmed: {:?}", kernel.table());
}

#[test]
fn at_10000_services_an_endpoint_change_is_still_four_messages() {
    let kernel = Shared::default();
    let mut ipvs = backend(&kernel, IpvsConfig::default());
    let mut b = StateBuilder::new("node-a");
    let set = |b: &mut StateBuilder, i: usize, eps: &[String]| {
        let name = format!("svc-{i}");
        let ip = std::net::Ipv4Addr::from(0x0a60_0010u32 + i as u32).to_string();
        let svc = service("bench", &name).cluster_ip(&ip).port("http", 80, "TCP").build();
        let mut s = slice("bench", &format!("{name}-1"), &name, "IPv4").port("http", 8080, "TCP");
        for ep in eps {
            s = s.ready(ep, "node-b");
        }
        b.set_service(ServiceName::new("bench", &name), Some(ServiceSpec::admit(&svc)));
        b.set_slice(SliceName::new("bench", &format!("{name}-1")), Some(SliceSpec::admit(&s.build())));
    };
    let two = ["10.244.1.5".to_owned(), "10.244.2.5".to_owned()];
    for i in 0..10_000 {
        set(&mut b, i, &two);
    }
    b.rebuild();
    let t = std::time::Instant::now();
    ipvs.sync(b.state(), SyncRequest::Full).unwrap();
    eprintln!("full sync of 10,000 services against the in-memory kernel: {:?}", t.elapsed());
    assert_eq!(kernel.lock().messages, 30_001, "a dump, then one message per service and real server");
    set(&mut b, 5_000, &["10.244.1.5".to_owned(), "10.244.3.5".to_owned()]);
    let diff = b.rebuild();
    let before = kernel.lock().messages;
    let t = std::time::Instant::now();
    ipvs.sync(b.state(), SyncRequest::Changes(&diff)).unwrap();
    eprintln!("one endpoint change at 10,000 services, in-memory kernel: {:?}", t.elapsed());
    // NEW_DEST, SET_DEST weight 0, the drain check's dump, DEL_DEST (no connections).
    assert_eq!(kernel.lock().messages - before, 4);
}
