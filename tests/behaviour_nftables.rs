//! The behaviour suite for `--mode nftables`.

mod behaviour;

use behaviour::suite;

#[test]
fn b7_b8_b9_b14_b20_b21_b22_clusterip_nodeport_external_ip_and_source_addresses() {
    suite::clusterip_nodeport_external_ip_and_source_addresses("nftables");
}

#[test]
fn b7_b14_b19_b22_cluster_ip_only_service() {
    suite::cluster_ip_only_service("nftables");
}

#[test]
fn b4_dual_stack() {
    suite::dual_stack("nftables");
}

#[test]
fn b11_b19_wrong_ports_and_services_without_endpoints_are_refused() {
    suite::wrong_ports_and_services_without_endpoints_are_refused("nftables");
}

#[test]
fn b16_b17_local_traffic_policies() {
    suite::local_traffic_policies("nftables");
}

#[test]
fn b13_terminating_endpoints_are_a_fallback() {
    suite::terminating_endpoints_are_a_fallback("nftables");
}

#[test]
fn b15_client_ip_affinity() {
    suite::client_ip_affinity("nftables");
}

#[test]
fn b9_b10_load_balancer_ips_and_source_ranges() {
    suite::load_balancer_ips_and_source_ranges("nftables");
}

#[test]
fn b23_masquerade_without_cluster_cidr_and_masquerade_all() {
    suite::masquerade_without_cluster_cidr_and_masquerade_all("nftables");
}

#[test]
fn b24_changes_reach_the_kernel() {
    suite::changes_reach_the_kernel("nftables");
}

#[test]
fn b25_stale_udp_flows_are_cleared() {
    suite::stale_udp_flows_are_cleared("nftables");
}

#[test]
fn b26_b27_b28_restart_foreign_rules_and_cleanup() {
    suite::restart_foreign_rules_and_cleanup("nftables");
}

#[test]
fn b18_topology_hints() {
    suite::topology_hints("nftables");
}

#[test]
fn cross_node_endpoints_over_vxlan() {
    suite::cross_node_endpoints("nftables", ferry_netlab::Overlay::Vxlan);
}

#[test]
fn cross_node_endpoints_over_host_gw() {
    suite::cross_node_endpoints("nftables", ferry_netlab::Overlay::HostGw);
}

#[test]
fn b26_restart_adopts_the_table() {
    suite::restart_adopts_the_table("nftables");
}

#[test]
fn b5_b8_nodeport_addresses_and_protocols_on_one_port() {
    suite::nodeport_addresses_and_protocols_on_one_port("nftables");
}

#[test]
fn full_resync_repairs_drift() {
    suite::full_resync_repairs_drift("nftables");
}

#[test]
fn b12_localhost_node_ports_with_the_userspace_companion() {
    suite::localhost_node_ports("nftables", &["--localhost-nodeports"], &[]);
}

#[test]
fn conntrack_sysctls_are_set() {
    suite::conntrack_sysctls_are_set("nftables");
}

#[test]
fn b32_status_shows_what_traffic_confirms() {
    suite::status_shows_what_traffic_confirms("nftables");
}

#[test]
fn b28_switching_from_iptables_removes_its_rules() {
    suite::switching_mode_removes_the_old_rules("nftables", "iptables");
}

#[test]
fn b20_b22_detect_local_by_bridge_interface() {
    suite::detect_local_by_bridge_interface("nftables");
}

#[test]
fn b20_b22_detect_local_by_node_cidr() {
    suite::detect_local_by_node_cidr("nftables");
}

/// `--mode ipvs` on this kernel, which has no IPVS: kube-ferry says so and falls back to
/// nftables (as kube-proxy falls back), and the services work.
#[test]
fn ipvs_without_ipvs_falls_back_to_nftables() {
    if ferry_netlab::features::ipvs_missing().is_none() {
        eprintln!("ipvs_without_ipvs_falls_back_to_nftables: NOT RUN: this kernel has IPVS, so there is no fallback to see");
        return;
    }
    let mut lab = behaviour::ProxyLab::single_node("nftables", 1);
    lab.write("web.yaml", &suite::web(&lab, &[0]));
    lab.start_proxy_with_flags(&["--mode", "ipvs"], &["--cluster-cidr", behaviour::CLUSTER_CIDR]);
    let vip = behaviour::sa("10.96.0.10:80");
    lab.until("the service", || lab.ask(lab.client_ns(), ferry_netlab::Proto::Tcp, vip), Result::is_ok).unwrap();
    let log = lab.proxy_log();
    assert!(log.contains("this kernel has no IPVS; falling back to nftables"), "{log}");
    assert!(lab.nft(&["list", "table", "ip", "kube-ferry"]).contains("10.96.0.10"), "the nftables table is programmed");
}
