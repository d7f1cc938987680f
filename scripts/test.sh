#!/usr/bin/env bash
# The second command of the README (and what CI runs): set up, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
# What needs kernel features this machine may lack (IPVS, dummy links), in a VM of Debian's
# kernel (tests/vm/ferry-vm: qemu, the kernel package unpacked, an initramfs; all cached).
bash tests/vm/ferry-vm setup
bash tests/vm/run-tests.sh ferry-ipvs:kernel ferry-ipvs:link_kernel kube-ferry:behaviour_ipvs
