//! Reading and changing the node's packet-filter rules, per mode, so one suite function
//! can check what kube-ferry programmed whichever mode it runs in.
//!
//! Every command runs inside the lab's node namespace (through its [`Netns`]), never in
//! the machine's own.

use super::mode::{Mode, Variant};
use super::ProxyLab;

/// The foreign nftables table [`ProxyLab::add_foreign_rules`] loads in nftables mode.
const FOREIGN_TABLE: &str = "table ip foreign {\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 9999 counter accept\n\t}\n}\n";

impl ProxyLab {
    /// The mode under test.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// What kube-ferry programmed, as text: `nft list table ip kube-ferry` in nftables
    /// mode; the variant's `iptables-save` (every table) in the iptables modes.
    pub fn programmed(&self) -> String {
        match self.mode {
            Mode::Nftables => self.nft(&["list", "table", "ip", "kube-ferry"]),
            Mode::Iptables(variant) => self.save(variant),
            Mode::Userspace => self.node_ns().exec("ip", ["addr", "show", "dev", "lo"]).unwrap_or_default(),
            Mode::Ipvs => format!("{}\n{}", self.ipvsadm(&["-Ln"]), self.nft(&["list", "table", "ip", "kube-ferry-ipvs"])),
        }
    }

    /// Runs `ipvsadm ARGS` in the node.
    pub fn ipvsadm(&self, args: &[&str]) -> String {
        self.node_ns().exec("ipvsadm", args).unwrap_or_else(|e| panic!("ipvsadm {args:?}: {e}"))
    }

    /// The node's whole ruleset, for comparing before and after: `nft list ruleset` in
    /// nftables mode; in the iptables modes the variant's `iptables-save` without its
    /// `#` lines (a timestamp) and with every `[packets:bytes]` counter as `[0:0]`, so
    /// that traffic in between does not make two listings differ.
    pub fn whole_ruleset(&self) -> String {
        match self.mode {
            Mode::Nftables => self.nft(&["list", "ruleset"]),
            Mode::Iptables(variant) => normalise_save(&self.save(variant)),
            Mode::Userspace => self.nft(&["list", "ruleset"]),
            Mode::Ipvs => {
                let links = self.node_ns().exec("ip", ["-o", "link", "show", "type", "dummy"]).unwrap_or_default();
                format!("{}\n{}\ndummy links: {links}", self.nft(&["list", "ruleset"]), self.ipvsadm(&["-Ln"]))
            }
        }
    }

