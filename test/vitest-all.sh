#!/bin/sh
# npm test's vitest part: two vitest processes side by side. The builds project (source builds, ~30 min, then
# installs on VMs of its own lab) in one, every other project in the other, so the build installs run beside the
# lab project's files instead of after them. The builds output is printed after the other's; either failing fails.
set -u
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/kvmforge-vitest-builds.XXXXXX)
./node_modules/.bin/vitest run --project builds >"$log" 2>&1 &
builds=$!
trap 'kill "$builds" 2>/dev/null' INT TERM
./node_modules/.bin/vitest run --project unit --project integration --project faults --project lab
main=$?
wait "$builds"
rc=$?
printf '\n===== vitest --project builds (ran beside the above) =====\n'
cat "$log"
rm -f "$log"
[ "$main" -eq 0 ] && [ "$rc" -eq 0 ]
