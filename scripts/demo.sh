#!/usr/bin/env bash
# The first command of the README: set up, build, and run `kube-ferry demo`: kube-ferry
# in a throwaway network-namespace lab with real packets, no cluster needed. The lab
# needs root: as root it runs directly, else through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
demo=(./target/release/kube-ferry demo "$@")
if [ "$(id -u)" -eq 0 ]; then
  exec "${demo[@]}"
elif command -v sudo >/dev/null 2>&1; then
  echo "demo: the lab builds network namespaces, which needs root: running it with sudo"
  exec sudo "${demo[@]}"
else
  echo "demo: the lab builds network namespaces, which needs root, and sudo is not installed;" >&2
  echo "      run this as root, or as root: ${demo[*]}" >&2
  exit 1
fi
