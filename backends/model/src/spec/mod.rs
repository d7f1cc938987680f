//! Admission: compact summaries of the Kubernetes objects a proxy needs.
//!
//! Every object is summarised as soon as it arrives, so the controller never keeps whole
//! objects (with their managed fields) in memory. A summary holds only what the contract
//! (`shared/spec/behaviours.md`) needs, already validated and normalised.

mod node;
mod service;
mod slice;

pub use node::NodeSpec;
pub use service::{ServicePortSpec, ServiceSpec, SERVICE_PROXY_NAME_LABEL};
pub use slice::{SliceEndpoint, SlicePort, SliceSpec, HEADLESS_LABEL, SERVICE_NAME_LABEL};

use crate::reject::Rejection;

/// What admission made of one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Admission<T> {
    /// The object is proxied. `skipped` lists parts of it that were invalid and left out
    /// (for example one endpoint with a broken address); the rest is used.
    Accepted {
        /// The summary.
        spec: T,
        /// Parts that were left out, each with its reason.
        skipped: Vec<Rejection>,
    },
    /// The object is valid but produces nothing (headless, ExternalName, another
    /// proxy's label, an FQDN slice): the reason says which.
    Ignored(&'static str),
    /// The object is invalid and is skipped as a whole (B33).
    Rejected(Rejection),
}

impl<T> Admission<T> {
    /// The summary, when the object was accepted.
    pub fn spec(&self) -> Option<&T> {
        match self {
            Admission::Accepted { spec, .. } => Some(spec),
            _ => None,
        }
    }

    /// Every rejection this admission carries: the whole object's or its skipped parts'.
    pub fn rejections(&self) -> Vec<Rejection> {
        match self {
            Admission::Accepted { skipped, .. } => skipped.clone(),
            Admission::Ignored(_) => Vec::new(),
            Admission::Rejected(r) => vec![r.clone()],
        }
    }

    fn accepted(spec: T) -> Admission<T> {
        Admission::Accepted { spec, skipped: Vec::new() }
    }
}

/// A Kubernetes `int32` port field as a port number, or a sentence saying why not.
fn port_number(field: &str, value: i32) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("{field} {value} is not a port number (1-65535)")),
    }
}
