//! The rtnetlink messages of the dummy link, built and read without I/O (so they are unit
//! tested): host addresses (`/32`, `/128`), the link's kind, the rules of link names.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::AddressFamily;

/// The prefix length of a host address of `ip`'s family: 32 for IPv4, 128 for IPv6.
pub(crate) fn host_prefix_len(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `198.51.100.10/32`, `2001:db8::10/128`: how messages name an address.
pub(crate) fn with_prefix(ip: &IpAddr) -> String {
    format!("{ip}/{}", host_prefix_len(ip))
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The `RTM_NEWADDR` body that puts `ip` as a host address on link `index`, scope global,
/// as `ip addr add IP/32 dev LINK` does; IPv6 with `IFA_F_NODAD` (in the header byte and
/// in `IFA_FLAGS`, as iproute2 sends it), so no duplicate address detection can leave it
/// tentative.
pub(crate) fn new_address(index: u32, ip: IpAddr) -> AddressMessage {
    let mut message = del_address(index, ip);
    if ip.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
        message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    message
}

/// The `RTM_DELADDR` body that removes exactly the host address `ip` from link `index`:
/// the kernel matches address and prefix length, so no other address of the link (of
/// another prefix length, or another host address) is touched.
pub(crate) fn del_address(index: u32, ip: IpAddr) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family(&ip);
    message.header.prefix_len = host_prefix_len(&ip);
    message.header.index = index;
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    message
}

/// The host address an `RTM_NEWADDR` dump entry carries, if it is one: on link `index`,
/// of prefix length 32 (IPv4) or 128 (IPv6). Other prefixes are not kube-ferry's and are
/// left out. The local address (`IFA_LOCAL`) wins over `IFA_ADDRESS`, which is the peer
/// on point-to-point links.
pub(crate) fn host_address(message: &AddressMessage, index: u32) -> Option<IpAddr> {
    if message.header.index != index {
        return None;
    }
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or(address)?;
    let family_matches = family(&ip) == message.header.family;
    (family_matches && message.header.prefix_len == host_prefix_len(&ip)).then_some(ip)
}

/// What kind of link a `RTM_NEWLINK` answer describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `dummy`: ours to use.
    Dummy,
    /// Anything else, named as the kernel names it (`veth`), or a kind-less device
    /// (a physical NIC, `lo`).
    Other(String),
}

/// The kind of the link in `message` (its `IFLA_INFO_KIND`).
pub(crate) fn kind(message: &LinkMessage) -> Kind {
    let kind = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind.clone()),
            _ => None,
        }),
        _ => None,
    });
    match kind {
        Some(InfoKind::Dummy) => Kind::Dummy,
        Some(other) => Kind::Other(other.to_string()),
        None => Kind::Other("kind-less (physical?)".to_string()),
    }
}

/// Why `name` cannot be a Linux link name (the kernel's `dev_valid_name`: 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or white space), or `None` if it can.
pub(crate) fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 15 {
        Some("it is longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not allowed")
    } else if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        Some("it contains `/`, `:` or white space")
    } else {
        None
    }
}

/// The address lists of a change, deduplicated and sorted, or the first address found in
/// both (a diff must never ask for both).
pub(crate) fn plan(add: &[IpAddr], remove: &[IpAddr]) -> Result<(BTreeSet<IpAddr>, BTreeSet<IpAddr>), IpAddr> {
    let add: BTreeSet<IpAddr> = add.iter().copied().collect();
    let remove: BTreeSet<IpAddr> = remove.iter().copied().collect();
    match add.intersection(&remove).next() {
        Some(both) => Err(*both),
        None => Ok((add, remove)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal address")
    }

    #[test]
    fn host_prefix_is_32_for_ipv4_and_128_for_ipv6() {
        assert_eq!(host_prefix_len(&ip("198.51.100.10")), 32);
        assert_eq!(host_prefix_len(&ip("2001:db8::10")), 128);
        assert_eq!(with_prefix(&ip("2001:db8::10")), "2001:db8::10/128");
    }

    #[test]
    fn an_ipv4_address_is_added_as_a_host_address_without_nodad() {
        let m = new_address(7, ip("198.51.100.10"));
        assert_eq!((m.header.family, m.header.prefix_len, m.header.index), (AddressFamily::Inet, 32, 7));
        assert_eq!(m.header.flags, AddressHeaderFlags::empty());
        assert_eq!(
            m.attributes,
            vec![AddressAttribute::Local(ip("198.51.100.10")), AddressAttribute::Address(ip("198.51.100.10"))]
        );
    }

    #[test]
    fn an_ipv6_address_is_added_with_nodad_in_header_and_ifa_flags() {
        let m = new_address(7, ip("2001:db8::10"));
        assert_eq!((m.header.family, m.header.prefix_len), (AddressFamily::Inet6, 128));
        assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        assert!(m.attributes.contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
        // Deleting carries no flags: the kernel matches address and prefix only.
        let d = del_address(7, ip("2001:db8::10"));
        assert_eq!(d.header.flags, AddressHeaderFlags::empty());
        assert_eq!(d.attributes.len(), 2);
    }

    #[test]
    fn only_host_addresses_of_the_link_are_read_back() {
        let mut host = new_address(3, ip("2001:db8::10"));
        assert_eq!(host_address(&host, 3), Some(ip("2001:db8::10")));
        assert_eq!(host_address(&host, 4), None, "another link's address");
        host.header.prefix_len = 64;
        assert_eq!(host_address(&host, 3), None, "a /64 is not a service address");
        let mut v4 = del_address(3, ip("198.51.100.10"));
        v4.header.prefix_len = 24;
        assert_eq!(host_address(&v4, 3), None, "a /24 is not a service address");
    }

    #[test]
    fn the_local_address_wins_over_the_peer() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 32;
        m.header.index = 1;
        m.attributes.push(AddressAttribute::Address(ip("198.51.100.99")));
        m.attributes.push(AddressAttribute::Local(ip("198.51.100.10")));
        assert_eq!(host_address(&m, 1), Some(ip("198.51.100.10")));
        m.attributes.clear();
        assert_eq!(host_address(&m, 1), None, "no address at all");
    }

    #[test]
    fn kinds_are_dummy_named_or_kindless() {
        let mut m = LinkMessage::default();
        assert_eq!(kind(&m), Kind::Other("kind-less (physical?)".into()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]));
        assert_eq!(kind(&m), Kind::Other("veth".into()));
        m.attributes[0] = LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Dummy)]);
        assert_eq!(kind(&m), Kind::Dummy);
    }

    #[test]
    fn link_names_follow_the_kernels_rules() {
        assert_eq!(invalid_name("kube-ipvs0"), None);
        assert_eq!(invalid_name("abcdefghijklmno"), None, "15 bytes is the maximum");
        assert!(invalid_name("abcdefghijklmnop").is_some(), "16 bytes");
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(invalid_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_plan_deduplicates_and_refuses_an_address_in_both_lists() {
        let (add, remove) = plan(&[ip("198.51.100.1"), ip("198.51.100.1")], &[ip("2001:db8::1")]).expect("disjoint");
        assert_eq!(add.len(), 1);
        assert_eq!(remove.len(), 1);
        assert_eq!(plan(&[ip("198.51.100.1")], &[ip("198.51.100.1")]), Err(ip("198.51.100.1")));
    }
}
