#!/usr/bin/env bash
# Builds test binaries and runs them inside one boot of the ferry VM (tests/vm/ferry-vm),
# whose Debian kernel has what this machine's may lack (IPVS, dummy links, ...).
#
#   tests/vm/run-tests.sh [--timeout S] [--env K=V]... PKG:TEST... [-- TEST-ARGS...]
#
# PKG:TEST names an integration test target: `ferry-ipvs:kernel` is what
# `cargo test -p ferry-ipvs --test kernel` runs, `kube-ferry:behaviour_nftables` the suite's
# nftables run. TEST-ARGS go to every test binary (libtest's: a name filter, --exact,
# --test-threads N, --nocapture, ...). Each binary runs in its package's directory, as
# `cargo test` runs it, with FERRY_REQUIRE_IPVS=1 (a test that needs IPVS fails instead
# of skipping) and whatever --env adds. Exits 0 if every binary passed, 1 if one failed,
# 124 if the VM ran out of time (--timeout, default 1800 s), 125 if the VM failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$HERE/../.."

say() { printf 'run-tests: %s\n' "$*" >&2; }

timeout=1800
envs=()
specs=()
while (($#)); do
  case "$1" in
    --timeout) timeout="$2"; shift 2 ;;
    --env) envs+=(--env "$2"); shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) say "unknown option $1"; exit 2 ;;
    *:*) specs+=("$1"); shift ;;
    *) say "a test is named PKG:TEST (e.g. ferry-ipvs:kernel), not $1"; exit 2 ;;
  esac
done
((${#specs[@]})) || { say "usage: tests/vm/run-tests.sh [--timeout S] [--env K=V]... PKG:TEST... [-- TEST-ARGS...]"; exit 2; }

# Lines "PACKAGE-DIR<TAB>EXECUTABLE" of the executables in cargo's JSON messages on stdin
# (of target $1 only, if given).
executables() {
  python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        if len(sys.argv) < 2 or m["target"]["name"] == sys.argv[1]:
            print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' "$@"
}

tests=""
libs=()
for spec in "${specs[@]}"; do
  pkg="${spec%%:*}" test="${spec#*:}"
  say "building $spec (cargo test -p $pkg --test $test --no-run)"
  found="$(cargo test -p "$pkg" --test "$test" --no-run --message-format=json-render-diagnostics | executables "$test")"
  [ -n "$found" ] || { say "cargo built no test executable for $spec"; exit 1; }
  while IFS=$'\t' read -r dir exe; do
    tests+="$spec"$'\t'"$pkg"$'\t'"$dir"$'\t'"$exe"$'\n'
    libs+=(--libs-of "$exe")
  done <<<"$found"
done
# The lab (ferry-netlab) runs its helper programs from next to the test executables.
say "building the lab's helpers (cargo build -p ferry-netlab --bins)"
cargo build -p ferry-netlab --bins >&2

exec bash "$HERE/ferry-vm" run --timeout "$timeout" "${libs[@]}" \
  --env FERRY_REQUIRE_IPVS=1 --env "FERRY_VM_TESTS=$tests" "${envs[@]+"${envs[@]}"}" \
  -- sh tests/vm/guest-tests.sh "$@"
