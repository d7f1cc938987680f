//! What the demo needs before it touches anything: root, and the system tools the lab
//! and the nftables backend run.

use std::io::ErrorKind;
use std::process::{Command, Stdio};

/// A system tool the demo runs, and the Debian package that has it.
struct Tool {
    program: &'static str,
    version_flag: &'static str,
    package: &'static str,
    why: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        program: "ip",
        version_flag: "-V",
        package: "iproute2",
        why: "the lab's namespaces and links are made with it",
    },
    Tool {
        program: "nft",
        version_flag: "--version",
        package: "nftables",
        why: "the nftables backend programs the kernel with it",
    },
    Tool {
        program: "conntrack",
        version_flag: "--version",
        package: "conntrack",
        why: "the backend clears stale connection-tracking entries with it",
    },
    Tool {
        program: "sysctl",
        version_flag: "--version",
        package: "procps",
        why: "the lab turns on forwarding in its node with it",
    },
];

/// The directories system tools live in, which a non-root `PATH` often lacks (and
/// `sudo`'s `secure_path` has).
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Whether `program` can be started at all (it is on `PATH` and executable).
fn runs(tool: &Tool) -> bool {
    let spawned = Command::new(tool.program)
        .arg(tool.version_flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    !matches!(spawned, Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied))
}

/// Where `program` is in the sbin directories, if it is.
fn in_sbin(tool: &Tool) -> Option<String> {
    SBIN.iter().map(|d| format!("{d}/{}", tool.program)).find(|p| std::path::Path::new(p).is_file())
}

/// This process's effective user ID, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // `Uid:` lists the real, effective, saved and filesystem IDs.
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Checks everything up front and reports every problem at once, each with its remedy.
pub fn check() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let root = effective_uid() == Some(0);
    let mut missing: Vec<&Tool> = Vec::new();
    for tool in TOOLS.iter().filter(|t| !runs(t)) {
        match in_sbin(tool) {
            // Run through sudo, it will be on the PATH.
            Some(_) if !root => {}
            Some(path) => problems
                .push(format!("`{}` is at {path}, which is not on PATH: add its directory to PATH", tool.program)),
            None => {
                problems
                    .push(format!("`{}` (Debian package `{}`) is missing: {}", tool.program, tool.package, tool.why));
                missing.push(tool);
            }
        }
    }
    if !missing.is_empty() {
        let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
        packages.dedup();
        problems.push(format!("install with: sudo apt-get install {}", packages.join(" ")));
    }
    if !root {
        problems.push("the demo builds network namespaces: run it as root (sudo)".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("demo: cannot start:\n  {}", problems.join("\n  "))
}
