//! Whole datagrams as the kernel sends them (dump parts, `NLMSG_DONE`, ACK, error with
//! the echoed request), parsed by neli and classified by `absorb`.

use std::io::Cursor;

use neli::FromBytes;

use super::*;
use crate::genl::test_bytes::{genl, nest, nlmsg, tlv};
use crate::genl::uapi::*;

const FAMILY: u16 = 0x1b;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSG_ERROR: u16 = 2;

/// Feeds every message of a datagram to `absorb` until it finishes or fails.
fn run(datagram: &[u8], seq: u32) -> (Result<Step, Failure>, Vec<GenlMsg>) {
    let mut cursor = Cursor::new(datagram);
    let mut replies = Vec::new();
    let mut last = Ok(Step::More);
    while (cursor.position() as usize) < datagram.len() {
        let message = Nlmsghdr::<u16, Buffer>::from_bytes(&mut cursor).expect("kernel-like bytes parse");
        last = absorb(&message, seq, "TEST", &mut replies);
        if !matches!(last, Ok(Step::More)) {
            break;
        }
    }
    (last, replies)
}

fn dest_entry(weight: u32) -> Vec<u8> {
    let attrs = nest(
        IPVS_CMD_ATTR_DEST,
        &[
            tlv(IPVS_DEST_ATTR_ADDR, &[198, 51, 100, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            tlv(IPVS_DEST_ATTR_PORT, &8080u16.to_be_bytes()),
            tlv(IPVS_DEST_ATTR_WEIGHT, &weight.to_ne_bytes()),
        ],
    );
    genl(IPVS_CMD_NEW_DEST, 1, &[attrs])
}

#[test]
fn b_ipvs_dump_collects_multipart_entries_until_done() {
    let datagram = [
        nlmsg(FAMILY, NLM_F_MULTI, 9, &dest_entry(1)),
        nlmsg(FAMILY, NLM_F_MULTI, 9, &dest_entry(2)),
        nlmsg(3, NLM_F_MULTI, 9, &0i32.to_ne_bytes()), // NLMSG_DONE, dump result 0
    ]
    .concat();
    let (step, replies) = run(&datagram, 9);
    assert!(matches!(step, Ok(Step::Finished)), "{step:?}");
    let weights: Vec<u32> =
        replies.iter().map(|r| crate::genl::decode::real_server(r, AF_INET).unwrap().weight).collect();
    assert_eq!(weights, [1, 2]);
}

#[test]
fn b_ipvs_a_dump_split_over_datagrams_continues_and_an_empty_one_finishes() {
    let (step, replies) = run(&nlmsg(FAMILY, NLM_F_MULTI, 9, &dest_entry(1)), 9);
    assert!(matches!(step, Ok(Step::More)) && replies.len() == 1);
    let (step, replies) = run(&nlmsg(3, NLM_F_MULTI, 9, &0i32.to_ne_bytes()), 9);
    assert!(matches!(step, Ok(Step::Finished)) && replies.is_empty());
}

#[test]
fn b_ipvs_a_kernel_error_echoing_the_request_is_its_errno() {
    let request = genl(IPVS_CMD_NEW_SERVICE, 1, &[nest(IPVS_CMD_ATTR_SERVICE, &[tlv(1, &AF_INET.to_ne_bytes())])]);
    let echoed = nlmsg(FAMILY, NLM_F_REQUEST | NLM_F_ACK, 5, &request);
    let error = nlmsg(NLMSG_ERROR, 0, 5, &[&(-libc::EEXIST).to_ne_bytes()[..], &echoed].concat());
    let (step, replies) = run(&error, 5);
    assert!(matches!(step, Err(Failure::Kernel(libc::EEXIST))), "{step:?}");
    assert!(replies.is_empty());
}

#[test]
fn b_ipvs_an_ack_finishes_and_a_get_reply_before_it_is_kept() {
    let header_only = nlmsg(FAMILY, NLM_F_REQUEST | NLM_F_ACK, 6, &[])[..16].to_vec();
    let ack = nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 6, &[&0i32.to_ne_bytes()[..], &header_only].concat());
    let config = genl(IPVS_CMD_SET_CONFIG, 1, &[tlv(IPVS_CMD_ATTR_TIMEOUT_TCP, &900u32.to_ne_bytes())]);
    let datagram = [nlmsg(FAMILY, 0, 6, &config), ack].concat();
    let (step, replies) = run(&datagram, 6);
    assert!(matches!(step, Ok(Step::Finished)), "{step:?}");
    assert_eq!(crate::genl::decode::timeouts(&replies[0]).unwrap().tcp, 900);
}

#[test]
fn b_ipvs_a_failed_dump_reports_the_errno_carried_by_done() {
    let done = nlmsg(3, NLM_F_MULTI, 9, &(-libc::EINVAL).to_ne_bytes());
    assert!(matches!(run(&done, 9).0, Err(Failure::Kernel(libc::EINVAL))));
}

#[test]
fn b_ipvs_messages_of_another_sequence_number_are_ignored() {
    let echoed = nlmsg(FAMILY, NLM_F_REQUEST | NLM_F_ACK, 4, &genl(IPVS_CMD_DEL_SERVICE, 1, &[]));
    let stale_error = nlmsg(NLMSG_ERROR, 0, 4, &[&(-libc::ESRCH).to_ne_bytes()[..], &echoed].concat());
    let (step, replies) = run(&[stale_error, nlmsg(3, NLM_F_MULTI, 9, &0i32.to_ne_bytes())].concat(), 9);
    assert!(matches!(step, Ok(Step::Finished)), "{step:?}");
    assert!(replies.is_empty());
}
