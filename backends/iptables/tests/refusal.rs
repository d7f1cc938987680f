//! A service port iptables-restore refuses is left out and named; the rest is programmed
//! (B34). Incremental syncs send only the chains that changed.

use std::sync::{Arc, Mutex};

use ferry_fixtures::{service, slice};
use ferry_iptables::tool::IptablesRunner;
use ferry_iptables::{IptConfig, IptablesBackend};
use ferry_model::{
    Backend, BackendError, IpFamily, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest,
};

/// The ClusterIP the fake kernel refuses.
const BAD: &str = "10.96.1.37/32";

#[derive(Debug, Default, Clone)]
struct FakeKernel {
    restored: Arc<Mutex<Vec<String>>>,
    tests: Arc<Mutex<usize>>,
}

impl IptablesRunner for FakeKernel {
    fn restore(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        if input.contains(BAD) {
            return Err(BackendError::Refused { detail: "iptables-restore: line 7 failed".into() });
        }
        if family == IpFamily::V4 {
            self.restored.lock().unwrap().push(input.to_owned());
        }
        Ok(())
    }
    fn test(&self, _family: IpFamily, input: &str) -> Result<(), BackendError> {
        *self.tests.lock().unwrap() += 1;
        if input.contains(BAD) {
            Err(BackendError::Refused { detail: "line 7 failed".into() })
        } else {
            Ok(())
        }
    }
    fn save(&self, _family: IpFamily) -> Result<String, BackendError> {
        Ok(String::new())
    }
}

fn set(b: &mut StateBuilder, i: u32, ep: &str) {
    let name = if i == 37 { "bad".to_owned() } else { format!("svc{i}") };
    let svc = service("ns", &name).cluster_ip(&format!("10.96.1.{i}")).port("", 80, "TCP").build();
    let s = slice("ns", &format!("{name}-1"), &name, "IPv4").port("", 8080, "TCP").ready(ep, "n").build();
    b.set_service(ServiceName::new("ns", &name), Some(ServiceSpec::admit(&svc)));
    b.set_slice(SliceName::new("ns", &format!("{name}-1")), Some(SliceSpec::admit(&s)));
}

#[test]
fn one_refused_service_port_is_left_out_and_named_the_rest_programmed() {
    let mut b = StateBuilder::new("node-a");
    for i in 0..64 {
        set(&mut b, i, "10.244.1.5");
    }
    b.rebuild();
    let kernel = FakeKernel::default();
    let mut backend = IptablesBackend::with_runner(IptConfig::default(), Box::new(kernel.clone()));
    let report = backend.sync(b.state(), SyncRequest::Full).expect("the rest is programmed");
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert_eq!(report.refused[0].object, "ns/bad/TCP (IPv4)");
    let restored = kernel.restored.lock().unwrap().clone();
    assert_eq!(restored.len(), 1);
    assert!(
        restored[0].contains("10.96.1.63/32") && restored[0].contains("10.96.1.0/32"),
        "every other service is programmed"
    );
    assert!(*kernel.tests.lock().unwrap() <= 2 * 7 + 2, "found by halving, not one test per service");

    // An endpoint change afterwards sends one service chain, not the table.
    set(&mut b, 5, "10.244.1.99");
    let diff = b.rebuild();
    let report = backend.sync(b.state(), SyncRequest::Changes(&diff)).expect("endpoint change");
    let restored = kernel.restored.lock().unwrap().clone();
    let last = restored.last().unwrap();
    assert!(last.contains("10.244.1.99:8080"), "{last}");
    assert_eq!(last.matches("\n:").count() + usize::from(last.starts_with(':')), 1, "one chain rewritten:\n{last}");
    assert!(report.operations <= 4, "{}", report.operations);
}
