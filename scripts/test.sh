#!/usr/bin/env bash
# The second command of the README (and what CI runs): set up, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
