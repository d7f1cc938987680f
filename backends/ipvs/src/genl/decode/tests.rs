//! Dump replies as the kernel (6.1 `ip_vs_genl_fill_service` / `_fill_dest`) sends them,
//! including the attributes the client skips.

use std::net::IpAddr;

use super::*;
use crate::genl::test_bytes::{genl, nest, stats, tlv};

fn addr16(a: &str) -> Vec<u8> {
    match a.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => [&v4.octets()[..], &[0u8; 12]].concat(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn flags(flags: u32) -> Vec<u8> {
    [flags.to_ne_bytes(), u32::MAX.to_ne_bytes()].concat()
}

fn parse(bytes: &[u8]) -> GenlMsg {
    genl_message(bytes).expect("kernel-like bytes parse")
}

/// A service entry of a GET_SERVICE dump (command NEW_SERVICE, as the kernel labels them).
fn service_entry(children: &[Vec<u8>]) -> GenlMsg {
    parse(&genl(IPVS_CMD_NEW_SERVICE, 1, &[nest(IPVS_CMD_ATTR_SERVICE, children)]))
}

#[test]
fn b_ipvs_dumped_ipv4_service_strips_hashed_and_skips_stats() {
    let msg = service_entry(&[
        tlv(1, &AF_INET.to_ne_bytes()),
        tlv(2, &IPPROTO_TCP.to_ne_bytes()),
        tlv(3, &addr16("198.51.100.10")),
        tlv(4, &80u16.to_be_bytes()),
        tlv(6, b"rr\0"),
        tlv(7, &flags(IP_VS_SVC_F_HASHED)),
        tlv(8, &0u32.to_ne_bytes()),
        tlv(9, &u32::MAX.to_be_bytes()),
        stats(10),
        stats(12),
    ]);
    let svc = service(&msg).unwrap().expect("a TCP service");
    assert_eq!(svc, VirtualService::new("198.51.100.10".parse().unwrap(), Protocol::Tcp, 80));
    assert_eq!(svc.flags, ServiceFlags::NONE, "HASHED is the kernel's, not a setting");
}

#[test]
fn b_ipvs_dumped_ipv6_persistent_service_reads_timeout_and_flags() {
    let msg = service_entry(&[
        tlv(1, &AF_INET6.to_ne_bytes()),
        tlv(2, &IPPROTO_UDP.to_ne_bytes()),
        tlv(3, &addr16("2001:db8::10")),
        tlv(4, &53u16.to_be_bytes()),
        tlv(6, b"sh\0"),
        tlv(11, b"sip\0"), // PE_NAME, skipped
        tlv(7, &flags(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED | 0x18)),
        tlv(8, &10800u32.to_ne_bytes()),
        tlv(9, &128u32.to_ne_bytes()),
        stats(10),
        stats(12),
    ]);
    let svc = service(&msg).unwrap().expect("a UDP service");
    assert_eq!(svc.address, "2001:db8::10".parse::<IpAddr>().unwrap());
    assert_eq!((svc.protocol, svc.port), (Protocol::Udp, 53));
    assert_eq!(svc.scheduler, Scheduler::SourceHash);
    assert_eq!(svc.persistence, Some(10800));
    assert_eq!(svc.flags, ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT);
}

#[test]
fn b_ipvs_fwmark_and_unknown_protocol_services_are_skipped_not_errors() {
    let fwmark = service_entry(&[
        tlv(1, &AF_INET.to_ne_bytes()),
        tlv(5, &7u32.to_ne_bytes()),
        tlv(6, b"rr\0"),
        tlv(7, &flags(IP_VS_SVC_F_HASHED)),
        tlv(8, &0u32.to_ne_bytes()),
        tlv(9, &u32::MAX.to_be_bytes()),
    ]);
    assert_eq!(service(&fwmark), Ok(None));
    let icmp = service_entry(&[
        tlv(1, &AF_INET.to_ne_bytes()),
        tlv(2, &1u16.to_ne_bytes()),
        tlv(3, &addr16("198.51.100.1")),
        tlv(4, &0u16.to_be_bytes()),
        tlv(6, b"rr\0"),
    ]);
    assert_eq!(service(&icmp), Ok(None));
}

#[test]
fn b_ipvs_malformed_service_entries_are_errors_that_say_what_is_wrong() {
    let no_addr = service_entry(&[tlv(1, &AF_INET.to_ne_bytes()), tlv(2, &IPPROTO_TCP.to_ne_bytes())]);
    assert_eq!(service(&no_addr), Err("service without ADDR".to_string()));
    let short_af = service_entry(&[tlv(1, &[2])]);
    assert_eq!(service(&short_af), Err("service AF: 1 bytes, expected 2".to_string()));
    let empty = parse(&genl(IPVS_CMD_NEW_SERVICE, 1, &[]));
    assert!(service(&empty).unwrap_err().contains("no attribute 1"));
}

#[test]
fn b_ipvs_dumped_real_server_reads_weight_and_connection_counters() {
    let msg = parse(&genl(
        IPVS_CMD_NEW_DEST,
        1,
        &[nest(
            IPVS_CMD_ATTR_DEST,
            &[
                tlv(1, &addr16("198.51.100.20")),
                tlv(2, &8080u16.to_be_bytes()),
                tlv(3, &IP_VS_CONN_F_MASQ.to_ne_bytes()),
                tlv(4, &5u32.to_ne_bytes()),
                tlv(13, &[0]),                   // TUN_TYPE (u8: 5 bytes + 3 padding)
                tlv(14, &0u16.to_be_bytes()),    // TUN_PORT
                tlv(15, &0u16.to_ne_bytes()),    // TUN_FLAGS
                tlv(5, &0u32.to_ne_bytes()),     // U_THRESH
                tlv(6, &0u32.to_ne_bytes()),     // L_THRESH
                tlv(7, &3u32.to_ne_bytes()),     // ACTIVE_CONNS
                tlv(8, &7u32.to_ne_bytes()),     // INACT_CONNS
                tlv(9, &1u32.to_ne_bytes()),     // PERSIST_CONNS
                tlv(11, &AF_INET.to_ne_bytes()), // ADDR_FAMILY
                stats(10),
                stats(12),
            ],
        )],
    ));
    let rs = real_server(&msg, AF_INET).unwrap();
    let mut expected = RealServer::new("198.51.100.20".parse().unwrap(), 8080, 5);
    (expected.active_connections, expected.inactive_connections, expected.persistent_connections) = (3, 7, 1);
    assert_eq!(rs, expected);
}

#[test]
fn b_ipvs_real_server_without_family_takes_the_services_and_reads_other_methods() {
    let msg = parse(&genl(
        IPVS_CMD_NEW_DEST,
        1,
        &[nest(
            IPVS_CMD_ATTR_DEST,
            &[
                tlv(1, &addr16("2001:db8::20")),
                tlv(2, &443u16.to_be_bytes()),
                tlv(3, &IP_VS_CONN_F_DROUTE.to_ne_bytes()),
                tlv(4, &0u32.to_ne_bytes()),
            ],
        )],
    ));
    let rs = real_server(&msg, AF_INET6).unwrap();
    assert_eq!((rs.address, rs.port, rs.weight), ("2001:db8::20".parse().unwrap(), 443, 0));
    assert_eq!(rs.forward, ForwardMethod::DirectRoute);
}

#[test]
fn b_ipvs_get_config_reply_reads_the_three_timeouts() {
    let msg = parse(&genl(
        IPVS_CMD_SET_CONFIG,
        1,
        &[tlv(4, &900u32.to_ne_bytes()), tlv(5, &120u32.to_ne_bytes()), tlv(6, &300u32.to_ne_bytes())],
    ));
    assert_eq!(timeouts(&msg), Ok(Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }));
}

#[test]
fn b_ipvs_controller_reply_gives_the_family_id() {
    let msg = parse(&genl(
        1, // CTRL_CMD_NEWFAMILY
        2,
        &[
            tlv(2, b"IPVS\0"),
            tlv(1, &0x1bu16.to_ne_bytes()),
            tlv(3, &1u32.to_ne_bytes()),
            tlv(4, &0u32.to_ne_bytes()),  // HDRSIZE
            tlv(5, &17u32.to_ne_bytes()), // MAXATTR
            nest(6, &[nest(1, &[tlv(1, &1u32.to_ne_bytes()), tlv(2, &0xau32.to_ne_bytes())])]), // OPS
        ],
    ));
    assert_eq!(family(&msg), Ok((0x1b, 1)));
}
