#!/bin/sh
# Makes the iptables-save fixtures of the status parser (src/status.rs), as root:
#   make.sh NAME RENDER_FILE VARIANT
# RENDER_FILE is `kube-ferry render --mode iptables ...` output; its iptables-restore and
# ip6tables-restore parts are loaded into a network namespace made only for this
# (never the machine's own), read back with VARIANT's iptables-save and ip6tables-save
# into NAME-VARIANT.v4.txt and NAME-VARIANT.v6.txt next to this script; the namespace is
# deleted whatever happens.
set -eu
name=$1 render=$2 variant=$3
here=$(cd "$(dirname "$0")" && pwd)
ns=kf-ipt-status-$$
tmp=$(mktemp -d)
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
awk '/^# iptables-restore/{p=1;next} /^# ip6tables-restore/{p=0} p' "$render" >"$tmp/v4"
awk '/^# ip6tables-restore/{p=1;next} p && /^$/{exit} p' "$render" >"$tmp/v6"
ip netns add "$ns"
ip netns exec "$ns" "iptables-$variant-restore" --noflush <"$tmp/v4"
ip netns exec "$ns" "ip6tables-$variant-restore" --noflush <"$tmp/v6"
# The counters and the generator's time stamps change from run to run: left out.
ip netns exec "$ns" "iptables-$variant-save" | grep -v '^# ' >"$here/$name-$variant.v4.txt"
ip netns exec "$ns" "ip6tables-$variant-save" | grep -v '^# ' >"$here/$name-$variant.v6.txt"
