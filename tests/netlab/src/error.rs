//! The lab's error type.

use std::time::Duration;

/// Why building or driving the lab failed. Each message names the command or process and
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program could not be started at all (not installed, not executable).
    #[error("could not start `{program}`: {source} (the lab needs root and iproute2: `apt-get install iproute2`)")]
    Spawn {
        /// The program and its arguments.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, arguments separated by spaces (for reading only: it was run as an argv).
        command: String,
        /// How it exited.
        status: String,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// A helper binary of this crate is missing.
    #[error("{0}")]
    MissingBinary(String),
    /// A started process did not print what was awaited in time, or exited first.
    #[error("{process} did not print {awaited:?} within {timeout:?}{exited}; its output so far:\n{output}")]
    NotReady {
        /// The process's label.
        process: String,
        /// The text waited for.
        awaited: String,
        /// How long was waited.
        timeout: Duration,
        /// `", it exited (STATUS)"` if it exited, else empty.
        exited: String,
        /// Everything it printed (stdout and stderr).
        output: String,
    },
}
