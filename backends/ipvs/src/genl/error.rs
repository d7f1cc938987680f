//! What can go wrong talking to IPVS, worded so the reader knows what to do.

use super::uapi::*;

/// An IPVS request that failed. Every message names the object (`virtual service TCP
/// 10.96.0.10:80`), the command and, for a kernel refusal, the errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpvsError {
    /// The kernel has no IPVS: the generic netlink family `IPVS` does not exist (and the
    /// kernel could not load `ip_vs` on demand). The backend falls back to nftables on this.
    #[error(
        "this kernel has no IPVS: generic netlink family \"IPVS\" not found ({detail}); \
         load it with `modprobe ip_vs` (kernel option CONFIG_IP_VS, Debian package kmod), \
         or run kube-ferry with the nftables backend"
    )]
    NotAvailable {
        /// What the controller answered.
        detail: String,
    },
    /// The netlink socket itself failed (open, send, receive).
    #[error("generic netlink socket for IPVS: {action} failed: {detail}")]
    Socket {
        /// What was being done: `open`, `send GET_SERVICE`, ...
        action: String,
        /// The operating system's or neli's error text.
        detail: String,
    },
    /// The kernel answered a request with an error.
    #[error("{object}: the kernel refused {command}: {} ({}){}", errno_text(*errno), errno_name(*errno), hint_text(command, *errno, hint))]
    Refused {
        /// The object, e.g. `virtual service TCP 10.96.0.10:80`.
        object: String,
        /// The IPVS command, e.g. `NEW_SERVICE`.
        command: &'static str,
        /// The positive errno, e.g. 17 (`EEXIST`).
        errno: i32,
        /// Extra context for the hint (the scheduler name for `NEW_SERVICE`), may be empty.
        hint: String,
    },
    /// neli could not build or serialize a request (a bug in kube-ferry, not a kernel problem).
    #[error("{context}: could not encode the request: {detail} (a kube-ferry bug; please report it)")]
    Encode {
        /// The request being built.
        context: String,
        /// neli's error text.
        detail: String,
    },
    /// The kernel's reply could not be understood.
    #[error("{context}: malformed reply from the kernel: {detail} (a kernel/kube-ferry IPVS ABI mismatch; please report it)")]
    Malformed {
        /// The request being answered.
        context: String,
        /// What was wrong.
        detail: String,
    },
}

impl IpvsError {
    /// The kernel's errno if this is a refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// True if the kernel refused because the object already exists (`EEXIST` on a `NEW_*`).
    pub fn is_already_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True if the kernel refused because the object does not exist: `ESRCH` (no such
    /// virtual service) or, for `SET_DEST`/`DEL_DEST`, `ENOENT` (no such real server).
    pub fn is_not_found(&self) -> bool {
        match self {
            IpvsError::Refused { errno, command, .. } => {
                *errno == libc::ESRCH || (*errno == libc::ENOENT && matches!(*command, "SET_DEST" | "DEL_DEST"))
            }
            _ => false,
        }
    }

    pub(crate) fn socket(action: impl Into<String>, detail: impl std::fmt::Display) -> IpvsError {
        IpvsError::Socket { action: action.into(), detail: detail.to_string() }
    }

    pub(crate) fn malformed(context: impl Into<String>, detail: impl Into<String>) -> IpvsError {
        IpvsError::Malformed { context: context.into(), detail: detail.into() }
    }
}

/// The name of an IPVS command number, for messages.
pub(crate) fn command_name(cmd: u8) -> &'static str {
    match cmd {
        IPVS_CMD_NEW_SERVICE => "NEW_SERVICE",
        IPVS_CMD_SET_SERVICE => "SET_SERVICE",
        IPVS_CMD_DEL_SERVICE => "DEL_SERVICE",
        IPVS_CMD_GET_SERVICE => "GET_SERVICE",
        IPVS_CMD_NEW_DEST => "NEW_DEST",
        IPVS_CMD_SET_DEST => "SET_DEST",
        IPVS_CMD_DEL_DEST => "DEL_DEST",
        IPVS_CMD_GET_DEST => "GET_DEST",
        IPVS_CMD_SET_CONFIG => "SET_CONFIG",
        IPVS_CMD_GET_CONFIG => "GET_CONFIG",
        IPVS_CMD_FLUSH => "FLUSH",
        _ => "an IPVS command",
    }
}

