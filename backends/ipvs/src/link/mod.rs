//! The `kube-ipvs0` dummy link and its service addresses, over rtnetlink.
//!
//! IPVS only balances packets the kernel delivers locally, so every ClusterIP,
//! external IP and load-balancer IP must be a local address of the node. kube-proxy does
//! that by putting them as host addresses (`/32`, `/128`) on a dummy link it creates and
//! calls `kube-ipvs0`; [`DummyLink`] does the same, so a node can move between kube-proxy
//! and kube-ferry (an existing `kube-ipvs0` dummy is adopted, addresses and all).
//!
//! # The link stays down
//!
//! [`DummyLink::ensure`] creates the link and leaves it administratively DOWN, as
//! kube-proxy does. Measured on Debian's 6.1 kernel (and asserted by the kernel test,
//! `tests/link_kernel.rs`): on a dummy link that has never been up, IPv4 `/32` and IPv6
//! `/128` addresses are local at once — the kernel puts `local` routes for them in table
//! `local` (via `lo`), `ip route get` says `local`, TCP connects — because a dummy link is
//! `NOARP`, so IPv6 duplicate address detection never runs on it (IPv6 addresses are
//! added with `IFA_F_NODAD` all the same). Bringing it up would add nothing needed but a
//! link-local `fe80::/64` address, a multicast route and an off-link route per IPv6
//! address. Worse, a link that has been up and goes DOWN again loses all its IPv6
//! addresses (`keep_addr_on_down` is 0 by default): so nothing here changes the admin
//! state of an existing link, and nobody should toggle it.
//!
//! `lo` must be up (as it is on every node) for local delivery to work at all; in a fresh
//! network namespace it is down.
//!
//! # Threads and namespaces
//!
//! rtnetlink is async; each [`DummyLink`] owns one rtnetlink socket and a private
//! current-thread tokio runtime that drives it only inside its calls, so from the caller's
//! side every method is a plain blocking call and an `Ok` means the kernel applied it
//! (every request is acknowledged). Like any blocking call, the methods must not run on an
//! async task's thread (tokio panics: "Cannot start a runtime from within a runtime"):
//! call them from a plain thread or `spawn_blocking`, as the sync loop does. `open` and
//! `drop` are fine anywhere. The socket is bound to the network namespace of the calling
//! thread at [`DummyLink::open`]; later namespace changes of the process do not move it.
//!
//! ```no_run
//! use ferry_ipvs::link::{DummyLink, LinkError, LINK_NAME};
//! # fn main() -> Result<(), LinkError> {
//! let mut link = DummyLink::open(LINK_NAME)?;
//! match link.ensure() {
//!     Err(e) if e.is_unsupported() => return Err(e), // no `dummy` in this kernel
//!     other => other?,
//! };
//! let have = link.addresses()?;
//! let want: [std::net::IpAddr; 1] = ["198.51.100.10".parse().unwrap()];
//! let stale: Vec<_> = have.iter().filter(|ip| !want.contains(ip)).copied().collect();
//! link.change(&want, &stale)?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod error;
mod message;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::{Handle, LinkDummy};

pub use error::LinkError;
use message::Kind;

/// The name kube-proxy uses for its dummy link, and so does kube-ferry.
pub const LINK_NAME: &str = "kube-ipvs0";

/// Requests kept in flight at once by [`DummyLink::change`]: thousands of services are
/// applied in a few round trips, without overrunning the socket's receive buffer with
/// acknowledgements (256 of them are about 20 KiB).
const IN_FLIGHT: usize = 256;

/// One dummy link, by name, in the network namespace [`DummyLink::open`] was called in:
/// an rtnetlink connection to it, whether or not the link exists yet.
///
/// Every method looks the link up by name again, so a link deleted and recreated by
/// someone else in between is found under its new index.
pub struct DummyLink {
    name: String,
    handle: Handle,
    /// Drives the rtnetlink connection task, and each request inside `block_on`. `Some`
    /// from `open` until `drop`, the only place that takes it.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What a lookup by name found.
struct Found {
    index: u32,
    kind: Kind,
}

impl std::fmt::Debug for DummyLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DummyLink").field("name", &self.name).finish_non_exhaustive()
    }
}

