//! Builders of raw netlink bytes the way the kernel lays them out, for decode tests.
//! Deliberately independent of neli and of `encode`.

/// An attribute: `{u16 len; u16 type}` + payload, padded to 4 bytes.
pub(crate) fn tlv(ty: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity(len + 3);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(len.next_multiple_of(4), 0);
    out
}

/// A nested attribute as `nla_nest_start` makes it since Linux 5.2 (with NLA_F_NESTED).
pub(crate) fn nest(ty: u16, children: &[Vec<u8>]) -> Vec<u8> {
    tlv(ty | 0x8000, &children.concat())
}

/// A generic netlink message: `{u8 cmd; u8 version; u16 reserved}` + attributes.
pub(crate) fn genl(cmd: u8, version: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    [vec![cmd, version, 0, 0], attrs.concat()].concat()
}

/// A netlink message: `{u32 len; u16 type; u16 flags; u32 seq; u32 pid}` + payload, padded.
pub(crate) fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut out = Vec::new();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&4242u32.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(len.next_multiple_of(4), 0);
    out
}

/// `IPVS_SVC_ATTR_STATS`-style statistics (u32 and u64 counters, with a PAD attribute
/// before a u64 as architectures without efficient unaligned access get).
pub(crate) fn stats(ty: u16) -> Vec<u8> {
    nest(
        ty,
        &[
            tlv(1, &7u32.to_ne_bytes()),    // CONNS
            tlv(2, &70u32.to_ne_bytes()),   // INPKTS
            tlv(3, &69u32.to_ne_bytes()),   // OUTPKTS
            tlv(11, &[]),                   // PAD
            tlv(4, &7000u64.to_ne_bytes()), // INBYTES
            tlv(5, &6900u64.to_ne_bytes()), // OUTBYTES
            tlv(6, &0u32.to_ne_bytes()),    // CPS
        ],
    )
}
