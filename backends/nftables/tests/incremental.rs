//! Incremental syncs arrive where a full render would: after any sequence of changes,
//! the fragments the backend committed equal a fresh render of the final state.

use ferry_fixtures::{service, slice};
use ferry_model::{IpFamily, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder};
use ferry_nftables::incremental::FragmentTable;
use ferry_nftables::render::{merge, render_fragment};
use ferry_nftables::ruleset::Ruleset;
use ferry_nftables::NftConfig;

fn set(b: &mut StateBuilder, i: u32, eps: &[u32], node_port: bool, affinity: bool) {
    let name = format!("svc{i}");
    let mut svc = service("ns", &name).cluster_ip(&format!("10.96.0.{i}"));
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
        // Endpoints shared between services, some local: shared hairpin elements.
        s = s.ready(&format!("10.244.1.{e}"), if e % 2 == 0 { "node-a" } else { "node-b" });
    }
    b.set_service(ServiceName::new("ns", &name), Some(ServiceSpec::admit(&svc.build())));
    b.set_slice(SliceName::new("ns", &format!("{name}-1")), Some(SliceSpec::admit(&s.build())));
}

fn fresh(b: &StateBuilder, config: &NftConfig) -> Ruleset {
    let mut out = Ruleset::default();
    for (id, port) in b.state().ports().filter(|(id, _)| id.family == IpFamily::V4) {
        merge(&mut out, &render_fragment(id, port, config));
    }
    out
}

#[test]
fn a_sequence_of_changes_ends_where_a_full_render_would() {
    let config = NftConfig { cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()], ..NftConfig::default() };
    let mut b = StateBuilder::new("node-a");
    let mut table = FragmentTable::default();
    // A deterministic pseudo-random walk over adds, endpoint changes, flag flips, deletes.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..300 {
        let i = next(12) as u32 + 1;
        if next(5) == 0 {
            b.set_service(ServiceName::new("ns", &format!("svc{i}")), None);
        } else {
            let eps: Vec<u32> = (0..next(4)).map(|_| next(6) as u32 + 2).collect();
            set(&mut b, i, &eps, next(2) == 0, next(3) == 0);
        }
        let diff = b.rebuild();
        let touched = diff.added.iter().chain(diff.changed.iter().map(|c| &c.id)).chain(&diff.removed);
        let changes = touched
            .filter(|id| id.family == IpFamily::V4)
            .map(|id| (id.clone(), b.state().get(id).map(|p| render_fragment(id, p, &config))))
            .collect();
        let plan = table.plan(changes);
        table.commit(plan);
        assert_eq!(table.snapshot(), fresh(&b, &config), "after step {step}");
    }
}
