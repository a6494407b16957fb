"""The fleet's one database, as the stories left it: the database host's PostgreSQL,
published on its fleet address only, shared by both backend hosts, none of which runs
or publishes a PostgreSQL of its own."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

import pytest
from fleet import ADDRESS, BACKENDS, CANARY, DATABASE, SECOND, search, store
from runs import INSUFFICIENT_PRIVILEGE, as_the_slot, sh


def reachable(host: Any, address: str, port: int = 5432) -> bool:
    """Whether a TCP connection from `host` to address:port succeeds."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=3).close()"
    return bool(host.run(f"python3 -c {shlex.quote(probe)}").rc == 0)


def test_a_document_stored_through_one_host_is_found_through_the_other(hosts):
    title = f"fleet-{uuid.uuid4().hex[:8]}"
    text = f"A document stored through {CANARY} about lighthouses and tides, marker {title}."
    status = store(hosts[CANARY], title, text)
    assert status == 201, f"storing through {CANARY} answered {status}"
    titles = search(hosts[SECOND], text, 3)
    assert title in titles, f"{SECOND} did not find the document stored through {CANARY}: {titles}"


@pytest.mark.parametrize("host", BACKENDS)
def test_no_postgres_runs_on_a_backend_host(hosts, host):
    names = sh(hosts[host], "docker ps -a --format '{{.Names}}'").split()
    assert "nica-postgres-1" not in names, f"{host} runs its own PostgreSQL: {names}"


def test_the_database_port_is_published_on_the_fleet_address_only(hosts):
    bindings = json.loads(
        sh(hosts[DATABASE], "docker inspect -f '{{json .HostConfig.PortBindings}}' nica-postgres-1")
    )
    assert bindings == {"5432/tcp": [{"HostIp": ADDRESS[DATABASE], "HostPort": "5432"}]}, bindings


def test_a_backend_host_reaches_the_database(hosts):
    assert reachable(hosts[CANARY], ADDRESS[DATABASE]), (
        f"{CANARY} cannot connect to {ADDRESS[DATABASE]}:5432"
    )


def test_the_database_port_is_closed_on_the_database_hosts_other_addresses(hosts):
    assert not reachable(hosts[DATABASE], "127.0.0.1"), (
        f"PostgreSQL answers on 127.0.0.1:5432 of {DATABASE}"
    )


@pytest.mark.parametrize("host", BACKENDS)
def test_the_backend_hosts_publish_no_database_port(hosts, host):
    assert not reachable(hosts[DATABASE], ADDRESS[host]), f"{host} answers on 5432"


# Least privilege (roles/database, tasks_from: roles): the backend hosts hold the runtime
# role's password (the canary the owner's too), never the superuser's.
RUNTIME = "app_runtime"
PSQL = (
    "docker exec -i nica-postgres-1 psql -X -q -h /var/run/postgresql -U app -d app -At"
    f" -v ON_ERROR_STOP=1 -v runtime={RUNTIME} -f -"
)


def psql(host: Any, sql: str) -> list[str]:
    """SQL as the superuser on the database host, on psql's stdin (:'runtime' names the
    runtime role); the rows, columns split on |."""
    return sh(host, f"printf '%s\\n' {shlex.quote(sql)} | {PSQL}").split()


def test_the_backend_hosts_connect_as_the_runtime_role(hosts):
    for backend in BACKENDS:  # a connection from each, whatever its pool holds now
        search(hosts[backend], "lighthouses", 1)
    rows = psql(
        hosts[DATABASE],
        "SELECT DISTINCT host(client_addr), usename FROM pg_stat_activity"
        " WHERE client_addr IS NOT NULL",
    )
    # By role, not by address: what a published port shows as the source is Docker's to choose.
    connections = sorted(tuple(row.split("|")) for row in rows)
    assert connections and {user for _, user in connections} == {RUNTIME}, (
        f"(address, role) of the connections to the database: {connections}"
    )


