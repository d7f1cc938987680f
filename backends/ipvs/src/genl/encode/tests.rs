//! Exact bytes of the generic netlink payload (genlmsghdr + attributes) of each request,
//! written out by hand from ip_vs.h and the kernel's attribute policy. Netlink integers
//! are host order; these expectations are for little-endian hosts (amd64, arm64).
#![cfg(target_endian = "little")]

use std::io::Cursor;

use neli::ToBytes;

use super::*;
use crate::genl::{Scheduler, ServiceFlags};

fn bytes(msg: &GenlMsg) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    msg.to_bytes(&mut out).expect("serializing to a Vec cannot fail");
    out.into_inner()
}

fn v4_tcp_80() -> VirtualService {
    VirtualService::new("198.51.100.10".parse().unwrap(), Protocol::Tcp, 80)
}

/// The identity part of IPVS_CMD_ATTR_SERVICE for TCP 198.51.100.10:80 (44 bytes).
const V4_TCP_80_IDENTITY: [u8; 44] = [
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, // AF (u16) = AF_INET, 2 bytes padding
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, // PROTOCOL (u16) = 6
    0x14, 0x00, 0x03, 0x00, 198, 51, 100, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ADDR, 16 bytes
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, // PORT = 80, big-endian
];

#[test]
fn b_ipvs_new_ipv4_tcp_service_with_rr_is_the_exact_kernel_layout() {
    let mut expected = vec![
        0x01, 0x01, 0x00, 0x00, // cmd NEW_SERVICE, version 1, reserved
        0x54, 0x00, 0x01, 0x80, // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, length 84
    ];
    expected.extend_from_slice(&V4_TCP_80_IDENTITY);
    expected.extend_from_slice(&[
        0x07, 0x00, 0x06, 0x00, b'r', b'r', 0x00, 0x00, // SCHED_NAME "rr\0", 1 byte padding
        0x0c, 0x00, 0x07, 0x00, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // FLAGS {flags 0, mask ~0}
        0x08, 0x00, 0x08, 0x00, 0, 0, 0, 0, // TIMEOUT 0
        0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, // NETMASK 255.255.255.255
    ]);
    assert_eq!(bytes(&new_service(&v4_tcp_80()).unwrap()), expected);
}

