//! The binary form of set and map elements, as the kernel stores them.
//!
//! Elements are rendered as nft text (`10.96.0.1 . tcp . 80 : goto svc-...`), which is what
//! `render` prints and what the `nft` tool reads. The netlink writer (`crate::netlink`)
//! sends the same elements without the tool; an [`ElementLayout`] says how each field of
//! a map's key and value is laid out in bytes, exactly as nft itself encodes them:
//! addresses and ports in network byte order, a `numgen` slot in host byte order, and in a
//! concatenation every field padded to a multiple of four bytes (one kernel register).

use std::net::{Ipv4Addr, Ipv6Addr};

/// One field of a key or value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `ipv4_addr`: 4 bytes, network order.
    Ipv4Addr,
    /// `ipv6_addr`: 16 bytes, network order.
    Ipv6Addr,
    /// `inet_proto`: 1 byte (`tcp` = 6, `udp` = 17, `sctp` = 132).
    InetProto,
    /// `inet_service`: a port, 2 bytes, network order.
    InetService,
    /// A 32-bit integer in host order: what `numgen random mod N` produces.
    HostU32,
}

impl Field {
    fn len(self) -> usize {
        match self {
            Field::Ipv4Addr | Field::HostU32 => 4,
            Field::Ipv6Addr => 16,
            Field::InetProto => 1,
            Field::InetService => 2,
        }
    }

    fn encode(self, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let bad = |what: &str| format!("{text:?} is not {what}");
        match self {
            Field::Ipv4Addr => out.extend(text.parse::<Ipv4Addr>().map_err(|_| bad("an IPv4 address"))?.octets()),
            Field::Ipv6Addr => out.extend(text.parse::<Ipv6Addr>().map_err(|_| bad("an IPv6 address"))?.octets()),
            Field::InetProto => out.push(match text {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                other => other.parse::<u8>().map_err(|_| bad("a protocol"))?,
            }),
            Field::InetService => out.extend(text.parse::<u16>().map_err(|_| bad("a port"))?.to_be_bytes()),
            Field::HostU32 => out.extend(text.parse::<u32>().map_err(|_| bad("a 32-bit integer"))?.to_ne_bytes()),
        }
        Ok(())
    }
}

/// Encodes `text` (fields joined by ` . `) as `fields` say.
fn encode_fields(fields: &[Field], text: &str) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = text.split(" . ").map(str::trim).collect();
    if parts.len() != fields.len() {
        return Err(format!("{text:?} has {} fields, the map's type has {}", parts.len(), fields.len()));
    }
    let mut out = Vec::with_capacity(fields.len() * 4);
    let concatenated = fields.len() > 1;
    for (field, part) in fields.iter().zip(parts) {
        field.encode(part, &mut out)?;
        if concatenated {
            // Each field of a concatenation takes whole 32-bit registers.
            let padding = field.len().next_multiple_of(4) - field.len();
            out.extend(std::iter::repeat_n(0, padding));
        }
    }
    Ok(out)
}

/// What a map's elements map to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementData {
    /// A set: elements have no value.
    None,
    /// A verdict map: `drop`, `accept`, `return`, `jump CHAIN`, `goto CHAIN`.
    Verdict,
    /// A data map: a value of these fields.
    Fields(Vec<Field>),
}

/// How the elements of one named set or map are laid out in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementLayout {
    /// The key's fields, in order.
    pub key: Vec<Field>,
    /// The value.
    pub data: ElementData,
}

/// An element's value, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodedData {
    /// No value (a set element).
    None,
    /// A verdict: its code (`NF_DROP` = 0, `NF_ACCEPT` = 1, `NFT_GOTO` = -4, ...) and the
    /// chain it names, if any.
    Verdict(i32, Option<String>),
    /// Bytes of a data map's value.
    Value(Vec<u8>),
}

/// One element, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedElement {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value.
    pub data: EncodedData,
}

impl ElementLayout {
    /// A layout with a key of `key` and a value of `data`.
    pub fn new(key: &[Field], data: ElementData) -> ElementLayout {
        ElementLayout { key: key.to_vec(), data }
    }

