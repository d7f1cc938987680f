//! Where the crate's helper programs (`ferry-podserver`, `ferry-probe`) are.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::LabError;

/// A program the lab runs inside namespaces: an executable and the arguments that go
/// before the lab's own (e.g. `kube-ferry lab-probe`, for a binary that carries the
/// helpers as hidden subcommands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Arguments put before the lab's.
    pub args: Vec<OsString>,
}

impl Program {
    /// `path`, with no leading arguments.
    pub fn new(path: impl Into<PathBuf>) -> Program {
        Program { path: path.into(), args: Vec::new() }
    }

    /// Adds a leading argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Program {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// The leading arguments followed by `rest`.
    pub(crate) fn args_then<I, S>(&self, rest: I) -> Vec<OsString>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.iter().cloned().chain(rest.into_iter().map(|a| a.as_ref().to_owned())).collect()
    }
}

impl From<PathBuf> for Program {
    fn from(path: PathBuf) -> Program {
        Program::new(path)
    }
}

impl From<&Path> for Program {
    fn from(path: &Path) -> Program {
        Program::new(path)
    }
}

impl From<&str> for Program {
    fn from(path: &str) -> Program {
        Program::new(path)
    }
}

impl From<String> for Program {
    fn from(path: String) -> Program {
        Program::new(path)
    }
}

/// The two helper programs the lab runs inside namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// `ferry-podserver`, the server started in pods.
    pub podserver: Program,
    /// `ferry-probe`, the client run from a namespace by the request helpers.
    pub probe: Program,
}

static CHOSEN: OnceLock<Binaries> = OnceLock::new();

/// Tells the lab where the helper programs are, for the whole process; the first call
/// wins and later calls are ignored (it returns whether this call took effect). The
/// crate's own tests pass `env!("CARGO_BIN_EXE_ferry-podserver")` and
/// `env!("CARGO_BIN_EXE_ferry-probe")`; a binary that carries the helpers itself can pass
/// `Program::new(std::env::current_exe()?).arg("lab-probe")` and so on (see
/// [`podserver_main`](crate::podserver_main) and [`probe_main`](crate::probe_main)).
/// Without it, the binaries are looked for as [`podserver_path`] describes.
pub fn set_binaries(binaries: Binaries) -> bool {
    CHOSEN.set(binaries).is_ok()
}

const BUILD_HINT: &str = "build them with `cargo build -p ferry-netlab --bins` (same profile as the tests), \
                          or set FERRY_NETLAB_BIN_DIR to the directory holding them";

fn locate(name: &str, chosen: impl Fn(&Binaries) -> &Program) -> Result<Program, LabError> {
    if let Some(b) = CHOSEN.get() {
        let program = chosen(b).clone();
        existing(&program.path, name)?;
        return Ok(program);
    }
    if let Some(dir) = std::env::var_os("FERRY_NETLAB_BIN_DIR") {
        return existing(&Path::new(&dir).join(name), name).map(Program::new);
    }
    // A test executable is `target/<profile>/deps/<name>-<hash>`; binaries are built
    // into `target/<profile>/`.
    let exe = std::env::current_exe().map_err(|e| LabError::MissingBinary(format!("cannot find {name}: {e}")))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(&dir.join(name), name).map(Program::new)
}

fn existing(path: &Path, name: &str) -> Result<PathBuf, LabError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(LabError::MissingBinary(format!(
            "the lab's helper binary {name} is not at {}: {BUILD_HINT}",
            path.display()
        )))
    }
}

/// The pod server as the lab runs it: as given to [`set_binaries`], else
/// `ferry-podserver` in `$FERRY_NETLAB_BIN_DIR`, else next to the running test
/// executable's target directory (`target/debug/ferry-podserver` for
/// `target/debug/deps/<test>`). Fails, naming the command that builds it
/// (`cargo build -p ferry-netlab --bins`), if it is not there.
pub fn podserver_program() -> Result<Program, LabError> {
    locate("ferry-podserver", |b| &b.podserver)
}

/// The probe as the lab runs it, found as [`podserver_program`] finds the pod server.
pub fn probe_program() -> Result<Program, LabError> {
    locate("ferry-probe", |b| &b.probe)
}

/// The executable of [`podserver_program`] (without any leading arguments).
pub fn podserver_path() -> Result<PathBuf, LabError> {
    podserver_program().map(|p| p.path)
}

/// The executable of [`probe_program`] (without any leading arguments).
pub fn probe_path() -> Result<PathBuf, LabError> {
    probe_program().map(|p| p.path)
}
