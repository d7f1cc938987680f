//! Virtual services printed as `ipvsadm -Ln` prints them, so `kube-ferry render --mode
//! ipvs` shows an operator exactly the lines they will see on the node.

use std::fmt::Write as _;

use crate::genl::{ForwardMethod, RealServer, VirtualService};

/// `addr:port`, IPv6 in brackets, as ipvsadm writes it.
fn socket(address: std::net::IpAddr, port: u16) -> String {
    match address {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn forward(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::Masquerade => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::DirectRoute => "Route",
        ForwardMethod::Other(_) => "?",
    }
}

/// The `ipvsadm -Ln` listing of `services` (in the order given) with their real servers:
/// the header, one line per service (`TCP  10.96.0.10:80 rr persistent 10800`), one per
/// real server (`  -> 10.244.1.5:8080             Masq    1      0          0`).
pub fn ipvsadm_listing<'a>(services: impl IntoIterator<Item = (&'a VirtualService, &'a [RealServer])>) -> String {
    let mut out = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    for (service, servers) in services {
        let _ = write!(out, "{}  {} {}", service.protocol, socket(service.address, service.port), service.scheduler.name());
        if let Some(timeout) = service.persistence {
            let _ = write!(out, " persistent {timeout}");
        }
        out.push('\n');
        for s in servers {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                socket(s.address, s.port),
                forward(s.forward),
                s.weight,
                s.active_connections,
                s.inactive_connections
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genl::Protocol;

    #[test]
    fn the_listing_reads_like_ipvsadm() {
        let mut svc = VirtualService::new("10.96.0.10".parse().unwrap(), Protocol::Tcp, 80);
        svc.persistence = Some(10800);
        let servers = [RealServer::new("10.244.1.5".parse().unwrap(), 8080, 1)];
        let v6 = VirtualService::new("fd00:10:96::10".parse().unwrap(), Protocol::Udp, 53);
        let text = ipvsadm_listing([(&svc, &servers[..]), (&v6, &[][..])]);
        assert_eq!(
            text.lines().skip(3).collect::<Vec<_>>(),
            [
                "TCP  10.96.0.10:80 rr persistent 10800",
                "  -> 10.244.1.5:8080              Masq    1      0          0         ",
                "UDP  [fd00:10:96::10]:53 rr",
            ]
        );
    }
}
