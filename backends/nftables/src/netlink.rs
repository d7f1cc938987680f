//! Set and map element changes sent to nf_tables over netlink, without the `nft` tool.
//!
//! Why: at 10,000 services most of an incremental `nft -f` is the tool fetching and
//! parsing its cache of the whole table before it sends anything (docs/nftables-shapes.md).
//! A sync that only adds and deletes elements (endpoints of map-held service ports, the
//! dispatch maps, the reject sets) needs no cache: it is encoded here and sent as one
//! nfnetlink batch, which the kernel applies as one transaction, all or nothing, like
//! `nft -f`. Syncs that touch chains or rules still go through the tool.
//!
//! No maintained crate encodes nf_tables element messages with concatenated keys and
//! verdict data (`nftnl` needs libnftnl and has no verdict maps; `rustables` has no data
//! maps), so the few attributes needed are written here; the socket is `netlink-sys`.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use std::collections::BTreeMap;

use crate::element::{EncodedData, EncodedElement};
use crate::ruleset::{MapDecl, Op, TableFamily};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// The largest batch sent in one message: the kernel takes a batch in one socket
/// buffer (`wmem_default`, 208 KiB on Debian). Larger changes go through `nft`.
pub const MAX_BATCH_BYTES: usize = 160 * 1024;

/// Whether a batch message adds or deletes its elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementChange {
    /// `add element`.
    Add,
    /// `delete element`.
    Delete,
}

/// What one message of a batch does, kept to name it in errors.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MessageLabel {
    change: ElementChange,
    family: TableFamily,
    set: String,
    first_key: String,
}

/// A transaction of element additions and deletions, encoded for nfnetlink.
#[derive(Clone, Debug, Default)]
pub struct ElementBatch {
    messages: Vec<u8>,
    labels: Vec<MessageLabel>,
}

impl ElementBatch {
    /// An empty batch.
    pub fn new() -> ElementBatch {
        ElementBatch::default()
    }

