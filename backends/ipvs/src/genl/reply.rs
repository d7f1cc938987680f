//! Netlink messages received for a request, classified without a socket so the
//! handling of ACKs, errors and dump ends is unit tested from kernel-like bytes
//! (`reply/tests.rs`).

use neli::nl::{NlPayload, Nlmsghdr};
use neli::types::Buffer;

use super::decode;
use super::encode::GenlMsg;
use super::IpvsError;

/// `NLMSG_DONE`, the end of a dump.
const NLMSG_DONE: u16 = 3;

/// Whether more messages belong to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep reading.
    More,
    /// The ACK or the end of the dump arrived: the request is complete.
    Finished,
}

/// Why a request failed: the kernel's refusal (a positive errno) or anything else.
#[derive(Debug)]
pub(crate) enum Failure {
    Kernel(i32),
    Client(IpvsError),
}

impl From<IpvsError> for Failure {
    fn from(e: IpvsError) -> Failure {
        Failure::Client(e)
    }
}

/// Takes one received message for the request with sequence number `seq`: a reply is
/// decoded into `replies`, an ACK or `NLMSG_DONE` finishes, an error (also one carried by
/// `NLMSG_DONE` at the end of a failed dump) is the kernel's errno. Messages of other
/// sequence numbers (stale answers) are ignored.
pub(crate) fn absorb(
    message: &Nlmsghdr<u16, Buffer>,
    seq: u32,
    command: &str,
    replies: &mut Vec<GenlMsg>,
) -> Result<Step, Failure> {
    if *message.nl_seq() != seq {
        tracing::debug!(seq = *message.nl_seq(), expected = seq, "ignoring a stale netlink message");
        return Ok(Step::More);
    }
    let done = *message.nl_type() == NLMSG_DONE;
    match message.nl_payload() {
        NlPayload::Ack(_) => Ok(Step::Finished),
        NlPayload::Err(e) => Err(Failure::Kernel(e.error().saturating_abs())),
        NlPayload::DumpExtAck(e) if *e.error() != 0 => Err(Failure::Kernel(e.error().saturating_abs())),
        _ if done => Ok(Step::Finished),
        NlPayload::Payload(bytes) => {
            let genl = decode::genl_message(bytes.as_ref())
                .map_err(|e| IpvsError::malformed(command, format!("generic netlink message: {e}")))?;
            replies.push(genl);
            Ok(Step::More)
        }
        _ => Ok(Step::More),
    }
}

#[cfg(test)]
mod tests;
