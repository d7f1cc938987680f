//! Running `iptables-restore` and `iptables-save` of the chosen variant. Restore input is
//! fed on stdin (object names never reach a command line); one process per family a sync.

use std::io::Write;
use std::process::{Command, Stdio};

use ferry_model::{BackendError, IpFamily};
use tracing::info;

/// Which iptables: the nf_tables-backed one or the legacy x_tables one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `iptables-nft`: rules in nf_tables tables `ip nat`, `ip filter`, ...
    Nft,
    /// `iptables-legacy`: the x_tables kernel interface.
    Legacy,
}

impl Variant {
    /// `nft` or `legacy`, as `--iptables-variant` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Nft => "nft",
            Variant::Legacy => "legacy",
        }
    }

    /// The binary for `family` and `what` (`restore`, `save`, or `""` for plain iptables).
    pub fn binary(self, family: IpFamily, what: &str) -> String {
        let base = if family == IpFamily::V4 { "iptables" } else { "ip6tables" };
        match what {
            "" => format!("{base}-{}", self.name()),
            w => format!("{base}-{}-{w}", self.name()),
        }
    }

    /// The variant a careful operator would pick: the one already holding KUBE- rules
    /// (the one with more, if both do), else the one plain `iptables` is. Logged.
    pub fn detect() -> Variant {
        let kube_lines = |v: Variant| {
            Command::new(v.binary(IpFamily::V4, "save"))
                .args(["-t", "nat"])
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("KUBE-")).count())
                .unwrap_or(0)
        };
        let (nft, legacy) = (kube_lines(Variant::Nft), kube_lines(Variant::Legacy));
        let version = Command::new("iptables")
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let chosen = Variant::choose(nft, legacy, &version);
        info!(
            variant = chosen.name(),
            nft_kube_lines = nft,
            legacy_kube_lines = legacy,
            system = %version,
            "iptables variant chosen (the one holding KUBE- rules, else the system's `iptables`)"
        );
        chosen
    }

    /// The choice [`Variant::detect`] makes from what it found: the variant with more
    /// `KUBE-` lines in its nat table; with none, the one `iptables -V` names (`(legacy)`
    /// or `(nf_tables)`); nft when nothing says.
    pub fn choose(nft_kube_lines: usize, legacy_kube_lines: usize, system_version: &str) -> Variant {
        if nft_kube_lines + legacy_kube_lines > 0 {
            if legacy_kube_lines > nft_kube_lines {
                Variant::Legacy
            } else {
                Variant::Nft
            }
        } else if system_version.contains("(legacy)") {
            Variant::Legacy
        } else {
            Variant::Nft
        }
    }
}

/// What the backend needs of iptables; [`IptablesTool`] is the real one.
pub trait IptablesRunner: std::fmt::Debug + Send {
    /// `iptables-restore --noflush` of `input` for `family`.
    fn restore(&self, family: IpFamily, input: &str) -> Result<(), BackendError>;
    /// `iptables-restore --noflush --test`: would the kernel take it?
    fn test(&self, family: IpFamily, input: &str) -> Result<(), BackendError>;
    /// `iptables-save` of every table of `family`.
    fn save(&self, family: IpFamily) -> Result<String, BackendError>;
}

/// The iptables tools of one variant.
#[derive(Clone, Debug)]
pub struct IptablesTool {
    /// The variant used.
    pub variant: Variant,
}

impl IptablesTool {
    fn run(&self, family: IpFamily, args: &[&str], input: &str) -> Result<(), BackendError> {
        self.run_fed(family, args, &mut |out| out.write_all(input.as_bytes()))
    }

    fn run_fed(
        &self,
        family: IpFamily,
        args: &[&str],
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), BackendError> {
        let binary = self.variant.binary(family, "restore");
        let mut child = Command::new(&binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                BackendError::Other(format!("cannot run {binary} ({e}); install the Debian package iptables"))
            })?;
        // stderr is read on a thread of its own while stdin is written, so a tool that
        // complains a lot cannot block on a full pipe while kube-ferry blocks on stdin.
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut text);
            }
            text
        });
        let mut written = Ok(());
        if let Some(stdin) = child.stdin.take() {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, stdin);
            // A write error (the tool stopped reading) shows up as its failure below.
            written = write(&mut buffered).and_then(|()| buffered.flush());
        }
        let out = child.wait_with_output().map_err(|e| BackendError::Other(format!("{binary}: {e}")))?;
        let stderr = reader.join().unwrap_or_default();
        if out.status.success() {
            return written.map_err(|e| BackendError::Other(format!("{binary}: writing its input: {e}")));
        }
        let detail: Vec<&str> = stderr.lines().take(12).collect();
        Err(BackendError::Refused { detail: format!("{binary}: {}", detail.join("\n")) })
    }
}

impl IptablesRunner for IptablesTool {
    fn restore(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        self.run(family, &["-w", "5", "--noflush"], input)
    }

    fn test(&self, family: IpFamily, input: &str) -> Result<(), BackendError> {
        self.run(family, &["-w", "5", "--noflush", "--test"], input)
    }

    fn save(&self, family: IpFamily) -> Result<String, BackendError> {
        let binary = self.variant.binary(family, "save");
        let out = Command::new(&binary).output().map_err(|e| {
            BackendError::Other(format!("cannot run {binary} ({e}); install the Debian package iptables"))
        })?;
        if !out.status.success() {
            return Err(BackendError::Other(format!("{binary}: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_holding_kube_rules_wins_else_the_systems() {
        assert_eq!(Variant::choose(0, 12, "iptables v1.8.9 (nf_tables)"), Variant::Legacy);
        assert_eq!(Variant::choose(30, 2, "iptables v1.8.9 (legacy)"), Variant::Nft);
        assert_eq!(Variant::choose(0, 0, "iptables v1.8.9 (legacy)"), Variant::Legacy);
        assert_eq!(Variant::choose(0, 0, "iptables v1.8.9 (nf_tables)"), Variant::Nft);
        assert_eq!(Variant::choose(0, 0, ""), Variant::Nft);
        assert_eq!(Variant::Legacy.binary(IpFamily::V6, "restore"), "ip6tables-legacy-restore");
    }
}
