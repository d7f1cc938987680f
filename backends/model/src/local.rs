//! `--detect-local-mode BridgeInterface` and `InterfaceNamePrefix`: traffic from this
//! node's pods is told from outside traffic by the link it came in on, not by its source
//! address (`--cluster-cidr`, the default). Off-cluster traffic is what a backend
//! masquerades (B22).

/// The link(s) this node's pods send from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodInterfaces {
    /// The pods' bridge (`--pod-bridge-interface`), e.g. `cni0`.
    Bridge(String),
    /// The prefix of the pods' host-side links (`--pod-interface-name-prefix`), e.g. `veth`.
    Prefix(String),
}

impl PodInterfaces {
    /// Checks a link name or prefix as the kernel limits them (1-15 characters, no `/`,
    /// white space or quotes). The error names the value.
    pub fn new_checked(self) -> Result<PodInterfaces, String> {
        let (name, what) = match &self {
            PodInterfaces::Bridge(n) => (n, "--pod-bridge-interface"),
            PodInterfaces::Prefix(n) => (n, "--pod-interface-name-prefix"),
        };
        let bad = name.is_empty()
            || name.len() > 15
            || name.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | '*' | '+' | '\\'));
        if bad {
            return Err(format!("{what} {name:?} is not a link name (1-15 characters, no /, spaces, quotes, * or +)"));
        }
        Ok(self)
    }

    /// The nftables match for traffic that did NOT come from the pods:
    /// `iifname != "cni0"` or `iifname != "veth*"`.
    pub fn nft_not_from_pods(&self) -> String {
        match self {
            PodInterfaces::Bridge(n) => format!("iifname != \"{n}\""),
            PodInterfaces::Prefix(p) => format!("iifname != \"{p}*\""),
        }
    }

    /// The nftables match for traffic from the pods: `iifname "cni0"`, `iifname "veth*"`.
    pub fn nft_from_pods(&self) -> String {
        self.nft_not_from_pods().replacen(" != ", " ", 1)
    }

    /// The iptables match for traffic from the pods: `-i cni0` or `-i veth+`.
    pub fn iptables_from_pods(&self) -> String {
        self.iptables_not_from_pods().trim_start_matches("! ").to_owned()
    }

    /// The iptables match for the same: `! -i cni0` or `! -i veth+`.
    pub fn iptables_not_from_pods(&self) -> String {
        match self {
            PodInterfaces::Bridge(n) => format!("! -i {n}"),
            PodInterfaces::Prefix(p) => format!("! -i {p}+"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_per_tool_and_names_checked() {
        let bridge = PodInterfaces::Bridge("cni0".into()).new_checked().unwrap();
        assert_eq!(bridge.nft_not_from_pods(), "iifname != \"cni0\"");
        assert_eq!(bridge.iptables_not_from_pods(), "! -i cni0");
        let prefix = PodInterfaces::Prefix("veth".into()).new_checked().unwrap();
        assert_eq!(prefix.nft_not_from_pods(), "iifname != \"veth*\"");
        assert_eq!(prefix.iptables_not_from_pods(), "! -i veth+");
        assert_eq!(prefix.nft_from_pods(), "iifname \"veth*\"");
        assert_eq!(bridge.iptables_from_pods(), "-i cni0");
        assert!(PodInterfaces::Bridge("a\"b".into()).new_checked().unwrap_err().contains("a\\\"b"));
        assert!(PodInterfaces::Prefix("sixteen-chars-xx".into()).new_checked().is_err());
        assert!(PodInterfaces::Prefix(String::new()).new_checked().is_err());
    }
}
