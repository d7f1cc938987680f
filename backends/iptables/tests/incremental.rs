//! Partial syncs arrive where a full sync would: a fake kernel applies every restore input
//! kube-ferry sends (chain declarations flush, `-A` appends, `-X` deletes, `-X` of a chain
//! that is missing or still referenced fails as the real tool does), and after every step
//! of a random walk its chains equal those of a full sync of the same state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferry_fixtures::{service, slice};
use ferry_iptables::tool::IptablesRunner;
use ferry_iptables::{IptConfig, IptablesBackend};
use ferry_model::{
    Backend, BackendError, IpFamily, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest,
};

type Chains = BTreeMap<(String, String), Vec<String>>;

#[derive(Debug, Default, Clone)]
struct FakeKernel {
    chains: Arc<Mutex<[Chains; 2]>>,
}

fn apply(chains: &mut Chains, input: &str) -> Result<(), String> {
    let mut table = String::new();
    let mut next = chains.clone();
    for line in input.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_owned();
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            next.insert((table.clone(), name.to_owned()), Vec::new());
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').unwrap();
            if let Some(target) = spec.rsplit("-j ").next().filter(|t| t.starts_with("KUBE-")) {
                if !next.contains_key(&(table.clone(), target.trim().to_owned())) {
                    return Err(format!("-A {chain}: target {target} does not exist (yet)"));
                }
            }
            match next.get_mut(&(table.clone(), chain.to_owned())) {
                Some(rules) => rules.push(spec.to_owned()),
                None => return Err(format!("-A to missing chain {chain}")),
            }
        } else if let Some(chain) = line.strip_prefix("-X ") {
            if next.remove(&(table.clone(), chain.to_owned())).is_none() {
                return Err(format!("-X of missing chain {chain}"));
            }
            let target = format!("-j {chain}");
            if let Some((by, rule)) = next
                .iter()
                .filter(|(k, _)| k.0 == table)
                .find_map(|(k, rules)| rules.iter().find(|r| r.ends_with(&target)).map(|r| (k, r)))
            {
                return Err(format!("-X of chain {chain} still referenced by {by:?}: {rule}"));
            }
        }
    }
    *chains = next;
    Ok(())
}

impl IptablesRunner for FakeKernel {
    fn restore(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        let mut all = self.chains.lock().unwrap();
        apply(&mut all[usize::from(family == IpFamily::V6)], input)
            .map_err(|detail| BackendError::Refused { detail: format!("{detail}\n{input}") })
    }
    fn test(&self, _family: IpFamily, _input: &str) -> Result<(), BackendError> {
        Ok(())
    }
    fn save(&self, _family: IpFamily) -> Result<String, BackendError> {
        Ok(String::new())
    }
}

fn set(b: &mut StateBuilder, i: u32, eps: &[u32], node_port: bool, affinity: bool) {
    let name = format!("svc{i}");
    // ClusterIPs sharing low nibbles, so the tree splits and merges as services come and go.
    let mut svc = service("ns", &name).cluster_ip(&format!("10.96.{}.{}", i % 3, (i * 16) % 256));
    svc = if node_port {
        svc.type_("NodePort").node_port("p", 80, "TCP", 30000 + i as i32)
    } else {
        svc.port("p", 80, "TCP")
    };
    svc = svc.port("q", 53, "UDP");
    if affinity {
        svc = svc.client_ip_affinity(Some(60));
    }
    let mut s = slice("ns", &format!("{name}-1"), &name, "IPv4").port("p", 8080, "TCP").port("q", 5353, "UDP");
    for e in eps {
        s = s.ready(&format!("10.244.1.{e}"), if e % 2 == 0 { "node-a" } else { "node-b" });
    }
    b.set_service(ServiceName::new("ns", &name), Some(ServiceSpec::admit(&svc.build())));
    b.set_slice(SliceName::new("ns", &format!("{name}-1")), Some(SliceSpec::admit(&s.build())));
}

#[test]
fn a_random_walk_of_partial_syncs_ends_where_a_full_sync_would() {
    let config = IptConfig { cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()], ..IptConfig::default() };
    let kernel = FakeKernel::default();
    let mut backend = IptablesBackend::with_runner(config.clone(), Box::new(kernel.clone()));
    let mut b = StateBuilder::new("node-a");
    b.rebuild();
    backend.sync(b.state(), SyncRequest::Full).unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..200 {
        // Several changes per sync, over 60 services: enough addresses to split the tree.
        for _ in 0..=next(4) {
            let i = next(60) as u32 + 1;
            if next(5) == 0 {
                b.set_service(ServiceName::new("ns", &format!("svc{i}")), None);
            } else {
                let eps: Vec<u32> = (0..next(4)).map(|_| next(6) as u32 + 2).collect();
                set(&mut b, i, &eps, next(3) == 0, next(4) == 0);
            }
        }
        let diff = b.rebuild();
        backend.sync(b.state(), SyncRequest::Changes(&diff)).unwrap_or_else(|e| panic!("step {step}: {e}"));
        let fresh = FakeKernel::default();
        IptablesBackend::with_runner(config.clone(), Box::new(fresh.clone()))
            .sync(b.state(), SyncRequest::Full)
            .unwrap();
        let got = kernel.chains.lock().unwrap()[0].clone();
        let want = fresh.chains.lock().unwrap()[0].clone();
        if got != want {
            let only_got: Vec<_> = got.iter().filter(|(k, v)| want.get(*k) != Some(*v)).map(|(k, _)| k).collect();
            let only_want: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).map(|(k, _)| k).collect();
            panic!("after step {step}: partial syncs differ from a full sync: {only_got:?} vs {only_want:?}");
        }
    }
    let tree_chains = kernel.chains.lock().unwrap()[0].keys().filter(|(_, c)| c.starts_with("KUBE-DST-")).count();
    assert!(tree_chains > 0, "the walk never split the tree; the test would prove nothing about it");
}