    /// Encodes an element given as nft text: `key` as in `add element`, `value` the part
    /// after `:` (empty for a set). Errors name the part that does not fit the layout.
    pub fn encode(&self, key: &str, value: &str) -> Result<EncodedElement, String> {
        let key_bytes = encode_fields(&self.key, key)?;
        let data = match (&self.data, value.trim()) {
            (ElementData::None, "") => EncodedData::None,
            (ElementData::None, v) => return Err(format!("a set element has no value, got {v:?}")),
            (ElementData::Verdict, v) => encode_verdict(v)?,
            (ElementData::Fields(fields), v) => EncodedData::Value(encode_fields(fields, v)?),
        };
        Ok(EncodedElement { key: key_bytes, data })
    }

    /// Encodes only the key: what deleting an element needs.
    pub fn encode_key(&self, key: &str) -> Result<EncodedElement, String> {
        Ok(EncodedElement { key: encode_fields(&self.key, key)?, data: EncodedData::None })
    }
}

fn encode_verdict(text: &str) -> Result<EncodedData, String> {
    let mut words = text.split_whitespace();
    let verdict = match (words.next(), words.next(), words.next()) {
        (Some("drop"), None, _) => EncodedData::Verdict(0, None),
        (Some("accept"), None, _) => EncodedData::Verdict(1, None),
        (Some("continue"), None, _) => EncodedData::Verdict(-1, None),
        (Some("return"), None, _) => EncodedData::Verdict(-5, None),
        (Some("jump"), Some(chain), None) => EncodedData::Verdict(-3, Some(chain.to_owned())),
        (Some("goto"), Some(chain), None) => EncodedData::Verdict(-4, Some(chain.to_owned())),
        _ => return Err(format!("{text:?} is not a verdict")),
    };
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concatenated_key_pads_every_field_to_a_register() {
        let layout = ElementLayout::new(&[Field::Ipv4Addr, Field::InetProto, Field::InetService], ElementData::Verdict);
        let e = layout.encode("10.96.0.1 . tcp . 80", "goto svc-X").unwrap();
        assert_eq!(e.key, [10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(e.data, EncodedData::Verdict(-4, Some("svc-X".into())));
        assert_eq!(layout.encode("10.96.0.1 . sctp . 443", "drop").unwrap().key[4..10], [132, 0, 0, 0, 1, 187]);
    }

    #[test]
    fn a_single_field_key_is_not_padded() {
        let layout = ElementLayout::new(&[Field::Ipv6Addr], ElementData::None);
        let e = layout.encode("fd00::1", "").unwrap();
        assert_eq!(e.key.len(), 16);
        assert_eq!(e.key[15], 1);
        assert_eq!(e.data, EncodedData::None);
    }

    #[test]
    fn a_data_map_value_and_a_slot_in_host_order() {
        let layout = ElementLayout::new(
            &[Field::Ipv4Addr, Field::InetService, Field::HostU32],
            ElementData::Fields(vec![Field::Ipv4Addr, Field::InetService]),
        );
        let e = layout.encode("10.96.0.1 . 80 . 2", "10.128.0.7 . 8080").unwrap();
        assert_eq!(e.key[8..12], 2u32.to_ne_bytes());
        assert_eq!(e.data, EncodedData::Value(vec![10, 128, 0, 7, 0x1f, 0x90, 0, 0]));
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let layout = ElementLayout::new(&[Field::Ipv4Addr, Field::InetService], ElementData::None);
        assert!(layout.encode("10.96.0.1", "").unwrap_err().contains("has 1 fields"));
        assert!(layout.encode("fd00::1 . 80", "").unwrap_err().contains("not an IPv4 address"));
        assert!(layout.encode("10.96.0.1 . 80", "drop").unwrap_err().contains("no value"));
        let vmap = ElementLayout::new(&[Field::InetService], ElementData::Verdict);
        assert!(vmap.encode("80", "reject").unwrap_err().contains("not a verdict"));
    }
}
