//! What upstream kube-proxy leaves in iptables, for `kube-ferry cleanup --kube-proxy`: its
//! chains in `nat`, `filter` and `mangle` and the jumps to them from the built-in chains,
//! as its own `--cleanup` removes them. The kubelet's chains (`KUBE-FIREWALL`,
//! `KUBE-KUBELET-CANARY`, `KUBE-MARK-DROP`) are left alone: they are not kube-proxy's.

use std::fmt::Write as _;

use ferry_model::{BackendError, IpFamily};

use crate::restore::parse_save;
use crate::tool::{IptablesRunner, IptablesTool, Variant};

/// kube-proxy's chains by name (iptables and IPVS modes).
const FIXED: [&str; 13] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-FORWARD",
    "KUBE-PROXY-FIREWALL",
    "KUBE-MARK-MASQ",
    "KUBE-PROXY-CANARY",
    "KUBE-LOAD-BALANCER",
    "KUBE-NODE-PORT",
    "KUBE-EXTERNAL-IP",
    "KUBE-EXTERNAL-IP-LOCAL",
    "KUBE-IPVS-FILTER",
];

/// kube-proxy's per-service chains by prefix.
const PREFIXES: [&str; 6] = ["KUBE-SVC-", "KUBE-SEP-", "KUBE-FW-", "KUBE-XLB-", "KUBE-EXT-", "KUBE-SVL-"];

/// Whether `chain` is one kube-proxy makes (and removes on `--cleanup`).
pub fn is_kube_proxys(chain: &str) -> bool {
    FIXED.contains(&chain) || PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// The `iptables-restore --noflush` input removing kube-proxy's chains found in `save`
/// (one family's `iptables-save` output) and every built-in chain's rule jumping to
/// them, and the lines saying what it removes; empty when there is nothing.
pub fn removal(save: &str) -> (String, Vec<String>) {
    let tables = parse_save(save);
    let mut input = String::new();
    let mut removed = Vec::new();
    for (table, saved) in &tables {
        let chains: Vec<&String> = saved.chains.iter().filter(|c| is_kube_proxys(c)).collect();
        let jumps: Vec<&(String, String)> = saved
            .rules
            .iter()
            // Rules of chains being deleted go with them (a declaration flushes the chain).
            .filter(|(chain, _)| !is_kube_proxys(chain))
            .filter(|(_, spec)| {
                let words: Vec<&str> = spec.split_whitespace().collect();
                words.windows(2).any(|w| matches!(w[0], "-j" | "-g") && is_kube_proxys(w[1]))
            })
            .collect();
        if chains.is_empty() && jumps.is_empty() {
            continue;
        }
        // Writing into a String cannot fail.
        let _ = writeln!(input, "*{table}");
        for chain in &chains {
            let _ = writeln!(input, ":{chain} - [0:0]");
        }
        for (builtin, spec) in &jumps {
            let _ = writeln!(input, "-D {builtin} {spec}");
            removed.push(format!("rule -A {builtin} {spec} ({table})"));
        }
        for chain in &chains {
            let _ = writeln!(input, "-X {chain}");
            removed.push(format!("chain {chain} ({table})"));
        }
        input.push_str("COMMIT\n");
    }
    (input, removed)
}

/// Removes kube-proxy's iptables leftovers of `variant`, both families. Returns what it
/// removed, one line each.
pub fn cleanup_kube_proxy(variant: Variant) -> Result<Vec<String>, BackendError> {
    let tool = IptablesTool { variant };
    let mut removed = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let save = match tool.save(family) {
            Ok(s) => s,
            // No such tool, or the family's tables cannot be read: nothing of it to remove.
            Err(_) => continue,
        };
        let (input, lines) = removal(&save);
        if !input.is_empty() {
            tool.restore(family, &input)?;
            let tool_name = if family == IpFamily::V4 { "iptables" } else { "ip6tables" };
            removed.extend(lines.into_iter().map(|l| format!("{l} [{} {tool_name}]", variant.name())));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxys_chains_and_jumps_go_the_kubelets_and_others_stay() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
                    :KUBE-SERVICES - [0:0]\n:KUBE-SVC-ABC - [0:0]\n:KUBE-SEP-DEF - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
                    :KUBE-MARK-MASQ - [0:0]\n:KUBE-MARK-DROP - [0:0]\n:MY-CHAIN - [0:0]\n\
                    -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
                    -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
                    -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
                    -A PREROUTING -p tcp --dport 9998 -j MY-CHAIN\n\
                    -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-ABC\n\
                    COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n";
        let (input, removed) = removal(save);
        assert!(input.starts_with("*nat\n"), "{input}");
        assert!(input.contains("-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"), "{input}");
        assert!(input.contains("-D POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"));
        for chain in ["KUBE-SERVICES", "KUBE-SVC-ABC", "KUBE-SEP-DEF", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"] {
            assert!(input.contains(&format!("-X {chain}\n")), "{chain}: {input}");
        }
        assert!(!input.contains("KUBE-MARK-DROP") && !input.contains("KUBE-FIREWALL"), "the kubelet's stay: {input}");
        assert!(!input.contains("MY-CHAIN"), "{input}");
        assert!(!input.contains("*filter"), "nothing of kube-proxy's in filter: {input}");
        assert_eq!(removed.len(), 3 + 5);
        assert_eq!(removal("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").0, "");
    }
}
