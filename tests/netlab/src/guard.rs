//! The guard of programs that re-run themselves inside a lab namespace (benchmarks, the
//! kernel tests): the parent names its own network namespace in [`PARENT_NETNS_ENV`], and a
//! child that finds itself in that namespace (or in PID 1's) refuses to touch anything.

use std::path::PathBuf;

/// Set by the parent to its own network namespace (`net:[INODE]`), which its children
/// must not be in.
pub const PARENT_NETNS_ENV: &str = "FERRY_PARENT_NETNS";

/// The network namespace of process `pid` (`"self"` for this one).
pub fn netns_of(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// Makes every child started from now on know this process's namespace (the parent
/// calls it before re-running itself in lab namespaces).
pub fn mark_parent() {
    if let Some(own) = netns_of("self") {
        std::env::set_var(PARENT_NETNS_ENV, own);
    }
}

/// Exits with status 2 and a message naming `what` unless this process is a child the
/// parent started, in a namespace other than the parent's and PID 1's.
pub fn refuse_host_namespace(what: &str) {
    let Some(mine) = netns_of("self") else {
        eprintln!("{what}: cannot read /proc/self/ns/net; refusing to go on");
        std::process::exit(2);
    };
    let parent = std::env::var_os(PARENT_NETNS_ENV).map(PathBuf::from);
    if parent.is_none() {
        eprintln!("{what}: is run by its parent only ({PARENT_NETNS_ENV} unset)");
        std::process::exit(2);
    }
    // PID 1's namespace where it can be read (not in every sandbox).
    if parent.as_ref() == Some(&mine) || netns_of("1").as_ref() == Some(&mine) {
        eprintln!("{what}: refuses to run in the machine's own network namespace ({})", mine.display());
        std::process::exit(2);
    }
}
