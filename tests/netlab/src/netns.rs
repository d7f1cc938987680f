//! A network namespace that exists exactly as long as its guard.

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::hash::{BuildHasher, Hasher};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::LabError;
use crate::process::LabProcess;

/// A network namespace created by the lab (`ip netns add`), deleted (`ip netns del`) when
/// dropped. Every command it runs is an argument vector, never a shell string.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// A prefix unique to this run: `kf-<pid>-<4 random hex digits><counter>`.
///
/// The PID keeps live test processes apart, the random part keeps a reused PID from
/// meeting a namespace a killed run left behind, the counter keeps labs of one process apart.
pub(crate) fn unique_prefix() -> String {
    unique_prefix_tagged("")
}

/// [`unique_prefix`] with `tag` after `kf-` (`kf-<tag>-<pid>-...`), so one user's
/// namespaces can be told apart from the tests'; an empty tag gives the plain prefix.
pub(crate) fn unique_prefix_tagged(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let random = RandomState::new().build_hasher().finish() & 0xffff;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = if tag.is_empty() { String::new() } else { format!("{tag}-") };
    format!("kf-{tag}{}-{random:04x}{n}", std::process::id())
}

/// Runs `command`; its stdout on success, else an error naming the command and its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String, LabError> {
    let output = output(command)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: describe(command),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs `command` to its end with no stdin, whatever its exit status.
pub(crate) fn output(command: &mut Command) -> Result<Output, LabError> {
    command.stdin(Stdio::null()).output().map_err(|source| LabError::Spawn { program: describe(command), source })
}

/// The command line for messages (it is never given to a shell).
pub(crate) fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

impl Netns {
    /// Creates the namespace `name` (which must not exist yet) with its loopback up.
    pub fn create(name: impl Into<String>) -> Result<Netns, LabError> {
        let name = name.into();
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on the guard owns it: a failure below still deletes it.
        let ns = Netns { name };
        ns.ip(["link", "set", "lo", "up"])?;
        // No duplicate-address detection on links made here later (their link-local
        // addresses too): an address under DAD cannot answer neighbour solicitations yet,
        // which made first IPv6 connections time out now and then.
        for key in
            ["net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad", "net.ipv6.conf.default.dad_transmits"]
        {
            ns.sysctl(key, "0")?;
        }
        Ok(ns)
    }

    /// Creates a namespace named `<unique prefix>-<role>` (see the crate docs).
    pub fn create_unique(role: &str) -> Result<Netns, LabError> {
        Netns::create(format!("{}-{role}", unique_prefix()))
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`);
    /// add arguments, stdin and so on before running it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program args...` inside the namespace to its end: its stdout on success, else
    /// an error with its stderr.
    pub fn exec<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(program).args(args))
    }

    /// Runs `program args...` inside the namespace to its end, whatever its exit status.
    pub fn exec_output<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<Output, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        output(self.command(program).args(args))
    }

    /// Starts `program args...` inside the namespace and returns its guard, which kills it
    /// on drop. `label` names it in messages. Its stdout and stderr are collected (see
    /// [`LabProcess::output`]).
    pub fn spawn<I, S>(&self, label: &str, program: impl AsRef<OsStr>, args: I) -> Result<LabProcess, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(program);
        command.args(args);
        LabProcess::spawn(format!("{label} in {}", self.name), command)
    }

    /// Runs `ip -n NAME args...` (iproute2 acting on this namespace): its stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Sets a sysctl inside the namespace (`sysctl -w key=value`, as an argv).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        self.exec("sysctl", ["-q", "-w", &format!("{key}={value}")]).map(drop)
    }

    /// Reads a sysctl inside the namespace (`sysctl -n key`), trimmed.
    pub fn sysctl_get(&self, key: &str) -> Result<String, LabError> {
        Ok(self.exec("sysctl", ["-n", key])?.trim().to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A failure here cannot be returned; say so, so a leaked namespace is explained.
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("ferry-netlab: could not delete namespace {}: {e}", self.name);
        }
    }
}

/// The names `ip netns list` shows, in its order.
pub fn list_namespaces() -> Result<Vec<String>, LabError> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    // Lines read `NAME` or `NAME (id: N)`.
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect())
}
