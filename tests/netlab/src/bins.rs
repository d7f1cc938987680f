//! Where the crate's helper binaries (`ferry-podserver`, `ferry-probe`) are.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::LabError;

/// Paths of the two helper binaries the lab runs inside namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// `ferry-podserver`, the server started in pods.
    pub podserver: PathBuf,
    /// `ferry-probe`, the client run from a namespace by the request helpers.
    pub probe: PathBuf,
}

static CHOSEN: OnceLock<Binaries> = OnceLock::new();

/// Tells the lab where the helper binaries are, for the whole process; the first call
/// wins and later calls are ignored (it returns whether this call took effect). The
/// crate's own tests pass `env!("CARGO_BIN_EXE_ferry-podserver")` and
/// `env!("CARGO_BIN_EXE_ferry-probe")`. Without it, the binaries are looked for as
/// [`podserver_path`] describes.
pub fn set_binaries(binaries: Binaries) -> bool {
    CHOSEN.set(binaries).is_ok()
}

const BUILD_HINT: &str = "build them with `cargo build -p ferry-netlab --bins` (same profile as the tests), \
                          or set FERRY_NETLAB_BIN_DIR to the directory holding them";

fn locate(name: &str, chosen: impl Fn(&Binaries) -> &Path) -> Result<PathBuf, LabError> {
    if let Some(b) = CHOSEN.get() {
        return existing(chosen(b).to_path_buf(), name);
    }
    if let Some(dir) = std::env::var_os("FERRY_NETLAB_BIN_DIR") {
        return existing(Path::new(&dir).join(name), name);
    }
    // A test executable is `target/<profile>/deps/<name>-<hash>`; binaries are built
    // into `target/<profile>/`.
    let exe = std::env::current_exe().map_err(|e| LabError::MissingBinary(format!("cannot find {name}: {e}")))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    existing(dir.join(name), name)
}

fn existing(path: PathBuf, name: &str) -> Result<PathBuf, LabError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::MissingBinary(format!(
            "the lab's helper binary {name} is not at {}: {BUILD_HINT}",
            path.display()
        )))
    }
}

/// The path of `ferry-podserver`: as given to [`set_binaries`], else in
/// `$FERRY_NETLAB_BIN_DIR`, else next to the running test executable's target directory
/// (`target/debug/ferry-podserver` for `target/debug/deps/<test>`). Fails, naming the
/// command that builds it (`cargo build -p ferry-netlab --bins`), if it is not there.
pub fn podserver_path() -> Result<PathBuf, LabError> {
    locate("ferry-podserver", |b| &b.podserver)
}

/// The path of `ferry-probe`, found as [`podserver_path`] finds the pod server.
pub fn probe_path() -> Result<PathBuf, LabError> {
    locate("ferry-probe", |b| &b.probe)
}
