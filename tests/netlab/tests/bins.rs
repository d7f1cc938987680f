//! Users of the crate find its helper binaries without telling the lab where they are.
//! (A file of its own: `set_binaries` is process-wide, and `tests/lab.rs` calls it.)

use std::path::Path;

#[test]
fn helper_binaries_are_found_next_to_the_test_executable() {
    let podserver = ferry_netlab::podserver_path().unwrap();
    let probe = ferry_netlab::probe_path().unwrap();
    assert_eq!(podserver, Path::new(env!("CARGO_BIN_EXE_ferry-podserver")));
    assert_eq!(probe, Path::new(env!("CARGO_BIN_EXE_ferry-probe")));
}