    /// Adds rules kube-ferry must leave alone (B27). nftables: a table `ip foreign` with
    /// an input chain accepting TCP port 9999. iptables: a chain `FOREIGN-INPUT` in
    /// `filter` accepting TCP port 9999, jumped to from `INPUT`, and a rule in `nat`
    /// `PREROUTING` returning TCP port 9998.
    pub fn add_foreign_rules(&self) {
        match self.mode {
            Mode::Nftables => {
                let path = self.dir.path().join("..").join(format!("foreign-{}.nft", std::process::id()));
                std::fs::write(&path, FOREIGN_TABLE).expect("write the foreign table");
                let loaded = self.node_ns().exec("nft", ["-f".as_ref(), path.as_os_str()]);
                std::fs::remove_file(&path).ok();
                loaded.unwrap_or_else(|e| panic!("nft -f (the foreign table): {e}"));
            }
            Mode::Userspace => panic!("the userspace mode programs no rules: the foreign-rules check does not apply"),
            Mode::Ipvs => {
                let path = self.dir.path().join("..").join(format!("foreign-{}.nft", std::process::id()));
                std::fs::write(&path, FOREIGN_TABLE).expect("write the foreign table");
                let loaded = self.node_ns().exec("nft", ["-f".as_ref(), path.as_os_str()]);
                std::fs::remove_file(&path).ok();
                loaded.unwrap_or_else(|e| panic!("nft -f (the foreign table): {e}"));
                // A virtual service of someone else's, on an address not on kube-ipvs0.
                self.ipvsadm(&["-A", "-t", "198.51.100.200:80", "-s", "rr"]);
                self.ipvsadm(&["-a", "-t", "198.51.100.200:80", "-r", "192.0.2.200:80", "-m"]);
            }
            Mode::Iptables(_) => {
                self.iptables(&["-t", "filter", "-N", "FOREIGN-INPUT"]);
                self.iptables(&["-t", "filter", "-A", "FOREIGN-INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT"]);
                self.iptables(&["-t", "filter", "-A", "INPUT", "-j", "FOREIGN-INPUT"]);
                self.iptables(&["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "9998", "-j", "RETURN"]);
            }
        }
    }

    /// The current text of just the objects [`ProxyLab::add_foreign_rules`] made:
    /// `nft list table ip foreign`; or, in the iptables modes, the save-output lines that
    /// mention `FOREIGN` or port 9998 or 9999, each prefixed with its table (`filter: `).
    pub fn foreign_rules(&self) -> String {
        match self.mode {
            Mode::Nftables => self.nft(&["list", "table", "ip", "foreign"]),
            Mode::Iptables(variant) => foreign_lines(&self.save(variant)),
            Mode::Userspace => String::new(),
            Mode::Ipvs => format!(
                "{}\n{}",
                self.nft(&["list", "table", "ip", "foreign"]),
                self.ipvsadm(&["-Ln", "-t", "198.51.100.200:80"])
            ),
        }
    }

    /// Breaks service dispatch by hand, as drift a full resync must repair: flushes the
    /// nftables map `service-ips` (which the `web` NodePort service goes through), or
    /// the iptables `nat` chain `KUBE-SERVICES`.
    pub fn break_dispatch(&self) {
        match self.mode {
            Mode::Nftables => {
                self.nft(&["flush", "map", "ip", "kube-ferry", "service-ips"]);
            }
            Mode::Iptables(_) => {
                self.iptables(&["-t", "nat", "-F", "KUBE-SERVICES"]);
            }
            Mode::Userspace => panic!("the userspace mode has no kernel dispatch to break"),
            Mode::Ipvs => {
                self.ipvsadm(&["-D", "-t", "10.96.0.10:80"]);
            }
        }
    }

    /// Runs `kube-ferry cleanup` for this mode in the node and returns its stdout; it
    /// says [`Mode::cleanup_says`] when it removed something.
    pub fn cleanup(&self) -> String {
        let mut args = vec!["cleanup"];
        args.extend(self.mode.flags());
        self.kube_ferry(&args)
    }

    /// Runs `nft ARGS` in the node.
    pub fn nft(&self, args: &[&str]) -> String {
        self.node_ns().exec("nft", args).unwrap_or_else(|e| panic!("nft {args:?}: {e}"))
    }

    /// Runs the variant's `iptables -w ARGS` in the node (`-w`: wait for the xtables
    /// lock, which parallel tests share). Panics in nftables mode.
    pub fn iptables(&self, args: &[&str]) -> String {
        let Mode::Iptables(variant) = self.mode else { panic!("iptables {args:?} in {:?} mode", self.mode) };
        let bin = variant.iptables();
        self.node_ns()
            .exec(bin, std::iter::once("-w").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{bin} {args:?}: {e}"))
    }

    /// The node's routes and rules, and kube-ferry's log: for failure messages.
    pub fn diagnose(&self) -> String {
        let ns = self.node_ns();
        let routes = ns.ip(["route"]).unwrap_or_else(|e| e.to_string());
        let rules = match self.mode {
            Mode::Nftables => ns.exec("nft", ["list", "ruleset"]),
            Mode::Iptables(variant) => ns.exec(variant.save(), [] as [&str; 0]),
            Mode::Userspace => ns.exec("ip", ["addr", "show", "dev", "lo"]),
            Mode::Ipvs => ns.exec("ipvsadm", ["-Ln"]).map(|t| t + &ns.exec("nft", ["list", "ruleset"]).unwrap_or_default()),
        }
        .unwrap_or_else(|e| e.to_string());
        format!("node routes:\n{routes}\nnode ruleset:\n{rules}\nkube-ferry log:\n{}", self.proxy_log())
    }

    /// The variant's `iptables-save` output in the node, as it prints it.
    fn save(&self, variant: Variant) -> String {
        let bin = variant.save();
        self.node_ns().exec(bin, [] as [&str; 0]).unwrap_or_else(|e| panic!("{bin}: {e}"))
    }
}

/// `iptables-save` output made comparable: its `#` lines dropped and its counters zeroed.
fn normalise_save(save: &str) -> String {
    save.lines().filter(|l| !l.starts_with('#')).map(|l| zero_counters(l) + "\n").collect()
}

/// `line` with every `[packets:bytes]` as `[0:0]`; other brackets are kept.
fn zero_counters(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if is_counter(&after[..close]) => {
                out.push_str("[0:0]");
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` reads `DIGITS:DIGITS`.
fn is_counter(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.split_once(':').is_some_and(|(packets, bytes)| digits(packets) && digits(bytes))
}

/// The lines of `save` (normalised) that belong to the foreign rules, each prefixed
/// with the table it is in.
fn foreign_lines(save: &str) -> String {
    let normal = normalise_save(save);
    let mut table = "";
    let mut out = String::new();
    for line in normal.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if line.contains("FOREIGN") || line.contains("--dport 9998") || line.contains("--dport 9999") {
            out.push_str(&format!("{table}: {line}\n"));
        }
    }
    out
}

#[test]
fn save_output_is_normalised_and_foreign_lines_found() {
    let save = "# Generated by iptables-nft-save v1.8.9 on Mon\n*filter\n:INPUT ACCEPT [12:3456]\n:FOREIGN-INPUT - [0:0]\n-A INPUT -j FOREIGN-INPUT\n-A FOREIGN-INPUT -p tcp -m tcp --dport 9999 -j ACCEPT\n-A KUBE-X -m comment --comment \"a [b:c] [1:x]\" -j DROP\nCOMMIT\n*nat\n:PREROUTING ACCEPT [7:420]\n-A PREROUTING -p tcp -m tcp --dport 9998 -j RETURN\nCOMMIT\n";
    let normal = normalise_save(save);
    assert!(!normal.contains('#'), "{normal}");
    assert!(normal.contains(":INPUT ACCEPT [0:0]\n") && normal.contains(":PREROUTING ACCEPT [0:0]\n"), "{normal}");
    assert!(normal.contains("\"a [b:c] [1:x]\""), "other brackets are kept: {normal}");
    assert_eq!(
        foreign_lines(save),
        "filter: :FOREIGN-INPUT - [0:0]\nfilter: -A INPUT -j FOREIGN-INPUT\n\
         filter: -A FOREIGN-INPUT -p tcp -m tcp --dport 9999 -j ACCEPT\n\
         nat: -A PREROUTING -p tcp -m tcp --dport 9998 -j RETURN\n"
    );
}
