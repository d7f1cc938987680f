//! What the running kernel offers that some tests need (IPVS and dummy links are missing
//! on the development machine; the VM harness, tests/vm, has them), and one loud way of
//! saying a test did not run.

use std::path::Path;

/// The variable that turns "not run here" into a failure (the VM harness sets it).
pub const REQUIRE_IPVS_ENV: &str = "FERRY_REQUIRE_IPVS";

/// `Some(reason)` if the running kernel evidently has no IPVS: not loaded, not built in,
/// no module file. Reads files only (loads nothing, changes nothing).
pub fn ipvs_missing() -> Option<String> {
    if Path::new("/proc/net/ip_vs").exists() || Path::new("/sys/module/ip_vs").exists() {
        return None;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}", release.trim());
    for index in ["modules.builtin", "modules.dep"] {
        if std::fs::read_to_string(format!("{dir}/{index}")).is_ok_and(|text| text.contains("/ip_vs.ko")) {
            return None;
        }
    }
    Some(format!("ip_vs is not loaded, not built in, and not in {dir}/modules.dep"))
}

/// For a test that needs IPVS: `true` if it can run. Otherwise prints, loudly, that
/// `test` did not run and why, and returns `false` — unless [`REQUIRE_IPVS_ENV`] is `1`,
/// when it panics (a kernel without IPVS is then a failure).
pub fn ipvs_or_say_why(test: &str) -> bool {
    let Some(reason) = ipvs_missing() else { return true };
    let line = "=".repeat(78);
    // Straight to the process's stderr, not through `eprintln!`, which the test harness
    // captures (and shows only for failing tests): a test that did not run must be seen.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr().lock(),
        format!("{line}\n{test}: NOT RUN: this kernel has no IPVS ({reason});\nit runs in the VM: bash tests/vm/run-tests.sh (CI does)\n{line}\n").as_bytes(),
    );
    if std::env::var(REQUIRE_IPVS_ENV).as_deref() == Ok("1") {
        panic!("{test}: {REQUIRE_IPVS_ENV}=1 demands a kernel with IPVS");
    }
    false
}
