#!/bin/sh
# Test only. Wait until the prefetch has MIN_BYTES of a file on disk in BLOBS_DIR,
# then SIGKILL the one-shot container running it (what the OOM killer, a power cut or
# `docker kill` would do), and write what was killed to OUT_JSON.
# Usage: kill_prefetch.sh BLOBS_DIR MIN_BYTES OUT_JSON
set -u
blobs=$1 min=$2 out=$3
tries=0
while [ "$tries" -lt 3000 ]; do  # 5 minutes at most
  for partial in "$blobs"/*.incomplete; do
    [ -f "$partial" ] || continue
    size=$(stat -c %s "$partial" 2>/dev/null || echo 0)
    [ "$size" -ge "$min" ] || continue
    # roles/cutover names the one-shot prepare container <project>-prepare.
    ids=$(docker ps -q --filter name='^nica-prepare$' | tr '\n' ' ')
    [ -n "$ids" ] || continue
    # shellcheck disable=SC2086  # one argument per container id
    docker kill --signal KILL $ids >/dev/null
    printf '{"containers": "%s", "partial": "%s", "partial_bytes": %s}\n' \
      "${ids% }" "$(basename "$partial")" "$size" >"$out"
    exit 0
  done
  tries=$((tries + 1))
  sleep 0.1
done
echo "no partial download of $min bytes appeared in $blobs" >&2
exit 1
