//! The behaviour suite for `--mode iptables`, once per iptables variant: every test
//! runs for `iptables` (`--iptables-variant nft`, suffix `_nft_variant`) and for
//! `iptables-legacy` (`--iptables-variant legacy`, suffix `_legacy`).

mod behaviour;

use behaviour::suite;

#[test]
fn b7_b8_b9_b14_b20_b21_b22_clusterip_nodeport_external_ip_and_source_addresses_nft_variant() {
    suite::clusterip_nodeport_external_ip_and_source_addresses("iptables");
}

#[test]
fn b7_b8_b9_b14_b20_b21_b22_clusterip_nodeport_external_ip_and_source_addresses_legacy() {
    suite::clusterip_nodeport_external_ip_and_source_addresses("iptables-legacy");
}

#[test]
fn b7_b14_b19_b22_cluster_ip_only_service_nft_variant() {
    suite::cluster_ip_only_service("iptables");
}

#[test]
fn b7_b14_b19_b22_cluster_ip_only_service_legacy() {
    suite::cluster_ip_only_service("iptables-legacy");
}

#[test]
fn b4_dual_stack_nft_variant() {
    suite::dual_stack("iptables");
}

#[test]
fn b4_dual_stack_legacy() {
    suite::dual_stack("iptables-legacy");
}

#[test]
fn b11_b19_wrong_ports_and_services_without_endpoints_are_refused_nft_variant() {
    suite::wrong_ports_and_services_without_endpoints_are_refused("iptables");
}

#[test]
fn b11_b19_wrong_ports_and_services_without_endpoints_are_refused_legacy() {
    suite::wrong_ports_and_services_without_endpoints_are_refused("iptables-legacy");
}

#[test]
fn b16_b17_local_traffic_policies_nft_variant() {
    suite::local_traffic_policies("iptables");
}

#[test]
fn b16_b17_local_traffic_policies_legacy() {
    suite::local_traffic_policies("iptables-legacy");
}

#[test]
fn b13_terminating_endpoints_are_a_fallback_nft_variant() {
    suite::terminating_endpoints_are_a_fallback("iptables");
}

#[test]
fn b13_terminating_endpoints_are_a_fallback_legacy() {
    suite::terminating_endpoints_are_a_fallback("iptables-legacy");
}

#[test]
fn b15_client_ip_affinity_nft_variant() {
    suite::client_ip_affinity("iptables");
}

#[test]
fn b15_client_ip_affinity_legacy() {
    suite::client_ip_affinity("iptables-legacy");
}

#[test]
fn b9_b10_load_balancer_ips_and_source_ranges_nft_variant() {
    suite::load_balancer_ips_and_source_ranges("iptables");
}

#[test]
fn b9_b10_load_balancer_ips_and_source_ranges_legacy() {
    suite::load_balancer_ips_and_source_ranges("iptables-legacy");
}

#[test]
fn b23_masquerade_without_cluster_cidr_and_masquerade_all_nft_variant() {
    suite::masquerade_without_cluster_cidr_and_masquerade_all("iptables");
}

#[test]
fn b23_masquerade_without_cluster_cidr_and_masquerade_all_legacy() {
    suite::masquerade_without_cluster_cidr_and_masquerade_all("iptables-legacy");
}

#[test]
fn b24_changes_reach_the_kernel_nft_variant() {
    suite::changes_reach_the_kernel("iptables");
}

#[test]
fn b24_changes_reach_the_kernel_legacy() {
    suite::changes_reach_the_kernel("iptables-legacy");
}

#[test]
fn b25_stale_udp_flows_are_cleared_nft_variant() {
    suite::stale_udp_flows_are_cleared("iptables");
}

#[test]
fn b25_stale_udp_flows_are_cleared_legacy() {
    suite::stale_udp_flows_are_cleared("iptables-legacy");
}

#[test]
fn b26_b27_b28_restart_foreign_rules_and_cleanup_nft_variant() {
    suite::restart_foreign_rules_and_cleanup("iptables");
}

#[test]
fn b26_b27_b28_restart_foreign_rules_and_cleanup_legacy() {
    suite::restart_foreign_rules_and_cleanup("iptables-legacy");
}

#[test]
fn b18_topology_hints_nft_variant() {
    suite::topology_hints("iptables");
}

#[test]
fn b18_topology_hints_legacy() {
    suite::topology_hints("iptables-legacy");
}

#[test]
fn cross_node_endpoints_over_vxlan_nft_variant() {
    suite::cross_node_endpoints("iptables", ferry_netlab::Overlay::Vxlan);
}

#[test]
fn cross_node_endpoints_over_vxlan_legacy() {
    suite::cross_node_endpoints("iptables-legacy", ferry_netlab::Overlay::Vxlan);
}

#[test]
fn cross_node_endpoints_over_host_gw_nft_variant() {
    suite::cross_node_endpoints("iptables", ferry_netlab::Overlay::HostGw);
}

#[test]
fn cross_node_endpoints_over_host_gw_legacy() {
    suite::cross_node_endpoints("iptables-legacy", ferry_netlab::Overlay::HostGw);
}

#[test]
fn b26_restart_adopts_the_table_nft_variant() {
    suite::restart_adopts_the_table("iptables");
}

#[test]
fn b26_restart_adopts_the_table_legacy() {
    suite::restart_adopts_the_table("iptables-legacy");
}

#[test]
fn b5_b8_nodeport_addresses_and_protocols_on_one_port_nft_variant() {
    suite::nodeport_addresses_and_protocols_on_one_port("iptables");
}

#[test]
fn b5_b8_nodeport_addresses_and_protocols_on_one_port_legacy() {
    suite::nodeport_addresses_and_protocols_on_one_port("iptables-legacy");
}

#[test]
fn full_resync_repairs_drift_nft_variant() {
    suite::full_resync_repairs_drift("iptables");
}

#[test]
fn full_resync_repairs_drift_legacy() {
    suite::full_resync_repairs_drift("iptables-legacy");
}

#[test]
fn b12_localhost_node_ports_nft_variant() {
    suite::localhost_node_ports("iptables", &[], &["--iptables-localhost-nodeports", "false"]);
}

#[test]
fn b12_localhost_node_ports_legacy() {
    suite::localhost_node_ports("iptables-legacy", &[], &["--iptables-localhost-nodeports", "false"]);
}

#[test]
fn b32_status_shows_what_traffic_confirms_nft_variant() {
    suite::status_shows_what_traffic_confirms("iptables");
}

#[test]
fn b32_status_shows_what_traffic_confirms_legacy() {
    suite::status_shows_what_traffic_confirms("iptables-legacy");
}

#[test]
fn b28_switching_from_nftables_removes_its_rules() {
    suite::switching_mode_removes_the_old_rules("iptables-legacy", "nftables");
}

#[test]
fn b20_b22_detect_local_by_bridge_interface() {
    suite::detect_local_by_bridge_interface("iptables");
}

#[test]
fn b20_b22_detect_local_by_node_cidr() {
    suite::detect_local_by_node_cidr("iptables-legacy");
}
