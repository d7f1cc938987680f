//! Address parsing that never lets a non-canonical address reach a ruleset (B6).
//!
//! Kubernetes has long accepted IPv4 addresses with leading zeros (`10.096.000.010`) and
//! reads each part as decimal (Go's `ParseIPSloppy`); kube-ferry does the same and hands
//! the backends the canonical form (`10.96.0.10`). Forms that cannot be read without
//! guessing (IPv4-mapped IPv6, zones, the unspecified address) are rejected with a reason.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Parses an address as Kubernetes writes it and returns its canonical form.
///
/// Errors are sentences that name the value and say what is accepted.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let trimmed = text.trim();
    if trimmed != text {
        return Err(format!("{text:?} has surrounding white space"));
    }
    let addr = match text.parse::<IpAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            parse_ipv4_with_leading_zeros(text).ok_or_else(|| format!("{text:?} is not an IPv4 or IPv6 address"))?
        }
    };
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("{text:?} is an IPv4-mapped IPv6 address; write the IPv4 address itself"));
        }
    }
    if addr.is_unspecified() {
        return Err(format!("{text:?} is the unspecified address"));
    }
    Ok(addr)
}

/// Parses a CIDR as Kubernetes writes it (leading zeros allowed in IPv4 parts, host bits
/// allowed and cleared: `10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let (addr, len) =
        text.split_once('/').ok_or_else(|| format!("{text:?} is not a CIDR (expected ADDRESS/PREFIX-LENGTH)"))?;
    let prefix: u8 = len.parse().map_err(|_| format!("{text:?} has an invalid prefix length {len:?}"))?;
    let ip = match addr.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => parse_ipv4_with_leading_zeros(addr)
            .ok_or_else(|| format!("{text:?} does not start with an IPv4 or IPv6 address"))?,
    };
    let net = IpNet::new(ip, prefix).map_err(|_| format!("{text:?} has a prefix length too long for its family"))?;
    Ok(net.trunc())
}

/// `10.096.000.010` read as four decimal parts, as Kubernetes reads it; `None` when the
/// text is not four dot-separated decimal parts of at most three digits, each <= 255.
fn parse_ipv4_with_leading_zeros(text: &str) -> Option<IpAddr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse::<u8>().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_read_as_decimal_and_normalised() {
        assert_eq!(parse_ip("10.096.000.010").unwrap().to_string(), "10.96.0.10");
        assert_eq!(parse_ip("010.0.0.1").unwrap().to_string(), "10.0.0.1");
    }

    #[test]
    fn ipv6_is_canonicalised() {
        assert_eq!(parse_ip("fd00:0:0::0010").unwrap().to_string(), "fd00::10");
    }

    #[test]
    fn broken_forms_are_rejected_with_the_value() {
        for bad in ["10.0.0.256", "10.0.0", "1.2.3.4.5", "10.0.0.0001", "abc", " 10.0.0.1", "0.0.0.0", "::"] {
            let err = parse_ip(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(parse_ip("::ffff:10.0.0.1").unwrap_err().contains("IPv4-mapped"));
    }

    #[test]
    fn cidrs_clear_host_bits_and_accept_leading_zeros() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("192.168.001.000/24").unwrap().to_string(), "192.168.1.0/24");
        assert_eq!(parse_cidr("fd00::1/64").unwrap().to_string(), "fd00::/64");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/x").is_err());
    }
}
