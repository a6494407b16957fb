#!/usr/bin/env bash
# Redeploy figures, printed (benchmarks/redeploy_bench.py): for a no-change deploy, a
# configuration change, a code change with a migration and a rollback, the wall time,
# requests sent and failed by a steady client on the published port, and the longest
# stretch without a success; next to the anchor, the serving container recreated in
# place. Not part of CI (it uses the demo host): scripts/lib/bootstrap.sh must have run.
#   benchmarks/redeploy_figures.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/bootstrap.sh"
bootstrap bench
molecule converge >/dev/null 2>&1 || die "the demo host did not converge; run scripts/demo"
exec python benchmarks/redeploy_bench.py
