#!/bin/sh
# Runs in the ferry VM, started by tests/vm/run-tests.sh: every test binary listed in
# FERRY_VM_TESTS (lines "SPEC<TAB>PACKAGE<TAB>PACKAGE-DIR<TAB>EXECUTABLE") in turn, in its
# package's directory as `cargo test` runs it, with this script's arguments. Exits 1 if
# any of them failed.
set -u
tab="$(printf '\t')"
failed=""
count=0
uptime_s() { cut -d' ' -f1 /proc/uptime; }
while IFS="$tab" read -r spec pkg dir exe; do
  [ -n "$spec" ] || continue
  count=$((count + 1))
  echo "=== $spec: $exe${*:+ $*}"
  t0=$(uptime_s)
  (cd "$dir" && CARGO_MANIFEST_DIR="$dir" CARGO_PKG_NAME="$pkg" exec "$exe" "$@") </dev/null
  rc=$?
  t1=$(uptime_s)
  echo "=== $spec: exit $rc in $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
  [ "$rc" -eq 0 ] || failed="$failed $spec"
done <<EOF
$FERRY_VM_TESTS
EOF
if [ -n "$failed" ]; then
  echo "=== failed:$failed"
  exit 1
fi
echo "=== all $count test binaries passed"
