//! Switching mode (B28): the previous mode's rules are removed only after the new mode's
//! first successful sync, so services are never without rules in between.

use ferry_model::{Backend, BackendError, CleanupReport, ProgrammedFrontend, ProxyState, SyncReport, SyncRequest};

/// What to run once, after the first successful sync, given the mode that synced (the
/// backend's own name for it: a fallback shows here).
pub type AfterFirstSync = Box<dyn FnOnce(&'static str) + Send>;

/// A backend that runs [`AfterFirstSync`] once its first sync has succeeded.
pub struct ThenCleanOtherModes {
    inner: Box<dyn Backend>,
    then: Option<AfterFirstSync>,
}

impl std::fmt::Debug for ThenCleanOtherModes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThenCleanOtherModes").field("mode", &self.inner.mode()).field("pending", &self.then.is_some()).finish()
    }
}

impl ThenCleanOtherModes {
    /// `inner`, running `then` after its first successful sync.
    pub fn new(inner: Box<dyn Backend>, then: AfterFirstSync) -> ThenCleanOtherModes {
        ThenCleanOtherModes { inner, then: Some(then) }
    }
}

impl Backend for ThenCleanOtherModes {
    fn mode(&self) -> &'static str {
        self.inner.mode()
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        let report = self.inner.sync(state, request)?;
        if let Some(then) = self.then.take() {
            then(self.inner.mode());
        }
        Ok(report)
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        self.inner.cleanup()
    }

    fn status(&mut self) -> Result<Vec<ProgrammedFrontend>, BackendError> {
        self.inner.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_old_mode_goes_once_after_the_first_good_sync_only() {
        let backend = ferry_fixtures::RecordingBackend::new();
        backend.fail_next(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let mut wrapped = ThenCleanOtherModes::new(Box::new(backend), Box::new(move |_mode| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let state = ProxyState::default();
        assert!(wrapped.sync(&state, SyncRequest::Full).is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a failed sync programs nothing: the old rules stay");
        wrapped.sync(&state, SyncRequest::Full).unwrap();
        wrapped.sync(&state, SyncRequest::Full).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