    /// Appends one message changing `elements` (with `keys`, their text, for errors) of
    /// set `set` in table `table` of `family`. Messages apply in the order appended.
    pub fn push(
        &mut self,
        change: ElementChange,
        family: TableFamily,
        table: &str,
        set: &str,
        elements: &[EncodedElement],
        first_key: &str,
    ) {
        let (kind, flags) = match change {
            ElementChange::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK),
            ElementChange::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
        };
        let nfproto = match family {
            TableFamily::Ip => 2,
            TableFamily::Ip6 => 10,
        };
        let mut body = Attributes::default();
        body.string(NFTA_SET_ELEM_LIST_TABLE, table);
        body.string(NFTA_SET_ELEM_LIST_SET, set);
        let list = body.open(NFTA_SET_ELEM_LIST_ELEMENTS);
        for element in elements {
            let item = body.open(NFTA_LIST_ELEM);
            let key = body.open(NFTA_SET_ELEM_KEY);
            body.bytes(NFTA_DATA_VALUE, &element.key);
            body.close(key);
            match (&element.data, change) {
                (_, ElementChange::Delete) | (EncodedData::None, _) => {}
                (EncodedData::Value(value), _) => {
                    let data = body.open(NFTA_SET_ELEM_DATA);
                    body.bytes(NFTA_DATA_VALUE, value);
                    body.close(data);
                }
                (EncodedData::Verdict(code, chain), _) => {
                    let data = body.open(NFTA_SET_ELEM_DATA);
                    let verdict = body.open(NFTA_DATA_VERDICT);
                    body.bytes(NFTA_VERDICT_CODE, &code.to_be_bytes());
                    if let Some(chain) = chain {
                        body.string(NFTA_VERDICT_CHAIN, chain);
                    }
                    body.close(verdict);
                    body.close(data);
                }
            }
            body.close(item);
        }
        body.close(list);
        let seq = self.labels.len() as u32 + 2;
        message(&mut self.messages, (NFNL_SUBSYS_NFTABLES << 8) | kind, flags, seq, nfproto, [0, 0], &body.0);
        self.labels.push(MessageLabel { change, family, set: set.to_owned(), first_key: first_key.to_owned() });
    }

    /// The batch for a transaction of `ops` per family, or `None` when it cannot be sent
    /// over netlink: an operation other than adding or deleting an element, an element of
    /// a map without a layout (`maps` are the table's declarations), an element that does
    /// not fit its layout (nft will say why), or a batch over [`MAX_BATCH_BYTES`].
    pub fn from_ops(
        table: &str,
        families: &[(TableFamily, &[Op], &BTreeMap<String, MapDecl>)],
    ) -> Option<ElementBatch> {
        let mut batch = ElementBatch::new();
        for (family, ops, maps) in families {
            let mut run: Option<(ElementChange, &str, Vec<EncodedElement>, &str)> = None;
            for op in *ops {
                let (change, map, key, value) = match op {
                    Op::AddElement(map, key, value) => (ElementChange::Add, map, key, value.as_str()),
                    Op::DeleteElement(map, key) => (ElementChange::Delete, map, key, ""),
                    _ => return None,
                };
                let layout = maps.get(map)?.layout.as_ref()?;
                let element = match change {
                    ElementChange::Add => layout.encode(key, value),
                    ElementChange::Delete => layout.encode_key(key),
                }
                .ok()?;
                match &mut run {
                    Some((c, m, elements, _)) if *c == change && *m == map.as_str() => elements.push(element),
                    _ => {
                        if let Some((c, m, elements, first)) = run.take() {
                            batch.push(c, *family, table, m, &elements, first);
                        }
                        run = Some((change, map, vec![element], key));
                    }
                }
            }
            if let Some((c, m, elements, first)) = run {
                batch.push(c, *family, table, m, &elements, first);
            }
            if batch.len_bytes() > MAX_BATCH_BYTES {
                return None;
            }
        }
        Some(batch)
    }

    /// True when the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The size of the batch on the wire.
    pub fn len_bytes(&self) -> usize {
        self.messages.len() + 2 * 20
    }

    /// The whole batch as sent: begin, the messages, end.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len_bytes());
        // A batch names the subsystem it is for, big-endian.
        let res_id = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, res_id, &[]);
        out.extend_from_slice(&self.messages);
        let end_seq = self.labels.len() as u32 + 2;
        message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, 0, res_id, &[]);
        out
    }

    /// Sends the batch on a socket of its own (opened and closed here); see
    /// [`NetlinkSession::send`].
    pub fn send(&self) -> Result<(), BatchError> {
        NetlinkSession::default().send(self)
    }

    /// Sends the batch on `socket` and waits for the kernel's answer to every message.
    fn send_on(&self, socket: &Socket) -> Result<(), BatchError> {
        let wire = self.wire();
        socket.send(&wire, 0).map_err(BatchError::Socket)?;
        let mut answered = 0;
        let mut refused = None;
        let mut buffer = Vec::with_capacity(64 * 1024);
        while answered < self.labels.len() {
            buffer.clear();
            socket.recv(&mut buffer, 0).map_err(BatchError::Socket)?;
            for (seq, errno, text) in acks(&buffer) {
                answered += 1;
                if errno != 0 && refused.is_none() {
                    let label = seq.checked_sub(2).and_then(|i| self.labels.get(i as usize));
                    refused = Some(BatchError::Refused {
                        what: label.map_or_else(|| format!("message {seq}"), describe),
                        error: io::Error::from_raw_os_error(errno),
                        text,
                    });
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }
}

/// An nf_tables netlink socket in the current network namespace, opened on first use and
/// kept open. Closing a socket whose transactions deleted elements makes the kernel wait
/// for an RCU grace period (~10 ms here, measured: docs/nftables.md), so a backend keeps
/// one for its life. A socket that failed is dropped and the next send opens a new one.
#[derive(Debug, Default)]
pub struct NetlinkSession {
    socket: std::sync::Mutex<Option<Socket>>,
}

impl NetlinkSession {
    /// Sends `batch` and waits for the kernel's answer to every message. `Ok` means the
    /// whole transaction was committed; an error means none of it was, and names the
    /// message the kernel refused.
    pub fn send(&self, batch: &ElementBatch) -> Result<(), BatchError> {
        if batch.is_empty() {
            return Ok(());
        }
        // A poisoned lock only means an earlier send panicked; the socket is dropped below.
        let mut guard = self.socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let mut socket = Socket::new(NETLINK_NETFILTER).map_err(BatchError::Socket)?;
            socket.bind_auto().map_err(BatchError::Socket)?;
            // Acks carry only the header of the message they answer, not all of it.
            let _ = socket.set_cap_ack(true);
            let _ = socket.set_ext_ack(true);
            *guard = Some(socket);
        }
        let result = guard.as_ref().map_or(Ok(()), |socket| batch.send_on(socket));
        if matches!(result, Err(BatchError::Socket(_))) {
            // Unread answers may be left on it: never reuse it.
            *guard = None;
        }
        result
    }
}

fn describe(label: &MessageLabel) -> String {
    let verb = match label.change {
        ElementChange::Add => "add element",
        ElementChange::Delete => "delete element",
    };
    format!("{verb} {} {} {{ {} ... }}", label.family.keyword(), label.set, label.first_key)
}

/// Why a batch did not apply.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The netlink socket could not be opened or used (no nf_tables netlink, no
    /// permission): the caller can fall back to the `nft` tool.
    #[error("the nf_tables netlink socket failed: {0}")]
    Socket(io::Error),
    /// The kernel refused a message; nothing of the batch was applied.
    #[error("the kernel refused `{what}`: {error}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        /// The refused message, as nft text.
        what: String,
        /// The kernel's error.
        error: io::Error,
        /// The kernel's extended-ack message, if it sent one.
        text: Option<String>,
    },
}

