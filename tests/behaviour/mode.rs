//! The modes the suite runs kube-ferry in: the name a test passes (`"nftables"`,
//! `"iptables"`, `"iptables-legacy"`), the flags that name stands for on kube-ferry's
//! command line, and the tools that read back what the mode programmed.

/// Which iptables implementation an iptables mode drives (`--iptables-variant`), and so
/// which binaries the suite inspects and changes its rules with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// iptables-nft: xtables rules kept in nf_tables tables (`ip filter`, `ip nat`).
    Nft,
    /// iptables-legacy: the x_tables kernel interface.
    Legacy,
}

impl Variant {
    /// The variant's `iptables` binary.
    pub fn iptables(self) -> &'static str {
        match self {
            Variant::Nft => "iptables-nft",
            Variant::Legacy => "iptables-legacy",
        }
    }

    /// The variant's `iptables-save` binary.
    pub fn save(self) -> &'static str {
        match self {
            Variant::Nft => "iptables-nft-save",
            Variant::Legacy => "iptables-legacy-save",
        }
    }
}

/// A mode under test, parsed from the name a test passes to a suite function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--mode nftables`: one table of kube-ferry's own, `ip kube-ferry` (and `ip6`).
    Nftables,
    /// `--mode iptables --iptables-variant nft|legacy`: KUBE-style chains.
    Iptables(Variant),
    /// `--mode userspace`: a proxy in user space; it programs addresses, no rules.
    Userspace,
    /// `--mode ipvs`: IPVS virtual services, `kube-ipvs0`, the helper table
    /// `ip kube-ferry-ipvs`. Needs a kernel with IPVS (the suite runs it in the VM).
    Ipvs,
}

impl Mode {
    /// The mode a test names: `"nftables"`, `"iptables"` (the nft variant) or
    /// `"iptables-legacy"`. Panics on any other name, so a typo fails loudly.
    pub fn parse(name: &str) -> Mode {
        match name {
            "nftables" => Mode::Nftables,
            "iptables" => Mode::Iptables(Variant::Nft),
            "iptables-legacy" => Mode::Iptables(Variant::Legacy),
            "userspace" => Mode::Userspace,
            "ipvs" => Mode::Ipvs,
            other => {
                panic!("the behaviour suite knows no mode {other:?} (nftables, iptables, iptables-legacy, userspace, ipvs)")
            }
        }
    }

    /// The flags that select this mode, for `kube-ferry run` and `kube-ferry cleanup`.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Nftables => &["--mode", "nftables"],
            Mode::Iptables(Variant::Nft) => &["--mode", "iptables", "--iptables-variant", "nft"],
            Mode::Iptables(Variant::Legacy) => &["--mode", "iptables", "--iptables-variant", "legacy"],
            Mode::Userspace => &["--mode", "userspace"],
            Mode::Ipvs => &["--mode", "ipvs"],
        }
    }

    /// The flags for `kube-ferry run`: [`Mode::flags`], and for ipvs `--ipvs-no-fallback`
    /// (a kernel without IPVS must fail the test, not quietly run nftables).
    pub fn run_flags(self) -> Vec<&'static str> {
        let mut flags = self.flags().to_vec();
        if self == Mode::Ipvs {
            flags.push("--ipvs-no-fallback");
        }
        flags
    }

    /// What `kube-ferry cleanup` prints when it removed this mode's rules.
    pub fn cleanup_says(self) -> &'static str {
        match self {
            Mode::Nftables => "removed table ip kube-ferry",
            Mode::Iptables(_) => "removed chain KUBE-SERVICES",
            Mode::Userspace => "removed address",
            Mode::Ipvs => "removed virtual service",
        }
    }
}
