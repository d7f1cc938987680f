#!/usr/bin/env bash
# The first command of the README: set up, build, and run kube-ferry on its built-in
# example services, no cluster needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
exec ./target/release/kube-ferry render "$@"
