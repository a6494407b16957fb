#!/usr/bin/env bash
# Entrypoint of the backend image.
#
#   serve     (default) optional migrations, optional model prefetch, then uvicorn
#   prepare   migrations + seed, then the model prefetch; exits. roles/cutover runs
#             this as a one-shot BEFORE it replaces the serving container, so a slow
#             or failing download never takes the running version down.
#   migrate   migrations + seed only
#   prefetch  the model prefetch only
#   anything else is exec'd as is (e.g. `python -m src.database.cli current`).
#
# Environment: RUN_DB_MIGRATIONS=1 runs `migrate-seed` on serve; HF_MODEL_REPOS
# (comma separated, `org/name[@revision]`) and HF_REVISION drive the prefetch,
# which serve runs unless HF_PREFETCH_ON_START=0. HF_CACHE_MARKER names a file under
# HF_HOME that only exists while an encrypted cache is unlocked: without it, serve,
# prepare and prefetch stop with "model cache locked" instead of using an empty cache.
# Metrics (serve): unless METRICS_ENABLED=0, PROMETHEUS_MULTIPROC_DIR (default
# /tmp/nica-metrics, on the container's tmpfs) is emptied, and the metrics process serves
# every uvicorn worker's metrics on METRICS_PORT (default 9464; not the public 8000):
# GET /metrics (Prometheus) and GET /summary (JSON, the last five minutes); see
# docs/observability.md.
set -Eeo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }
# The failing step has printed its own one-line "error: ..." reason; this line
# only says which step stopped, so that reason stays the last error line.
fail() { log "$1 failed (exit $2)"; exit "$2"; }

# A locked fscrypt directory shows only ciphertext names, and an unmounted one is
# missing or empty: either way the marker is not there by its name.
require_unlocked_cache() {
  [[ -z ${HF_CACHE_MARKER:-} ]] && return 0
  local marker="${HF_HOME:-/var/huggingface}/${HF_CACHE_MARKER}"
  if [[ ! -e $marker ]]; then
    printf 'error: model cache locked or not mounted: %s is missing; unlock it with deploy.yml (see docs/model-cache.md, "After a reboot")\n' \
      "$marker" >&2
    exit 3
  fi
}

migrate() {
  log "migrate-seed: applying database migrations and seed data"
  python -m src.database.cli migrate-seed || fail migrate-seed $?
}

prefetch() {
  if [[ -z ${HF_MODEL_REPOS//[[:space:],]/} ]]; then
    log "prefetch: HF_MODEL_REPOS is empty, no model to fetch"
    return 0
  fi
  log "prefetch: fetching ${HF_MODEL_REPOS} (default revision ${HF_REVISION:-main})"
  # The one step allowed to reach the Hub; it turns offline mode off for itself only.
  HF_HUB_OFFLINE=0 python /usr/local/lib/nica/prefetch_models.py \
    || fail prefetch $?
}

# The workers write their metrics into PROMETHEUS_MULTIPROC_DIR (prometheus_client's
# multiprocess mode), which must be empty at start: a previous run's files would be added in.
# The metrics process serves them; if it ever exits it is started again (a loop in the
# background: uvicorn, exec'd below as PID 1, does not watch it).
start_metrics() {
  if [[ ${METRICS_ENABLED:-1} == 0 ]]; then
    unset PROMETHEUS_MULTIPROC_DIR
    log "metrics: off (METRICS_ENABLED=0)"
    return 0
  fi
  export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-/tmp/nica-metrics}
  if [[ $PROMETHEUS_MULTIPROC_DIR != /* ]]; then
    printf 'error: PROMETHEUS_MULTIPROC_DIR must be an absolute path, got %s\n' \
      "$PROMETHEUS_MULTIPROC_DIR" >&2
    exit 2
  fi
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p -m 0700 "$PROMETHEUS_MULTIPROC_DIR"
  local port=${METRICS_PORT:-9464}
  if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535 || port == 8000)); then
    printf 'error: METRICS_PORT must be a port (1..65535) other than 8000, got %s\n' "$port" >&2
    exit 2
  fi
  log "metrics: serving /metrics and /summary on 0.0.0.0:${port}"
  (
    while true; do
      python -m src.metrics.server --port "$port" --backend-url http://127.0.0.1:8000 \
        && status=0 || status=$?
      log "metrics: the metrics process exited (${status}); starting it again in 5 s"
      sleep 5
    done
  ) &
}

serve() {
  if [[ ${RUN_DB_MIGRATIONS:-0} == 1 ]]; then migrate; fi
  if [[ ${HF_PREFETCH_ON_START:-1} == 1 ]]; then prefetch; fi
  # Serving never calls the Hub and never holds a token in its environment.
  export HF_HUB_OFFLINE=1
  unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HUGGINGFACE_HUB_TOKEN
  start_metrics
  log "serve: starting uvicorn on 0.0.0.0:8000"
  exec uvicorn src.main:app --host 0.0.0.0 --port 8000 \
    --workers "${UVICORN_WORKERS:-1}" --log-level "${UVICORN_LOG_LEVEL:-info}" \
    --timeout-graceful-shutdown 20 --no-server-header
}

case "${1:-serve}" in
  serve) require_unlocked_cache; serve ;;
  prepare) require_unlocked_cache; migrate; prefetch; log "prepare: done" ;;
  migrate) migrate ;;
  prefetch) require_unlocked_cache; prefetch ;;
  *) exec "$@" ;;
esac
