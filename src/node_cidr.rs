//! `--detect-local-mode node-cidr`: traffic from this node's pods is told by its source
//! being inside the Node's `spec.podCIDRs`. The backend is made once the Node object has
//! been seen with pod CIDRs (until then each sync fails, saying so, and is retried, so
//! nothing is programmed with a wrong detector), and made again, with a full sync, if the
//! CIDRs change (kube-proxy exits instead; the new backend adopts what the old one
//! programmed, so nothing is flushed).

use ferry_model::{Backend, BackendError, CleanupReport, ProgrammedFrontend, ProxyState, SyncReport, SyncRequest};
use ipnet::IpNet;

/// Makes the real backend for the given pod CIDRs.
pub type BackendFactory = Box<dyn FnMut(Vec<IpNet>) -> Result<Box<dyn Backend>, BackendError> + Send>;

/// The backend, made from the Node's pod CIDRs.
pub struct NodeCidrBackend {
    mode: &'static str,
    make: BackendFactory,
    current: Option<(Vec<IpNet>, Box<dyn Backend>)>,
}

impl std::fmt::Debug for NodeCidrBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCidrBackend").field("mode", &self.mode).field("cidrs", &self.current.as_ref().map(|c| &c.0)).finish()
    }
}

impl NodeCidrBackend {
    /// A backend of `mode` that `make` builds once the pod CIDRs are known.
    pub fn new(mode: &'static str, make: BackendFactory) -> NodeCidrBackend {
        NodeCidrBackend { mode, make, current: None }
    }
}

impl Backend for NodeCidrBackend {
    fn mode(&self) -> &'static str {
        // The backend made names the mode that really runs (ipvs may have fallen back).
        self.current.as_ref().map_or(self.mode, |(_, backend)| backend.mode())
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let cidrs = state.node().map(|n| n.pod_cidrs.clone()).unwrap_or_default();
        if cidrs.is_empty() {
            return Err(BackendError::Unavailable {
                what: "this Node's spec.podCIDRs".into(),
                hint: "--detect-local-mode node-cidr waits for the Node object to have them (or use --cluster-cidr)".into(),
            });
        }
        let fresh = match &self.current {
            Some((known, _)) if *known == cidrs => false,
            Some((known, _)) => {
                tracing::warn!(?known, new = ?cidrs, "the Node's podCIDRs changed: reprogramming with the new ones");
                true
            }
            None => {
                tracing::info!(?cidrs, "--detect-local-mode node-cidr: the Node's podCIDRs");
                true
            }
        };
        if fresh {
            let backend = (self.make)(cidrs.clone())?;
            self.current = Some((cidrs, backend));
        }
        let Some((_, backend)) = self.current.as_mut() else {
            return Err(BackendError::Other("no backend (a kube-ferry bug)".into()));
        };
        backend.sync(state, if fresh { SyncRequest::Full } else { request })
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        match self.current.as_mut() {
            Some((_, backend)) => backend.cleanup(),
            None => Ok(CleanupReport::default()),
        }
    }

    fn status(&mut self) -> Result<Vec<ProgrammedFrontend>, BackendError> {
        match self.current.as_mut() {
            Some((_, backend)) => backend.status(),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_fixtures::node;
    use ferry_model::{NodeSpec, StateBuilder};
    use std::sync::{Arc, Mutex};

    #[test]
    fn made_when_the_node_has_pod_cidrs_and_again_when_they_change() {
        let made: Arc<Mutex<Vec<Vec<IpNet>>>> = Arc::default();
        let log = made.clone();
        let mut backend = NodeCidrBackend::new(
            "nftables",
            Box::new(move |cidrs| {
                log.lock().unwrap().push(cidrs);
                Ok(Box::new(ferry_fixtures::RecordingBackend::new()) as Box<dyn Backend>)
            }),
        );
        let mut b = StateBuilder::new("node-a");
        b.rebuild();
        let err = backend.sync(b.state(), SyncRequest::Full).unwrap_err().to_string();
        assert!(err.contains("podCIDRs"), "{err}");
        b.set_node(Some(NodeSpec::admit(&node("node-a").pod_cidr("10.244.1.0/24").build())));
        b.rebuild();
        backend.sync(b.state(), SyncRequest::Full).unwrap();
        backend.sync(b.state(), SyncRequest::Full).unwrap();
        b.set_node(Some(NodeSpec::admit(&node("node-a").pod_cidr("10.244.9.0/24").build())));
        b.rebuild();
        backend.sync(b.state(), SyncRequest::Full).unwrap();
        let made = made.lock().unwrap();
        let texts: Vec<String> = made.iter().map(|c| c.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")).collect();
        assert_eq!(texts, ["10.244.1.0/24", "10.244.9.0/24"]);
    }
}
