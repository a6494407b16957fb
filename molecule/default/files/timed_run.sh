#!/bin/sh
# Test only. Run a command with its output in LOG and print how it went as JSON:
# {"rc": N, "seconds": S} (wall time, from before the command starts to after it ends).
# Usage: timed_run.sh LOG COMMAND [ARG...]
set -u
log=$1
shift
start=$(date +%s.%N)
"$@" >"$log" 2>&1 </dev/null
rc=$?
end=$(date +%s.%N)
printf '{"rc": %d, "seconds": %s}\n' "$rc" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
