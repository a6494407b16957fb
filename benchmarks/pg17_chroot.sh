#!/usr/bin/env bash
# A throwaway PostgreSQL 17 with pgvector, as the stack runs it, for benchmarks/search_index.py:
# the stand-in postgres image's filesystem (build/images/postgres.tar, made by bootstrap from
# Debian 13's postgresql-17 and postgresql-17-pgvector) unpacked into a folder and started in a
# chroot on 127.0.0.1 (default settings, as the stack's; trust auth: loopback, a benchmark's own
# data). Needs root (chroot). Debian 12's PostgreSQL 15, what the unit tests run, is not it.
#   benchmarks/pg17_chroot.sh start [PORT]   # prints the DSN: postgresql://postgres@127.0.0.1:PORT/postgres
#   benchmarks/pg17_chroot.sh stop           # stops it and removes the folder
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${NICA_PG17_ROOT:-$repo/build/bench/pg17-root}
image=$repo/build/images/postgres.tar
bin=/usr/lib/postgresql/17/bin

die() { echo "pg17_chroot: $*" >&2; exit 1; }

in_root() { chroot "$root" su postgres -s /bin/sh -c "$1"; }

unpack() {
  [[ -x $root$bin/postgres ]] && return 0
  [[ -f $image ]] || die "$image is missing: run scripts/lib/bootstrap.sh's bootstrap first"
  mkdir -p "$root"
  local layer
  layer=$(tar -xOf "$image" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Layers"][-1])')
  tar -xOf "$image" "$layer" | tar -x -C "$root"
  [[ -x $root$bin/postgres ]] || die "$image holds no $bin/postgres"
}

start() {
  local port=${1:-55417}
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, not $port"
  unpack
  if [[ ! -d $root/var/lib/bench/data ]]; then
    mkdir -p "$root/var/lib/bench"
    chroot "$root" chown postgres:postgres /var/lib/bench
    in_root "$bin/initdb -D /var/lib/bench/data -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  in_root "$bin/pg_ctl -D /var/lib/bench/data -l /var/lib/bench/log -w -o '-p $port -k /tmp -c listen_addresses=127.0.0.1' start >/dev/null"
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

stop() {
  if [[ -d $root/var/lib/bench/data ]]; then
    # stopped already (or never started): nothing to stop, the folder still goes
    in_root "$bin/pg_ctl -D /var/lib/bench/data -m fast -w stop >/dev/null" || true
  fi
  rm -rf "$root"
}

case ${1:-} in
  start) start "${2:-}" ;;
  stop) stop ;;
  *) die "usage: $0 start [PORT] | stop" ;;
esac
