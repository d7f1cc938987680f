//! A service port the kernel refuses is left out, named, and the rest is programmed
//! (B34), with a fake nf_tables that refuses whatever mentions one service's ClusterIP.

use std::sync::{Arc, Mutex};

use ferry_fixtures::{service, slice};
use ferry_model::{Backend, BackendError, ServiceName, ServiceSpec, SliceName, SliceSpec, StateBuilder, SyncRequest};
use ferry_nftables::nft::NftRunner;
use ferry_nftables::{NftConfig, NftablesBackend};

/// The ClusterIP of service `ns/bad`, the one the fake kernel refuses.
const BAD_IP: &str = "10.96.1.37 ";

#[derive(Debug, Default, Clone)]
struct FakeKernel {
    applied: Arc<Mutex<Vec<String>>>,
    checks: Arc<Mutex<usize>>,
}

impl NftRunner for FakeKernel {
    fn apply(&self, script: &str) -> Result<(), BackendError> {
        if script.contains(BAD_IP) {
            return Err(BackendError::Refused { detail: "Error: Could not process rule: Invalid argument".into() });
        }
        self.applied.lock().unwrap().push(script.to_owned());
        Ok(())
    }

    fn check(&self, script: &str) -> Result<(), BackendError> {
        *self.checks.lock().unwrap() += 1;
        if script.contains(BAD_IP) {
            Err(BackendError::Refused { detail: "Error: Could not process rule: Invalid argument".into() })
        } else {
            Ok(())
        }
    }

    fn output(&self, _args: &[&str]) -> Result<String, BackendError> {
        Ok(String::new())
    }
}

#[test]
fn one_refused_service_port_is_left_out_and_named_the_rest_programmed() {
    let mut b = StateBuilder::new("node-a");
    for i in 0..64 {
        let name = if i == 37 { "bad".to_owned() } else { format!("svc{i}") };
        let svc = service("ns", &name).cluster_ip(&format!("10.96.1.{i}")).port("", 80, "TCP").build();
        let s = slice("ns", &format!("{name}-1"), &name, "IPv4").port("", 8080, "TCP").ready("10.244.1.5", "n").build();
        b.set_service(ServiceName::new("ns", &name), Some(ServiceSpec::admit(&svc)));
        b.set_slice(SliceName::new("ns", &format!("{name}-1")), Some(SliceSpec::admit(&s)));
    }
    b.rebuild();
    let kernel = FakeKernel::default();
    let mut backend = NftablesBackend::with_runner(NftConfig::default(), Box::new(kernel.clone()));
    let report = backend.sync(b.state(), SyncRequest::Full).expect("the rest is programmed");
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert_eq!(report.refused[0].object, "ns/bad/TCP (IPv4)");
    assert!(report.refused[0].detail.contains("Invalid argument"));
    let applied = kernel.applied.lock().unwrap();
    assert_eq!(applied.len(), 1);
    assert!(
        applied[0].contains("10.96.1.63 ") && applied[0].contains("10.96.1.0 "),
        "every other service is programmed"
    );
    assert!(*kernel.checks.lock().unwrap() <= 2 * 7 * 2 + 2, "found by halving, not one check per service");
}
