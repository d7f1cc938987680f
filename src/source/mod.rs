//! Sources of truth: the API server ([`api`]) or a directory of manifests ([`file`]).
//! Both only ever record summaries in a [`crate::tracker::ChangeTracker`].

pub mod api;
pub mod file;
pub mod manifest;