#[test]
fn b_ipvs_ipv6_service_with_persistence_sets_the_flag_timeout_and_prefix_128() {
    let svc = VirtualService {
        scheduler: Scheduler::SourceHash,
        persistence: Some(10800),
        ..VirtualService::new("2001:db8::10".parse().unwrap(), Protocol::Udp, 53)
    };
    let expected: Vec<u8> = [
        &[0x01, 0x01, 0x00, 0x00][..],
        &[0x54, 0x00, 0x01, 0x80],
        &[0x06, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00], // AF_INET6 = 10
        &[0x06, 0x00, 0x02, 0x00, 0x11, 0x00, 0x00, 0x00], // UDP = 17
        &[0x14, 0x00, 0x03, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
        &[0x06, 0x00, 0x04, 0x00, 0x00, 0x35, 0x00, 0x00], // port 53
        &[0x07, 0x00, 0x06, 0x00, b's', b'h', 0x00, 0x00],
        &[0x0c, 0x00, 0x07, 0x00, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // IP_VS_SVC_F_PERSISTENT
        &[0x08, 0x00, 0x08, 0x00, 0x30, 0x2a, 0x00, 0x00],                // 10800 s
        &[0x08, 0x00, 0x09, 0x00, 0x80, 0x00, 0x00, 0x00],                // prefix length 128
    ]
    .concat();
    assert_eq!(bytes(&new_service(&svc).unwrap()), expected);
}

#[test]
fn b_ipvs_set_service_differs_from_new_only_in_the_command_and_keeps_other_flags() {
    let svc = VirtualService { flags: ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT, ..v4_tcp_80() };
    let new = bytes(&new_service(&svc).unwrap());
    let set = bytes(&set_service(&svc).unwrap());
    assert_eq!(set[0], 2, "IPVS_CMD_SET_SERVICE");
    assert_eq!(set[1..], new[1..]);
    // FLAGS payload: sh-fallback | sh-port = 0x18, mask ~0
    let flags_at = 4 + 4 + 44 + 8;
    assert_eq!(set[flags_at..flags_at + 12], [0x0c, 0x00, 0x07, 0x00, 0x18, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn b_ipvs_delete_service_carries_only_the_identity() {
    let mut expected = vec![0x03, 0x01, 0x00, 0x00, 0x30, 0x00, 0x01, 0x80];
    expected.extend_from_slice(&V4_TCP_80_IDENTITY);
    // Scheduler and persistence do not matter for the identity.
    let svc = VirtualService { persistence: Some(60), scheduler: Scheduler::MaglevHash, ..v4_tcp_80() };
    assert_eq!(bytes(&del_service(&svc).unwrap()), expected);
}

#[test]
fn b_ipvs_new_real_server_is_masquerade_with_weight_and_family() {
    let rs = RealServer::new("198.51.100.20".parse().unwrap(), 8080, 5);
    let mut expected = vec![0x05, 0x01, 0x00, 0x00, 0x30, 0x00, 0x01, 0x80];
    expected.extend_from_slice(&V4_TCP_80_IDENTITY);
    expected.extend_from_slice(&[
        0x48, 0x00, 0x02, 0x80, // IPVS_CMD_ATTR_DEST | NLA_F_NESTED, length 72
        0x14, 0x00, 0x01, 0x00, 198, 51, 100, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ADDR
        0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0x00, 0x00, // PORT 8080 big-endian
        0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, // ADDR_FAMILY AF_INET
        0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, // FWD_METHOD IP_VS_CONN_F_MASQ
        0x08, 0x00, 0x04, 0x00, 0x05, 0x00, 0x00, 0x00, // WEIGHT 5
        0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, // U_THRESH 0 (no limit)
        0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, // L_THRESH 0
    ]);
    assert_eq!(bytes(&new_dest(&v4_tcp_80(), &rs).unwrap()), expected);
    let set = bytes(&set_dest(&v4_tcp_80(), &rs).unwrap());
    assert_eq!((set[0], &set[1..]), (6, &expected[1..]), "SET_DEST = NEW_DEST with command 6");
}

#[test]
fn b_ipvs_delete_real_server_carries_service_and_server_identity() {
    let rs = RealServer { weight: 9, ..RealServer::new("198.51.100.20".parse().unwrap(), 8080, 1) };
    let mut expected = vec![0x07, 0x01, 0x00, 0x00, 0x30, 0x00, 0x01, 0x80];
    expected.extend_from_slice(&V4_TCP_80_IDENTITY);
    expected.extend_from_slice(&[
        0x28, 0x00, 0x02, 0x80, // DEST, length 40
        0x14, 0x00, 0x01, 0x00, 198, 51, 100, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x06, 0x00, 0x02, 0x00, 0x1f,
        0x90, 0x00, 0x00, 0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00,
    ]);
    assert_eq!(bytes(&del_dest(&v4_tcp_80(), &rs).unwrap()), expected);
}

#[test]
fn b_ipvs_dumps_config_flush_and_family_lookup() {
    assert_eq!(bytes(&get_services().unwrap()), [0x04, 0x01, 0x00, 0x00]);
    let mut dests = vec![0x08, 0x01, 0x00, 0x00, 0x30, 0x00, 0x01, 0x80];
    dests.extend_from_slice(&V4_TCP_80_IDENTITY);
    assert_eq!(bytes(&get_dests(&v4_tcp_80()).unwrap()), dests);
    assert_eq!(
        bytes(&set_config(&Timeouts { tcp: 900, tcp_fin: 120, udp: 0 }).unwrap()),
        [
            0x0c, 0x01, 0x00, 0x00, //
            0x08, 0x00, 0x04, 0x00, 0x84, 0x03, 0x00, 0x00, // TIMEOUT_TCP 900
            0x08, 0x00, 0x05, 0x00, 0x78, 0x00, 0x00, 0x00, // TIMEOUT_TCP_FIN 120
            0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, // TIMEOUT_UDP 0 = unchanged
        ]
    );
    assert_eq!(bytes(&get_config().unwrap()), [0x0d, 0x01, 0x00, 0x00]);
    assert_eq!(bytes(&flush().unwrap()), [0x11, 0x01, 0x00, 0x00]);
    assert_eq!(
        bytes(&get_family("IPVS").unwrap()),
        [0x03, 0x02, 0x00, 0x00, 0x09, 0x00, 0x02, 0x00, b'I', b'P', b'V', b'S', 0x00, 0x00, 0x00, 0x00]
    );
}

#[test]
fn b_ipvs_sctp_and_ipv6_real_server_encode_their_numbers() {
    let svc = VirtualService::new("2001:db8::10".parse().unwrap(), Protocol::Sctp, 9);
    let out = bytes(&del_service(&svc).unwrap());
    assert_eq!(out[20..24], [0x84, 0x00, 0x00, 0x00], "SCTP = 132 as u16 + padding");
    let rs = RealServer::new("2001:db8::20".parse().unwrap(), 443, 1);
    let out = bytes(&del_dest(&svc, &rs).unwrap());
    let dest = &out[4 + 48..];
    assert_eq!(dest[4..8], [0x14, 0x00, 0x01, 0x00]);
    assert_eq!(dest[8..24], "2001:db8::20".parse::<std::net::Ipv6Addr>().unwrap().octets());
    assert_eq!(dest[28..32], [0x01, 0xbb, 0x00, 0x00], "port 443 big-endian");
    assert_eq!(dest[32..40], [0x06, 0x00, 0x0b, 0x00, 0x0a, 0x00, 0x00, 0x00], "ADDR_FAMILY AF_INET6");
}
