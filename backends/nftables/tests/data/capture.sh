#!/bin/bash
# Re-captures the status parser's fixtures (src/status/tests.rs): renders a first sync
# with kube-ferry, loads it with `nft -f` into a network namespace made for this only
# (never the machine's own), lists both tables there as JSON, and deletes the namespace
# (also on failure). Needs root and `cargo build` first. From the workspace root:
#   backends/nftables/tests/data/capture.sh examples --cluster-cidr 10.244.0.0/16
#   backends/nftables/tests/data/capture.sh mixed --manifests backends/nftables/tests/data/mixed-manifests \
#       --node node-a --cluster-cidr 10.244.0.0/16,fd00:10:244::/56
set -u
name=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
ns=kf-status-$$
script=$(mktemp)
./target/debug/kube-ferry render --mode nftables "$@" | awk '/^$/{exit} /^#/{next} {print}' > "$script" || exit 1
ip netns add "$ns" || exit 1
trap 'ip netns del "$ns"; rm -f "$script"' EXIT
ip netns exec "$ns" nft -f "$script" || exit 1
ip netns exec "$ns" nft -j list table ip kube-ferry > "$here/$name-ip.json" || exit 1
ip netns exec "$ns" nft -j list table ip6 kube-ferry > "$here/$name-ip6.json" || exit 1
