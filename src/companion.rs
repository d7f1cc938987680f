//! A kernel backend with the userspace proxy beside it for what the kernel rules cannot
//! do: `--localhost-nodeports` in nftables mode serves `127.0.0.1:nodePort` (TCP) from the
//! proxy, as upstream's KEP-6032 does, because nftables cannot DNAT traffic to loopback
//! (B12). Both sync from the same state; the kernel backend's report leads.

use ferry_model::{Backend, BackendError, CleanupReport, ProxyState, SyncReport, SyncRequest};

/// The kernel backend and its userspace companion.
#[derive(Debug)]
pub struct WithCompanion<B: Backend> {
    kernel: B,
    companion: ferry_userspace::UserspaceBackend,
}

impl<B: Backend> WithCompanion<B> {
    /// `kernel` with a proxy for localhost NodePorts.
    pub fn localhost_node_ports(kernel: B) -> Result<WithCompanion<B>, BackendError> {
        let config = ferry_userspace::UserspaceConfig { localhost_node_ports_only: true, ..Default::default() };
        Ok(WithCompanion { kernel, companion: ferry_userspace::UserspaceBackend::new(config)? })
    }
}

impl<B: Backend> Backend for WithCompanion<B> {
    fn mode(&self) -> &'static str {
        self.kernel.mode()
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let mut report = self.kernel.sync(state, request)?;
        let companion = self.companion.sync(state, request)?;
        report.refused.extend(companion.refused);
        Ok(report)
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        let mut report = self.kernel.cleanup()?;
        report.removed.extend(self.companion.cleanup()?.removed);
        Ok(report)
    }
}
