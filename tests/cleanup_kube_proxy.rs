//! `kube-ferry cleanup --kube-proxy` in a namespace holding a hand-made kube-proxy-style
//! ruleset (both iptables variants and its nftables table) next to the kubelet's chain and
//! someone else's rules: kube-proxy's go, the rest stays. Needs root (CI has it).

use std::io::Write;
use std::process::Stdio;

use ferry_netlab::{Lab, Netns};

const KUBE_PROXY_IPTABLES: &str = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-ABCDEF - [0:0]\n:KUBE-SEP-123456 - [0:0]\n\
:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:MY-CHAIN - [0:0]\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
-A PREROUTING -p tcp -m tcp --dport 9998 -j MY-CHAIN\n\
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-ABCDEF\n\
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
-A KUBE-SVC-ABCDEF -j KUBE-SEP-123456\n-A KUBE-SEP-123456 -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080\n\
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n-A KUBE-POSTROUTING -j MASQUERADE\nCOMMIT\n\
*filter\n:KUBE-FIREWALL - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n\
-A INPUT -j KUBE-FIREWALL\n-A INPUT -m conntrack --ctstate NEW -j KUBE-PROXY-FIREWALL\nCOMMIT\n";

fn restore(ns: &Netns, tool: &str, text: &str) {
    let mut child = ns.command(tool).arg("--noflush").stdin(Stdio::piped()).spawn().expect(tool);
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    assert!(child.wait().expect(tool).success(), "{tool} refused the kube-proxy-style ruleset");
}

#[test]
fn cleanup_kube_proxy_removes_upstreams_leftovers_and_nothing_else() {
    Lab::require_root();
    let ns = Netns::create_unique("kpclean").expect("a namespace of the test's own");
    for tool in ["iptables-nft-restore", "iptables-legacy-restore"] {
        restore(&ns, tool, KUBE_PROXY_IPTABLES);
    }
    let nft = "table ip kube-proxy {\n chain nat-prerouting { type nat hook prerouting priority -100; }\n}\n\
               table ip6 kube-proxy {\n chain x { }\n}\ntable ip foreign {\n chain y { }\n}\n";
    let mut child = ns.command("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().expect("nft");
    child.stdin.take().expect("stdin").write_all(nft.as_bytes()).expect("write");
    assert!(child.wait().expect("nft").success());

    let out = ns
        .command(env!("CARGO_BIN_EXE_kube-ferry"))
        .args(["cleanup", "--kube-proxy"])
        .output()
        .expect("kube-ferry cleanup");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("removed table ip kube-proxy") && stdout.contains("removed table ip6 kube-proxy"), "{stdout}");
    assert!(stdout.contains("removed chain KUBE-SVC-ABCDEF (nat) [nft iptables]"), "{stdout}");
    assert!(stdout.contains("removed chain KUBE-SVC-ABCDEF (nat) [legacy iptables]"), "{stdout}");

    for save in ["iptables-nft-save", "iptables-legacy-save"] {
        let text = ns.exec(save, [] as [&str; 0]).expect(save);
        for gone in ["KUBE-SERVICES", "KUBE-SVC-", "KUBE-SEP-", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS"] {
            assert!(!text.contains(gone), "{save}: {gone} is left:\n{text}");
        }
        for kept in ["-A INPUT -j KUBE-FIREWALL", ":MY-CHAIN", "--dport 9998 -j MY-CHAIN"] {
            assert!(text.contains(kept), "{save}: {kept} must stay (the kubelet's, someone else's):\n{text}");
        }
    }
    let tables = ns.exec("nft", ["list", "tables"]).expect("nft list tables");
    assert!(tables.contains("table ip foreign") && !tables.contains("kube-proxy"), "{tables}");
}
