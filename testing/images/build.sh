#!/usr/bin/env bash
# Build the local stand-in images the tests and the demo need, from Debian packages.
#
# No container registry is reachable from the build and test machines, so the images
# that production pulls (python:3.11-slim, pgvector/pgvector:pg17) and the Debian 13 "target host"
# are made here with debootstrap and `docker import`. Each image carries a label with
# the hash of its own recipe (the functions that build it and the files they copy in): an
# image that is already there and up to date is kept, and a change to one image's recipe
# rebuilds that image only.
#
#   testing/images/build.sh [OUT_DIR]     # also writes OUT_DIR/<name>.tar archives
#   WITH_ENGINE_HOST=0 testing/images/build.sh ...   # not the fleet's engine host (the demo)
#
# The Debian mirror is the one this machine's apt already uses (DEBIAN_MIRROR overrides).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:-}

HOST_IMAGE=${HOST_IMAGE:-nica-test/debian13-host:latest}
ENGINE_HOST_IMAGE=${ENGINE_HOST_IMAGE:-nica-test/debian13-engine-host:latest}
PYTHON_IMAGE=${PYTHON_IMAGE:-nica-test/python:3.11-slim}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-nica-test/postgres:17}
NGINX_IMAGE=${NGINX_IMAGE:-nica-test/nginx:stable}

log() { printf '[images] %s\n' "$*" >&2; }

debian_mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [[ -n $uri ]] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
  [[ -n $uri ]] || { echo "error: no Debian mirror found in /etc/apt; set DEBIAN_MIRROR" >&2; exit 1; }
  echo "$uri"
}