impl DummyLink {
    /// Opens an rtnetlink connection for the link `name` in the current network namespace.
    /// Creates nothing and does not look at the link yet. Fails on a name Linux cannot
    /// have, or if the socket cannot be opened.
    pub fn open(name: &str) -> Result<DummyLink, LinkError> {
        if let Some(reason) = message::invalid_name(name) {
            return Err(LinkError::InvalidName { name: name.to_string(), reason });
        }
        let socket_error = |action, detail: String| LinkError::Socket { name: name.to_string(), action, detail };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| socket_error("start its private tokio runtime", e.to_string()))?;
        // The socket registers with the runtime's reactor, so it is made inside it.
        let opened = {
            let _inside = runtime.enter();
            rtnetlink::new_connection()
        };
        let (connection, handle, _multicast) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                runtime.shutdown_background(); // see `Drop`
                return Err(socket_error("open", e.to_string()));
            }
        };
        runtime.spawn(connection);
        Ok(DummyLink { name: name.to_string(), handle, runtime: Some(runtime) })
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes sure the link exists as a dummy link: creates it (DOWN, see the module
    /// documentation) if there is no link of this name, and returns whether it did. An
    /// existing dummy link is left exactly as it is (state, addresses). A link of this name
    /// that is not a dummy is [`LinkError::NotDummy`]; a kernel without dummy links is
    /// [`LinkError::NoDummySupport`].
    pub fn ensure(&mut self) -> Result<bool, LinkError> {
        if self.lookup()?.is_some() {
            self.require_dummy()?;
            return Ok(false);
        }
        let create = self.handle.link().add(LinkDummy::new(&self.name).build()).execute();
        match self.block_on(create) {
            Ok(()) => {
                tracing::info!(link = %self.name, "created dummy link");
                Ok(true)
            }
            // Created by someone else since the lookup: fine if it is a dummy.
            Err(e) if errno(&e) == Some(libc::EEXIST) => self.require_dummy().map(|_| false),
            Err(e) if errno(&e) == Some(libc::EOPNOTSUPP) => {
                let detail = format!("NEWLINK kind dummy: {}", std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
                Err(LinkError::NoDummySupport { name: self.name.clone(), detail })
            }
            Err(e) => Err(self.failure(e, format!("link {}", self.name), "create it as a dummy link", false)),
        }
    }

    /// Whether a link of this name exists (of any kind).
    pub fn exists(&mut self) -> Result<bool, LinkError> {
        Ok(self.lookup()?.is_some())
    }

    /// The host addresses on the link: IPv4 `/32` and IPv6 `/128`, whatever their state.
    /// Addresses of other prefix lengths are not kube-ferry's and are not listed.
    /// [`LinkError::Missing`] if the link does not exist.
    pub fn addresses(&mut self) -> Result<BTreeSet<IpAddr>, LinkError> {
        let index = self.existing_index("read its addresses")?;
        let dump = self.handle.address().get().set_link_index_filter(index).execute();
        let messages = self
            .block_on(dump.try_collect::<Vec<_>>())
            .map_err(|e| self.failure(e, format!("link {}", self.name), "list its addresses", false))?;
        Ok(messages.iter().filter_map(|m| message::host_address(m, index)).collect())
    }

    /// Adds the host addresses `add` (`/32`, `/128`; IPv6 with `IFA_F_NODAD`) and removes
    /// the host addresses `remove`. Adding one that is there already and removing one that
    /// is not are no-ops, so a change can be repeated; addresses in neither list are never
    /// touched (no address is removed and re-added). An address in both lists is
    /// [`LinkError::AddAndRemove`], before anything is changed.
    ///
    /// On an error (the first, in address order, is returned) the other addresses have
    /// still been applied; calling again with the same lists finishes the job.
    /// [`LinkError::Missing`] if the link does not exist.
    pub fn change(&mut self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), LinkError> {
        let (add, remove) = message::plan(add, remove)
            .map_err(|address| LinkError::AddAndRemove { name: self.name.clone(), address })?;
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let index = self.existing_index("change its addresses")?;
        let handle = &self.handle;
        let removed =
            self.block_on(in_flight(&remove, |ip| handle.address().del(message::del_address(index, ip)).execute()));
        let added = self.block_on(in_flight(&add, |ip| {
            let mut request = handle.address().add(index, ip, message::host_prefix_len(&ip));
            *request.message_mut() = message::new_address(index, ip);
            request.execute()
        }));
        let outcomes = removed.into_iter().map(|(ip, r)| (ip, r, "remove it", libc::EADDRNOTAVAIL));
        let outcomes = outcomes.chain(added.into_iter().map(|(ip, r)| (ip, r, "add it", libc::EEXIST)));
        let mut first = None;
        for (ip, result, action, harmless) in outcomes {
            let Err(e) = result else { continue };
            match errno(&e) {
                Some(n) if n == harmless => continue,
                // The link went away under us.
                Some(libc::ENODEV) => {
                    first.get_or_insert(LinkError::Missing { name: self.name.clone(), action: "change its addresses" });
                }
                _ => {
                    let object = format!("address {} on {}", message::with_prefix(&ip), self.name);
                    first.get_or_insert_with(|| self.failure(e, object, action, ip.is_ipv6()));
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => {
                tracing::debug!(link = %self.name, added = add.len(), removed = remove.len(), "changed addresses");
                Ok(())
            }
        }
    }

    /// Deletes the link if it exists (with its addresses) and returns whether it did. A
    /// link of this name that is not a dummy is [`LinkError::NotDummy`] and is left alone.
    pub fn delete(&mut self) -> Result<bool, LinkError> {
        let Some(found) = self.lookup()? else { return Ok(false) };
        if let Kind::Other(kind) = found.kind {
            return Err(LinkError::NotDummy { name: self.name.clone(), kind });
        }
        match self.block_on(self.handle.link().del(found.index).execute()) {
            Ok(()) => {
                tracing::info!(link = %self.name, "deleted dummy link");
                Ok(true)
            }
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(self.failure(e, format!("link {}", self.name), "delete it", false)),
        }
    }

    /// Runs `future` (a request) to completion on the private runtime, with the
    /// connection task.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        // `runtime` is `Some` until `drop` (see the field).
        #[allow(clippy::expect_used)]
        self.runtime.as_ref().expect("the runtime lives until drop").block_on(future)
    }

    /// The link's index and kind, or `None` if there is no link of this name.
    fn lookup(&self) -> Result<Option<Found>, LinkError> {
        let mut answers = self.handle.link().get().match_name(self.name.clone()).execute();
        match self.block_on(answers.try_next()) {
            Ok(Some(link)) => Ok(Some(Found { index: link.header.index, kind: message::kind(&link) })),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(self.failure(e, format!("link {}", self.name), "look it up", false)),
        }
    }

    /// `Ok(())` if the link exists and is a dummy.
    fn require_dummy(&self) -> Result<(), LinkError> {
        match self.lookup()? {
            Some(Found { kind: Kind::Dummy, .. }) => Ok(()),
            Some(Found { kind: Kind::Other(kind), .. }) => Err(LinkError::NotDummy { name: self.name.clone(), kind }),
            None => Err(LinkError::Missing { name: self.name.clone(), action: "use it" }),
        }
    }

    /// The index of the existing dummy link, for `action`.
    fn existing_index(&self, action: &'static str) -> Result<u32, LinkError> {
        match self.lookup()? {
            Some(Found { index, kind: Kind::Dummy }) => Ok(index),
            Some(Found { kind: Kind::Other(kind), .. }) => Err(LinkError::NotDummy { name: self.name.clone(), kind }),
            None => Err(LinkError::Missing { name: self.name.clone(), action }),
        }
    }

    /// The error for a failed request: the kernel's refusal, or the socket's failure.
    fn failure(&self, e: rtnetlink::Error, object: String, action: &'static str, ipv6: bool) -> LinkError {
        match errno(&e) {
            Some(n) => LinkError::refused(object, action, n, ipv6),
            None => LinkError::Socket { name: self.name.clone(), action, detail: format!("{object}: {e}") },
        }
    }
}

impl Drop for DummyLink {
    /// Closes the socket without waiting: dropping a tokio runtime the ordinary way panics
    /// inside an async context, and a `DummyLink` may well be dropped in one.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `request` for every address with up to [`IN_FLIGHT`] in flight, and returns each
/// address's outcome in address order.
async fn in_flight<F, R>(addresses: &BTreeSet<IpAddr>, request: R) -> Vec<(IpAddr, Result<(), rtnetlink::Error>)>
where
    R: Fn(IpAddr) -> F,
    F: Future<Output = Result<(), rtnetlink::Error>>,
{
    let requests = addresses.iter().map(|ip| {
        let answer = request(*ip);
        async move { (*ip, answer.await) }
    });
    futures::stream::iter(requests).buffered(IN_FLIGHT).collect().await
}

/// The positive errno of a kernel refusal, `None` for any other failure.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| code.get().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name no test environment has; the lookups below only read.
    const ABSENT: &str = "ferry-absent0";

    #[test]
    fn a_dummy_link_can_move_to_the_sync_thread() {
        fn send<T: Send>() {}
        send::<DummyLink>();
    }

    #[test]
    fn open_refuses_a_name_linux_cannot_have() {
        let e = DummyLink::open("kube-ipvs0-too-long").expect_err("16+ bytes");
        assert!(matches!(e, LinkError::InvalidName { .. }), "{e}");
        assert!(e.to_string().contains("longer than 15 bytes"), "{e}");
    }

    #[test]
    fn open_creates_nothing_and_a_missing_link_is_no_error() {
        let mut link = DummyLink::open(ABSENT).expect("an rtnetlink socket opens unprivileged");
        assert_eq!(link.name(), ABSENT);
        assert!(!link.exists().expect("lookup"));
        assert!(!link.delete().expect("delete of a missing link is a no-op"));
        assert!(matches!(link.addresses(), Err(LinkError::Missing { .. })));
        assert!(link.change(&[], &[]).is_ok(), "an empty change needs no link");
    }

    #[test]
    fn open_and_drop_inside_an_async_context_do_not_panic() {
        let outer = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        outer.block_on(async {
            let link = DummyLink::open(ABSENT).expect("open");
            drop(link);
        });
    }
}
