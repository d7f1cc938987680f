//! The behaviour suite for `--mode ipvs`. This machine's kernel has no IPVS: each test
//! says so loudly and does not run; `bash tests/vm/run-tests.sh` (CI) runs this file in a
//! VM booting Debian's kernel, where `FERRY_REQUIRE_IPVS=1` makes a missing IPVS a failure.
//!
//! Not run for IPVS, and why (docs/ipvs.md): B12 (localhost NodePorts: IPVS does not
//! serve 127.0.0.1, as upstream's IPVS mode does not); B17's "a pod of this node to a
//! Local external IP reaches every endpoint" (one virtual service has one set of real
//! servers: local ones).

mod behaviour;

use behaviour::suite;

/// Runs `$body` only where the kernel has IPVS.
macro_rules! ipvs_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if ferry_netlab::features::ipvs_or_say_why(stringify!($name)) {
                $body;
            }
        }
    };
}

ipvs_test!(b7_b8_b9_b14_b20_b21_b22_clusterip_nodeport_external_ip_and_source_addresses, suite::clusterip_nodeport_external_ip_and_source_addresses("ipvs"));
ipvs_test!(b7_b14_b19_b22_cluster_ip_only_service, suite::cluster_ip_only_service("ipvs"));
ipvs_test!(b4_dual_stack, suite::dual_stack("ipvs"));
ipvs_test!(b11_b19_wrong_ports_and_services_without_endpoints_are_refused, suite::wrong_ports_and_services_without_endpoints_are_refused("ipvs"));
ipvs_test!(b13_terminating_endpoints_are_a_fallback, suite::terminating_endpoints_are_a_fallback("ipvs"));
ipvs_test!(b15_client_ip_affinity, suite::client_ip_affinity("ipvs"));
ipvs_test!(b18_topology_hints, suite::topology_hints("ipvs"));
ipvs_test!(b9_b10_load_balancer_ips_and_source_ranges, suite::load_balancer_ips_and_source_ranges("ipvs"));
ipvs_test!(b23_masquerade_without_cluster_cidr_and_masquerade_all, suite::masquerade_without_cluster_cidr_and_masquerade_all("ipvs"));
ipvs_test!(b24_changes_reach_the_kernel, suite::changes_reach_the_kernel("ipvs"));
ipvs_test!(b25_stale_udp_flows_are_cleared, suite::stale_udp_flows_are_cleared("ipvs"));
ipvs_test!(b26_b27_b28_restart_foreign_rules_and_cleanup, suite::restart_foreign_rules_and_cleanup("ipvs"));
ipvs_test!(b26_restart_adopts_the_table, suite::restart_adopts_the_table("ipvs"));
ipvs_test!(full_resync_repairs_drift, suite::full_resync_repairs_drift("ipvs"));
ipvs_test!(b16_b17_local_traffic_policies, suite::local_traffic_policies("ipvs"));
ipvs_test!(cross_node_endpoints_over_vxlan, suite::cross_node_endpoints("ipvs", ferry_netlab::Overlay::Vxlan));
ipvs_test!(cross_node_endpoints_over_host_gw, suite::cross_node_endpoints("ipvs", ferry_netlab::Overlay::HostGw));
ipvs_test!(b5_b8_nodeport_addresses_and_protocols_on_one_port, suite::nodeport_addresses_and_protocols_on_one_port("ipvs"));
ipvs_test!(b32_status_shows_what_traffic_confirms, suite::status_shows_what_traffic_confirms("ipvs"));
ipvs_test!(b20_b22_detect_local_by_bridge_interface, suite::detect_local_by_bridge_interface("ipvs"));
ipvs_test!(ipvs_strict_arp_sets_the_arp_sysctls, {
    let mut lab = behaviour::ProxyLab::single_node("ipvs", 1);
    lab.write("web.yaml", &suite::web(&lab, &[0]));
    lab.start_proxy(&["--cluster-cidr", behaviour::CLUSTER_CIDR, "--ipvs-strict-arp"]);
    let read = |name: &str| lab.node_ns().exec("cat", [format!("/proc/sys/net/ipv4/conf/all/{name}")]).expect(name).trim().to_owned();
    assert_eq!((read("arp_ignore"), read("arp_announce")), ("1".to_owned(), "2".to_owned()));
    let listing = lab.ipvsadm(&["-Ln"]);
    assert!(listing.contains("TCP  10.96.0.10:80 rr"), "{listing}");
});
