//! A process the lab started, killed by its PID when its guard is dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::netns::{describe, run};

/// A running child process (typically `ip netns exec NS program`, which execs `program`
/// under the same PID). Dropping the guard kills it (SIGKILL) and reaps it. Its stdout and
/// stderr are collected line by line into one buffer.
#[derive(Debug)]
pub struct LabProcess {
    label: String,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut buf = into.lock().unwrap_or_else(PoisonError::into_inner);
            buf.push_str(&line);
            buf.push('\n');
        }
    })
}

impl LabProcess {
    /// Starts `command` with stdin closed and its output collected; `label` names it in messages.
    pub fn spawn(label: String, mut command: Command) -> Result<LabProcess, LabError> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, output.clone()));
        }
        Ok(LabProcess { label, child, output, readers })
    }

    /// The process's ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given when it was started.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything it has printed so far, stdout and stderr interleaved by line.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Its exit status if it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until its output contains `needle`. Fails, with its output, if `timeout`
    /// passes first or it exits without printing it.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return Ok(());
            }
            let exited = self.try_wait();
            if exited.is_some() {
                // Let the readers drain what it printed before it went (briefly: a
                // grandchild may hold the pipes open).
                let drained = Instant::now() + Duration::from_millis(500);
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < drained {
                    thread::sleep(Duration::from_millis(5));
                }
                if self.output().contains(needle) {
                    return Ok(());
                }
            }
            if exited.is_some() || Instant::now() >= deadline {
                return Err(LabError::NotReady {
                    process: self.label.clone(),
                    awaited: needle.to_owned(),
                    timeout,
                    exited: exited.map(|s| format!(", it exited ({s})")).unwrap_or_default(),
                    output: self.output(),
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asks it to stop (SIGTERM, sent with `kill -s TERM PID`) and waits up to `grace` for
    /// it to exit; kills it (SIGKILL) if it does not. Returns how it exited.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, LabError> {
        if let Some(status) = self.try_wait() {
            return Ok(status);
        }
        run(Command::new("kill").args(["-s", "TERM", &self.pid().to_string()]))?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.kill()
    }

    /// Kills it now (SIGKILL) and reaps it. Returns how it exited.
    pub fn kill(&mut self) -> Result<ExitStatus, LabError> {
        if let Some(status) = self.try_wait() {
            return Ok(status);
        }
        // An error means it has already exited; `wait` below reaps it either way.
        let _ = self.child.kill();
        self.child.wait().map_err(|source| LabError::Spawn { program: format!("wait for {}", self.label), source })
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("ferry-netlab: could not stop {} (pid {}): {e}", self.label, self.pid());
        }
        // The reader threads end at end of file; they are not joined, since a grandchild
        // that inherited the pipes could keep them open.
    }
}
