#!/usr/bin/env bash
# The second command of the README (and what CI runs): set up, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
# What needs kernel features this machine may lack (IPVS, dummy links), in a VM of Debian's kernel.
bash tests/vm/run-tests.sh ferry-ipvs:kernel
