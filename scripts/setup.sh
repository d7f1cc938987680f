#!/usr/bin/env bash
# Installs what kube-ferry's build, demo and tests need on a Debian machine:
# the kernel tools its backends drive, and a Rust toolchain check.
# Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(nftables iptables conntrack iproute2 procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]} (Debian packages)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup, or Debian's cargo package) and run this again" >&2
  exit 1
fi
