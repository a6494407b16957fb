#!/usr/bin/env bash
# Deploy figures, printed: wall time of a cold deploy (a bare Debian 13 host: engine
# install, base image load, image build, model prefetch, stack up), of a second
# no-change deploy, and the runtime image size next to its base image.
# Not part of CI (it replaces the demo host): scripts/lib/bootstrap.sh must have run.
#   benchmarks/deploy_figures.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/bootstrap.sh"
bootstrap
host=${NICA_TEST_HOST:-nica-debian13-host}

molecule destroy >/dev/null 2>&1
molecule create >/dev/null 2>&1       # create + prepare: the bare host and the local Hub

timed() {  # timed LABEL CMD...: run quietly, print the wall time
  local start end
  start=$(date +%s%N)
  "${@:2}" >"$BUILD/reports/bench-$1.log" 2>&1 || { echo "error: $1 failed, see $BUILD/reports/bench-$1.log" >&2; exit 1; }
  end=$(date +%s%N)
  local ms=$(( (end - start) / 1000000 ))
  printf '%-28s %d.%d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100))
}
mkdir -p "$BUILD/reports"
timed "cold deploy" ansible-playbook -i "$MOLECULE_EPHEMERAL_DIRECTORY/inventory" deploy.yml
timed "no-change deploy" ansible-playbook -i "$MOLECULE_EPHEMERAL_DIRECTORY/inventory" deploy.yml

size() { docker exec "$host" docker image inspect -f '{{ .Size }}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
image=$(docker exec "$host" python3 -c 'import json; print(json.load(open("/opt/nica/state/release.json"))["image"])')
base=$(grep -E '^backend_base_image:' inventory/local/group_vars/backend/main.yml | awk '{print $2}')
printf '%-28s %s\n' "runtime image $image" "$(size "$image")"
printf '%-28s %s\n' "base image $base" "$(size "$base")"