# recipe FUNCTION... [-- FILE...] -> the hash of an image's recipe: the text of the
# functions that build it and the files they copy into it
recipe() {
  local functions=() files=()
  while (($#)) && [[ $1 != -- ]]; do functions+=("$1"); shift; done
  (($#)) && shift && files=("$@")
  { declare -f bootstrap slim import "${functions[@]}"; cat "${files[@]}" </dev/null; } | sha256sum | cut -c1-16
}

up_to_date() {  # IMAGE RECIPE -> 0 when the image exists with that recipe's label
  [[ $(docker image inspect -f '{{ index .Config.Labels "org.nica.recipe" }}' "$1" 2>/dev/null) == "$2" ]]
}

# bootstrap NAME SUITE PACKAGES -> a root filesystem in $work/NAME
bootstrap() {
  local name=$1 suite=$2 include=$3 dir="$work/$1"
  log "debootstrap $suite for $name"
  debootstrap --variant=minbase --include="$include" "$suite" "$dir" "$mirror" >"$work/$name.log" 2>&1 \
    || { tail -n 20 "$work/$name.log" >&2; echo "error: debootstrap of $name failed" >&2; return 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
}

slim() {  # what a -slim image leaves out: documentation and translations
  rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/*
}

import() {  # import DIR IMAGE RECIPE [--change ...]
  local dir=$1 image=$2 label=$3; shift 3
  tar -C "$dir" -c . | docker import --change "LABEL org.nica.recipe=$label" "$@" - "$image" >/dev/null
  log "built $image"
}

host_root() {  # NAME -> a Debian 13 target host's root filesystem in $work/NAME
  bootstrap "$1" trixie python3,systemd,systemd-sysv,dbus,sudo,iproute2,ca-certificates,procps,gnupg
  local d="$work/$1"
  # A container is the "machine": no getty, no udev triggers that hang in a container.
  rm -f "$d"/etc/systemd/system/getty.target.wants/* "$d"/lib/systemd/system/multi-user.target.wants/getty.target
  echo debian13-host >"$d/etc/hostname"
}

build_host() {
  host_root host
  import "$work/host" "$HOST_IMAGE" "$(recipe host_root build_host)" --change 'CMD ["/sbin/init"]'
}

# The fleet scenario's hosts: the target host with what deploy.yml and the fleet's
# prepare.yml would install already there (the engine, Compose v2, buildx, the Python
# modules the docker modules need, sshd; Debian's registry, which only the database host
# starts), so that the fleet spends its minutes on what it proves. The default scenario
# keeps the bare host and proves the engine's install from scratch.
build_engine_host() {
  host_root engine-host
  local d="$work/engine-host"
  # No service starts in the chroot; each starts when the container boots.
  printf '#!/bin/sh\nexit 101\n' >"$d/usr/sbin/policy-rc.d" && chmod 0755 "$d/usr/sbin/policy-rc.d"
  { chroot "$d" apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive chroot "$d" apt-get install -y -q --no-install-recommends \
        docker.io docker-cli docker-compose docker-buildx python3-requests python3-yaml \
        openssh-server docker-registry apache2-utils; } >"$work/engine-host-apt.log" 2>&1 \
    || { tail -n 20 "$work/engine-host-apt.log" >&2; echo "error: installing the engine in $d failed" >&2; return 1; }
  chroot "$d" apt-get clean
  rm -rf "$d"/var/lib/apt/lists/* "$d/usr/sbin/policy-rc.d"
  rm -f "$d"/etc/systemd/system/multi-user.target.wants/docker-registry.service
  # What molecule's prepare.yml writes for the inner engine (molecule/default/prepare.yml
  # says why), there before the engine first starts.
  mkdir -p "$d/etc/systemd/system/docker.service.d"
  printf '[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n' >"$d/etc/systemd/system/docker.service.d/nested.conf"
  import "$d" "$ENGINE_HOST_IMAGE" "$(recipe host_root build_engine_host)" --change 'CMD ["/sbin/init"]'
}

build_python() {
  bootstrap python bookworm python3,python3-venv,ca-certificates
  local d="$work/python"
  # The official image has `python` on PATH; so does the stand-in.
  ln -sf /usr/bin/python3 "$d/usr/local/bin/python"
  slim "$d"
  import "$d" "$PYTHON_IMAGE" "$(recipe build_python)" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
}

build_postgres() {
  # As pgvector/pgvector:pg17: PostgreSQL 17 with pgvector. Debian 13 has both (Debian 12 has
  # no pgvector package), so this one is built from trixie.
  bootstrap postgres trixie postgresql-17,postgresql-17-pgvector
  local d="$work/postgres" bin
  # The official image runs postgres as uid/gid 999; keep that so secret files owned
  # by 999 on the host read the same way with either image.
  chroot "$d" sh -c 'groupmod -g 999 postgres && usermod -u 999 -g 999 postgres' \
    || { echo "error: could not renumber the postgres user in $d" >&2; return 1; }
  # The package made a default cluster; the entrypoint makes its own in PGDATA.
  rm -rf "$d"/etc/postgresql/* "$d"/var/lib/postgresql/*
  slim "$d"
  chown -R 999:999 "$d"/var/lib/postgresql "$d"/var/run/postgresql "$d"/var/log/postgresql
  bin=$(ls -d "$d"/usr/lib/postgresql/*/bin | head -n1); bin=${bin#"$d"}
  install -m 0755 "$here/postgres-entrypoint.sh" "$d/usr/local/bin/docker-entrypoint.sh"
  import "$d" "$POSTGRES_IMAGE" "$(recipe build_postgres -- "$here/postgres-entrypoint.sh")" \
    --change "ENV PATH=$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV LANG=C.UTF-8' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["postgres"]' --change 'EXPOSE 5432'
  # `docker import` cannot set STOPSIGNAL; postgres wants SIGINT (fast shutdown), as upstream.
  printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$POSTGRES_IMAGE" | docker build -q -t "$POSTGRES_IMAGE" - >/dev/null
}

build_nginx() {
  # The official nginx image is Debian with nginx and curl; so is the stand-in.
  bootstrap nginx bookworm nginx-light,curl,ca-certificates
  local d="$work/nginx"
  rm -f "$d"/etc/nginx/sites-enabled/*
  slim "$d"
  import "$d" "$NGINX_IMAGE" "$(recipe build_nginx)" --change 'CMD ["nginx", "-g", "daemon off;"]' --change 'EXPOSE 80'
  printf 'FROM %s\nSTOPSIGNAL SIGQUIT\n' "$NGINX_IMAGE" | docker build -q -t "$NGINX_IMAGE" - >/dev/null
}

command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mirror=$(debian_mirror)
work=$(mktemp -d /var/tmp/nica-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

pids=()
up_to_date "$HOST_IMAGE" "$(recipe host_root build_host)" || { build_host & pids+=($!); }
if [[ ${WITH_ENGINE_HOST:-1} == 1 ]]; then
  up_to_date "$ENGINE_HOST_IMAGE" "$(recipe host_root build_engine_host)" || { build_engine_host & pids+=($!); }
fi
up_to_date "$PYTHON_IMAGE" "$(recipe build_python)" || { build_python & pids+=($!); }
up_to_date "$POSTGRES_IMAGE" "$(recipe build_postgres -- "$here/postgres-entrypoint.sh")" || { build_postgres & pids+=($!); }
up_to_date "$NGINX_IMAGE" "$(recipe build_nginx)" || { build_nginx & pids+=($!); }
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
((status == 0)) || { echo "error: an image failed to build (above)" >&2; exit 1; }
[[ ${#pids[@]} -gt 0 ]] || log "all images up to date"

if [[ -n $out_dir ]]; then
  mkdir -p "$out_dir"
  for image in "$PYTHON_IMAGE" "$POSTGRES_IMAGE" "$NGINX_IMAGE"; do
    archive="$out_dir/$(basename "${image%%:*}").tar"
    id=$(docker image inspect -f '{{ .Id }}' "$image")
    # Re-export only when the image changed, so the archive's checksum is stable.
    if [[ ! -f $archive || $(cat "$archive.id" 2>/dev/null) != "$id" ]]; then
      docker save "$image" -o "$archive.tmp" && mv "$archive.tmp" "$archive" && echo "$id" >"$archive.id"
      log "saved $image to $archive"
    fi
  done
fi
