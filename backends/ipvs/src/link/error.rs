//! What can go wrong with the `kube-ipvs0` link, worded so the reader knows what to do.

use std::net::IpAddr;

/// A failed operation on the dummy link or one of its addresses. Every message names the
/// link (and the address, where there is one) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The kernel has no `dummy` link type (creating one answered `EOPNOTSUPP`, the kernel
    /// could not load the module on demand). [`LinkError::is_unsupported`] is true.
    #[error(
        "cannot create link {name}: this kernel has no dummy links ({detail}); load the module with \
         `modprobe dummy` (kernel option CONFIG_DUMMY, Debian package kmod), or run kube-ferry with \
         the nftables backend"
    )]
    NoDummySupport {
        /// The link that was to be created.
        name: String,
        /// The kernel's answer.
        detail: String,
    },
    /// A link of this name exists but is not a dummy link: kube-ferry neither uses nor
    /// deletes it.
    #[error(
        "a link named {name} exists but is a {kind} link, not a dummy: kube-ferry will not put service \
         addresses on it nor delete it; remove it yourself (`ip link delete {name}`) if it is a leftover"
    )]
    NotDummy {
        /// The link's name.
        name: String,
        /// Its kind as the kernel names it (`veth`, `bridge`), or `physical (no kind)`.
        kind: String,
    },
    /// The link does not exist, so its addresses can be neither read nor changed.
    #[error("link {name} does not exist, so kube-ferry cannot {action}; create it first (DummyLink::ensure)")]
    Missing {
        /// The link's name.
        name: String,
        /// What was attempted: `read its addresses`, `change its addresses`.
        action: &'static str,
    },
    /// The name cannot be a Linux link name.
    #[error("{name:?} cannot be a link name: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// One address was both to be added and removed in one [`change`](super::DummyLink::change)
    /// (a bug in the caller's diff); nothing was changed.
    #[error(
        "address {address} on {name} is both to be added and removed in one change; nothing was changed \
         (a kube-ferry bug; please report it)"
    )]
    AddAndRemove {
        /// The link's name.
        name: String,
        /// The address in both lists.
        address: IpAddr,
    },
    /// The kernel refused a request.
    #[error("{object}: the kernel refused to {action}: {}{hint}", errno_text(*errno))]
    Refused {
        /// What it was about: `link kube-ipvs0`, `address 2001:db8::10/128 on kube-ipvs0`.
        object: String,
        /// What was attempted: `create it`, `add it`, `delete it`.
        action: &'static str,
        /// The positive errno, e.g. 1 (`EPERM`).
        errno: i32,
        /// What to do about it, starting with "; " (or empty).
        hint: &'static str,
    },
    /// The rtnetlink socket itself failed (open, send, receive, an unexpected reply).
    #[error("rtnetlink socket for link {name}: {action} failed: {detail}")]
    Socket {
        /// The link's name.
        name: String,
        /// What was being done.
        action: &'static str,
        /// The operating system's or rtnetlink's text.
        detail: String,
    },
}

impl LinkError {
    /// True if this kernel has no dummy links at all (the backend cannot work here and
    /// should say so, or fall back to another one).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, LinkError::NoDummySupport { .. })
    }

    /// A refusal of `action` on `object`; `ipv6` says whether it concerned an IPv6 address
    /// (whose refusals usually mean IPv6 is disabled).
    pub(crate) fn refused(object: String, action: &'static str, errno: i32, ipv6: bool) -> LinkError {
        LinkError::Refused { object, action, errno, hint: hint(errno, ipv6) }
    }

    /// The kernel's errno, if the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The C library's text with the number: `Operation not permitted (os error 1)`.
fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// What to do about a refusal, starting with "; " (or empty).
fn hint(errno: i32, ipv6: bool) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES if ipv6 => {
            "; IPv6 is disabled on this link or host: enable it (sysctl net.ipv6.conf.all.disable_ipv6=0 and \
             net.ipv6.conf.<link>.disable_ipv6=0) or run kube-ferry single-stack IPv4"
        }
        libc::EPERM | libc::EACCES => "; managing links needs CAP_NET_ADMIN in this network namespace (run as root)",
        libc::EAFNOSUPPORT => "; this kernel has no IPv6 (boot without ipv6.disable=1) or run single-stack IPv4",
        libc::EBUSY => "; the link is busy: retry, or see `ip link show` for who holds it",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_dummy_support_says_modprobe_dummy_and_is_flagged() {
        let err = LinkError::NoDummySupport { name: "kube-ipvs0".into(), detail: "Operation not supported".into() };
        let text = err.to_string();
        assert!(text.starts_with("cannot create link kube-ipvs0: this kernel has no dummy links"), "{text}");
        assert!(text.contains("`modprobe dummy`"), "{text}");
        assert!(err.is_unsupported());
        assert!(!LinkError::NotDummy { name: "kube-ipvs0".into(), kind: "veth".into() }.is_unsupported());
    }

    #[test]
    fn not_dummy_names_link_and_kind_and_how_to_remove_it() {
        let text = LinkError::NotDummy { name: "kube-ipvs0".into(), kind: "veth".into() }.to_string();
        assert!(text.starts_with("a link named kube-ipvs0 exists but is a veth link, not a dummy"), "{text}");
        assert!(text.contains("`ip link delete kube-ipvs0`"), "{text}");
    }

    #[test]
    fn a_refusal_names_object_errno_and_hint() {
        let err = LinkError::refused("address 2001:db8::10/128 on kube-ipvs0".into(), "add it", libc::EACCES, true);
        let text = err.to_string();
        assert!(
            text.starts_with("address 2001:db8::10/128 on kube-ipvs0: the kernel refused to add it: Permission denied"),
            "{text}"
        );
        assert!(text.contains("disable_ipv6=0"), "{text}");
        assert_eq!(err.errno(), Some(libc::EACCES));
        let v4 = LinkError::refused("link kube-ipvs0".into(), "create it", libc::EPERM, false);
        assert!(v4.to_string().contains("CAP_NET_ADMIN"), "{v4}");
    }
}
