#!/usr/bin/env bash
# Build the local stand-in images the tests and the demo need, from Debian packages.
#
# No container registry is reachable from the build and test machines, so the images
# that production pulls (python:3.11-slim, pgvector/pgvector:pg17) and the Debian 13 "target host"
# are made here with debootstrap and `docker import`. Each image carries a label with
# the hash of this recipe: an image that is already there and up to date is kept.
#
#   testing/images/build.sh [OUT_DIR]     # also writes OUT_DIR/<name>.tar archives
#
# The Debian mirror is the one this machine's apt already uses (DEBIAN_MIRROR overrides).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:-}
recipe=$(cat "$here/build.sh" "$here/postgres-entrypoint.sh" | sha256sum | cut -c1-16)

HOST_IMAGE=${HOST_IMAGE:-nica-test/debian13-host:latest}
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

up_to_date() {  # image name -> 0 when it exists with this recipe's label
  [[ $(docker image inspect -f '{{ index .Config.Labels "org.nica.recipe" }}' "$1" 2>/dev/null) == "$recipe" ]]
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

import() {  # import DIR IMAGE [--change ...]
  local dir=$1 image=$2; shift 2
  tar -C "$dir" -c . | docker import --change "LABEL org.nica.recipe=$recipe" "$@" - "$image" >/dev/null
  log "built $image"
}

build_host() {
  bootstrap host trixie python3,systemd,systemd-sysv,dbus,sudo,iproute2,ca-certificates,procps,gnupg
  local d="$work/host"
  # A container is the "machine": no getty, no udev triggers that hang in a container.
  rm -f "$d"/etc/systemd/system/getty.target.wants/* "$d"/lib/systemd/system/multi-user.target.wants/getty.target
  echo debian13-host >"$d/etc/hostname"
  import "$d" "$HOST_IMAGE" --change 'CMD ["/sbin/init"]'
}

build_python() {
  bootstrap python bookworm python3,python3-venv,ca-certificates
  local d="$work/python"
  # The official image has `python` on PATH; so does the stand-in.
  ln -sf /usr/bin/python3 "$d/usr/local/bin/python"
  slim "$d"
  import "$d" "$PYTHON_IMAGE" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
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
  import "$d" "$POSTGRES_IMAGE" \
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
  import "$d" "$NGINX_IMAGE" --change 'CMD ["nginx", "-g", "daemon off;"]' --change 'EXPOSE 80'
  printf 'FROM %s\nSTOPSIGNAL SIGQUIT\n' "$NGINX_IMAGE" | docker build -q -t "$NGINX_IMAGE" - >/dev/null
}

command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mirror=$(debian_mirror)
work=$(mktemp -d /var/tmp/nica-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

pids=()
up_to_date "$HOST_IMAGE" || { build_host & pids+=($!); }
up_to_date "$PYTHON_IMAGE" || { build_python & pids+=($!); }
up_to_date "$POSTGRES_IMAGE" || { build_postgres & pids+=($!); }
up_to_date "$NGINX_IMAGE" || { build_nginx & pids+=($!); }
for pid in "${pids[@]}"; do wait "$pid"; done
[[ ${#pids[@]} -gt 0 ]] || log "all images up to date (recipe $recipe)"

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