def test_the_runtime_role_is_no_superuser_and_in_no_server_role(hosts):
    row = psql(
        hosts[DATABASE],
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,"
        " pg_has_role(:'runtime', 'pg_execute_server_program', 'MEMBER'),"
        " pg_has_role(:'runtime', 'pg_read_server_files', 'MEMBER'),"
        " pg_has_role(:'runtime', 'pg_write_server_files', 'MEMBER'),"
        " has_schema_privilege(:'runtime', 'public', 'CREATE')"
        " FROM pg_roles WHERE rolname = :'runtime'",
    )
    assert row == ["|".join(["f"] * 8)], f"{RUNTIME} has more than row access: {row}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "statement",
    ["CREATE TABLE nica_probe (id int)", "COPY (SELECT 1) TO PROGRAM 'true'"],
    ids=["create-table", "copy-to-program"],
)
def test_the_serving_slot_cannot(hosts, backend, statement):
    slot = json.loads(hosts[backend].file("/opt/nica/state/release.json").content_string)["slot"]
    container = f"nica-backend-{slot}-1"
    user, outcome = as_the_slot(hosts[backend], container, statement)
    assert user == RUNTIME, f"{container} on {backend} connects as {user}, not {RUNTIME}"
    assert outcome == INSUFFICIENT_PRIVILEGE, (
        f"{statement!r} as {user} on {backend}: {outcome}, expected permission denied"
    )


@pytest.fixture(scope="module")
def superuser_scan(hosts) -> dict[str, Any]:
    """Every file under the trees a deploy writes to or Docker keeps a container's files in,
    on each backend host, searched for the superuser's password (read on the database
    host) and, to show that the scan reaches the secrets, for the runtime role's: the files
    holding the superuser's (hits), those holding the runtime's (controls), and how many
    files were read."""
    secrets = "/opt/nica/compose/secrets"
    password = hosts[DATABASE].file(f"{secrets}/postgres_password").content_string
    assert len(password.strip()) >= 32, "the superuser's password file is not there"
    runtime = hosts[DATABASE].file(f"{secrets}/database_runtime_password").content_string
    script = (
        "import json, os, sys\n"
        "needle, control = sys.argv[1].strip().encode(), sys.argv[2].strip().encode()\n"
        "hits, controls, read = [], [], 0\n"
        "tops = ['/opt', '/etc', '/root', '/home', '/tmp', '/var/tmp', '/var/log', '/run',\n"
        "        '/var/lib/docker/containers', '/var/lib/docker/volumes']\n"
        "for top in tops:\n"
        "    for folder, _, files in os.walk(top):\n"
        "        for name in files:\n"
        "            path = os.path.join(folder, name)\n"
        "            try:\n"
        "                if os.path.islink(path) or not os.path.isfile(path):\n"
        "                    continue\n"
        "                with open(path, 'rb') as f:\n"
        "                    content = f.read()\n"
        "            except OSError:\n"
        "                continue\n"
        "            read += 1\n"
        "            if needle in content:\n"
        "                hits.append(path)\n"
        "            if control in content:\n"
        "                controls.append(path)\n"
        "print(json.dumps({'hits': hits, 'controls': controls, 'read': read}))\n"
    )
    return {
        backend: json.loads(
            hosts[backend].check_output(
                f"python3 -c {shlex.quote(script)} {shlex.quote(password)} {shlex.quote(runtime)}"
            )
        )
        for backend in BACKENDS
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_superuser_password_is_on_no_backend_host(superuser_scan, backend):
    scan = superuser_scan[backend]
    # The scan reaches the secrets: it finds the runtime role's password in the slots' copy.
    assert "/opt/nica/compose/secrets/database_password" in scan["controls"], scan
    assert scan["read"] >= 200, f"the scan of {backend} read only {scan['read']} files"
    assert scan["hits"] == [], f"the superuser's password is on {backend} in {scan['hits']}"


# A backend host holds the owner's password while it is the host that migrated in the last
# deploy that reached it (playbooks/tasks/wire_database.yml removes it from the others):
# the canary of the full deploys, and SECOND, the only host (so the migrating one) of
# test_limited's `--limit`, the last deploy that reached it.
MIGRATED_LAST = {CANARY: True, SECOND: True}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_owners_password_is_where_the_last_migration_ran(hosts, backend):
    held = hosts[backend].file("/opt/nica/compose/secrets/database_owner_password").exists
    assert held == MIGRATED_LAST[backend], (
        f"{backend} {'holds' if held else 'lacks'} the owner role's password"
    )
    # The database host holds it too (it made it); no backend host holds the superuser's.
    assert not hosts[backend].file("/opt/nica/compose/secrets/postgres_password").exists
