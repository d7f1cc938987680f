//! # ferry-model: kube-ferry's desired state, with no I/O
//!
//! This crate is the pure core of kube-ferry (in the way `quinn-proto` is the core of
//! `quinn`): it never touches a socket, a file, a clock or the kernel, so every rule of
//! the behaviour contract it encodes is tested deterministically in memory.
//!
//! Data flows one way:
//!
//! 1. **Admission** ([`spec`]): each Kubernetes object (a `Service`, an `EndpointSlice`,
//!    this node's `Node`) is turned, as soon as it arrives, into a compact summary
//!    ([`ServiceSpec`], [`SliceSpec`], [`NodeSpec`]) holding only what a proxy needs, or
//!    into a [`Rejection`] naming the object and the reason, or it is ignored (headless,
//!    ExternalName, another proxy's label, FQDN slices).
//! 2. **Building** ([`StateBuilder`]): the summaries are joined into a [`ProxyState`]: one
//!    [`ServicePort`] per service, port, protocol and IP family, with its endpoints and the
//!    contract's endpoint selection ([`select`]) already applied. The builder is
//!    incremental: it only recomputes the services that changed.
//! 3. **Diffing** ([`StateDiff`]): every rebuild says exactly which service ports were
//!    added, removed or changed, and which of their endpoints.
//! 4. **Rendering**: a [`Backend`] turns the state (and the diff) into kernel rules. The
//!    backends live in their own crates and know nothing about Kubernetes objects.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod backend;
pub mod build;
pub mod diff;
pub mod local;
pub mod name;
pub mod protocol;
pub mod reject;
pub mod select;
pub mod spec;
pub mod state;
pub mod status;

pub use backend::{find_refused, Backend, BackendError, CleanupReport, Refusal, SyncReport, SyncRequest};
pub use build::StateBuilder;
pub use diff::{EndpointChanges, PortChange, StateDiff};
pub use local::PodInterfaces;
pub use name::{ObjectKind, ObjectRef, ServiceName, ServicePortId, SliceName};
pub use protocol::{IpFamily, Protocol};
pub use reject::Rejection;
pub use spec::{Admission, NodeSpec, ServicePortSpec, ServiceSpec, SliceEndpoint, SlicePort, SliceSpec};
pub use state::{ClientIpAffinity, Endpoint, ProxyState, ServicePort};
pub use status::{status_table, ProgrammedFrontend};
