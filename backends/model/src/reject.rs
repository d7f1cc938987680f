//! Why an object was not programmed.

use std::fmt;

use crate::name::ObjectRef;

/// An object (or part of one) that the model refused, with the reason.
///
/// A rejection only ever affects the object it names: every other service is still
/// programmed (B33). The reason names the offending field and value, so the operator
/// knows what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Rejection {
    /// The object refused.
    pub object: ObjectRef,
    /// What is wrong, naming the field path and the value.
    pub reason: String,
}

impl Rejection {
    /// A rejection of `object` for `reason`.
    pub fn new(object: ObjectRef, reason: impl Into<String>) -> Rejection {
        Rejection { object, reason: reason.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skipped: {}", self.object, self.reason)
    }
}