const ERRNOS: &[(i32, &str, &str)] = &[
    (libc::EPERM, "EPERM", "Operation not permitted"),
    (libc::ENOENT, "ENOENT", "No such file or directory"),
    (libc::ESRCH, "ESRCH", "No such process"),
    (libc::ENOMEM, "ENOMEM", "Cannot allocate memory"),
    (libc::EACCES, "EACCES", "Permission denied"),
    (libc::EFAULT, "EFAULT", "Bad address"),
    (libc::EBUSY, "EBUSY", "Device or resource busy"),
    (libc::EEXIST, "EEXIST", "File exists"),
    (libc::EINVAL, "EINVAL", "Invalid argument"),
    (libc::ERANGE, "ERANGE", "Numerical result out of range"),
    (libc::EMSGSIZE, "EMSGSIZE", "Message too long"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported"),
    (libc::EAFNOSUPPORT, "EAFNOSUPPORT", "Address family not supported by protocol"),
    (libc::ENOBUFS, "ENOBUFS", "No buffer space available"),
];

/// The symbolic name of an errno (`EEXIST`), or `errno N`.
pub(crate) fn errno_name(errno: i32) -> String {
    ERRNOS
        .iter()
        .find(|(n, _, _)| *n == errno)
        .map_or_else(|| format!("errno {errno}"), |(_, name, _)| name.to_string())
}

/// The C library's text for an errno (`File exists`).
fn errno_text(errno: i32) -> String {
    match ERRNOS.iter().find(|(n, _, _)| *n == errno) {
        Some((_, _, text)) => text.to_string(),
        None => {
            // std's text ends in " (os error N)"; the name follows anyway.
            let text = std::io::Error::from_raw_os_error(errno).to_string();
            text.split(" (os error").next().unwrap_or(&text).to_string()
        }
    }
}

/// What to do about a refusal, starting with "; " (or empty).
fn hint_text(command: &str, errno: i32, context: &str) -> String {
    let is_dest = command.ends_with("_DEST");
    let hint = match errno {
        libc::EEXIST => "it already exists: change it with an update (SET_*) or delete it first".to_string(),
        libc::ESRCH => "no such virtual service (deleted meanwhile, or never added)".to_string(),
        libc::ENOENT if is_dest => "no such real server in this virtual service".to_string(),
        libc::ENOENT if !context.is_empty() => {
            format!("the kernel has no scheduler {context:?}: load it with `modprobe ip_vs_{context}`")
        }
        libc::EPERM | libc::EACCES => "IPVS needs CAP_NET_ADMIN in this network namespace (run as root)".to_string(),
        libc::EAFNOSUPPORT => "the kernel lacks IPv6 IPVS (CONFIG_IP_VS_IPV6), or the real server's address family \
                              differs from the service's"
            .to_string(),
        libc::EINVAL if command == "NEW_DEST" => "the kernel refuses a real server address it does not see as \
                                                 unicast (in a network namespace whose lo is down, no IPv4 address is)"
            .to_string(),
        libc::EINVAL => {
            "the kernel rejected an attribute value (see `dmesg`; an encoding bug in kube-ferry?)".to_string()
        }
        _ => String::new(),
    };
    if hint.is_empty() {
        hint
    } else {
        format!("; {hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_object_command_errno_and_what_to_do() {
        let err = IpvsError::Refused {
            object: "virtual service TCP 10.96.0.10:80".into(),
            command: "NEW_SERVICE",
            errno: libc::EEXIST,
            hint: "rr".into(),
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "virtual service TCP 10.96.0.10:80: the kernel refused NEW_SERVICE: File exists (EEXIST); "
            ),
            "{text}"
        );
        assert!(err.is_already_exists() && !err.is_not_found());
    }

    #[test]
    fn a_missing_scheduler_says_which_module_to_load() {
        let err = IpvsError::Refused {
            object: "virtual service UDP [2001:db8::1]:53".into(),
            command: "NEW_SERVICE",
            errno: libc::ENOENT,
            hint: "mh".into(),
        };
        assert!(err.to_string().contains("modprobe ip_vs_mh"), "{err}");
        assert!(!err.is_not_found(), "ENOENT on NEW_SERVICE is a missing scheduler, not a missing object");
    }

    #[test]
    fn not_found_is_esrch_for_services_and_enoent_for_real_servers() {
        let refused = |command, errno| IpvsError::Refused { object: "x".into(), command, errno, hint: String::new() };
        assert!(refused("DEL_SERVICE", libc::ESRCH).is_not_found());
        assert!(refused("DEL_DEST", libc::ENOENT).is_not_found());
        assert!(refused("DEL_DEST", libc::ESRCH).is_not_found());
        assert!(!refused("DEL_SERVICE", libc::EINVAL).is_not_found());
        assert_eq!(errno_name(4242), "errno 4242");
    }

    #[test]
    fn not_available_says_modprobe_ip_vs() {
        let text = IpvsError::NotAvailable { detail: "ENOENT".into() }.to_string();
        assert!(text.contains("modprobe ip_vs") && text.contains("nftables"), "{text}");
    }
}
