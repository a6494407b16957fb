#!/usr/bin/env bash
# Stand-in for the official postgres image's entrypoint, for images built from Debian
# packages (no registry is reachable in tests). It honours the same contract the stack
# relies on: POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# PGDATA, a first-run initdb, then postgres as the unprivileged `postgres` user.
set -Eeo pipefail

file_env() {  # file_env VAR: VAR or VAR_FILE, not both
  local var=$1 file_var="${1}_FILE"
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    echo "error: both $var and $file_var are set; set one" >&2; exit 1
  fi
  if [[ -n ${!file_var:-} ]]; then
    export "$var"="$(<"${!file_var}")"
  fi
}

init_database() {
  local pwfile
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/var/run/postgresql'"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [[ $POSTGRES_DB != postgres ]]; then
    postgres -D "$PGDATA" -c listen_addresses='' &
    local pid=$!
    until pg_isready -q -h /var/run/postgresql; do sleep 0.2; done
    psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    kill -INT "$pid"; wait "$pid" || true
  fi
  echo "database initialised in $PGDATA"
}

if [[ ${1:-} == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [[ ${1:-} == postgres ]]; then
  file_env POSTGRES_PASSWORD
  : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
  if [[ ! -s $PGDATA/PG_VERSION ]]; then
    [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "error: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2; exit 1; }
    init_database
  fi
fi
exec "$@"
