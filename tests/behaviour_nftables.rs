//! The behaviour suite for `--mode nftables`.

mod behaviour;

use behaviour::suite;

#[test]
fn b7_b8_b9_b14_b20_b21_b22_clusterip_nodeport_external_ip_and_source_addresses() {
    suite::clusterip_nodeport_external_ip_and_source_addresses("nftables");
}

#[test]
fn b11_b19_wrong_ports_and_services_without_endpoints_are_refused() {
    suite::wrong_ports_and_services_without_endpoints_are_refused("nftables");
}