/// Writes one netlink message: header, `nfgenmsg`, attributes.
fn message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: [u8; 2], attributes: &[u8]) {
    let len = 16 + 4 + attributes.len();
    out.extend((len as u32).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(flags.to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend(res_id);
    out.extend_from_slice(attributes);
}

/// The `NLMSG_ERROR` answers in a receive buffer: (sequence, errno, extended-ack text).
fn acks(buffer: &[u8]) -> Vec<(u32, i32, Option<String>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buffer.len() {
        let word = |o: usize| u32::from_ne_bytes([buffer[o], buffer[o + 1], buffer[o + 2], buffer[o + 3]]);
        let len = word(at) as usize;
        let kind = u16::from_ne_bytes([buffer[at + 4], buffer[at + 5]]);
        let flags = u16::from_ne_bytes([buffer[at + 6], buffer[at + 7]]);
        if len < 16 || at + len > buffer.len() {
            break;
        }
        if kind == NLMSG_ERROR && len >= 36 {
            let seq = word(at + 8);
            let errno = -(word(at + 16) as i32);
            // With cap_ack the echoed request is only its 16-byte header; extended-ack
            // attributes follow when NLM_F_ACK_TLVS (0x200) is set.
            let text = (flags & 0x200 != 0).then(|| ack_message(&buffer[at + 36..at + len])).flatten();
            out.push((seq, errno, text));
        }
        at += len.next_multiple_of(4);
    }
    out
}

/// The `NLMSGERR_ATTR_MSG` string among extended-ack attributes.
fn ack_message(mut attributes: &[u8]) -> Option<String> {
    while attributes.len() >= 4 {
        let len = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if len < 4 || len > attributes.len() {
            return None;
        }
        if kind == 1 {
            let text = &attributes[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attributes = &attributes[len.next_multiple_of(4).min(attributes.len())..];
    }
    None
}

/// Netlink attributes being written; nests are opened and closed by position.
#[derive(Default)]
struct Attributes(Vec<u8>);

impl Attributes {
    fn header(&mut self, kind: u16, len: usize) {
        self.0.extend((len as u16).to_ne_bytes());
        self.0.extend(kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padding = self.0.len().next_multiple_of(4) - self.0.len();
        self.0.extend(std::iter::repeat_n(0, padding));
    }

    fn bytes(&mut self, kind: u16, value: &[u8]) {
        self.header(kind, 4 + value.len());
        self.0.extend_from_slice(value);
        self.pad();
    }

    fn string(&mut self, kind: u16, value: &str) {
        self.header(kind, 4 + value.len() + 1);
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
        self.pad();
    }

    /// Starts a nested attribute; returns where its header is, for [`Attributes::close`].
    fn open(&mut self, kind: u16) -> usize {
        let at = self.0.len();
        self.header(kind | NLA_F_NESTED, 0);
        at
    }

    fn close(&mut self, at: usize) {
        let len = (self.0.len() - at) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{ElementData, ElementLayout, Field};

    #[test]
    fn a_batch_is_begin_messages_end_with_counted_sequences() {
        let layout = ElementLayout::new(&[Field::Ipv4Addr, Field::InetProto, Field::InetService], ElementData::Verdict);
        let element = layout.encode("10.96.0.1 . tcp . 80", "goto svc-A").unwrap();
        let mut batch = ElementBatch::new();
        batch.push(
            ElementChange::Add,
            TableFamily::Ip,
            "kube-ferry",
            "service-ips",
            std::slice::from_ref(&element),
            "10.96.0.1",
        );
        batch.push(ElementChange::Delete, TableFamily::Ip, "kube-ferry", "service-ips", &[element], "10.96.0.1");
        let wire = batch.wire();
        assert_eq!(wire.len(), batch.len_bytes());
        let mut at = 0;
        let mut seen = Vec::new();
        while at < wire.len() {
            let len = u32::from_ne_bytes(wire[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(wire[at + 4..at + 6].try_into().unwrap());
            let seq = u32::from_ne_bytes(wire[at + 8..at + 12].try_into().unwrap());
            seen.push((kind, seq, wire[at + 16]));
            at += len;
        }
        assert_eq!(at, wire.len(), "lengths add up");
        assert_eq!(seen, [(16, 1, 0), (0x0a0c, 2, 2), (0x0a0e, 3, 2), (17, 4, 0)]);
    }

    #[test]
    fn attributes_nest_with_their_lengths_and_padding() {
        let mut a = Attributes::default();
        let outer = a.open(3);
        a.string(1, "ab");
        a.bytes(2, &[1, 2, 3, 4, 5]);
        a.close(outer);
        // outer header 4 + "ab\0" (4 + 3, padded to 8) + 5 bytes (4 + 5, padded to 12)
        assert_eq!(a.0.len(), 24);
        assert_eq!(u16::from_ne_bytes([a.0[0], a.0[1]]), 24);
        assert_eq!(u16::from_ne_bytes([a.0[2], a.0[3]]), 3 | NLA_F_NESTED);
        assert_eq!(u16::from_ne_bytes([a.0[4], a.0[5]]), 7, "a string's length counts its NUL, not the padding");
        assert_eq!(&a.0[8..11], b"ab\0");
    }

    #[test]
    fn acks_are_read_with_their_errors_and_messages() {
        let mut buffer = Vec::new();
        for (seq, errno) in [(2u32, 0i32), (3, -2)] {
            let flags: u16 = if errno != 0 { 0x100 | 0x200 } else { 0x100 };
            let text: &[u8] = b"no such set\0";
            let attrs = if errno != 0 { 4 + text.len() } else { 0 };
            let len = 36 + attrs.next_multiple_of(4);
            buffer.extend((len as u32).to_ne_bytes());
            buffer.extend(NLMSG_ERROR.to_ne_bytes());
            buffer.extend(flags.to_ne_bytes());
            buffer.extend(seq.to_ne_bytes());
            buffer.extend(0u32.to_ne_bytes());
            buffer.extend(errno.to_ne_bytes());
            buffer.extend([0u8; 16]);
            if errno != 0 {
                buffer.extend(((4 + text.len()) as u16).to_ne_bytes());
                buffer.extend(1u16.to_ne_bytes());
                buffer.extend(text);
                buffer.resize(buffer.len().next_multiple_of(4), 0);
            }
        }
        assert_eq!(acks(&buffer), [(2, 0, None), (3, 2, Some("no such set".into()))]);
    }
}
