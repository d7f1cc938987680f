//! Talking to nf_tables through the `nft` tool: one script on stdin is one atomic
//! kernel transaction. Object names never reach a command line: the script is data.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ferry_model::BackendError;
use tracing::warn;

use crate::netlink::{BatchError, ElementBatch, NetlinkSession};

/// What the backend needs of nf_tables: apply a script atomically, check one without
/// applying it, list. [`NftTool`] is the real one; tests substitute a fake.
pub trait NftRunner: std::fmt::Debug + Send {
    /// Applies `script` as one transaction: all of it, or none.
    fn apply(&self, script: &str) -> Result<(), BackendError>;
    /// Like [`NftRunner::apply`], with the script written by `write` as it is produced
    /// (a full sync's script is megabytes: it is never held whole in memory).
    fn apply_streamed(&self, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>) -> Result<(), BackendError> {
        let mut buffer = Vec::new();
        write(&mut buffer).map_err(|e| BackendError::Other(format!("writing the script: {e}")))?;
        self.apply(&String::from_utf8_lossy(&buffer))
    }
    /// Applies a transaction of element changes only: `script` as nft text, `batch` the
    /// same encoded for netlink. The default runs the script; [`NftTool`] sends the batch
    /// (no `nft` process, no cache of the table) and falls back to the script only when
    /// the netlink socket cannot be used.
    fn apply_elements(&self, script: &str, batch: &ElementBatch) -> Result<(), BackendError> {
        let _ = batch;
        self.apply(script)
    }
    /// Says whether the kernel would take `script`, changing nothing.
    fn check(&self, script: &str) -> Result<(), BackendError>;
    /// Runs a listing command and returns what it printed.
    fn output(&self, args: &[&str]) -> Result<String, BackendError>;
}

impl NftRunner for NftTool {
    fn apply(&self, script: &str) -> Result<(), BackendError> {
        NftTool::apply(self, script)
    }

    fn apply_streamed(&self, write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>) -> Result<(), BackendError> {
        let mut feed = |pipe: &mut dyn Write| {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, pipe);
            write(&mut buffered)?;
            buffered.flush()
        };
        let out = self.run_fed(&["-f", "-"], Some(&mut feed))?;
        if out.status.success() {
            return Ok(());
        }
        Err(BackendError::Refused { detail: first_lines(&String::from_utf8_lossy(&out.stderr), 12) })
    }

    fn apply_elements(&self, script: &str, batch: &ElementBatch) -> Result<(), BackendError> {
        match self.netlink.send(batch) {
            Ok(()) => Ok(()),
            Err(BatchError::Socket(e)) => {
                warn!(error = %e, "nf_tables netlink is not usable; applying element changes with nft");
                self.apply(script)
            }
            Err(refused @ BatchError::Refused { .. }) => Err(BackendError::Refused { detail: refused.to_string() }),
        }
    }

    fn check(&self, script: &str) -> Result<(), BackendError> {
        let out = self.run(&["-c", "-f", "-"], Some(script))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BackendError::Refused { detail: first_lines(&String::from_utf8_lossy(&out.stderr), 12) })
        }
    }

    fn output(&self, args: &[&str]) -> Result<String, BackendError> {
        NftTool::output(self, args)
    }
}

/// The `nft` binary kube-ferry runs, and the netlink socket element-only transactions
/// go through instead (shared by clones).
#[derive(Clone, Debug)]
pub struct NftTool {
    path: PathBuf,
    netlink: std::sync::Arc<NetlinkSession>,
}

impl Default for NftTool {
    fn default() -> Self {
        NftTool::find()
    }
}

impl NftTool {
    /// `nft` from the usual places (`/usr/sbin/nft`, `/sbin/nft`), else from `PATH`.
    pub fn find() -> NftTool {
        let path = ["/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nft"));
        NftTool { path, netlink: Default::default() }
    }

    /// Runs `nft -f -` with `script` on stdin: all of it is applied, or none of it.
    pub fn apply(&self, script: &str) -> Result<(), BackendError> {
        let out = self.run(&["-f", "-"], Some(script))?;
        if out.status.success() {
            return Ok(());
        }
        Err(BackendError::Refused { detail: first_lines(&String::from_utf8_lossy(&out.stderr), 12) })
    }

    /// Runs `nft ARGS` and returns its standard output (for listing).
    pub fn output(&self, args: &[&str]) -> Result<String, BackendError> {
        let out = self.run(args, None)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(BackendError::Other(format!(
                "nft {}: {}",
                args.join(" "),
                first_lines(&String::from_utf8_lossy(&out.stderr), 6)
            )))
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<std::process::Output, BackendError> {
        match stdin {
            Some(text) => self.run_fed(args, Some(&mut |pipe: &mut dyn Write| pipe.write_all(text.as_bytes()))),
            None => self.run_fed(args, None),
        }
    }

    /// Runs nft with `feed` writing its standard input (stderr is drained meanwhile, so
    /// a talkative nft can never block the writer).
    #[allow(clippy::type_complexity)]
    fn run_fed(
        &self,
        args: &[&str],
        feed: Option<&mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>>,
    ) -> Result<std::process::Output, BackendError> {
        let mut child = Command::new(&self.path)
            .args(args)
            .stdin(if feed.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BackendError::Unavailable {
                what: format!("the nft tool ({}: {e})", self.path.display()),
                hint: "install the Debian package nftables (apt-get install nftables)".into(),
            })?;
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = std::io::Read::read_to_end(&mut e, &mut text);
                text
            })
        });
        let written = match (feed, child.stdin.take()) {
            (Some(feed), Some(mut pipe)) => feed(&mut pipe),
            _ => Ok(()),
        };
        let mut out = child.wait_with_output().map_err(|e| BackendError::Other(format!("waiting for nft: {e}")))?;
        if let Some(reader) = stderr {
            out.stderr = reader.join().unwrap_or_default();
        }
        // A write that failed because nft stopped reading is explained by its stderr.
        if let Err(e) = written {
            if out.status.success() {
                return Err(BackendError::Other(format!("writing to nft: {e}")));
            }
        }
        Ok(out)
    }
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().take(n).collect();
    let more = text.lines().count().saturating_sub(n);
    if more > 0 {
        format!("{} (and {more} more lines)", lines.join("\n"))
    } else {
        lines.join("\n")
    }
}
